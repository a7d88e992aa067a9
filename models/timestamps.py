"""The contract's two timestamp forms in, one form out.

In: an RFC 3339 `date-time` (section 5.6) with a zone, or an integer of epoch milliseconds.
Inside the detector every timestamp is an int of epoch milliseconds (cheap to compare and store).
Out: RFC 3339, UTC, millisecond precision, `Z`.

Exactly RFC 3339, not the wider ISO 8601 that `datetime.fromisoformat` reads: a 4-digit year,
`-`-separated month and day, `T`, hours, minutes and seconds, an optional `.` fraction of any
length (cut, not rounded, to milliseconds), then `Z` or `±hh:mm`; `T` and `Z` in either case.
Two decisions where the RFC leaves room:
- A space instead of `T` is accepted: section 5.6's NOTE allows it "for readability", it is what
  Python's `str(datetime)` writes, and producers have been sending it.
- A leap second (`:60`) is accepted where section 5.7 allows one, at 23:59:60 UTC on a month's
  last day, and read as 23:59:59.999: epoch milliseconds have no 61st second, and this keeps it
  after everything before it and before the next midnight. Which months really had one (the IERS
  list) is not checked.
"""

from __future__ import annotations

import re
from calendar import monthrange
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NAIVE_EPOCH = datetime(1970, 1, 1)
ONE_MS = timedelta(milliseconds=1)
MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last instant RFC 3339 can write

_DATE_TIME = r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
_OFFSET = r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
RFC3339_PATTERN = f"^{_DATE_TIME}{_OFFSET}$"
"""The form, as a JSON Schema pattern; ranges of month, day, hour, minute, second are checked on parsing."""
_in_form = re.compile(_DATE_TIME + _OFFSET).fullmatch  # fullmatch: `$` would let a trailing newline in
_in_form_without_zone = re.compile(_DATE_TIME).fullmatch
_SECOND = slice(17, 19)  # where the seconds are in a string of that form


def parse_timestamp(value: Any) -> int:
    """Epoch milliseconds from either accepted form; ValueError for anything else."""
    kind = type(value)  # exact types, as JSON gives them: cheaper than isinstance (hot path)
    if kind is str:
        ms = _parse_rfc3339(value)
    elif kind is int:
        ms = value
    elif kind is bool:  # true is not a time
        raise ValueError("a timestamp must be an RFC 3339 string or epoch milliseconds, not a boolean")
    else:
        raise ValueError("a timestamp must be an RFC 3339 string or epoch milliseconds")
    if not 0 <= ms <= MAX_MS:
        raise ValueError(f"timestamp out of range (1970 to 9999): {value!r:.80}")
    return ms


def _parse_rfc3339(text: str) -> int:
    if _in_form(text) is None:
        if _in_form_without_zone(text) is not None:
            raise ValueError(f"timestamp has no zone (add Z or an offset): {text!r:.80}")
        raise ValueError(f"not an RFC 3339 timestamp (like 2026-03-01T10:00:00Z or 2026-03-01T11:00:00.5+01:00): {text!r:.80}")
    try:
        # The form is checked above; fromisoformat checks the ranges (month, day of month, hour...).
        delta = datetime.fromisoformat(text.upper()) - EPOCH
    except ValueError:
        if text[_SECOND] == "60":
            return _leap_second(text)
        raise ValueError(f"not a valid date and time: {text!r:.80}") from None
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000  # cheaper than delta // ONE_MS


def _leap_second(text: str) -> int:
    """23:59:60 UTC on a month's last day, as 23:59:59.999 (see the module's docstring)."""
    try:
        second_59 = datetime.fromisoformat(f"{text[:17]}59{text[19:]}".upper())
    except ValueError:
        raise ValueError(f"not a valid date and time: {text!r:.80}") from None
    ms = (second_59.replace(microsecond=0) - EPOCH) // ONE_MS + 999
    if not 0 <= ms <= MAX_MS:
        return ms  # the caller says it is out of range
    utc = NAIVE_EPOCH + timedelta(milliseconds=ms)
    if (utc.hour, utc.minute) != (23, 59) or utc.day != monthrange(utc.year, utc.month)[1]:
        raise ValueError(f"a leap second is only 23:59:60 UTC on the last day of a month: {text!r:.80}")
    return ms


def format_timestamp(ms: int) -> str:
    """RFC 3339, UTC, milliseconds, `Z`: 2026-03-01T10:00:00.000Z."""
    # isoformat of a naive UTC time: the same text as strftime, at a third of the cost (hot path).
    return (NAIVE_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds") + "Z"


Timestamp = Annotated[
    int,
    BeforeValidator(parse_timestamp),
    PlainSerializer(format_timestamp, return_type=str),
    WithJsonSchema(
        {
            "oneOf": [
                {
                    "type": "string",
                    "format": "date-time",
                    "pattern": RFC3339_PATTERN,
                    "description": "RFC 3339 with a zone (Z, +hh:mm or -hh:mm); a space may stand for T",
                },
                {"type": "integer", "minimum": 0, "maximum": MAX_MS, "description": "epoch milliseconds"},
            ]
        },
        mode="validation",
    ),
    WithJsonSchema({"type": "string", "format": "date-time", "description": "RFC 3339, UTC, milliseconds, Z"}, mode="serialization"),
]
"""Epoch milliseconds inside; either contract form accepted on input; RFC 3339 `Z` on output."""
