"""Test helpers that talk to the real broker with an independent client (kafka-python)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer


@dataclass(frozen=True)
class Received:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: dict[str, Any]


class TopicTail:
    """Reads topics from the beginning in a background thread and keeps every record."""

    def __init__(self, bootstrap_servers: str, topics: list[str], **client_config: Any) -> None:
        """`client_config`: more kafka-python settings, such as security_protocol and sasl_*."""
        self._consumer = KafkaConsumer(
            *topics,
            bootstrap_servers=bootstrap_servers,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
            metadata_max_age_ms=1000,
            **client_config,
        )
        self._records: list[Received] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            batches = self._consumer.poll(timeout_ms=100)
            with self._lock:
                for messages in batches.values():
                    for m in messages:
                        self._records.append(Received(m.topic, m.partition, m.offset, m.key, orjson.loads(m.value)))

    def records(self, topic: str, account_id: str | None = None, field_name: str = "account_id") -> list[Received]:
        with self._lock:
            return [
                r for r in self._records if r.topic == topic and (account_id is None or r.value.get(field_name) == account_id)
            ]

    def wait_for(self, what: str, condition: Callable[[], Any], timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = condition()
            if result:
                return result
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._consumer.close()


@dataclass
class Producer:
    """Publishes like an upstream team would: its own client, its own keys."""

    bootstrap_servers: str
    client_config: dict[str, Any] = field(default_factory=dict)  # more kafka-python settings (security)
    _producer: KafkaProducer = field(init=False)

    def __post_init__(self) -> None:
        self._producer = KafkaProducer(bootstrap_servers=self.bootstrap_servers, acks="all", linger_ms=5, **self.client_config)

    def send(self, topic: str, value: bytes | dict[str, Any] | None, key: bytes | str | None = None, partition: int | None = None) -> Any:
        """Returns kafka-python's future: `.get()` gives the record's partition and offset."""
        raw = orjson.dumps(value) if isinstance(value, dict) else value
        raw_key = key.encode() if isinstance(key, str) else key
        return self._producer.send(topic, value=raw, key=raw_key, partition=partition)

    def flush(self) -> None:
        self._producer.flush(timeout=30)

    def close(self) -> None:
        self._producer.close(timeout=10)
