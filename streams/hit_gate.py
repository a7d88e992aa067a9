"""The firehose's fast lane: recognise, cheaply, a hit that is valid and changes nothing.

Most hits come from accounts whose usage started long ago. Such a hit cannot move the usage
start (an earlier hit of the account was already forwarded), so route-inputs drops it. Dropping
must not hide an invalid record, though: every invalid hit still goes to the dead-letter topic
with its code. So the fast lane only answers "certainly valid, here is its received_at" for a
hit it can check completely with plain Python on the parsed JSON, and `None` ("not sure") for
anything else, which then takes the full pydantic decode that finds the right code.

What `TrackingHit` requires, checked here the same way (strict types, extra fields ignored):
`hit_id` a str of 1 to 128 characters; `account_id` in form (the caller only asks about ids
it already admitted from a validated record); `received_at` and, when present and not null,
`occurred_at` a timestamp as `models.timestamps.parse_timestamp` reads it; the optional text
fields null or a str of at most 8192 characters. A unit test compares this with pydantic on
generated hits, valid and invalid.
"""

from __future__ import annotations

from typing import Any

import orjson

from models.timestamps import parse_timestamp
from streams.usage_filter import EarliestForwarded

ID_MAX = 128
TEXT_MAX = 8192
TEXT_FIELDS = ("property_id", "event_name", "page_url", "click_id", "user_agent", "ip")


def parse_object(value: bytes | None, max_bytes: int) -> dict[str, Any] | None:
    """The value as a JSON object, or None for anything the full decode must look at."""
    if not value or len(value) > max_bytes:
        return None
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return obj if type(obj) is dict else None


def _timestamp(value: Any) -> int | None:
    kind = type(value)
    if kind is not int and kind is not str:  # bool, float, ...: let pydantic say why
        return None
    try:
        return parse_timestamp(value)
    except ValueError:
        return None


def valid_hit_received_at(obj: dict[str, Any]) -> int | None:
    """`received_at` in epoch ms of a hit `TrackingHit` certainly accepts; None when not sure.

    The account_id must already be known to be in form (checked by the caller).
    """
    hit_id = obj.get("hit_id")
    if type(hit_id) is not str or not 0 < len(hit_id) <= ID_MAX or type(obj.get("account_id")) is not str:
        return None
    for name in TEXT_FIELDS:
        text = obj.get(name)
        if text is not None and (type(text) is not str or len(text) > TEXT_MAX):
            return None
    occurred = obj.get("occurred_at")
    if occurred is not None and _timestamp(occurred) is None:
        return None
    return _timestamp(obj.get("received_at"))


class DominatedHits:
    """Whether a raw hit is certainly valid and cannot move its account's usage start earlier."""

    def __init__(self, forwarded: EarliestForwarded, max_bytes: int) -> None:
        self._dominates = forwarded.dominates
        self._max_bytes = max_bytes

    def __call__(self, value: bytes | None) -> bool:
        obj = parse_object(value, self._max_bytes)
        if obj is None:
            return False
        account_id = obj.get("account_id")
        if type(account_id) is not str:
            return False
        received_at = valid_hit_received_at(obj)
        return received_at is not None and self._dominates(account_id, received_at)
