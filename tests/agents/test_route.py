"""route-inputs: billing events re-keyed by account, bad ones dead-lettered (hits and CAPI: the firehose stage)."""

from __future__ import annotations

import orjson
import pytest

from tests.agents.conftest import Harness, put, settle

pytestmark = pytest.mark.anyio
TRIAL = {"event_id": "b1", "account_id": "acct-3", "type": "trial_started", "occurred_at": 1772359200000, "identity": {"email": "a@b.example"}}


async def test_a_billing_event_is_re_keyed_by_account_onto_account_events(harness: Harness) -> None:
    t = harness.topology
    billing = harness.app.topic(t.topics.billing)
    async with t.route_inputs.test_context() as agent:
        await put(agent, orjson.dumps(TRIAL), b"the producer's key", billing)
        await settle(agent, billing)
    sent = harness.sent.to(t.topics.account_events)
    assert [(key, value["type"], value["schema_version"]) for key, value in sent] == [(b"acct-3", "trial_started", 1)]
    assert "identity" not in sent[0][1] and sent[0][1]["signals"], "identities leave the edge only hashed"
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
