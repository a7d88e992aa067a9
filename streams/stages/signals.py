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

A busy signal (a storm's claims keep arriving out of order, batch after batch) holds its verdicts
until it is quiet (`policy.abuse.Holding`): the judge sends itself a `VerdictsDue` record on the
same topic and partition, which comes back in a later batch and releases them if no claim changed
the signal since.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any, cast

import faust
from faust.types import EventT, TableT

from models.abuse import SignalClaim, VerdictsDue
from models.errors import InvalidRecord
from models.internal import SIGNAL_RECORD, SIGNAL_STATE, decode_internal, encode_internal
from policy.abuse import CrowdedSignal, Holding, crowded, judge_batch
from streams.dead_letter import DeadLetters
from streams.metrics import Metrics
from streams.stages import Agent, as_current_event

log = logging.getLogger(__name__)

BATCH_CLAIMS = 10_000
"""The most claims judged in one batch (a batch is buffered in memory until judged)."""


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
    signal_claims: faust.TopicT,
    dead_letters: DeadLetters,
    metrics: Metrics,
    crowded_claimants: int,
    batch_s: float,
    holding: Holding,
) -> Agent:
    async def judge_one(
        key: bytes, events: list[EventT], claims: list[SignalClaim], dues: list[VerdictsDue], sent: list[Awaitable[Any]]
    ) -> bytes | None:
        """Judge one signal's records of a batch; send what that causes (into `sent`). The value
        to save in the table, or None."""
        stored = signals.get(key)
        try:
            state = None if stored is None else decode_internal(SIGNAL_STATE, stored, f"stored state of signal {key.decode()}")
        except InvalidRecord as error:
            # An unreadable stored signal is left as it is, as in process-accounts (its reason).
            for event in events:
                await dead_letters.send(event, error)
            return None
        judgement = judge_batch(state, claims, dues, time.time_ns() // 1_000_000, holding)
        if (crowd := crowded(state, judgement.state, crowded_claimants)) is not None:
            report_crowded(metrics, crowd)
        for verdict in judgement.verdicts:
            sent.append(await account_events.send(key=verdict.account_id.encode(), value=encode_internal(verdict)))
        if judgement.due is not None:
            sent.append(await signal_claims.send(key=key, value=encode_internal(judgement.due)))
        # Saved even when unchanged, as in process-accounts.
        return encode_internal(judgement.state) if judgement.changed else stored

    async def judge_batches(stream: faust.StreamT) -> None:
        """Decide, per signal, which trial came first; route verdicts back to the accounts."""
        # Agents get a faust.Stream; the StreamT interface leaves take_events out.
        async for batch in cast(faust.Stream, stream).take_events(BATCH_CLAIMS, batch_s):
            # In arrival order: the signal's events, claims and due records.
            by_signal: dict[bytes, tuple[list[EventT], list[SignalClaim], list[VerdictsDue]]] = {}
            for event in batch:
                try:
                    record = decode_internal(SIGNAL_RECORD, event.value, "signal record")
                except InvalidRecord as error:
                    await dead_letters.send(event, error)
                    continue
                events, claims, dues = by_signal.setdefault(record.signal.digest.encode(), ([], [], []))
                events.append(event)
                if isinstance(record, SignalClaim):
                    claims.append(record)
                else:
                    dues.append(record)
            sent: list[Awaitable[Any]] = []
            saves: list[tuple[bytes, EventT, bytes]] = []
            for key, (events, claims, dues) in by_signal.items():
                with as_current_event(events[-1]):  # the signal's partition: the same for all its records
                    if (value := await judge_one(key, events, claims, dues, sent)) is not None:
                        saves.append((key, events[-1], value))
            # Saved only once every verdict is acknowledged: a release saved (nothing held any
            # more) while its verdicts were lost in a crash would never be sent again. A send the
            # producer gave up on is logged, and the signals saved as judged, as any other send of
            # the agents (raising here would ack the batch unsaved: take_events acks on exit).
            for failed in await asyncio.gather(*sent, return_exceptions=True):
                if isinstance(failed, BaseException):
                    log.error("judge-signals: a verdict or due record was not sent: %r", failed)
            for key, event, value in saves:
                with as_current_event(event):
                    signals[key] = value

    return judge_batches
