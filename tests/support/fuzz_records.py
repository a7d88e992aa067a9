"""Hypothesis strategies for input records: valid ones, and malformed ones that each carry the
dead-letter code the README gives for them (one defect per record, so the code is unambiguous).

The expected codes come from the README's table, not from the codec: the unit fuzz test checks
the codec against them, the integration fuzz test checks a running worker.
"""

from __future__ import annotations

import calendar
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from hypothesis import strategies as st

LIMIT = 4096  # USAGE_DETECTOR_MAX_RECORD_BYTES of the worker under fuzz (and of the unit fuzz)
MAX_MS = 253_402_300_799_999
KINDS = ("hits", "capi", "billing")
BILLING_TYPES = ("trial_started", "subscription_started", "charged", "cancellation_requested", "refund_issued", "plan_changed")
REQUIRED = {
    "hits": ("hit_id", "account_id", "received_at"),
    "capi": ("event_id", "account_id", "received_at"),
    "billing": ("event_id", "account_id", "type", "occurred_at"),
}
REQUIRED_BY_TYPE = {
    "charged": ("charge_id", "amount_cents", "currency", "reason"),
    "cancellation_requested": ("channel", "requested_by"),
    "refund_issued": ("charge_id",),
}
OPTIONAL_TEXT = {
    "hits": ("property_id", "event_name", "page_url", "click_id", "user_agent", "ip"),
    "capi": ("integration", "event_name", "transaction_id", "click_id", "currency"),
    "billing": (),
}
KNOWN_FIELDS = {
    "hit_id", "event_id", "account_id", "received_at", "occurred_at", "type", "trial_ends_at", "identity",
    "charge_id", "amount_cents", "currency", "reason", "channel", "requested_by", "value",
    *OPTIONAL_TEXT["hits"], *OPTIONAL_TEXT["capi"],
}  # fmt: skip


@dataclass(frozen=True)
class Sample:
    """One record for an input topic: `code` is the expected dead-letter code, None when valid."""

    kind: str
    value: bytes | None
    code: str | None
    key: bytes | None = None


