"""Bytes from Kafka to validated records, and records to bytes: orjson on both sides.

Decoding is the edge where bad input is caught: every failure is an `InvalidRecord` whose
code names what is wrong, so the caller can dead-letter it and go on.
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, TypeAdapter, ValidationError

from models.errors import DeadLetterCode, InvalidRecord

T = TypeVar("T")

# When several things are wrong, the code reported is the first of these that applies.
_PRECEDENCE: tuple[DeadLetterCode, ...] = ("unknown_type", "invalid_account_id", "missing_field", "invalid_field")


def decode(adapter: TypeAdapter[T], value: bytes | None, max_bytes: int) -> T:
    if not value:
        raise InvalidRecord("empty_value", "the record has no value (null or zero bytes)")
    if len(value) > max_bytes:
        raise InvalidRecord("too_large", f"the value is {len(value)} bytes, over the limit of {max_bytes}")
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        code: DeadLetterCode = "invalid_encoding" if "UTF-8" in str(exc) else "not_json"
        raise InvalidRecord(code, str(exc)) from None
    if not isinstance(obj, dict):
        raise InvalidRecord("not_an_object", f"the value is JSON {type(obj).__name__}, not an object")
    try:
        return adapter.validate_python(obj)
    except ValidationError as exc:
        raise _invalid(exc) from None


def _invalid(exc: ValidationError) -> InvalidRecord:
    found: dict[DeadLetterCode, str] = {}
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "record"
        found.setdefault(_code(error), f"{where}: {error['msg']}")
    code = next(c for c in _PRECEDENCE if c in found)
    return InvalidRecord(code, found[code])


def _code(error: Any) -> DeadLetterCode:
    kind, loc = error["type"], error["loc"]
    if kind == "union_tag_invalid":
        # A null tag is a required field that is null (missing_field), not a type nobody knows.
        tag = str(error.get("ctx", {}).get("discriminator", "")).strip("'")
        record = error.get("input")
        return "missing_field" if isinstance(record, dict) and record.get(tag, ...) is None else "unknown_type"
    if kind in ("missing", "union_tag_not_found") or error.get("input", ...) is None:
        return "missing_field"
    if loc and loc[-1] == "account_id":
        return "invalid_account_id"
    return "invalid_field"


def encode(record: BaseModel) -> bytes:
    # orjson's bytes hold a buffer of 4 KiB or more whatever their length (8 KiB for a 1.2 KB
    # account): copied to their exact size, a stored value costs what it holds.
    return memoryview(orjson.dumps(record.model_dump(mode="json"))).tobytes()
