"""The bench's own Kafka work: its topics, prefilling them, the raw-consumer baseline, the group's offsets."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

import orjson

from streams.kafka_inputs import ISOLATION_LEVEL
from streams.topics import Topics, consumer_groups
from tools.bench.progress import Progress, human
from tools.workerpool import TopicSet

INPUT_PARTITIONS = {"hits": 8, "capi": 2, "billing": 4}
LOG_APPEND = {"message.timestamp.type": "LogAppendTime"}


def fresh_topics(run_tag: str, stage: str) -> TopicSet:
    prefix = f"bench-{run_tag}-{stage}"
    return TopicSet.named(prefix, app_id=prefix)


def create_topics(servers: str, topics: TopicSet, partitions: int) -> None:
    """Inputs and usage.state as the registry declares them, but with LogAppendTime, so both ends
    of the lag are the broker's clock; inputs with partition counts of their own, as producers' are."""
    from kafka.admin import KafkaAdminClient, NewTopic

    registry = Topics.of(topics, partitions)
    inputs = [replace(getattr(registry, name), partitions=count) for name, count in INPUT_PARTITIONS.items()]
    admin = KafkaAdminClient(bootstrap_servers=servers, client_id="usage-detector-bench")
    try:
        admin.create_topics(
            [
                NewTopic(spec.name, spec.partitions, 1, topic_configs={**spec.config, **LOG_APPEND})
                for spec in (*inputs, registry.usage)
            ]
        )
    finally:
        admin.close()


async def produce(servers: str, topic: str, records: list[tuple[bytes, bytes]], progress: Progress, what: str) -> float:
    """Publishes as fast as the broker takes it; returns the seconds it took."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=servers, acks=1, linger_ms=20, max_batch_size=1 << 20, max_request_size=8 << 20
    )
    await producer.start()
    started = time.monotonic()
    try:
        pending: list[asyncio.Future[Any]] = []
        for index, (key, value) in enumerate(records, start=1):
            pending.append(await producer.send(topic, value=value, key=key))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
                progress(f"{what}: produced {human(index)}/{human(len(records))}")
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.monotonic() - started


async def raw_consume(servers: str, topics: list[str], expected: int, progress: Progress) -> dict[str, float]:
    """The baseline: read every record from the start and decode it with orjson.

    Timed like the worker: from the moment it has its partitions to the last record decoded; its
    CPU time (this process's) per record beside it, comparable with the worker's.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=servers, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
                                isolation_level=ISOLATION_LEVEL)  # as the workers read
    await consumer.start()
    try:
        cluster = await consumer._client.fetch_all_metadata()  # partitions of unsubscribed topics
        partitions = [TopicPartition(t, p) for t in topics for p in sorted(cluster.partitions_for_topic(t) or ())]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        count = nbytes = keys = 0
        first = last = time.monotonic()
        cpu_first = time.process_time()
        while count < expected:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for messages in batches.values():
                for message in messages:
                    keys += len(orjson.loads(message.value))
                    nbytes += len(message.value)
                count += len(messages)
            last = time.monotonic()
            progress(f"baseline: {human(count)}/{human(expected)} records")
        cpu = time.process_time() - cpu_first
    finally:
        await consumer.stop()
    seconds = max(last - first, 1e-6)
    return {
        "records": count,
        "seconds": seconds,
        "records_per_s": count / seconds,
        "mb_per_s": nbytes / seconds / 1e6,
        "cpu_us_per_record": cpu / max(1, count) * 1e6,
    }


class GroupWatch:
    """Committed offsets of the workers' consumer groups against the end offsets (kafka-python)."""

    def __init__(self, servers: str, topics: TopicSet) -> None:
        from kafka import KafkaConsumer
        from kafka.admin import KafkaAdminClient

        self.groups = list(consumer_groups(topics.app_id, topics))
        self.inputs = topics.inputs
        self.internal = topics.internal
        self.admin = KafkaAdminClient(bootstrap_servers=servers, client_id="usage-detector-bench-watch")
        self.consumer = KafkaConsumer(bootstrap_servers=servers, group_id=None, enable_auto_commit=False,
                                      isolation_level=ISOLATION_LEVEL)
        self._partitions: dict[str, list[Any]] = {}

    def partitions(self, topic: str) -> list[Any]:
        from kafka import TopicPartition

        if not self._partitions.get(topic):
            found = self.consumer.partitions_for_topic(topic) or set()
            self._partitions[topic] = [TopicPartition(topic, p) for p in sorted(found)]
        return self._partitions[topic]

    def sample(self) -> tuple[int, int, int, int]:
        """(committed on inputs, end of inputs, committed on internal topics, end of internal)."""
        # The groups commit on different topics (the firehose on hits and capi, Faust on the rest).
        offsets = self.admin.list_group_offsets(dict.fromkeys(self.groups))
        committed = {tp: meta.offset for group in self.groups for tp, meta in (offsets.get(group) or {}).items()}
        out = []
        for topics in (self.inputs, self.internal):
            tps = [tp for topic in topics for tp in self.partitions(topic)]
            ends = self.consumer.end_offsets(tps) if tps else {}
            out += [sum(max(0, committed.get(tp, 0)) for tp in tps), sum(ends.values())]
        return out[0], out[1], out[2], out[3]

    def close(self) -> None:
        self.admin.close()
        self.consumer.close()
