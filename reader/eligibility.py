"""EligibilityReader: the current refund decision of every account, in memory, kept up to date."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Self

from kafka import KafkaConsumer, TopicPartition

from models.outputs import RefundEligibility

log = logging.getLogger(__name__)


class EligibilityReader:
    def __init__(
        self,
        bootstrap_servers: str,
        topic: str = "refund.eligibility",
        on_change: Callable[[RefundEligibility], None] | None = None,
        **consumer_options: Any,
    ) -> None:
        """`on_change` runs on the reader's thread for every record that raises an account's version.

        `consumer_options` go to kafka-python's KafkaConsumer (security settings, for instance).
        """
        self._topic = topic
        self._on_change = on_change
        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers, enable_auto_commit=False, group_id=None,
            isolation_level="read_committed",  # as the detector's own consumers (streams/kafka_inputs.py)
            **consumer_options,
        )
        partitions = self._consumer.partitions_for_topic(topic)
        if not partitions:
            self._consumer.close()
            raise LookupError(f"topic {topic!r} does not exist at {bootstrap_servers}")
        self._partitions = [TopicPartition(topic, p) for p in sorted(partitions)]
        self._consumer.assign(self._partitions)
        self._consumer.seek_to_beginning(*self._partitions)
        self._targets = self._consumer.end_offsets(self._partitions)  # "caught up" = read up to here
        self._latest: dict[str, RefundEligibility] = {}
        self._lock = threading.Lock()
        self._caught_up = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"eligibility-reader-{topic}", daemon=True)

    def start(self) -> Self:
        self._thread.start()
        return self

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, account_id: str) -> RefundEligibility | None:
        with self._lock:
            return self._latest.get(account_id)

    def snapshot(self) -> dict[str, RefundEligibility]:
        with self._lock:
            return dict(self._latest)

    def __len__(self) -> int:
        with self._lock:
            return len(self._latest)

    def wait_until_caught_up(self, timeout: float | None = None) -> bool:
        """Whether everything on the topic when the reader started has been read."""
        return self._caught_up.wait(timeout)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._consumer.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            for messages in self._consumer.poll(timeout_ms=200).values():
                for message in messages:
                    self._accept(message.value)
            if not self._caught_up.is_set() and all(
                self._consumer.position(tp) >= end for tp, end in self._targets.items()
            ):
                self._caught_up.set()

    def _accept(self, value: bytes | None) -> None:
        if not value:
            return
        try:
            record = RefundEligibility.model_validate_json(value)
        except ValueError:
            log.warning("skipping a record that is not a refund.eligibility record: %.200r", value)
            return
        with self._lock:
            known = self._latest.get(record.account_id)
            if known is not None and known.version >= record.version:
                return
            self._latest[record.account_id] = record
        if self._on_change is not None:
            self._on_change(record)
