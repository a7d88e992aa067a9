"""The firehose's fast lane: recognise, cheaply, a hit that is valid and changes nothing.

Most hits come from accounts whose usage started long ago. Such a hit cannot move the usage
start (an earlier hit of the account was already forwarded), so the firehose stage drops it. Dropping
must not hide an invalid record, though: every invalid hit still goes to the dead-letter topic
with its code. So the fast lane only answers "certainly valid, here is its received_at" for a
hit it can check completely with plain Python on the parsed JSON, and `None` ("not sure") for
anything else, which then takes the full pydantic decode that finds the right code.

What it checks is read from `TrackingHit` itself when this module is imported (`hit_checks`),
so the two cannot drift apart: each text field's type and length bounds, each timestamp field
(read by `models.timestamps.parse_timestamp`, as the model does), required or optional. A field
of any other form, a validator, or a model that does not ignore extra fields stops the import
instead of letting the fast lane pass what the model would refuse. `account_id` is the caller's
to check (DominatedHits only drops hits of accounts admitted from a validated record). A unit
test compares this lane with pydantic on generated hits, valid and invalid.
"""

from __future__ import annotations

import types
from typing import Annotated, Any, NamedTuple, Union, get_args, get_origin

import orjson
from pydantic import BaseModel, BeforeValidator, PlainSerializer, StringConstraints, WithJsonSchema

from models.inputs import TrackingHit
from models.timestamps import parse_timestamp
from streams.usage_filter import EarliestForwarded

ACCOUNT_FIELD = "account_id"
RECEIVED_AT = "received_at"

TextField = tuple[str, int, int]
"""name, min_length, max_length: a plain tuple, which the hot loops unpack faster than a NamedTuple."""


class HitChecks(NamedTuple):
    required_text: tuple[TextField, ...]
    optional_text: tuple[TextField, ...]  # absent or null, or a str within bounds
    optional_timestamps: tuple[str, ...]  # received_at, the one required timestamp, is read apart


def hit_checks(model: type[BaseModel]) -> HitChecks:
    """The checks `model` makes, in the forms this lane knows; TypeError for any other form."""
    if model.model_config.get("extra") != "ignore":
        raise TypeError(f"{model.__name__} does not ignore extra fields: the fast lane would pass what it refuses")
    decorators = model.__pydantic_decorators__
    if decorators.validators or decorators.field_validators or decorators.root_validators or decorators.model_validators:
        raise TypeError(f"{model.__name__} has validators the fast lane does not know")
    text: dict[bool, list[TextField]] = {True: [], False: []}
    timestamps: list[str] = []
    required_timestamps: list[str] = []
    for name, field in model.model_fields.items():
        required = field.is_required()
        annotation, metadata = field.annotation, list(field.metadata)
        if not required:
            annotation = _optional_of(annotation, field.default)
            if annotation is None:
                raise TypeError(f"{model.__name__}.{name}: an optional field must be `X | None = None`")
        if get_origin(annotation) is Annotated:
            annotation, *more = get_args(annotation)
            metadata += more
        if annotation is str and name == ACCOUNT_FIELD:
            continue
        if annotation is str and all(_is_length_bound(item) for item in metadata):
            lengths = [(item.min_length, item.max_length) for item in metadata]
            shortest = max((low for low, _ in lengths if low is not None), default=0)
            longest = min((high for _, high in lengths if high is not None), default=None)
            if longest is None:
                raise TypeError(f"{model.__name__}.{name}: a text field without max_length")
            text[required].append((name, shortest, longest))
        elif annotation is int and _is_timestamp(metadata):
            (required_timestamps if required else timestamps).append(name)
        else:
            raise TypeError(f"{model.__name__}.{name}: a field the fast lane does not know how to check")
    if required_timestamps != [RECEIVED_AT]:
        raise TypeError(f"{model.__name__}: the fast lane expects one required timestamp, {RECEIVED_AT}")
    return HitChecks(tuple(text[True]), tuple(text[False]), tuple(timestamps))


def _optional_of(annotation: Any, default: Any) -> Any:
    """X of `X | None` with a default of None; None for any other optional field."""
    if get_origin(annotation) not in (Union, types.UnionType) or default is not None:
        return None
    kinds = [kind for kind in get_args(annotation) if kind is not type(None)]
    return kinds[0] if len(kinds) == 1 else None


def _is_length_bound(item: Any) -> bool:
    """A StringConstraints that bounds the length and nothing else."""
    if type(item) is not StringConstraints:
        return False
    others = (item.strip_whitespace, item.to_upper, item.to_lower, item.strict, item.pattern, item.ascii_only)
    return all(other is None for other in others)


def _is_timestamp(metadata: list[Any]) -> bool:
    """`models.timestamps.Timestamp`: read by parse_timestamp; the rest only writes or documents it."""
    readers = [item for item in metadata if type(item) is BeforeValidator]
    others = [item for item in metadata if type(item) not in (BeforeValidator, PlainSerializer, WithJsonSchema)]
    return len(readers) == 1 and readers[0].func is parse_timestamp and not others


REQUIRED_TEXT, OPTIONAL_TEXT, OPTIONAL_TIMESTAMPS = hit_checks(TrackingHit)


def parse_object(value: bytes | None, max_bytes: int) -> dict[str, Any] | None:
    """The value as a JSON object, or None for anything the full decode must look at."""
    if not value or len(value) > max_bytes:
        return None
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return obj if type(obj) is dict else None


def valid_hit_received_at(obj: dict[str, Any]) -> int | None:
    """`received_at` in epoch ms of a hit `TrackingHit` certainly accepts; None when not sure.

    The account_id must already be known to be in form (checked by the caller).
    """
    if type(obj.get(ACCOUNT_FIELD)) is not str:
        return None
    for name, shortest, longest in REQUIRED_TEXT:
        text = obj.get(name)
        if type(text) is not str or not shortest <= len(text) <= longest:
            return None
    for name, shortest, longest in OPTIONAL_TEXT:
        text = obj.get(name)
        if text is not None and (type(text) is not str or not shortest <= len(text) <= longest):
            return None
    try:  # parse_timestamp reads them as the model does, ValueError for anything it refuses (also bool, float)
        for name in OPTIONAL_TIMESTAMPS:
            moment = obj.get(name)
            if moment is not None:
                parse_timestamp(moment)
        return parse_timestamp(obj.get(RECEIVED_AT))
    except ValueError:
        return None


class DominatedHits:
    """Whether a raw hit is certainly valid and cannot move its account's usage start earlier."""

    def __init__(self, forwarded: EarliestForwarded, max_bytes: int) -> None:
        self._dominates = forwarded.dominates
        self._max_bytes = max_bytes

    def __call__(self, value: bytes | None) -> bool:
        obj = parse_object(value, self._max_bytes)
        if obj is None:
            return False
        account_id = obj.get(ACCOUNT_FIELD)
        if type(account_id) is not str:
            return False
        received_at = valid_hit_received_at(obj)
        return received_at is not None and self._dominates(account_id, received_at)
