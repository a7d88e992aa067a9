"""The demo's two ends on Kafka: the traffic it publishes, and the detector's records it reads back."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from kafka import KafkaConsumer, KafkaProducer

from streams.kafka_inputs import ISOLATION_LEVEL
from streams.topics import TopicNames
from tools.demo.console import clock, say
from tools.demo.view import LIVE_REFRESH_S


class Viewer(Protocol):
    """What the live view wants to hear of the records read back (`tools.demo.live.LiveDemo`)."""

    def tick(self, force: bool = False) -> None: ...

    def saw_eligibility(self, previous: dict[str, Any] | None, record: dict[str, Any]) -> None: ...

    def saw_output(self, account: str, stamped_at: str | int) -> None: ...


def describe(eligibility: dict[str, Any] | None) -> str:
    if eligibility is None:
        return "(new)"
    reasons = ", ".join(eligibility["reasons"])
    return f"{eligibility['state']} ({reasons})" if reasons else eligibility["state"]


def what_else_changed(previous: dict[str, Any] | None, record: dict[str, Any]) -> str:
    """Besides state and reasons, a record changes with its charge, usage start or abuse."""
    before = previous or {"charge": None, "usage_started_at": None, "abuse": record["abuse"]}
    changes = []
    if record["charge"] is not None and record["charge"] != before["charge"]:
        changes.append(f"charge: {record['charge']['reason']}")
    if record["usage_started_at"] != before["usage_started_at"]:
        changes.append(f"usage_started_at: {record['usage_started_at']}")
    if record["abuse"] != before["abuse"]:
        changes.append(f"abuse: {record['abuse']}")
    return f"  [{'; '.join(changes)}]" if changes else ""


@dataclass
class Outputs:
    """What the demo read back from the detector: the latest record per account, and tallies."""

    eligibility: dict[str, dict[str, Any]] = field(default_factory=dict)
    usage: dict[str, dict[str, Any]] = field(default_factory=dict)
    became_discretionary: list[str] = field(default_factory=list)  # eligible -> discretionary
    usage_moved_earlier: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)
    consumed: Counter[str] = field(default_factory=Counter)
    last_record_at: float = field(default_factory=time.monotonic)


class OutputWatcher:
    """Reads this run's output topics and prints every change as it arrives."""

    def __init__(self, servers: str, names: TopicNames) -> None:
        self.names = names
        self.outputs = Outputs()
        self.echo: Callable[[str], None] = say  # each change as a line; silent under the live view
        self.view: Viewer | None = None
        self._consumer = KafkaConsumer(
            names.usage,
            names.eligibility,
            names.dead_letter,
            bootstrap_servers=servers,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            isolation_level=ISOLATION_LEVEL,
        )

    def watch(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if self.view is not None:
                remaining = min(remaining, LIVE_REFRESH_S / 2)
            for messages in self._consumer.poll(timeout_ms=int(remaining * 1000) + 1).values():
                for message in messages:
                    self._handle(message.topic, orjson.loads(message.value))
            if self.view is not None:
                self.view.tick()

    def _handle(self, topic: str, record: dict[str, Any]) -> None:
        self.outputs.consumed[topic] += 1
        self.outputs.last_record_at = time.monotonic()
        if topic == self.names.eligibility:
            self._eligibility(record)
        elif topic == self.names.usage:
            self._usage(record)
        else:
            self._dead_letter(record)

    def _eligibility(self, record: dict[str, Any]) -> None:
        account = record["account_id"]
        previous = self.outputs.eligibility.get(account)
        if previous is not None and record["version"] <= previous["version"]:
            return  # delivered again, or republished unchanged
        self.outputs.eligibility[account] = record
        if self.view is not None:
            self.view.saw_eligibility(previous, record)
        if previous is not None and (previous["state"], record["state"]) == ("eligible", "discretionary"):
            self.outputs.became_discretionary.append(account)
            note = "  <- usage began after the trial charge"
        else:
            note = what_else_changed(previous, record)
        before, after = describe(previous), describe(record)
        change = f"{after} (unchanged)" if before == after else f"{before} -> {after}"
        self.echo(f"{clock()}  {account}  {change}  v{record['version']}{note}")

    def _usage(self, record: dict[str, Any]) -> None:
        account = record["account_id"]
        previous = self.outputs.usage.get(account)
        if previous is not None and record["version"] <= previous["version"]:
            return
        self.outputs.usage[account] = record
        if self.view is not None:
            self.view.saw_output(account, record["detected_at"])
        evidence = record["first_evidence"]
        where = evidence.get("page_url") or evidence.get("integration") or ""
        if previous is None:
            what = f"usage started {record['usage_started_at']}"
        else:
            self.outputs.usage_moved_earlier += 1
            what = f"usage start moved earlier to {record['usage_started_at']} (late evidence)"
        self.echo(f"{clock()}  {account}  {what} via {evidence['source']} {where}  v{record['version']}")

    def _dead_letter(self, record: dict[str, Any]) -> None:
        code = record["error"]["code"]
        self.outputs.dead_letters[code] += 1
        place = f"{record['topic']} (partition {record['partition']}, offset {record['offset']})"
        self.echo(f"{clock()}  dead letter  {code} from {place}: {record['error']['message'][:80]}")

    def close(self) -> None:
        self._consumer.close()


@dataclass
class Publisher:
    """Sends the traffic like the upstream producers would; counts what Kafka acknowledged."""

    servers: str
    names: TopicNames
    acknowledged: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    sent: int = 0
    sent_at_ms: dict[str, list[float]] = field(default_factory=dict)  # per account, wall clock, ascending

    def __post_init__(self) -> None:
        self._producer = KafkaProducer(bootstrap_servers=self.servers, acks="all", linger_ms=5)

    def send(self, topic: str, key: str, value: bytes) -> None:
        self.sent += 1
        self.sent_at_ms.setdefault(key, []).append(time.time() * 1000)
        future = self._producer.send(topic, key=key.encode(), value=value)
        future.add_callback(lambda _: self.acknowledged.update([topic]))
        future.add_errback(lambda error: self.failures.append(f"{topic}: {error!r}"))

    def flush(self) -> None:
        self._producer.flush(timeout=30)

    def close(self) -> None:
        self._producer.close(timeout=5)
