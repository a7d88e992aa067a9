"""judge-signals: verdicts routed back by account; unreadable claims dead-lettered; repair writes."""

from __future__ import annotations

import asyncio

import pytest

from models.abuse import Claimant, Signal, SignalClaim, SignalState, VerdictsDue
from models.internal import encode_internal
from tests.agents.conftest import Harness, settle

pytestmark = pytest.mark.anyio
SIGNAL = Signal(kind="device_id", digest="ab" * 32)
KEY = SIGNAL.digest.encode()


def claim(account_id: str, at: int) -> bytes:
    return encode_internal(SignalClaim(signal=SIGNAL, account_id=account_id, trial_started_at=at))


async def test_an_unreadable_claim_is_dead_lettered_and_the_next_is_judged(harness: Harness) -> None:
    t = harness.topology
    async with t.judge_signals.test_context() as agent:
        await agent.put(b'{"schema_version":7}', key=KEY)
        await agent.put(claim("acct-1", 100), key=KEY)
        await agent.put(claim("acct-2", 200), key=KEY)
        await settle(agent)
    ((_, letter),) = harness.sent.to(t.topics.dead_letter)
    assert (letter["topic"], letter["offset"], letter["error"]["code"]) == (t.topics.signal_claims, 0, "unsupported_schema_version")
    verdicts = [(key, v["linked"]) for key, v in harness.sent.to(t.topics.account_events)]
    assert verdicts == [(b"acct-2", True)]  # the first joins unlinked: no verdict stands for that


async def test_a_claim_that_changes_nothing_writes_the_stored_signal_again(harness: Harness) -> None:
    t = harness.topology
    async with t.judge_signals.test_context() as agent:
        await agent.put(claim("acct-1", 100), key=KEY)
        for _ in range(100):  # judged (its batch written) before the replay, which comes in a batch of its own
            if harness.changelog["signals"]:
                break
            await asyncio.sleep(0.05)
        await agent.put(claim("acct-1", 100), key=KEY)
        await settle(agent)
    first, again = harness.changelog["signals"]
    assert first == again and first[0] == KEY


def stored_signal(claimants: dict[str, int]) -> bytes:
    """The signal as the table holds it (as recovered from its changelog) after these claims."""
    state = SignalState(signal=SIGNAL, claimants={a: Claimant(trial_started_at=at) for a, at in claimants.items()}, seq=len(claimants))
    return encode_internal(state)


async def wait_until(condition) -> None:
    for _ in range(100):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def test_a_busy_signal_holds_its_verdicts_until_its_due_record_comes_back(harness: Harness) -> None:
    t = harness.topology
    t.signals.data[KEY] = stored_signal({f"acct-{n}": 100 + n for n in (1, 2, 3)})
    async with t.judge_signals.test_context() as agent:
        await agent.put(claim("acct-0", 99), key=KEY)  # earlier than all three: their standings move at once
        await wait_until(lambda: harness.sent.to(t.topics.signal_claims))
        assert harness.sent.to(t.topics.account_events) == [], "held"
        ((key, due),) = harness.sent.to(t.topics.signal_claims)
        assert key == KEY and (due["type"], due["seq"]) == ("verdicts_due", 4)
        await agent.put(encode_internal(VerdictsDue.model_validate(due)), key=KEY)  # as read back from the topic
        await wait_until(lambda: harness.sent.to(t.topics.account_events))
        await settle(agent)
    told = {key: (v["counted"], v["seq"]) for key, v in harness.sent.to(t.topics.account_events)}
    assert told == {b"acct-1": (1, 4), b"acct-2": (2, 4), b"acct-3": (3, 4)}
    assert b"held" not in harness.changelog["signals"][-1][1], "released: nothing held any more"


async def test_a_signal_is_saved_only_once_its_verdicts_are_acknowledged(harness: Harness) -> None:
    """A release saved while its verdicts were lost would never be sent again."""
    t = harness.topology
    acknowledged = asyncio.get_running_loop().create_future()
    captured = t.account_events.send

    async def unacknowledged_send(**record: object) -> asyncio.Future[None]:
        await captured(**record)
        return acknowledged

    t.account_events.send = unacknowledged_send  # type: ignore[method-assign]
    t.signals.data[KEY] = stored_signal({"acct-1": 100})
    async with t.judge_signals.test_context() as agent:
        await agent.put(claim("acct-2", 200), key=KEY)  # one claim, one record: a batch of its own
        await wait_until(lambda: harness.sent.to(t.topics.account_events))
        await asyncio.sleep(0.2)
        assert harness.changelog["signals"] == [], "not saved before the broker has the verdict"
        acknowledged.set_result(None)
        await wait_until(lambda: harness.changelog["signals"])
        await settle(agent)


async def test_a_verdict_the_producer_gave_up_on_is_logged_and_the_signal_still_saved(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """Raising there would end the batch unsaved, and take_events acks a batch as it ends."""
    t = harness.topology
    captured = t.account_events.send

    async def refused_send(**record: object) -> asyncio.Future[None]:
        await captured(**record)
        refused = asyncio.get_running_loop().create_future()
        refused.set_exception(RuntimeError("MessageSizeTooLarge"))
        return refused

    t.account_events.send = refused_send  # type: ignore[method-assign]
    t.signals.data[KEY] = stored_signal({"acct-1": 100})
    async with t.judge_signals.test_context() as agent:
        await agent.put(claim("acct-2", 200), key=KEY)
        await wait_until(lambda: harness.changelog["signals"])
        await settle(agent)
    assert "a verdict or due record was not sent: RuntimeError('MessageSizeTooLarge')" in caplog.text
    assert b"acct-2" in harness.changelog["signals"][-1][1]
