"""process-usage: the usage record published, sent on to the account's processor, and saved;
unreadable records dead-lettered; a stored record this worker cannot read left as it is."""

from __future__ import annotations

import orjson
import pytest

from models.internal import encode_internal
from tests.agents.conftest import Harness, settle
from tests.unit.factories import C, make_hit

pytestmark = pytest.mark.anyio
ACCOUNT = b"acct-test-1"  # the factories' account


def evidence_ids(records: list[tuple[bytes | None, dict]]) -> list[tuple[str, int]]:
    """(first evidence id, version) of each usage record: as published, or inside a usage_recorded."""
    usage = [record.get("usage", record) for _, record in records]
    return [(u["first_evidence"]["id"], u["version"]) for u in usage]


async def test_the_earliest_evidence_is_published_sent_on_and_saved_and_later_evidence_changes_nothing(
    harness: Harness,
) -> None:
    u = harness.usage
    async with u.process_usage.test_context() as agent:
        for hit in (make_hit(C + 60_000, "h2"), make_hit(C + 120_000, "h3"), make_hit(C, "h1"), make_hit(C, "h1")):
            await agent.put(encode_internal(hit), key=ACCOUNT)
        await settle(agent)
    published = harness.sent.to(u.topics.usage)
    # Every evidence publishes the current record (a lost publication is repaired by reading again).
    assert evidence_ids(published) == [("h2", 1), ("h2", 1), ("h1", 2), ("h1", 2)]
    sent_on = harness.sent.to(u.topics.account_events)
    assert [record["type"] for _, record in sent_on] == ["usage_recorded"] * 3
    # A change, and the evidence that made it read again; never a later hit (it caused no sending).
    assert evidence_ids(sent_on) == [("h2", 1), ("h1", 2), ("h1", 2)]
    assert all(key == ACCOUNT for key, _ in published + sent_on)
    saved = [orjson.loads(value) for _, value in harness.changelog["usage"]]
    # Saved at every step, unchanged ones too: that repairs a changelog behind the local store.
    assert [(s["usage"]["first_evidence"]["id"], s["usage"]["version"]) for s in saved] == [("h2", 1), ("h2", 1), ("h1", 2), ("h1", 2)]
    assert published[-1][1] == saved[-1]["usage"], "the table holds the record as published"
    lag = harness.usage_metrics.registry.get_sample_value("usage_detector_usage_start_lag_seconds_count")
    assert lag == 2, "the lag is observed at each change of the usage start, not at a republication"


async def test_a_usage_record_is_stamped_with_its_evidence_time_on_the_topic_not_the_clock(harness: Harness) -> None:
    """Reprocessing after a crash rebuilds the very same record, never a conflicting version."""
    u = harness.usage
    async with u.process_usage.test_context() as agent:
        await agent.put(encode_internal(make_hit(C, "h1")), key=ACCOUNT, timestamp=1_790_000_000.5)
        await settle(agent)
    ((_, record),) = harness.sent.to(u.topics.usage)
    assert record["detected_at"] == "2026-09-21T14:13:20.500Z"


async def test_unreadable_evidence_is_dead_lettered_and_the_next_is_processed(harness: Harness) -> None:
    u = harness.usage
    newer = orjson.dumps({**orjson.loads(encode_internal(make_hit(C))), "schema_version": 2})
    async with u.process_usage.test_context() as agent:
        await agent.put(b"{not json", key=ACCOUNT)
        await agent.put(newer, key=ACCOUNT)
        await agent.put(encode_internal(make_hit(C, "h1")), key=ACCOUNT)
        await settle(agent)
    letters = [(d["topic"], d["offset"], d["error"]["code"]) for _, d in harness.sent.to(u.topics.dead_letter)]
    assert letters == [(u.topics.usage_evidence, 0, "unreadable_internal"), (u.topics.usage_evidence, 1, "unsupported_schema_version")]
    assert evidence_ids(harness.sent.to(u.topics.usage)) == [("h1", 1)]


async def test_a_stored_usage_record_this_worker_cannot_read_is_left_as_it_is(harness: Harness) -> None:
    """Mid-upgrade, a newer worker's record: not overwritten, not restarted at version 1 (a conflict)."""
    u = harness.usage
    newer = b'{"schema_version":2,"account_id":"acct-test-1","usage":"of a newer version"}'
    u.usage.data[ACCOUNT] = newer
    async with u.process_usage.test_context() as agent:
        await agent.put(encode_internal(make_hit(C, "h1")), key=ACCOUNT)
        await settle(agent)
    ((key, letter),) = harness.sent.to(u.topics.dead_letter)
    assert (key, letter["error"]["code"]) == (ACCOUNT, "unsupported_schema_version")
    assert letter["error"]["message"].startswith("stored usage of acct-test-1:")
    assert u.usage.data[ACCOUNT] == newer
    assert harness.sent.to(u.topics.usage) == [] and harness.sent.to(u.topics.account_events) == []
