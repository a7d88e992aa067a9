"""Faust's hand-over of partitions at a rebalance, repaired so that no fetched record is lost.

faust-streaming 0.15.3 lost records when a worker joined the group while records flowed
(issue 10): the group committed past input records that no agent ever processed. Worker logs
of the reproduction, with Faust's fetch loop, streams and commits instrumented, showed four
defects on the path from "partitions assigned" to "Worker ready":

1. `FlowControlEvent.resume()` empties every stream queue, also when the flow is already
   running. Recovery resumes the flow several times after a rebalance (no changelog to read,
   standbys started, actives ready). Records the fetcher had delivered in the meantime, in
   the new generation, were dropped from the agents' queues: counted as read, never
   processed, never acked (`billing.events` partition 2: offsets 2..347 of 502 delivered,
   never reached the stream, the commit stuck at 2).
2. `Recovery.on_recovery_completed` resumes the stream partitions first and seeks them to
   their committed offsets after. While the seek waits on the consumer thread, the fetcher
   already delivers records, from a position and a read offset that the seek then moves:
   records below a read offset left over from the previous generation are dropped as
   already read (and, with no committed offset, never fetched again), and the jump the seek
   makes is recorded as a gap, which Faust counts as acknowledged.
3. A seek "to the committed offsets" leaves a partition with nothing committed where the
   fetcher got to. Faust's fetch loop throws away records fetched while the flow is stopped
   or their partition paused, counting on that seek to fetch them again; with no committed
   offset they were never read (`account-events` partition 2: offsets 0..501 fetched while
   paused, discarded, not fetched again).
4. Acks of the previous generation (a record skipped as stale, or finished after its
   partition was revoked) stay in the consumer's ack bookkeeping. With no committed offset
   yet, Faust commits past the first run of acked offsets, whatever comes before it.

A fifth is slowness, not loss: at a revocation (and a stop) Faust waits for every record
read to be acked, running a full garbage collection (some 70 ms) and a commit at every ack.
With the events process-accounts reads ahead, that wait took the loop from the very
processing it waited for: 1,650 events in 10 s, the group's rebalance blocked all along.

The repairs: resume clears queues only when the flow really was suspended; recovery seeks
the stream partitions while they are still paused, resumes the flow, and only then resumes
them; a seek to the committed offsets puts every partition there (the beginning when nothing
is committed) and starts the ack bookkeeping afresh; the wait for acks collects and commits
once a second. Each is pinned by a
test (tests/unit/test_rebalance.py), and the upstream methods they replace are pinned by
source digest, so an upgrade of Faust that changes them fails a test instead of silently
running old assumptions.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, cast

import faust
from aiokafka import AIOKafkaConsumer
from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.transport.consumer import CONSUMER_WAIT_EMPTY, RecordMap
from faust.transport.drivers import aiokafka as faust_kafka
from faust.types import TP, Message
from mode import Service
from mode.utils.queues import FlowControlEvent

# While records read are still being processed (a revocation, a stop): how often the wait
# looks at the acks, and how often it collects garbage and commits what was processed.
ACK_CHECK_S = 0.05
SWEEP_S = 1.0


class ResumeOnceFlowControl(FlowControlEvent):
    """Clears the managed queues on a resume that ends a suspension, not on every resume."""

    def resume(self) -> None:
        if self.is_active():
            return  # already flowing: what the queues hold belongs to the current generation
        super().resume()


class SeekFirstRecovery(Recovery):
    """Faust's recovery, with the stream partitions seeked before they are resumed."""

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        consumer = self.app.consumer
        self.log.info("Restore complete!")
        await self.app.on_rebalance_complete.send()
        self._set_recovery_ended()
        callbacks = [
            asyncio.ensure_future(table.on_recovery_completed(self.actives_for_table[table], self.standbys_for_table[table]))
            for table in self.tables.values()
        ]
        if callbacks:
            await asyncio.wait(callbacks)
        if self.app.consumer_generation_id != generation_id:
            self.log.warning("Recovery rebalancing again: generation %s, recovered %s", self.app.consumer_generation_id, generation_id)
            return
        assignment = consumer.assignment()
        if assignment:
            # Still paused since the assignment: nothing of them has been fetched in this
            # generation, so the fetch starts exactly at the committed offsets.
            self.log.info("Seek stream partitions to committed offsets.")
            await self._wait(consumer.perform_seek(), timeout=self.app.conf.broker_request_timeout)
        self.completed.set()
        self.app.flow_control.resume()
        consumer.resume_flow()
        consumer.resume_partitions({tp for tp in assignment if not self._is_changelog_tp(tp)})
        await cast(Any, self.app)._fetcher.maybe_start()
        self.tables.on_actives_ready()
        if not self.app.assignor.assigned_standbys():
            self.tables.on_standbys_ready()
        self.app.on_rebalance_end()
        self.log.info("Worker ready")


