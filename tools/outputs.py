"""Reading the detector's output topics back, and comparing two sets of outputs by content."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import orjson
from kafka import KafkaConsumer, TopicPartition

from streams.kafka_inputs import ISOLATION_LEVEL

# The detector's own clock and counters: they differ between runs; everything else must not.
RUN_FIELDS = ("version", "detected_at", "decided_at")


def content(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in RUN_FIELDS}


def topic_partitions(consumer: KafkaConsumer, topics: Iterable[str]) -> list[TopicPartition]:
    """Every partition of `topics` as the consumer's metadata knows them (none of a missing topic)."""
    return [TopicPartition(topic, p) for topic in topics for p in sorted(consumer.partitions_for_topic(topic) or ())]


def read_topics(
    servers: str, topics: list[str], timeout_s: float = 300.0, **consumer_options: Any
) -> dict[str, list[dict[str, Any]]]:
    """Every record of `topics`, from the beginning to the end offsets they had when called.

    Read to those offsets, not until a pause: a broker slow to answer would otherwise end the
    read early, and a record missed there would count as lost."""
    found: dict[str, list[dict[str, Any]]] = {topic: [] for topic in topics}
    consumer = KafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False, group_id=None,
                             isolation_level=ISOLATION_LEVEL, **consumer_options)
    try:
        partitions = topic_partitions(consumer, topics)
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        deadline = time.monotonic() + timeout_s
        while unread := [tp for tp in partitions if consumer.position(tp) < ends[tp]]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {', '.join(sorted({tp.topic for tp in unread}))} to their end "
                                   f"within {timeout_s:.0f}s from Kafka at {servers}")
            for messages in consumer.poll(timeout_ms=500).values():
                for message in messages:
                    if message.value:
                        found[message.topic].append(orjson.loads(message.value))
    finally:
        consumer.close()
    return found


def latest_by_account(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The highest `version` per account: what a reader of the topic holds."""
    latest: dict[str, dict[str, Any]] = {}
    for record in records:
        known = latest.get(record["account_id"])
        if known is None or record["version"] > known["version"]:
            latest[record["account_id"]] = record
    return latest
