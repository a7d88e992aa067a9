"""route-inputs: input records re-keyed by account, bad ones dead-lettered, dominated hits dropped."""

from __future__ import annotations

import orjson
import pytest

from tests.agents.conftest import Harness, put, settle

pytestmark = pytest.mark.anyio
HIT = {"hit_id": "h1", "account_id": "acct-1", "received_at": "2026-03-01T10:00:00Z", "page_url": "https://shop.example/"}
CAPI = {"event_id": "c1", "account_id": "acct-2", "received_at": 1772359200000, "integration": "shopify"}
TRIAL = {"event_id": "b1", "account_id": "acct-3", "type": "trial_started", "occurred_at": 1772359200000, "identity": {"email": "a@b.example"}}


def hit_at(received_at: int, hit_id: str, account_id: str = "acct-1") -> bytes:
    return orjson.dumps({**HIT, "hit_id": hit_id, "account_id": account_id, "received_at": received_at})


async def test_each_kind_of_input_is_re_keyed_by_account_onto_account_events(harness: Harness) -> None:
    t = harness.topology
    async with t.route_inputs.test_context() as agent:
        inputs = {t.topics.hits: HIT, t.topics.capi: CAPI, t.topics.billing: TRIAL}
        for name, record in inputs.items():
            await put(agent, orjson.dumps(record), b"the producer's key", harness.app.topic(name))
        await settle(agent, harness.app.topic(t.topics.billing))
    sent = harness.sent.to(t.topics.account_events)
    assert [(key, value["type"], value["schema_version"]) for key, value in sent] == [
        (b"acct-1", "usage_observed", 1),
        (b"acct-2", "usage_observed", 1),
        (b"acct-3", "trial_started", 1),
    ]
    assert sent[0][1]["evidence"]["id"] == "h1" and sent[1][1]["evidence"]["source"] == "conversion_api"
    assert "identity" not in sent[2][1] and sent[2][1]["signals"], "identities leave the edge only hashed"
    assert harness.sent.to(t.topics.dead_letter) == []


async def test_an_invalid_input_record_becomes_a_dead_letter_and_the_next_one_goes_on(harness: Harness) -> None:
    t = harness.topology
    billing = harness.app.topic(t.topics.billing)
    async with t.route_inputs.test_context() as agent:
        await put(agent, b"not json", b"k1", billing)  # offset 0
        await put(agent, orjson.dumps({**TRIAL, "account_id": "bad id!"}), b"k2", billing)  # offset 1
        await put(agent, orjson.dumps(TRIAL), b"k3", billing)
        await settle(agent, billing)
    letters = harness.sent.to(t.topics.dead_letter)
    assert [(key, letter["topic"], letter["partition"], letter["offset"], letter["error"]["code"], letter["raw"]) for key, letter in letters] == [
        (b"k1", t.topics.billing, 0, 0, "not_json", "not json"),
        (b"k2", t.topics.billing, 0, 1, "invalid_account_id", orjson.dumps({**TRIAL, "account_id": "bad id!"}).decode()),
    ]
    dead = harness.metrics.registry.get_sample_value
    assert dead("usage_detector_dead_letters_total", {"topic": t.topics.billing, "code": "not_json"}) == 1
    assert [key for key, _ in harness.sent.to(t.topics.account_events)] == [b"acct-3"]


async def test_a_hit_dominated_by_one_forwarded_earlier_is_dropped(harness: Harness) -> None:
    t = harness.topology
    hits = harness.app.topic(t.topics.hits)
    async with t.route_inputs.test_context() as agent:
        await put(agent, hit_at(2_000, "first"), None, hits)
        await put(agent, hit_at(3_000, "later"), None, hits)  # usage already started earlier: dropped
        await put(agent, hit_at(2_000, "tie"), None, hits)  # a tie may sort first: forwarded
        await put(agent, hit_at(1_000, "earlier"), None, hits)
        await put(agent, hit_at(5_000, "other account's first", "acct-9"), None, hits)
        await settle(agent, hits)
    forwarded = [(key, value["evidence"]["id"]) for key, value in harness.sent.to(t.topics.account_events)]
    assert forwarded == [(b"acct-1", "first"), (b"acct-1", "tie"), (b"acct-1", "earlier"), (b"acct-9", "other account's first")]
    assert harness.metrics.registry.get_sample_value("usage_detector_evidence_dropped_total") == 1
