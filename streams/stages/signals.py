"""judge-signals: decide, per signal, which trial came first; route verdicts back to the accounts.

Trial signals cross accounts, so claims are keyed by signal digest, judged here, and the verdicts
sent back to `<app>-account-events`, keyed by account.

Claims are judged in batches, those of one signal together: the claims of a burst (many trials
sharing one placeholder device) arrive out of trial order, interleaved from the partitions of
process-accounts, and judged one by one each early trial arriving late would send a verdict to
every later account. A batch is what Faust's `take_events` gathered within `judge_batch_s`; it
acks a batch's events only when the next one is asked for, so their offsets are committed after
the verdicts are sent and the table written, as with one event at a time (and, as there, an
exception escaping the agent acks what it was processing: here the whole batch).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast

import faust
from faust.streams import _current_event
from faust.types import EventT, TableT

from models.abuse import SignalClaim
from models.errors import InvalidRecord
from models.internal import SIGNAL_CLAIM, SIGNAL_STATE, decode_internal, encode_internal
from policy.abuse import CrowdedSignal, crowded, judge_together
from streams.dead_letter import DeadLetters
from streams.metrics import Metrics
from streams.stages import Agent

log = logging.getLogger(__name__)

BATCH_CLAIMS = 10_000
"""The most claims judged in one batch (a batch is buffered in memory until judged)."""


@contextmanager
def as_current_event(event: EventT) -> Iterator[None]:
    """`event` as Faust's current event in this task: a table reads and writes (and sends its
    changelog to) the partition of the current event, which a batch from `take_events` does not set.
    Only the context variable of this task is set, never the stream's `current_event`, which
    `take_events` reads in its own task as it buffers."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


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
    batch_s: float,
) -> Agent:
    async def judge_one(key: bytes, events: list[EventT], claims: list[SignalClaim]) -> None:
        stored = signals.get(key)
        try:
            state = None if stored is None else decode_internal(SIGNAL_STATE, stored, f"stored state of signal {key.decode()}")
        except InvalidRecord as error:
            # An unreadable stored signal is left as it is, as in process-accounts (its reason).
            for event in events:
                await dead_letters.send(event, error)
            return
        judgement = judge_together(state, claims)
        if (crowd := crowded(state, judgement.state, crowded_claimants)) is not None:
            report_crowded(metrics, crowd)
        for verdict in judgement.verdicts:
            await account_events.send(key=verdict.account_id.encode(), value=encode_internal(verdict))
        if judgement.changed:
            signals[key] = encode_internal(judgement.state)
        elif stored is not None:  # saved even when unchanged, as in process-accounts
            signals[key] = stored

    async def judge_batches(stream: faust.StreamT) -> None:
        """Decide, per signal, which trial came first; route verdicts back to the accounts."""
        # Agents get a faust.Stream; the StreamT interface leaves take_events out.
        async for batch in cast(faust.Stream, stream).take_events(BATCH_CLAIMS, batch_s):
            by_signal: dict[bytes, tuple[list[EventT], list[SignalClaim]]] = {}  # in arrival order
            for event in batch:
                try:
                    claim = decode_internal(SIGNAL_CLAIM, event.value, "signal claim")
                except InvalidRecord as error:
                    await dead_letters.send(event, error)
                    continue
                events, claims = by_signal.setdefault(claim.signal.digest.encode(), ([], []))
                events.append(event)
                claims.append(claim)
            for key, (events, claims) in by_signal.items():
                with as_current_event(events[-1]):  # the signal's partition: the same for all its claims
                    await judge_one(key, events, claims)

    return judge_batches
