"""How the worker reads its inputs: committed records only, and a batch it cannot decompress reported, not fatal.

Producers of the inputs choose their client, codec and whether they use transactions:

- Faust reads `read_committed` only under its own exactly-once guarantee (which also makes its
  producer transactional); the detector keeps at-least-once, so the consumer is switched to
  `read_committed` here: records of an aborted transaction never count (test_transactions.py).
- A batch compressed with a codec whose library is missing (cramjam, for aiokafka) raised out of
  Faust's fetch loop and ended the worker. Here that partition stops at the first record it could
  not read, the error is logged with what to install, shown on /healthz and in a metric, and the
  other partitions go on (test_unreadable_batch.py). Records are never skipped: the partition is
  read again once the library is installed and the worker restarted.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

import faust
from aiokafka import AIOKafkaConsumer
from aiokafka.consumer.fetcher import FetchResult
from aiokafka.errors import UnsupportedCodecError
from faust.transport.consumer import RecordMap
from faust.transport.drivers import aiokafka as faust_kafka
from faust.types import TP
from prometheus_client import Gauge

from streams.eager_delivery import EagerDeliveryConsumer, EagerDeliveryTransport
from streams.rebalance import PositionTrackingThread, position_of

log = logging.getLogger(__name__)
# Every consumer of the detector's and its tools' that reads inputs or outputs reads committed records only.
ISOLATION_LEVEL = "read_committed"
# Faust asks the broker to hold an empty fetch 1.5 s. A seek or a reset (at every start and
# rebalance) waits for the fetch in flight, so each waited up to that long: 1.5 s of every start.
# aiokafka's and the Java client's default; an idle worker asks twice a second instead of 2/3.
FETCH_MAX_WAIT_MS = 500
CODEC_LIBRARIES = "pip install 'aiokafka[lz4,snappy,zstd]' (cramjam; constraints.txt pins the version)"


@dataclass(frozen=True)
class UnreadableBatch:
    topic: str
    partition: int
    waits_at: int  # the partition's position: every record before it was read
    batch_offset: int  # where the batch that could not be read begins
    error: str

    @property
    def fix(self) -> str:
        codec = re.search(r"for (\w+) compression", self.error)
        if codec is None:  # a codec this aiokafka does not know at all
            return "upgrade aiokafka to a version that knows this codec, then restart the worker"
        return f"install the {codec.group(1)} codec's library: {CODEC_LIBRARIES}, then restart the worker"

    def describe(self) -> str:
        return (
            f"{self.topic}[{self.partition}]: the record batch at offset {self.batch_offset} cannot be read ({self.error}); "
            f"{self.fix}. Until then this partition waits at offset {self.waits_at}; the others go on"
        )


class UnreadableInputs:
    """The assigned partitions this worker cannot read further; written by the consumer thread, read by /healthz."""

    def __init__(self, gauge: Gauge) -> None:
        self._gauge = gauge
        self._lock = threading.Lock()
        self._batches: dict[TP, UnreadableBatch] = {}

    def report(self, tp: TP, batch: UnreadableBatch) -> None:
        log.error("cannot read input: %s", batch.describe())
        with self._lock:
            self._batches[tp] = batch
        self._gauge.labels(tp.topic, str(tp.partition)).set(1)

    def keep_only(self, assigned: Iterable[TP]) -> None:
        """Forget partitions no longer assigned: their new owner reports them."""
        assigned = set(assigned)
        with self._lock:
            gone = [tp for tp in self._batches if tp not in assigned]
            for tp in gone:
                del self._batches[tp]
        for tp in gone:
            self._gauge.remove(tp.topic, str(tp.partition))

    def partitions(self) -> set[TP]:
        with self._lock:
            return set(self._batches)

    def batches(self) -> list[UnreadableBatch]:
        with self._lock:
            return sorted(self._batches.values(), key=lambda b: (b.topic, b.partition))


def failed_partition(consumer: AIOKafkaConsumer) -> tuple[TP, int] | None:
    """The partition whose fetched records raised, and the offset of the first one not read.

    aiokafka decompresses a batch while `fetched_records` iterates a partition's records; the
    error leaves that partition's record generator finished with the fetch result still held.
    """
    for tp, result in consumer._fetcher._records.items():
        records = result._partition_records if type(result) is FetchResult else None
        if records is not None and records._records_iterator is not None and records._records_iterator.gi_frame is None:
            return tp, records.next_fetch_offset
    return None


def isolate_unreadable(
    consumer: AIOKafkaConsumer, positions: dict[TP, int | None], error: UnsupportedCodecError, unreadable: UnreadableInputs
) -> TP | None:
    """After a fetch raised `error`: every partition back to its position before the fetch (the
    records the call took are lost with the error), and the one whose batch could not be read
    reported. Returns that partition, or None when the error names none (the caller raises it).

    `positions`: of the partitions the fetch read, taken just before it.
    """
    failed = failed_partition(consumer)
    for tp, position in positions.items():
        if position is not None and (position_of(consumer, tp) != position or (failed and tp == failed[0])):
            consumer._fetcher.seek_to(tp, position)
    if failed is None:
        return None
    tp, batch_offset = failed
    waits_at = positions.get(tp)
    unreadable.report(tp, UnreadableBatch(
        tp.topic, tp.partition, batch_offset if waits_at is None else waits_at, batch_offset, str(error),
    ))
    return tp


class InputsConsumerThread(PositionTrackingThread):
    """Faust's consumer thread with the inputs read committed, a shorter wait on empty fetches, and an
    unreadable batch kept from ending the worker."""

    def _create_worker_consumer(self, transport: faust_kafka.Transport) -> AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # Read by `AIOKafkaConsumer.start`, which builds the fetcher from it (pinned by tests/unit/test_kafka_inputs.py).
        consumer._isolation_level = ISOLATION_LEVEL
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read there as well
        return consumer

    async def _fetch_records(
        self, consumer: AIOKafkaConsumer, active_partitions: set[TP], timeout: float | None = None,
        max_records: int | None = None,
    ) -> RecordMap:
        unreadable = cast(InputsConsumer, self.consumer).unreadable
        unreadable.keep_only(consumer.assignment())
        readable = active_partitions - unreadable.partitions()
        positions = {tp: position_of(consumer, tp) for tp in readable}
        try:
            return await super()._fetch_records(consumer, readable, timeout=timeout, max_records=max_records)
        except UnsupportedCodecError as error:
            # Not a partition's batch: nothing to isolate, so Faust's handling (the worker stops, logged).
            if isolate_unreadable(consumer, positions, error, unreadable) is None:
                raise
            return {}


class InputsConsumer(EagerDeliveryConsumer):
    @property
    def unreadable(self) -> UnreadableInputs:
        return cast(InputsTransport, self.transport).unreadable

    def _new_consumer_thread(self) -> faust_kafka.AIOKafkaConsumerThread:
        return InputsConsumerThread(self, loop=self.loop, beacon=self.beacon)


class InputsTransport(EagerDeliveryTransport):
    Consumer = InputsConsumer

    def __init__(self, *args: Any, unreadable: UnreadableInputs, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unreadable = unreadable


def install(app: faust.App, gauge: Gauge) -> UnreadableInputs:
    """Make the app's consumer an InputsConsumer; before the worker starts. Returns what it reports."""
    unreadable = UnreadableInputs(gauge)
    app.transport = InputsTransport(app.conf.broker_consumer, app, unreadable=unreadable)
    return unreadable
