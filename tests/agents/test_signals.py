"""judge-signals: verdicts routed back by account; unreadable claims dead-lettered; repair writes."""

from __future__ import annotations

import asyncio

import pytest

from models.abuse import Signal, SignalClaim
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
