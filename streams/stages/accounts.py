"""process-accounts: fold each account event into the account's state; publish what changed.

Events are read ahead and processed per account, each account's in order, usage records first
(`streams.stages.account_order`): a decision that usage changes does not wait behind other
accounts' storm.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import cast

import faust
from faust.types import EventT, TableT

from models.codec import encode
from models.errors import InvalidRecord
from models.internal import (
    ACCOUNT_EVENT,
    ACCOUNT_STATE,
    AccountEvent,
    UsageRecorded,
    decode_internal,
    encode_internal,
)
from models.state import AccountState
from policy import apply
from policy.account import DuplicateWindow
from streams.dead_letter import DeadLetters
from streams.metrics import Metrics
from streams.stages import Agent, as_current_event, event_time_ms, read_stored
from streams.stages.account_order import AccountQueue, InOrderAcks

log = logging.getLogger(__name__)

BACKLOG_EVENTS = 2_000
"""The most events read ahead of processing, for `account_order` to choose from: a storm's trials
and verdicts on one worker. All of them are processed before a revoked partition moves on (Faust
waits for every event read to be acked; `streams.rebalance.PacedWaitEmpty` leaves the loop to that
processing): at about 0.23 ms each in a storm. A join under load revokes in 1.7 s
(tests/integration/test_rebalance_burst.py), 10 s before that repair."""


def record_transition(metrics: Metrics, before: AccountState | None, after: AccountState) -> None:
    old = before.eligibility.state if before is not None and before.eligibility else "none"
    new = after.eligibility.state if after.eligibility else "none"
    if old != new:
        metrics.transitions.labels(old, new).inc()


def process_accounts(
    *,
    accounts: TableT,
    eligibility_out: faust.TopicT,
    signal_claims: faust.TopicT,
    dead_letters: DeadLetters,
    metrics: Metrics,
    window: DuplicateWindow,
) -> Agent:
    published = metrics.published.labels(eligibility_out.get_topic_name())

    async def step(message_event: EventT, event: AccountEvent) -> None:
        """Fold one account event into the account's state; publish what changed."""
        key = event.account_id.encode()
        raw = accounts.get(key)
        try:
            state = read_stored(raw, ACCOUNT_STATE, f"stored state of {event.account_id}")
        except InvalidRecord as error:
            await dead_letters.send(message_event, error)
            return
        step = apply(state, event, now=event_time_ms(message_event), window=window)
        # Publish before saving: a crash in between reprocesses the event and republishes.
        for record in step.records:
            await eligibility_out.send(key=key, value=encode(record))
            published.inc()
        for claim in step.claims:
            await signal_claims.send(key=claim.signal.digest.encode(), value=encode_internal(claim))
        # Saved even when unchanged. A worker killed after its local RocksDB got a write but
        # before the changelog did, restarted on the same state dir, is ahead of the changelog:
        # the event, read again, changes nothing there, and only this write repairs the
        # changelog, which every other worker recovers from.
        if step.changed:
            accounts[key] = encode_internal(step.state)
            record_transition(metrics, state, step.state)
        elif raw is not None:
            accounts[key] = raw
        if step.records:
            metrics.publish_latency.observe(max(0.0, time.time() - message_event.message.timestamp))

    async def process(stream: faust.StreamT) -> None:
        """Read events as they come; process them per account, usage first (`account_order`)."""
        queue: AccountQueue[tuple[EventT, AccountEvent]] = AccountQueue()
        acks: InOrderAcks[EventT] = InOrderAcks()
        queued, room = asyncio.Event(), asyncio.Event()
        reads = 0  # events the stream has handed over
        held_by_faust = cast(faust.ChannelT, stream.channel).queue.qsize  # events read from Kafka, not yet by this stream

        async def processed(message_event: EventT) -> None:
            for event in acks.done(message_event):
                await stream.ack(event)

        async def read() -> None:
            nonlocal reads
            async for message_event in stream.events():
                reads += 1
                acks.add(message_event.message.tp, message_event)
                try:
                    event = decode_internal(ACCOUNT_EVENT, message_event.value, "account event")
                except InvalidRecord as error:
                    await dead_letters.send(message_event, error)
                    await processed(message_event)
                    continue
                queue.put(event.account_id, (message_event, event), urgent=isinstance(event, UsageRecorded))
                queued.set()
                while len(acks) >= BACKLOG_EVENTS:  # Faust's buffer holds the rest, and its flow control pauses the fetch
                    room.clear()
                    await room.wait()

        async def work() -> None:
            while True:
                # What Faust already holds is read first (up to the backlog), so that the choice
                # sees it: the stream reads one event per turn of the loop. Not while the reader
                # waits for something else (a dead letter's send): that would spin.
                while held_by_faust() and len(acks) < BACKLOG_EVENTS:
                    before = reads
                    await asyncio.sleep(0)
                    if reads == before:
                        break
                if not queue:
                    queued.clear()
                    await queued.wait()
                    continue
                message_event, event = queue.take()
                with as_current_event(message_event):
                    try:
                        await step(message_event, event)
                    except Exception:  # as Faust does with an exception escaping an agent: the event counts as processed
                        log.exception("process-accounts: processing %s failed", event.account_id)
                await processed(message_event)
                room.set()

        # Acked here, in each partition's order, once processed: not as the stream reads on.
        stream.enable_acks = False
        async with asyncio.TaskGroup() as tasks:  # one failing stops the other
            tasks.create_task(read())
            tasks.create_task(work())

    return process
