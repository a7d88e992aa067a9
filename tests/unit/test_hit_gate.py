"""The fast lane says "valid" only for hits the full decode accepts, with the same received_at,
and says it for every valid hit of an admitted account (else it would drop nothing).

The generated values are built from `TrackingHit`'s JSON schema, not from the fast lane's own
reading of the model: each field's good values, and bad ones just past each bound, follow the
model when it changes.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from models.codec import decode
from models.errors import InvalidRecord
from models.inputs import TrackingHit
from models.timestamps import MAX_MS, Timestamp
from streams.edge import HITS
from streams.hit_gate import DominatedHits, hit_checks, parse_object, valid_hit_received_at
from streams.usage_filter import EarliestForwarded
from tests.support.fuzz_records import NOT_RFC3339, extra_fields, rfc3339_instants, valid_records
from tools.bench.workload import HitMaker

LIMIT = 262_144
ACCOUNT = "acct-1"  # in form: the caller only asks about accounts admitted from a validated hit
SCHEMA = TrackingHit.model_json_schema()
REQUIRED = set(SCHEMA["required"])

GOOD_TIMES = st.one_of(
    st.integers(min_value=0, max_value=MAX_MS),
    st.sampled_from([0, MAX_MS, "1970-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z", "2016-12-31T23:59:60Z"]),
    rfc3339_instants().map(lambda instant: instant[0]),
)
BAD_TIMES = st.one_of(
    st.integers(min_value=-(2**63), max_value=-1),
    st.integers(min_value=MAX_MS + 1, max_value=2**63 - 1),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["2026-03-01T10:00:00", "1969-12-31T23:59:59Z", "yesterday", "", "2026-02-30T10:00:00Z", *NOT_RFC3339]),
    st.lists(st.integers(-5, 5), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(-5, 5), max_size=1),
)
NOT_TEXT = st.one_of(
    st.integers(-(2**63), 2**63 - 1), st.booleans(), st.floats(allow_nan=False, allow_infinity=False), st.lists(st.text(max_size=3), max_size=2)
)
# One code point each, in one, two and four UTF-8 bytes (and two UTF-16 units): a length is in code points.
LETTERS = st.sampled_from(["x", "é", "\U0001f600"])


def _of_length(length: int) -> st.SearchStrategy[str]:
    return LETTERS.map(lambda letter: letter * length)


def _text(bounds: dict[str, Any]) -> tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]:
    """Good and bad values of a string field with minLength / maxLength."""
    shortest, longest = bounds.get("minLength", 0), bounds["maxLength"]
    good = st.one_of(_of_length(shortest), _of_length(longest), st.text(min_size=shortest, max_size=min(longest, 40)))
    just_out = [_of_length(longest + 1), *([_of_length(shortest - 1)] if shortest else [])]
    bad = st.one_of(*just_out * 2, NOT_TEXT)
    return good, bad


def _is_timestamp(schema: dict[str, Any]) -> bool:
    return any(form.get("format") == "date-time" for form in schema.get("oneOf", []))


def field_values(name: str) -> tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]:
    """Good and bad values of `TrackingHit.name`, read from its JSON schema; null is good when optional."""
    schema = SCHEMA["properties"][name]
    forms = [form for form in schema.get("anyOf", [schema]) if form.get("type") != "null"]
    nullable = len(forms) < len(schema.get("anyOf", [schema]))
    assert len(forms) == 1, f"{name}: a field form this test does not know"
    (form,) = forms
    if _is_timestamp(form):
        good, bad = GOOD_TIMES, BAD_TIMES
    elif form.get("type") == "string" and "maxLength" in form:
        good, bad = _text(form)
    else:
        raise AssertionError(f"{name}: a field form this test does not know: {form}")
    return (st.one_of(good, st.none()) if nullable else good), (bad if nullable else st.one_of(bad, st.none()))


FIELDS = {name: field_values(name) for name in SCHEMA["properties"] if name != "account_id"}


@st.composite
def hits(draw: st.DrawFn, defects: bool = True) -> dict[str, Any]:
    """A hit of ACCOUNT, each field good or left out when optional; then, now and then, one defect:
    a field given a bad value, or a required one left out (one defect: the other fields cannot hide it)."""
    obj: dict[str, Any] = dict(draw(extra_fields))
    obj["account_id"] = ACCOUNT
    for name, (good, _) in FIELDS.items():
        if name in REQUIRED or draw(st.booleans()):
            obj[name] = draw(good)
    defect = draw(st.sampled_from(sorted(FIELDS))) if defects and draw(st.booleans()) else None
    if defect in REQUIRED and draw(st.integers(0, 9)) == 0:
        del obj[defect]
    elif defect is not None:
        obj[defect] = draw(FIELDS[defect][1])
    return obj


def full_decode(obj: dict[str, Any]) -> int | None:
    try:
        return decode(HITS, orjson.dumps(obj), LIMIT).received_at
    except InvalidRecord:
        return None


@settings(max_examples=2_000, deadline=None)
@given(hits())
def test_the_fast_lane_says_valid_exactly_when_the_full_decode_accepts(obj: dict[str, Any]) -> None:
    assert valid_hit_received_at(obj) == full_decode(obj)


@settings(max_examples=500, deadline=None)
@given(st.one_of(hits(defects=False), valid_records("hits")))
def test_every_valid_hit_takes_the_fast_lane(obj: dict[str, Any]) -> None:
    # valid_records: any account in form, unknown extra fields, every timestamp variant.
    received_at = valid_hit_received_at(obj)
    assert received_at is not None
    assert received_at == full_decode(obj)


@settings(max_examples=1_000, deadline=None)
@given(hits(), st.integers(0, MAX_MS))
def test_a_dropped_hit_is_valid_and_later_than_the_forwarded_one(obj: dict[str, Any], forwarded_at: int) -> None:
    seen = EarliestForwarded(capacity=10)
    seen.admit(ACCOUNT, forwarded_at)
    received_at = full_decode(obj)
    assert DominatedHits(seen, LIMIT)(orjson.dumps(obj)) == (received_at is not None and received_at > forwarded_at)


def test_realistic_hits_take_the_fast_lane() -> None:
    maker = HitMaker(3)
    for number in range(500):
        _, value, _ = maker.hit(number, 1_772_359_200_000 + number)
        obj = parse_object(value, LIMIT)
        assert obj is not None
        assert valid_hit_received_at(obj) == decode(HITS, value, LIMIT).received_at


@pytest.mark.parametrize("value", [None, b"", b"x" * (LIMIT + 1), b"not json", b"[]", b'"text"', b'{"a": NaN}'])
def test_anything_odd_goes_to_the_full_decode(value: bytes | None) -> None:
    assert parse_object(value, LIMIT) is None


def test_only_an_account_admitted_before_can_dominate() -> None:
    seen = EarliestForwarded(capacity=10)
    assert not seen.dominates("a", 200)
    assert seen.admit("a", 100)
    assert seen.dominates("a", 200) and seen.dominates("a", 101)
    assert not seen.dominates("a", 100) and not seen.dominates("a", 99)
    assert not seen.dominates("b", 200)
    assert len(seen) == 1  # asking learns nothing


def test_a_hit_is_dropped_only_when_valid_and_dominated() -> None:
    seen = EarliestForwarded(capacity=10)
    dominated = DominatedHits(seen, LIMIT)
    seen.admit("a", 1_000)

    def value(**fields: Any) -> bytes:
        return orjson.dumps({"hit_id": "h2", "account_id": "a", "received_at": 2_000, **fields})

    assert dominated(value())
    assert not dominated(value(received_at=999))  # earlier: it moves the usage start
    assert not dominated(value(received_at=1_000))  # a tie: its id may sort first; the account decides
    assert not dominated(value(account_id="b"))  # never admitted
    assert not dominated(value(received_at="tomorrow"))  # invalid: the full decode dead-letters it
    assert not dominated(value(received_at="20260301T100000Z"))  # ISO 8601, not RFC 3339
    assert not dominated(value(hit_id=""))
    assert not dominated(value(account_id=7))
    assert not dominated(b"not json")


# The fast lane reads its checks from the model; a model it cannot read stops the import.
class Hit(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    hit_id: Annotated[str, StringConstraints(min_length=2, max_length=10)]
    account_id: str
    received_at: Timestamp
    page_url: Annotated[str, StringConstraints(max_length=20)] | None = None
    occurred_at: Timestamp | None = None


class WithNumber(Hit):
    screen_width: int | None = None


class WithPattern(Hit):
    property_id: Annotated[str, StringConstraints(pattern=r"^p_[0-9]+$")] | None = None


class WithoutMaxLength(Hit):
    note: str | None = None


class WithFieldBound(Hit):
    note: str | None = Field(None, max_length=10)


class WithDefault(Hit):
    event_name: Annotated[str, StringConstraints(max_length=20)] | None = "page_view"


class WithValidator(Hit):
    @field_validator("page_url")
    @classmethod
    def https_only(cls, url: str | None) -> str | None:
        return url


class Forbidding(Hit):
    model_config = ConfigDict(extra="forbid")


class TwoClocks(Hit):
    sent_at: Timestamp


def test_the_checks_are_read_from_the_model() -> None:
    assert hit_checks(Hit) == ((("hit_id", 2, 10),), (("page_url", 0, 20),), ("occurred_at",))


@pytest.mark.parametrize("model", [WithNumber, WithPattern, WithoutMaxLength, WithFieldBound, WithDefault, WithValidator, Forbidding, TwoClocks])
def test_a_model_the_fast_lane_cannot_check_is_refused(model: type[BaseModel]) -> None:
    with pytest.raises(TypeError):
        hit_checks(model)
