"""process-accounts and observe-usage: the stored state, written even when unchanged; unreadable records
dead-lettered; the two agents of the accounts table take turns."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from faust.types import AgentT

from models.internal import encode_internal
from tests.agents.conftest import Harness, settle
from tests.unit.factories import DAY, C, make_charge, make_hit, make_trial

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


async def test_usage_on_its_own_topic_folds_into_the_same_account(harness: Harness) -> None:
    """observe-usage reads the firehose's usage events; its steps and process-accounts' share the table."""
    t = harness.topology
    async with t.process_accounts.test_context() as accounts, t.observe_usage.test_context() as usage:
        await accounts.put(encode_internal(make_trial()), key=ACCOUNT)
        await usage.put(encode_internal(make_hit(C - DAY)), key=ACCOUNT)
        await settle(accounts)
        await settle(usage)
    (usage_record,) = [value for _, value in harness.sent.to(t.topics.usage)]
    eligibility = [(value["version"], value["usage_started_at"] is not None) for _, value in harness.sent.to(t.topics.eligibility)]
    assert usage_record["first_evidence"]["id"] == "h1"
    assert eligibility == [(1, False), (2, True)], "the trial's record, then the same account's with usage"


async def test_the_two_agents_take_turns_so_no_change_of_an_account_is_lost(harness: Harness) -> None:
    """A step reads the state, sends (yielding to the loop) and saves: were the two agents' steps of one
    account interleaved there, one would save over the other's change, or publish versions out of order."""
    t = harness.topology
    for topic in (t.usage, t.eligibility):
        captured = topic.send

        async def yielding_send(*, _captured=captured, **record: object) -> None:
            await asyncio.sleep(0)  # a real send may yield to the loop here
            await _captured(**record)

        topic.send = yielding_send  # type: ignore[method-assign]
    charges = [encode_internal(make_charge(f"ch_{n}", at=C + n * DAY)) for n in range(20)]
    hits = [encode_internal(make_hit(C - n * DAY, hit_id=f"h{n}")) for n in range(20)]  # each earlier: each a change
    async with t.process_accounts.test_context() as accounts, t.observe_usage.test_context() as usage:

        async def put_all(agent: AgentT, records: list[bytes]) -> None:
            for record in records:
                await agent.put(record, key=ACCOUNT)

        await asyncio.gather(put_all(accounts, charges), put_all(usage, hits))
        await settle(accounts)
        await settle(usage)
    state = orjson.loads(t.accounts[ACCOUNT])
    assert len(state["charges"]) == 20 and state["first_evidence"]["id"] == "h19", "every change kept"
    for topic in (t.topics.usage, t.topics.eligibility):
        versions = [value["version"] for _, value in harness.sent.to(topic)]
        assert versions == list(range(1, len(versions) + 1)), f"{topic}: versions in order, none twice"