class PositionTrackingThread(faust_kafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, noting where each partition's position stood after a fetch."""

    async def _fetch_records(
        self, consumer: AIOKafkaConsumer, active_partitions: set[TP], timeout: float | None = None,
        max_records: int | None = None,
    ) -> RecordMap:
        records = await super()._fetch_records(consumer, active_partitions, timeout=timeout, max_records=max_records)
        # Taken with no await since aiokafka moved the positions: nothing else ran in between.
        cast(HeldBackRewinding, self.consumer).fetched_to = {tp: position_of(consumer, tp) for tp in records}
        return records

    def verify_event_path(self, now: float, tp: TP) -> None:
        # Faust's livelock check (every heartbeat interval) reads the position of any partition
        # whose end it has seen, and aiokafka asserts when there is none: a partition sent back to
        # its beginning (`perform_seek` below, nothing committed) has none until the fetcher
        # resolves it. Once, in CI, that crashed a worker just after its start; it waits a round.
        if position_of(self._ensure_consumer(), tp) is None:
            return None
        return super().verify_event_path(now, tp)


def position_of(consumer: AIOKafkaConsumer, tp: TP) -> int | None:
    assignment = consumer._subscription.subscription and consumer._subscription.subscription.assignment
    state = assignment.state_value(tp) if assignment is not None and assignment.active else None
    return state.position if state is not None and state.has_valid_position else None


async def rewind(consumer: AIOKafkaConsumer, held_back: dict[TP, int], fetched_to: Mapping[TP, int | None]) -> None:
    """In the consumer thread: back to the first record held back, unless something moved since."""
    for tp, offset in held_back.items():
        if fetched_to.get(tp) is not None and position_of(consumer, tp) == fetched_to[tp]:
            consumer._fetcher.seek_to(tp, offset)


class PacedWaitEmpty(faust_kafka.Consumer):
    """Faust's aiokafka consumer whose wait for the acks of every record read leaves the loop to
    the processing it waits for.

    Faust's `wait_empty` collects garbage (to forget records dropped without an ack) and commits
    at every single ack. Here it looks at the acks every `ACK_CHECK_S` and does both once every
    `SWEEP_S`: the same outcome (everything processed acked, then committed), and a record
    dropped without an ack is forgotten at the next sweep.
    """

    @Service.transitions_to(CONSUMER_WAIT_EMPTY)
    async def wait_empty(self) -> None:
        started = next_sweep = time.monotonic()
        sweeps = 0
        while not self.should_stop and self._unacked_messages:
            now = time.monotonic()
            if now >= next_sweep:
                sweeps += 1
                if not sweeps % 10:
                    unacked = len(self._unacked_messages)
                    self.log.warning("wait_empty: %d records read not processed yet, after %.0fs", unacked, now - started)
                    self.log.info("Agent tracebacks:\n%s", self.app.agents.human_tracebacks())  # as Faust's: where they stand
                gc.collect()
                await self.commit()
                next_sweep = time.monotonic() + SWEEP_S
            self._clean_unacked_messages()
            if self._unacked_messages:
                await asyncio.sleep(ACK_CHECK_S)
        await self.commit_and_end_transactions()


class HeldBackRewinding(PacedWaitEmpty):
    """Faust's aiokafka consumer that never drops a record it fetched without reading it again.

    Faust's `getmany` skips the records of a fetch whose partition was paused, or all of them
    once the flow stops or the generation changes, while aiokafka has already moved past them.
    Here a partition with a record held back is sent back to that record, unless a seek or
    another fetch has moved it since (then that position is the newer truth).
    """

    fetched_to: Mapping[TP, int | None] = {}  # replaced, never changed, by each fetch

    def _new_consumer_thread(self) -> faust_kafka.AIOKafkaConsumerThread:
        return PositionTrackingThread(self, loop=self.loop, beacon=self.beacon)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        records, active_partitions = await self._wait_next_records(timeout)
        generation_id = self.app.consumer_generation_id
        if records is None or self.should_stop:
            return
        fetched_to, held_back = self.fetched_to, {}
        try:
            for tp, record in self.scheduler.iterate(records):
                if tp in held_back:
                    continue  # keep the partition's order: the rest comes again after the rewind
                if (
                    self.flow_active
                    and self.app.consumer_generation_id == generation_id
                    and (active_partitions is None or tp in active_partitions or tp in self._buffered_partitions)
                ):
                    self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                    yield tp, self._to_message(tp, record)
                else:
                    held_back[tp] = record.offset
        finally:
            if held_back:
                await self._thread.call_thread(rewind, self._thread._ensure_consumer(), held_back, fetched_to)


class CommittedPositionConsumer(HeldBackRewinding):
    """The consumer above, whose seek to the committed offsets also lands exactly there.

    aiokafka's `seek_to_committed` moves only partitions with a committed offset above 0. A
    partition with nothing committed yet stayed where the fetcher had got to, past records
    that reached an agent's queue and were cleared from it at the rebalance: never read.
    """

    async def perform_seek(self) -> None:
        committed = await self.seek_to_committed()
        # The app reads from the earliest offset when nothing is committed (create_app). Table
        # changelogs are never committed: recovery positions them from the tables' own offsets.
        unpositioned = [
            tp for tp, offset in committed.items() if (not offset or offset < 0) and not self._is_changelog_tp(tp)
        ]
        if unpositioned:
            await self._thread.seek_to_beginning(*unpositioned)
        for tp, offset in committed.items():
            self._read_offset[tp] = offset if offset is not None and offset >= 0 else None
            if offset:
                self._committed_offset[tp] = offset
            # Everything from the committed offset on is fetched and acked again; an ack left
            # from before the seek could only let a commit pass a record not yet processed.
            self._acked.pop(tp, None)
            self._acked_index.pop(tp, None)
            self._gap.pop(tp, None)


def install(app: faust.App) -> None:
    """Repair `app`'s rebalance hand-over; before anything declares a topic or table."""
    app.flow_control = ResumeOnceFlowControl(loop=app.loop)
    cast(TableManager, app.tables)._recovery = SeekFirstRecovery(app, app.tables, beacon=app.tables.beacon, loop=app.loop)