def dumps(record: Any) -> bytes:
    """Compact UTF-8 JSON; unlike orjson, integers beyond 64 bits are written as they are."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


# ---- valid pieces ---------------------------------------------------------------------------

account_ids = st.from_regex(r"\A[A-Za-z0-9_.:\-]{1,64}\Z")
record_ids = st.text(min_size=1, max_size=128)
short_text = st.text(max_size=40)

_offset_minutes = st.sampled_from([0, 60, -330]) | st.integers(-(23 * 60 + 59), 23 * 60 + 59)


@st.composite
def rfc3339_instants(draw: st.DrawFn) -> tuple[str, int]:
    """An RFC 3339 date-time in any of its variants, and its epoch milliseconds.

    Variants: `T`, `t` or a space; a fraction of 0 to 9 digits; `Z`, `z`, `+00:00`, `-00:00` or any
    offset. The milliseconds come from the parts drawn (calendar.timegm), not from the parser.
    """
    local = draw(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30, 23, 59, 59)))
    offset = draw(_offset_minutes)
    digits = f"{local.microsecond:06d}{draw(st.integers(0, 999)):03d}"[: draw(st.integers(0, 9))]
    if offset:
        zone = f"{'+' if offset > 0 else '-'}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
    else:
        zone = draw(st.sampled_from(["Z", "z", "+00:00", "-00:00"]))
    separator = draw(st.sampled_from(["T", "t", " "]))
    text = f"{local:%Y-%m-%d}{separator}{local:%H:%M:%S}{'.' + digits if digits else ''}{zone}"
    ms = (calendar.timegm(local.timetuple()) - offset * 60) * 1000 + int(digits[:3].ljust(3, "0"))
    return text, ms


@st.composite
def timestamps(draw: st.DrawFn) -> str | int:
    """Either contract form: epoch milliseconds, or RFC 3339 with a zone (any variant)."""
    text, ms = draw(rfc3339_instants())
    return ms if draw(st.booleans()) else text


def _json_leaves() -> st.SearchStrategy[Any]:
    return st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False) | short_text


json_values = st.recursive(_json_leaves(), lambda inner: st.lists(inner, max_size=3) | st.dictionaries(short_text, inner, max_size=3), max_leaves=6)
extra_fields = st.dictionaries(st.text(max_size=12).filter(lambda k: k not in KNOWN_FIELDS), json_values, max_size=2)


# Page URLs and websites are free text; these are the ones a URL parser chokes on, or nearly.
urlish = st.sampled_from(
    ["http://[", "https://[::1]/cart", "http://[::1", "//[", "[", "http://[v1.x]/", "https://shop.example/cart?x=1#y",
     "http://a:99999/", "https://ＥＸＡＭＰＬＥ.com", "http://exa\u2100mple.com", "www.", "http://", ":", "http://user@host@x/"]  # noqa: RUF001 -- fullwidth letters on purpose
) | st.builds(lambda scheme, rest: f"{scheme}//{rest}", st.sampled_from(["http:", "https:", ""]), short_text)  # fmt: skip


def _optional(draw: st.DrawFn, record: dict[str, Any], name: str, strategy: st.SearchStrategy[Any]) -> None:
    choice = draw(st.sampled_from(["absent", "null", "value"]))
    if choice != "absent":
        record[name] = None if choice == "null" else draw(strategy)


@st.composite
def valid_records(draw: st.DrawFn, kind: str, billing_types: tuple[str, ...] = BILLING_TYPES) -> dict[str, Any]:
    """A record the contract accepts, unknown extra fields included."""
    record: dict[str, Any] = dict(draw(extra_fields))
    record["account_id"] = draw(account_ids)
    if kind == "hits":
        record.update(hit_id=draw(record_ids), received_at=draw(timestamps()))
        _optional(draw, record, "occurred_at", timestamps())
    elif kind == "capi":
        record.update(event_id=draw(record_ids), received_at=draw(timestamps()))
        _optional(draw, record, "occurred_at", timestamps())
        _optional(draw, record, "value", st.integers(-(10**9), 10**9) | st.floats(allow_nan=False, allow_infinity=False))
    else:
        type_ = draw(st.sampled_from(billing_types))
        record.update(event_id=draw(record_ids), type=type_, occurred_at=draw(timestamps()))
        if type_ == "trial_started":
            _optional(draw, record, "trial_ends_at", timestamps())
            identity = st.fixed_dictionaries(
                {}, optional={n: st.none() | short_text | urlish for n in ("email", "card_fingerprint", "device_id", "website", "signup_ip")}
            )
            _optional(draw, record, "identity", identity)
        elif type_ == "charged":
            record.update(
                charge_id=draw(record_ids),
                amount_cents=draw(st.integers(0, 2**63 - 1)),
                currency=draw(st.from_regex(r"\A[A-Za-z]{3}\Z")),
                reason=draw(st.sampled_from(["trial_conversion", "renewal", "upgrade", "other"])),
            )
        elif type_ == "cancellation_requested":
            record.update(
                channel=draw(st.sampled_from(["dashboard", "email", "chat", "phone", "payment_method_revoked", "other"])),
                requested_by=draw(st.sampled_from(["owner", "other"])),
            )
        elif type_ == "refund_issued":
            record["charge_id"] = draw(record_ids)
    for name in OPTIONAL_TEXT[kind]:
        _optional(draw, record, name, short_text | urlish if name == "page_url" else short_text)
    return record


# ---- one defect each --------------------------------------------------------------------------

NOT_RFC3339 = (
    "20260301T100000Z",  # basic format
    "2026-W09-7T10:00:00Z",  # week date
    "2026-060T10:00:00Z",  # ordinal date
    "2026-03-01T10Z",  # no minutes
    "2026-03-01T10:00Z",  # no seconds
    "2026-03-01T10:00:00,5Z",  # comma fraction
    "2026-03-01T10:00:00.Z",  # a point without digits
    "2026-03-01T10:00:00+0100",  # offset without a colon
    "2026-03-01T10:00:00+01",  # offset without minutes
    "2026-03-01T10:00:00+01:00:00",  # offset with seconds
    "2026-03-01T10:00:00+00:60",  # offset minutes out of range
    "2026-03-01X10:00:00Z",  # another separator
    "2026-03-01T10:00:00Z\n",  # a trailing newline
    " 2026-03-01T10:00:00Z",
    "2026-03-01T10:00:00 Z",
    "2026-3-1T10:00:00Z",
    "+2026-03-01T10:00:00Z",
    "2026-03-01T10:00:61Z",
    "2026-03-01T10:00:60Z",  # a leap second, but not at the end of a UTC month
    "\uff12\uff10\uff12\uff16-03-01T10:00:00Z",  # full-width digits
)
_not_str = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.lists(st.integers(), max_size=2) | st.dictionaries(short_text, st.integers(), max_size=2)
_not_str_not_null = _not_str.filter(lambda v: v is not None)
_bad_timestamps = st.one_of(
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),  # 1.0 is a float, not epoch milliseconds
    st.integers(max_value=-1),
    st.integers(min_value=MAX_MS + 1, max_value=2**63 - 1),
    st.just(2**64),  # beyond 64 bits
    st.datetimes(max_value=datetime(2300, 1, 1)).map(lambda d: d.isoformat()),  # no zone
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(1969, 12, 30)).map(lambda d: d.isoformat() + "Z"),  # before 1970
    st.sampled_from(["", "yesterday", "2026-13-01T00:00:00Z", "2026-03-01T25:00:00Z", "1772359200000", "2026-03-01"]),
    st.sampled_from(NOT_RFC3339),  # ISO 8601, or near it, but not RFC 3339
    st.lists(st.integers(), max_size=2),
    st.dictionaries(short_text, st.integers(), max_size=2),
)
_bad_record_ids = _not_str_not_null | st.just("") | st.text(min_size=129, max_size=200)
_bad_account_ids = (
    st.just("")
    | st.text(min_size=65, max_size=100, alphabet="abc")
    | st.from_regex(r"\A[A-Za-z0-9]{0,10}[^A-Za-z0-9_.:\-][A-Za-z0-9]{0,10}\Z")
    | st.sampled_from(["acct-1\n", "\nacct-1", "acct 1", "acct/1", "ａcct", "acct-1\x00"])  # noqa: RUF001 -- a fullwidth letter on purpose
    | _not_str_not_null
)


def _base(draw: st.DrawFn, kind: str, billing_types: tuple[str, ...] = BILLING_TYPES) -> dict[str, Any]:
    return draw(valid_records(kind, billing_types))


def codes_for(kind: str) -> tuple[str, ...]:
    """Every dead-letter code a record on topic `kind` can earn (unknown_type: billing only)."""
    return tuple(code for code in _DEFECTS if code != "unknown_type" or kind == "billing")


@st.composite
def malformed_with(draw: st.DrawFn, kind: str, code: str) -> Sample:
    """A record for topic `kind` with exactly one defect, of the kind that earns `code`."""
    value = draw(_DEFECTS[code](kind))
    if value is not None and len(value) > LIMIT:
        code = "too_large"  # the size is judged before anything else (rare: long random texts)
    return Sample(kind=kind, value=value, code=code)


def malformed(kind: str) -> st.SearchStrategy[Sample]:
    """A record for topic `kind` with exactly one defect, and the code it must be dead-lettered with."""
    return st.sampled_from(codes_for(kind)).flatmap(lambda code: malformed_with(kind, code))


def _empty_value(kind: str) -> st.SearchStrategy[bytes | None]:
    return st.sampled_from([None, b""])


@st.composite
def _too_large(draw: st.DrawFn, kind: str) -> bytes:
    size = draw(st.integers(LIMIT + 1, 3 * LIMIT))
    if draw(st.booleans()):  # a valid record with a big unknown field: size alone decides
        record = _base(draw, kind)
        record["padding"] = "x" * size
        return dumps(record)
    pattern = draw(st.binary(min_size=1, max_size=16))
    return (pattern * (size // len(pattern) + 1))[:size]


_BAD_UTF8 = [b"\xff", b"\xfe", b"\x80", b"\xc0\xaf", b"\xc3\x28", b"\xed\xa0\x80", b"\xe2\x82", b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xf8\x88\x80\x80\x80"]


@st.composite
def _invalid_encoding(draw: st.DrawFn, kind: str) -> bytes:
    bad = draw(st.sampled_from(_BAD_UTF8))
    if draw(st.booleans()):  # inside a string of an otherwise valid record
        record = _base(draw, kind)
        record[draw(st.sampled_from(["note", *REQUIRED[kind]]))] = "\u2603MARK\u2603"
        value = dumps(record).replace("\u2603MARK\u2603".encode(), draw(short_text).encode() + bad, 1)
    else:  # anywhere in arbitrary bytes
        head, tail = draw(st.binary(max_size=40)), draw(st.binary(max_size=40))
        value = head + bad + tail
    if _is_utf8(value):  # the bytes around completed the sequence (b"\xe2\x82" + b"\x8e"): break it again
        value += b"\xff"
    return value


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


_BAD_NUMBERS = [b"NaN", b"-NaN", b"nan", b"Infinity", b"-Infinity", b"1e400", b"-1e999", b"01", b"+1", b".5", b"1.", b"0x10", b"1e", b"--1"]


@st.composite
def _not_json(draw: st.DrawFn, kind: str) -> bytes:
    form = draw(st.sampled_from(["truncated", "bad_number", "deep", "junk", "trailing", "syntax", "lone_surrogate"]))
    if form == "truncated":
        text = dumps(_base(draw, kind))
        cuts = [i for i in range(1, len(text)) if (text[i] & 0xC0) != 0x80]  # never inside a character
        value = text[: draw(st.sampled_from(cuts))]
    elif form == "bad_number":
        record = _base(draw, kind)
        record[draw(st.sampled_from(["received_at", "amount_cents", "note", "value"]))] = "\u2603NUM\u2603"
        value = dumps(record).replace(b'"\xe2\x98\x83NUM\xe2\x98\x83"', draw(st.sampled_from(_BAD_NUMBERS)), 1)
    elif form == "deep":  # nesting deeper than 1024
        depth = draw(st.integers(1025, (LIMIT - 16) // 2))
        value = b"[" * depth + b"]" * depth if draw(st.booleans()) else b'{"x":' + b"[" * depth + b"]" * depth + b"}"
    elif form == "junk":
        value = draw(st.text(min_size=1, max_size=60).filter(lambda t: not t.startswith("\ufeff") and not _is_json(t.encode()))).encode()
    elif form == "trailing":
        value = dumps(_base(draw, kind)) + draw(st.sampled_from([b" x", b"{}", b",", b"\x00", b"]"]))
    elif form == "syntax":
        value = draw(st.sampled_from([b"{'account_id': 'a'}", b'{"a":1,}', b'{"a" 1}', b"{a:1}", b'{"a":1 /* c */}', b'{"a":tru}', b"{", b"}", b'{"a":"\n"}']))
    else:
        value = b'{"hit_id":"\\ud800","account_id":"a","received_at":1}'
    return value


def _is_json(data: bytes) -> bool:
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    return True


@st.composite
def _not_an_object(draw: st.DrawFn, kind: str) -> bytes:
    form = draw(st.sampled_from(["value", "deep", "huge_number", "records"]))
    if form == "value":
        value = dumps(draw(json_values.filter(lambda v: not isinstance(v, dict))))
    elif form == "deep":  # deep, but within 1024
        depth = draw(st.integers(1, 1024))
        value = b"[" * depth + b"]" * depth
    elif form == "huge_number":
        value = draw(st.sampled_from([b"123456789012345678901234567890", b"-1e308", b"18446744073709551616", b"1.5e308"]))
    else:  # valid records, but in a list or as a string
        record = dumps(_base(draw, kind))
        value = b"[" + record + b"]" if draw(st.booleans()) else dumps(record.decode())
    return value


def _required_fields(record: dict[str, Any], kind: str) -> tuple[str, ...]:
    return REQUIRED[kind] + REQUIRED_BY_TYPE.get(record.get("type", ""), ())


@st.composite
def _missing_field(draw: st.DrawFn, kind: str) -> bytes:
    if draw(st.integers(0, 9)) == 0:
        return dumps(draw(extra_fields))  # no known field at all (also {})
    record = _base(draw, kind)
    name = draw(st.sampled_from(_required_fields(record, kind)))
    if draw(st.booleans()):
        del record[name]
    else:
        record[name] = None
    return dumps(record)


@st.composite
def _invalid_field(draw: st.DrawFn, kind: str) -> bytes:
    billing_types = ("trial_started", "charged", "cancellation_requested") if kind == "billing" else BILLING_TYPES
    record = _base(draw, kind, billing_types)
    type_ = record.get("type")
    choices: list[tuple[str, st.SearchStrategy[Any]]] = [
        ("hit_id" if kind == "hits" else "event_id", _bad_record_ids),
        ("received_at" if kind != "billing" else "occurred_at", _bad_timestamps),
        *((name, _not_str_not_null) for name in OPTIONAL_TEXT[kind]),
    ]
    if kind != "billing":
        choices.append(("occurred_at", _bad_timestamps))
    if kind == "capi":
        choices.append(("value", st.booleans() | short_text | st.lists(st.integers(), max_size=2)))
    if type_ == "trial_started":
        choices += [("trial_ends_at", _bad_timestamps), ("identity", st.booleans() | st.integers() | short_text | st.lists(st.integers(), max_size=2))]
        choices.append(("identity", st.fixed_dictionaries({"email": _not_str_not_null})))
    if type_ == "charged":
        choices += [
            ("charge_id", _bad_record_ids),
            ("amount_cents", st.integers(max_value=-1) | st.floats(allow_nan=False, allow_infinity=False) | st.booleans() | st.integers(0, 10**6).map(str) | st.just(2**64)),
            ("currency", st.sampled_from(["", "US", "USDD", "U$D", "12A", "ÜSD"]) | _not_str_not_null),
            ("reason", short_text.filter(lambda r: r not in ("trial_conversion", "renewal", "upgrade", "other")) | _not_str_not_null),
        ]
    if type_ == "cancellation_requested":
        choices += [
            ("channel", short_text.filter(lambda c: c not in ("dashboard", "email", "chat", "phone", "payment_method_revoked", "other")) | _not_str_not_null),
            ("requested_by", st.sampled_from(["Owner", "admin", ""]) | _not_str_not_null),
        ]
    name, bad = draw(st.sampled_from(choices))
    record[name] = draw(bad)
    return dumps(record)


@st.composite
def _invalid_account_id(draw: st.DrawFn, kind: str) -> bytes:
    record = _base(draw, kind)
    record["account_id"] = draw(_bad_account_ids)
    return dumps(record)


@st.composite
def _unknown_type(draw: st.DrawFn, kind: str) -> bytes:
    record = _base(draw, "billing")
    record["type"] = draw(short_text.filter(lambda t: t not in BILLING_TYPES) | _not_str_not_null)
    return dumps(record)


_DEFECTS = {
    "empty_value": _empty_value,
    "too_large": _too_large,
    "invalid_encoding": _invalid_encoding,
    "not_json": _not_json,
    "not_an_object": _not_an_object,
    "missing_field": _missing_field,
    "invalid_field": _invalid_field,
    "invalid_account_id": _invalid_account_id,
    "unknown_type": _unknown_type,
}

keys = st.one_of(st.none(), account_ids.map(str.encode), st.binary(max_size=24))
