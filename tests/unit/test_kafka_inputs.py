"""The worker's consumer of the inputs (streams.kafka_inputs), and the upstream code it relies on."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka import codec as aiokafka_codec
from aiokafka.consumer.fetcher import Fetcher as AIOKafkaFetcher
from aiokafka.consumer.fetcher import FetchResult, PartitionRecords
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types import TP
from kafka import codec as kafka_python_codec
from prometheus_client import CollectorRegistry, Gauge

from streams.app import create_app
from streams.kafka_inputs import (
    FETCH_MAX_WAIT_MS,
    ISOLATION_LEVEL,
    InputsConsumer,
    InputsConsumerThread,
    UnreadableBatch,
    UnreadableInputs,
)
from streams.settings import Settings
from tests.support.upstream import Pins, assert_unchanged

# What streams.kafka_inputs was written against. A new aiokafka or Faust that changes one of these
# fails here: read the new code, check the isolation level and the unreadable-batch handling still fit.
UPSTREAM: Pins = {
    # builds the fetcher from `_isolation_level` and `_fetch_max_wait_ms`, set after construction
    "AIOKafkaConsumer.start": (AIOKafkaConsumer.start, "2f1ba7044332"),
    # Faust sets read_committed only under exactly-once
    "AIOKafkaConsumerThread._create_worker_consumer": (AIOKafkaConsumerThread._create_worker_consumer, "c2701bfc3e6f"),
    "AIOKafkaConsumerThread._fetch_records": (AIOKafkaConsumerThread._fetch_records, "39a2c6c79fc1"),
    # a decompression error leaves the partition's records generator finished in `_records`
    "Fetcher.fetched_records": (AIOKafkaFetcher.fetched_records, "be4348896b9b"),
    "FetchResult.getall": (FetchResult.getall, "3e717e30de50"),
    "PartitionRecords.__next__": (PartitionRecords.__next__, "63ac34a08c30"),
}



@pytest.mark.parametrize("name", sorted(UPSTREAM))
def test_the_upstream_code_the_consumer_relies_on_is_unchanged(name: str) -> None:
    assert_unchanged(UPSTREAM, name, "streams/kafka_inputs.py")


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_both_clients_can_decompress_every_codec_kafka_defines(codec: str) -> None:
    # aiokafka reads for the worker and the bench; kafka-python for the reader, explain, replay and the other tools.
    assert getattr(aiokafka_codec, f"has_{codec}")(), f"aiokafka cannot read {codec}: install aiokafka[{codec}]"
    assert getattr(kafka_python_codec, f"has_{codec}")(), f"kafka-python cannot read {codec}: install kafka-python[{codec}]"


def test_the_workers_consumer_reads_committed_records_and_waits_half_a_second_on_empty_fetches(tmp_path: Path) -> None:
    detector = create_app(Settings(state_dir=tmp_path), "127.0.0.1:1")  # built, never started
    consumer = detector.app.consumer
    assert isinstance(consumer, InputsConsumer) and isinstance(consumer._thread, InputsConsumerThread)

    async def built() -> AIOKafkaConsumer:
        return consumer._thread._create_worker_consumer(detector.app.transport)

    built_consumer = asyncio.run(built())
    assert built_consumer._isolation_level == ISOLATION_LEVEL == "read_committed"
    assert built_consumer._fetch_max_wait_ms == FETCH_MAX_WAIT_MS == 500  # not Faust's 1.5 s: see kafka_inputs


def gauge() -> Gauge:
    return Gauge("unreadable", "test", ["topic", "partition"], registry=CollectorRegistry())


def test_an_unreadable_batch_says_which_library_to_install() -> None:
    batch = UnreadableBatch("tracking.hits", 2, 40, 57, "UnsupportedCodecError: Libraries for zstd compression codec not found")
    assert batch.fix.startswith("install the zstd codec's library: pip install 'aiokafka[lz4,snappy,zstd]'")
    assert batch.describe().startswith("tracking.hits[2]: the record batch at offset 57 cannot be read")
    assert "waits at offset 40" in batch.describe()
    unknown = UnreadableBatch("tracking.hits", 2, 40, 57, "UnsupportedCodecError: Unknown compression codec 0x05")
    assert unknown.fix.startswith("upgrade aiokafka")


def test_a_partition_moved_away_is_no_longer_reported() -> None:
    unreadable_gauge = gauge()
    unreadable = UnreadableInputs(unreadable_gauge)
    kept, moved = TP("tracking.hits", 0), TP("capi.events", 1)
    for tp in (kept, moved):
        unreadable.report(tp, UnreadableBatch(tp.topic, tp.partition, 3, 3, "Libraries for lz4 compression codec not found"))
    unreadable.keep_only({kept, TP("billing.events", 0)})
    assert unreadable.partitions() == {kept}
    assert [(b.topic, b.partition) for b in unreadable.batches()] == [("tracking.hits", 0)]
    assert [s.labels for s in unreadable_gauge.collect()[0].samples] == [{"topic": "tracking.hits", "partition": "0"}]
