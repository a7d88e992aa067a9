"""judge-signals: decide, per signal, which trial came first; route verdicts back to the accounts.

Trial signals cross accounts, so claims are keyed by signal digest, judged here, and the verdicts
sent back to `<app>-account-events`, keyed by account.
"""

from __future__ import annotations

import logging

import faust
from faust.types import TableT

from models.errors import InvalidRecord
from models.internal import SIGNAL_CLAIM, SIGNAL_STATE, decode_internal, encode_internal
from policy.abuse import CrowdedSignal, crowded, judge
from streams.dead_letter import DeadLetters
from streams.metrics import Metrics
from streams.stages import Agent

log = logging.getLogger(__name__)


def report_crowded(metrics: Metrics, crowd: CrowdedSignal) -> None:
    metrics.crowded_signals.labels(crowd.signal.kind).inc()
    log.warning(
        "signal %s %s has %d claimants; the first: %s. If its value is a placeholder or shared by right, "
        "list it in USAGE_DETECTOR_NEVER_EVIDENCE and replay (README, Operations)",
        crowd.signal.kind,
        crowd.signal.digest[:16],
        crowd.claimants,
        ", ".join(crowd.earliest),
    )


def judge_signals(
    *,
    signals: TableT,
    account_events: faust.TopicT,
    dead_letters: DeadLetters,
    metrics: Metrics,
    crowded_claimants: int,
) -> Agent:
    async def judge_each(stream: faust.StreamT) -> None:
        """Decide, per signal, which trial came first; route verdicts back to the accounts."""
        async for event in stream.events():
            try:
                claim = decode_internal(SIGNAL_CLAIM, event.value, "signal claim")
                key = claim.signal.digest.encode()
                stored = signals.get(key)
                state = None if stored is None else decode_internal(SIGNAL_STATE, stored, f"stored state of signal {claim.signal.digest}")
            except InvalidRecord as error:
                # An unreadable stored signal is left as it is, as in process-accounts (its reason).
                await dead_letters.send(event, error)
                continue
            judgement = judge(state, claim)
            if (crowd := crowded(state, judgement.state, crowded_claimants)) is not None:
                report_crowded(metrics, crowd)
            for verdict in judgement.verdicts:
                await account_events.send(key=verdict.account_id.encode(), value=encode_internal(verdict))
            if judgement.changed:
                signals[key] = encode_internal(judgement.state)
            elif stored is not None:  # saved even when unchanged, as in process-accounts
                signals[key] = stored

    return judge_each
