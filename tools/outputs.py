"""Reading the detector's output topics back, and comparing two sets of outputs by content."""

from __future__ import annotations

from typing import Any

import orjson
from kafka import KafkaConsumer

from streams.kafka_inputs import ISOLATION_LEVEL

# The detector's own clock and counters: they differ between runs; everything else must not.
RUN_FIELDS = ("version", "detected_at", "decided_at")


def content(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in RUN_FIELDS}


def read_topics(servers: str, topics: list[str], **consumer_options: Any) -> dict[str, list[dict[str, Any]]]:
    """Every record of `topics`, from the beginning to their current end."""
    found: dict[str, list[dict[str, Any]]] = {topic: [] for topic in topics}
    consumer = KafkaConsumer(*topics, bootstrap_servers=servers, auto_offset_reset="earliest", enable_auto_commit=False,
                             group_id=None, consumer_timeout_ms=5000, isolation_level=ISOLATION_LEVEL, **consumer_options)
    for message in consumer:
        if message.value:
            found[message.topic].append(orjson.loads(message.value))
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
