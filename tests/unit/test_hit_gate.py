"""The fast lane says "valid" only for hits the full decode accepts, with the same received_at."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.codec import decode
from models.errors import InvalidRecord
from streams.stages.route import HITS
from tools.bench.workload import HitMaker
from streams.hit_gate import DominatedHits, parse_object, valid_hit_received_at
from streams.usage_filter import EarliestForwarded

LIMIT = 262_144

GOOD_TIMES = st.one_of(
    st.integers(min_value=0, max_value=253_402_300_799_999),
    st.sampled_from(["2026-03-01T10:00:00Z", "2026-03-01t10:00:00.5z", "2026-03-01T10:00:00+02:00", "9999-12-31T23:59:59.999Z"]),
)
BAD_TIMES = st.one_of(
    st.integers(min_value=-(2**63), max_value=-1),
    st.integers(min_value=253_402_300_800_000, max_value=2**63 - 1),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["2026-03-01T10:00:00", "1969-12-31T23:59:59Z", "yesterday", "", "2026-02-30T10:00:00Z"]),
    st.lists(st.integers(-5, 5), max_size=2),
)
GOOD_TEXT = st.one_of(st.none(), st.text(max_size=40), st.just("x" * 8192))
BAD_TEXT = st.one_of(st.just("x" * 8193), st.integers(-(2**63), 2**63 - 1), st.booleans(), st.floats(allow_nan=False, allow_infinity=False), st.lists(st.text(max_size=3), max_size=2))
GOOD_ID = st.one_of(st.text(min_size=1, max_size=128), st.just("h" * 128))
BAD_ID = st.one_of(st.just(""), st.just("h" * 129), st.integers(-(2**63), 2**63 - 1), st.none(), st.booleans())


def mostly_good(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(*[good] * 12, bad)


OPTIONAL_TEXT = ("property_id", "event_name", "page_url", "click_id", "user_agent", "ip", "unknown_extra")
hits = st.fixed_dictionaries(
    {
        "account_id": st.just("acct-1"),
        "hit_id": mostly_good(GOOD_ID, BAD_ID),
        "received_at": mostly_good(GOOD_TIMES, BAD_TIMES),
    },
    optional={
        "occurred_at": mostly_good(st.one_of(st.none(), GOOD_TIMES), BAD_TIMES),
        **{name: mostly_good(GOOD_TEXT, BAD_TEXT) for name in OPTIONAL_TEXT},
    },
)

good_hits = st.fixed_dictionaries(
    {"account_id": st.just("acct-1"), "hit_id": GOOD_ID, "received_at": GOOD_TIMES},
    optional={"occurred_at": st.one_of(st.none(), GOOD_TIMES), **{name: GOOD_TEXT for name in OPTIONAL_TEXT}},
)


def full_decode(obj: dict[str, Any]) -> int | None:
    try:
        return decode(HITS, orjson.dumps(obj), LIMIT).received_at
    except InvalidRecord:
        return None


@settings(max_examples=1_500, deadline=None)
@given(st.one_of(hits, good_hits))
def test_the_fast_lane_says_valid_exactly_when_the_full_decode_accepts(obj: dict[str, Any]) -> None:
    # The account is in form: the caller only asks about accounts admitted from a validated hit.
    assert valid_hit_received_at(obj) == full_decode(obj)


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
    assert not dominated(value(hit_id=""))
    assert not dominated(value(account_id=7))
    assert not dominated(b"not json")
