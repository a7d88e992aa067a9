"""The firehose stage's sorting of a batch: re-keyed by account, bad records dead-lettered with
their position, hits dominated by evidence already forwarded dropped. The shell's commit rule
needs Kafka: tests/integration/test_firehose.py."""

from __future__ import annotations

from dataclasses import dataclass

import orjson
import pytest

from streams.stages.firehose import Sorted
from tests.agents.conftest import Harness

HIT = {"hit_id": "h1", "account_id": "acct-1", "received_at": "2026-03-01T10:00:00Z", "page_url": "https://shop.example/"}
CAPI = {"event_id": "c1", "account_id": "acct-2", "received_at": 1772359200000, "integration": "shopify"}
NOW = 1772400000000
pytestmark = pytest.mark.anyio


@dataclass(frozen=True)
class Record:
    offset: int
    key: bytes | None
    value: bytes | None


def batch(*values: bytes | None, first_offset: int = 0) -> list[Record]:
    return [Record(first_offset + n, f"k{n}".encode(), value) for n, value in enumerate(values)]


def hit_at(received_at: int, hit_id: str, account_id: str = "acct-1") -> bytes:
    return orjson.dumps({**HIT, "hit_id": hit_id, "account_id": account_id, "received_at": received_at})


def forwarded(share: Sorted) -> list[tuple[bytes, str, str]]:
    return [(key, (event := orjson.loads(value))["type"], event["evidence"]["id"]) for key, value in share.forward]


async def test_hits_and_capi_events_are_re_keyed_by_account_as_account_events(harness: Harness) -> None:
    t, sorter = harness.usage, harness.usage.firehose.sorter
    hits = sorter.sort(t.topics.hits, 0, batch(orjson.dumps(HIT)), NOW)
    capi = sorter.sort(t.topics.capi, 0, batch(orjson.dumps(CAPI)), NOW)
    assert forwarded(hits) == [(b"acct-1", "usage_observed", "h1")]
    assert forwarded(capi) == [(b"acct-2", "usage_observed", "c1")]
    assert orjson.loads(capi.forward[0][1])["evidence"]["source"] == "conversion_api"
    assert (hits.dead, capi.dead, hits.dropped, capi.dropped) == ([], [], 0, 0)


async def test_an_invalid_record_becomes_a_dead_letter_naming_its_topic_partition_and_offset(harness: Harness) -> None:
    t, sorter = harness.usage, harness.usage.firehose.sorter
    bad_id = orjson.dumps({**HIT, "account_id": "bad id!"})
    share = sorter.sort(t.topics.hits, 3, batch(b"not json", bad_id, None, orjson.dumps(HIT), first_offset=40), NOW)
    letters = [(key, orjson.loads(letter), code) for key, letter, code in share.dead]
    assert [(key, d["key"], d["topic"], d["partition"], d["offset"], d["error"]["code"], d["raw"], d["dead_lettered_at"], code)
            for key, d, code in letters] == [
        (b"k0", "k0", t.topics.hits, 3, 40, "not_json", "not json", "2026-03-01T21:20:00.000Z", "not_json"),
        (b"k1", "k1", t.topics.hits, 3, 41, "invalid_account_id", bad_id.decode(), "2026-03-01T21:20:00.000Z", "invalid_account_id"),
        (b"k2", "k2", t.topics.hits, 3, 42, "empty_value", None, "2026-03-01T21:20:00.000Z", "empty_value"),
    ]
    assert all(letter["error"]["message"] for _, letter, _ in letters), "the contract's reason"
    assert forwarded(share) == [(b"acct-1", "usage_observed", "h1")], "the batch goes on after its bad records"


async def test_a_hit_dominated_by_one_forwarded_earlier_is_dropped(harness: Harness) -> None:
    t, sorter = harness.usage, harness.usage.firehose.sorter
    share = sorter.sort(t.topics.hits, 0, batch(
        hit_at(2_000, "first"),
        hit_at(3_000, "later"),  # usage already started earlier: dropped
        hit_at(2_000, "tie"),  # a tie may sort first: forwarded
        hit_at(1_000, "earlier"),
        hit_at(5_000, "other account's first", "acct-9"),
    ), NOW)
    assert [(key, hit_id) for key, _, hit_id in forwarded(share)] == [
        (b"acct-1", "first"), (b"acct-1", "tie"), (b"acct-1", "earlier"), (b"acct-9", "other account's first"),
    ]
    assert share.dropped == 1
    later = sorter.sort(t.topics.hits, 1, batch(hit_at(1_500, "after the earlier one")), NOW)
    assert (later.forward, later.dropped) == ([], 1), "the filter spans batches and partitions"


async def test_a_later_capi_event_is_dropped_after_its_full_decode(harness: Harness) -> None:
    t, sorter = harness.usage, harness.usage.firehose.sorter
    first = orjson.dumps(CAPI)
    later = orjson.dumps({**CAPI, "event_id": "c2", "received_at": CAPI["received_at"] + 1})
    share = sorter.sort(t.topics.capi, 0, batch(first, later, b"{}"), NOW)
    assert [hit_id for _, _, hit_id in forwarded(share)] == ["c1"]
    assert (share.dropped, [code for _, _, code in share.dead]) == (1, ["missing_field"])
