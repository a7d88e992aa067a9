"""firehose: Tracking Tag hits and Conversion API events, read in batches beside Faust, most dropped on the spot.

Almost every hit is of an account whose usage started long ago: it changes nothing. Faust's
per-record machinery (a Message and an Event, a channel queue, the stream iterator, an ack under
a lock) costs some 45 µs a record whatever an agent does, so these two topics are not read by an
agent: each worker reads them here, with a plain aiokafka consumer in a group of its own
(`<app_id>-firehose`), so Kafka spreads their partitions over the workers independently of the
tables'. Per batch, `Sorter` decides each record:

- a hit that is certainly valid and later than the evidence this worker already forwarded for
  its account is dropped (`streams.hit_gate`, `streams.usage_filter`);
- anything else is decoded in full: an invalid record becomes a dead letter naming its topic,
  partition and offset; a valid one goes straight onto `<app>-usage-evidence`, keyed by account,
  for the usage stage (`streams.stages.usage`), unless the usage filter holds evidence of the
  account received strictly earlier.

At least once (`Firehose`): a partition's offset is committed only after every send its batch
caused (evidence and dead letters; idempotent producer, acks=all) is acknowledged. A failed
send means no commit: the batch's partitions are read again from where it began. A revocation
waits for the batch in flight, so no commit passes an unacknowledged send and the next owner
starts where this worker stopped.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import (
    CommitFailedError,
    ConsumerStoppedError,
    IllegalStateError,
    KafkaError,
    UnsupportedCodecError,
)
from mode import Service

from models.codec import encode
from models.errors import InvalidRecord
from models.internal import UsageObserved, encode_internal
from streams.dead_letter import dead_letter
from streams.edge import Decoder, decode_safely
from streams.hit_gate import DominatedHits
from streams.kafka_inputs import ISOLATION_LEVEL, UnreadableInputs, isolate_unreadable
from streams.metrics import Metrics
from streams.rebalance import position_of
from streams.usage_filter import EarliestForwarded

log = logging.getLogger(__name__)
FETCH_WAIT_MS = 500  # an idle worker waits this long for records before it looks again
RETRY_AFTER_S = 1.0  # after a failed send or commit, before the batch is read again
# Sends not acknowledged by then count as failed (the producer itself retries within it: a broker
# restart or a leader moving takes seconds).
ACK_TIMEOUT_S = 120.0


class InputRecord(Protocol):
    """What the stage reads of a consumed record (aiokafka's ConsumerRecord)."""

    offset: int
    key: bytes | None
    value: bytes | None


@dataclass
class Sorted:
    """One partition's share of a batch: what to send, and how much was dropped."""

    forward: list[tuple[bytes, bytes]] = field(default_factory=list)  # (account id, evidence of usage)
    dead: list[tuple[bytes | None, bytes, str]] = field(default_factory=list)  # (key, dead letter, its code)
    dropped: int = 0


class Sorter:
    """Each record of a batch dropped, forwarded or dead-lettered; no I/O (the shell sends)."""

    def __init__(self, decoders: dict[str, Decoder[UsageObserved]], hits_topic: str, forwarded: EarliestForwarded, max_record_bytes: int) -> None:
        self._decoders = decoders
        self._hits = hits_topic
        self._forwarded = forwarded
        self._dominated = DominatedHits(forwarded, max_record_bytes)

    def sort(self, topic: str, partition: int, records: Sequence[InputRecord], now_ms: int) -> Sorted:
        out = Sorted()
        decoder = self._decoders[topic]
        dominated = self._dominated if topic == self._hits else None
        admit = self._forwarded.admit
        for record in records:
            value = record.value
            if dominated is not None and dominated(value):
                out.dropped += 1
                continue
            try:
                event = decode_safely(decoder, topic, value)
            except InvalidRecord as error:
                letter = dead_letter(
                    topic=topic, partition=partition, offset=record.offset, key=record.key, value=value, error=error, now=now_ms
                )
                out.dead.append((record.key, encode(letter), error.code))
                continue
            if not admit(event.account_id, event.evidence.received_at):
                out.dropped += 1
                continue
            out.forward.append((event.account_id.encode(), encode_internal(event)))
        return out


@dataclass(frozen=True)
class FirehoseConfig:
    topics: tuple[str, ...]  # the inputs it reads
    group_id: str
    usage_evidence: str
    dead_letter: str
    client: dict[str, Any]  # bootstrap servers and security, for both clients
    batch_records: int
    linger_ms: int
    session_timeout_s: float


class Firehose(Service):
    """The stage's shell: its consumer and producer, the batch loop and the commit rule."""

    def __init__(
        self,
        config: FirehoseConfig,
        sorter: Sorter,
        metrics: Metrics,
        unreadable: UnreadableInputs,
        before_commit: Callable[[], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.sorter = sorter
        self._metrics = metrics
        self.unreadable = unreadable
        self._before_commit = before_commit  # fault injection (usage-detector chaos): see kill_before_commit
        self._in_flight = asyncio.Lock()  # held from a batch's first send to its commit
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._consumed = {topic: metrics.consumed.labels(topic) for topic in config.topics}

    def _new_producer(self) -> AIOKafkaProducer:
        c = self.config
        return AIOKafkaProducer(
            **c.client, client_id=f"{c.group_id}-producer", acks="all", enable_idempotence=True, linger_ms=c.linger_ms
        )

    def _new_consumer(self) -> AIOKafkaConsumer:
        c = self.config
        return AIOKafkaConsumer(
            **c.client,
            client_id=c.group_id,
            group_id=c.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level=ISOLATION_LEVEL,
            # As the Faust agents' group (streams/app.py): a killed worker's partitions move on within seconds.
            session_timeout_ms=round(c.session_timeout_s * 1000),
            heartbeat_interval_ms=round(c.session_timeout_s * 200),
            rebalance_timeout_ms=round(c.session_timeout_s * 2000),
            metadata_max_age_ms=5_000,
        )

    async def on_start(self) -> None:
        c = self.config
        self._producer = self._new_producer()
        self._consumer = self._new_consumer()
        await self._producer.start()
        await self._consumer.start()
        self._consumer.subscribe(list(c.topics), listener=_Handover(self))
        log.info("firehose: reading %s in group %s", ", ".join(c.topics), c.group_id)

    async def on_stop(self) -> None:
        async with self._in_flight:  # the batch in flight is sent, acknowledged and committed first
            if self._consumer is not None:
                await self._consumer.stop()  # leaves the group: its partitions move on at once
        if self._producer is not None:
            await self._producer.stop()

    @Service.task
    async def _read(self) -> None:
        while not self.should_stop:
            try:
                batch = await self._fetch()
            except ConsumerStoppedError:
                return
            if batch:
                await self._handle(batch)

    async def _fetch(self) -> dict[TopicPartition, list[Any]]:
        consumer = self._consumer
        assert consumer is not None
        positions = {tp: position_of(consumer, tp) for tp in consumer.assignment()}
        try:
            return await consumer.getmany(timeout_ms=FETCH_WAIT_MS, max_records=self.config.batch_records)
        except UnsupportedCodecError as error:
            stopped = isolate_unreadable(consumer, positions, error, self.unreadable)
            if stopped is None:
                raise
            consumer.pause(stopped)  # until the worker restarts with the codec's library
            return {}

    async def _handle(self, batch: dict[TopicPartition, list[Any]]) -> None:
        consumer, producer, c = self._consumer, self._producer, self.config
        assert consumer is not None and producer is not None
        async with self._in_flight:
            if self.should_stop:  # fetched as the worker stopped: the partitions' next owner reads it
                return
            now_ms = time.time_ns() // 1_000_000
            shares = {tp: self.sorter.sort(tp.topic, tp.partition, records, now_ms) for tp, records in batch.items()}
            pending: list[asyncio.Future[Any]] = []
            try:
                for share in shares.values():
                    for key, value in share.forward:
                        pending.append(await producer.send(c.usage_evidence, value=value, key=key))
                    for dead_key, letter, _ in share.dead:
                        pending.append(await producer.send(c.dead_letter, value=letter, key=dead_key))
            except KafkaError as error:  # refused before it was sent: as a failed send
                pending.append(asyncio.get_running_loop().create_future())
                pending[-1].set_exception(error)
            acknowledged, unacknowledged = await asyncio.wait(pending, timeout=ACK_TIMEOUT_S) if pending else (set(), set())
            failed = [problem for sent in acknowledged if (problem := sent.exception()) is not None]
            if failed or unacknowledged:
                log.warning("firehose: %d of %d sends failed, %d unacknowledged after %.0fs (first: %r); nothing of the "
                            "batch is committed, it is read again", len(failed), len(pending), len(unacknowledged),
                            ACK_TIMEOUT_S, failed[0] if failed else None)
                await self._renew_producer()
                await self._read_again(batch)
                return
            if pending and self._before_commit is not None:
                self._before_commit()
            assigned = consumer.assignment()
            offsets = {tp: records[-1].offset + 1 for tp, records in batch.items() if tp in assigned}
            try:
                await consumer.commit(offsets)
            except (CommitFailedError, IllegalStateError) as error:
                # The group moved on: the partitions' next owner reads the batch again from the last commit.
                log.warning("firehose: commit refused after a rebalance (%s); the batch is read again by its partitions' owner", error)
                return
            except KafkaError as error:
                log.warning("firehose: commit failed (%r); the batch is read again", error)
                await self._read_again(batch)
                return
        for tp, share in shares.items():
            self._consumed[tp.topic].inc(len(batch[tp]))
            self._metrics.dominated.inc(share.dropped)
            for _, _, code in share.dead:
                self._metrics.dead_letters.labels(tp.topic, code).inc()

    async def _renew_producer(self) -> None:
        """aiokafka's idempotent producer keeps a failed batch's sequence numbers, so every later send
        to its partition fails too (OutOfOrderSequenceNumber), and an error in its sender can leave
        sends unanswered: after a failure the stage carries on with a new producer."""
        old, self._producer = self._producer, self._new_producer()
        try:
            if old is not None:
                await asyncio.wait_for(old.stop(), ACK_TIMEOUT_S)
        except TimeoutError:
            log.warning("firehose: the failed producer did not stop within %.0fs; left behind", ACK_TIMEOUT_S)
        await self._producer.start()

    async def _read_again(self, batch: dict[TopicPartition, list[Any]]) -> None:
        consumer = self._consumer
        assert consumer is not None
        assigned = consumer.assignment()
        for tp, records in batch.items():
            if tp in assigned:
                consumer.seek(tp, records[0].offset)
        await asyncio.sleep(RETRY_AFTER_S)

    def lag(self) -> Iterator[tuple[tuple[str, int], int]]:
        """Records behind the end of each assigned partition, as far as the consumer knows (see
        `streams.metrics.consumer_lag`: a partition whose end is unknown is left out)."""
        consumer = self._consumer
        if consumer is None:
            return
        for tp in consumer.assignment():
            end = consumer.highwater(tp)
            read = position_of(consumer, tp)  # the next offset getmany returns: past what it handed over
            if end is not None and read is not None:
                yield (tp.topic, tp.partition), max(0, end - read)


class _Handover(ConsumerRebalanceListener):
    def __init__(self, firehose: Firehose) -> None:
        self._firehose = firehose

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # The batch in flight finishes (acknowledged, committed) before the partitions move.
        async with self._firehose._in_flight:
            pass

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._firehose.unreadable.keep_only(assigned)


def kill_before_commit(nth_batch: int) -> Callable[[], None]:
    """Fault injection for `usage-detector chaos`: SIGKILL this worker after the sends of its
    `nth_batch`-th forwarding batch are acknowledged and before that batch is committed. The
    firehose runs in the worker's usage process: its parent, the worker's own process, is killed
    first, then this one (as a machine's crash would take both)."""
    batches = 0

    def before_commit() -> None:
        nonlocal batches
        batches += 1
        if batches == nth_batch:
            log.warning("fault injection: SIGKILL before committing firehose batch %d", nth_batch)
            for handler in logging.getLogger().handlers:
                handler.flush()
            os.kill(os.getppid(), signal.SIGKILL)
            os.kill(os.getpid(), signal.SIGKILL)

    return before_commit
