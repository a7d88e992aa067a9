"""process-accounts: the stored state, written even when unchanged; unreadable records dead-lettered."""

from __future__ import annotations

import faust
import orjson
import pytest
from faust.types import EventT

from models.internal import encode_internal
from policy.usage import observe
from tests.agents.conftest import MARKER_KEY, Harness, settle
from tests.unit.factories import C, make_charge, make_hit, make_trial

pytestmark = pytest.mark.anyio
ACCOUNT = b"acct-test-1"  # the factories' account


async def test_an_event_that_changes_nothing_writes_the_stored_state_again(harness: Harness) -> None:
    """The repair: a worker whose local store is ahead of the changelog rewrites it from there."""
    t = harness.topology
    trial = encode_internal(make_trial())
    async with t.process_accounts.test_context() as agent:
        await agent.put(trial, key=ACCOUNT)
        await settle(agent)
        (first,) = harness.changelog["accounts"]
        await agent.put(trial, key=ACCOUNT)  # the same event again: the account does not change
        await settle(agent)
    assert harness.changelog["accounts"] == [first, first]
    assert t.accounts[ACCOUNT] == first[1]
    published = harness.sent.to(t.topics.eligibility)
    assert len(published) == 2 and published[0] == published[1], "the current record again, the same version"


async def test_unreadable_account_events_are_dead_lettered_and_the_next_is_processed(harness: Harness) -> None:
    t = harness.topology
    newer = orjson.dumps({**orjson.loads(encode_internal(make_hit(C))), "schema_version": 2})
    async with t.process_accounts.test_context() as agent:
        await agent.put(b"{not json", key=ACCOUNT)  # offset 0
        await agent.put(newer, key=ACCOUNT)  # offset 1: a newer worker's record, mid-upgrade
        await agent.put(b'{"type": "charged", "account_id": "acct-test-1"}', key=ACCOUNT)  # offset 2
        await agent.put(encode_internal(make_trial()), key=ACCOUNT)
        counted = harness.metrics.registry.get_sample_value  # the trial's put returned: the three before are done
        codes = {
            code: counted("usage_detector_dead_letters_total", {"topic": t.topics.account_events, "code": code})
            for code in ("unreadable_internal", "unsupported_schema_version")
        }
        await settle(agent)
    letters = [(letter["topic"], letter["offset"], letter["error"]["code"]) for _, letter in harness.sent.to(t.topics.dead_letter)]
    assert letters == [
        (t.topics.account_events, 0, "unreadable_internal"),
        (t.topics.account_events, 1, "unsupported_schema_version"),
        (t.topics.account_events, 2, "unreadable_internal"),
    ]
    assert codes == {"unreadable_internal": 2, "unsupported_schema_version": 1}
    assert [key for key, _ in harness.sent.to(t.topics.eligibility)] == [ACCOUNT], "the trial after them"


async def test_a_stored_state_this_worker_cannot_read_is_left_as_it_is(harness: Harness) -> None:
    """Mid-upgrade, a newer worker's state is the account's history: not overwritten, not restarted
    from empty (versions from 1 again would conflict); the event waits in the dead letters."""
    t = harness.topology
    newer_state = b'{"schema_version":2,"account_id":"acct-test-1","facts":"of a newer version"}'
    t.accounts.data[ACCOUNT] = newer_state  # as recovered from the changelog
    event = encode_internal(make_charge("ch_1"))
    async with t.process_accounts.test_context() as agent:
        await agent.put(event, key=ACCOUNT)
        await agent.put(encode_internal(make_trial().model_copy(update={"account_id": "acct-other"})), key=b"acct-other")
        await settle(agent)
    ((key, letter),) = harness.sent.to(t.topics.dead_letter)
    assert (key, letter["offset"], letter["error"]["code"]) == (ACCOUNT, 0, "unsupported_schema_version")
    assert letter["error"]["message"].startswith("stored state of acct-test-1:")
    assert orjson.loads(letter["raw"]) == orjson.loads(event), "the event, to replay after the upgrade"
    assert t.accounts[ACCOUNT] == newer_state
    assert [key for key, _ in harness.changelog["accounts"]] == [b"acct-other"]
    assert [key for key, _ in harness.sent.to(t.topics.eligibility)] == [b"acct-other"], "the agent goes on"


async def test_a_usage_start_goes_ahead_of_other_accounts_backlog_and_acks_stay_in_order(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A storm's trials fill the partition; an unrelated account's usage record (its usage start),
    read after them, is processed before them (each account's own events in order), and no event
    is acknowledged before every earlier one of its partition is processed."""
    acked: list[int] = []
    ack = faust.Stream.ack

    async def recording(stream: faust.Stream, event: EventT) -> bool:
        if event.key != MARKER_KEY:
            acked.append(event.message.offset)
        return await ack(stream, event)

    monkeypatch.setattr(faust.Stream, "ack", recording)
    t = harness.topology
    storm = [make_trial().model_copy(update={"account_id": f"storm-{n:03d}"}) for n in range(200)]
    async with t.process_accounts.test_context() as agent:
        read = [await agent.put(encode_internal(trial), key=trial.account_id.encode(), wait=False) for trial in storm]
        usage_start = observe(None, make_hit(C), now=C).recorded
        read.append(await agent.put(encode_internal(usage_start), key=ACCOUNT, wait=False))
        await settle(agent)
    published = [key for key, _ in harness.sent.to(t.topics.eligibility)]
    assert len(published) == 201
    assert published.index(ACCOUNT) < 10, f"the usage start's decision is published at {published.index(ACCOUNT)}, not first"
    assert all(event.message.acked for event in read)
    assert acked == list(range(201)), "in offset order, the usage start's (offset 200) last"


async def test_an_event_whose_processing_fails_is_logged_and_the_others_go_on(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """As Faust treats an exception escaping an agent: the event counts as processed (acked, so
    its partition's commits go on), and the agent takes the next one."""
    from streams.stages import accounts as stage

    apply = stage.apply

    def failing_for_other(state, event, **kwargs):  # type: ignore[no-untyped-def]
        if event.account_id == "acct-other":
            raise RuntimeError("a bug")
        return apply(state, event, **kwargs)

    monkeypatch.setattr(stage, "apply", failing_for_other)
    t = harness.topology
    async with t.process_accounts.test_context() as agent:
        failing = await agent.put(encode_internal(make_trial().model_copy(update={"account_id": "acct-other"})), key=b"acct-other")
        await agent.put(encode_internal(make_trial()), key=ACCOUNT)
        await settle(agent)
    assert failing.message.acked
    assert "process-accounts: processing acct-other failed" in caplog.text and "a bug" in caplog.text
    assert [key for key, _ in harness.sent.to(t.topics.eligibility)] == [ACCOUNT]

