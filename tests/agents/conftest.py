"""Agents in Faust's test context: the real topology, an in-memory table store, no broker.

`agent.test_context()` feeds records straight into one agent. What the agents send to other
topics is captured (`Sent`): this level tests the wiring of decode, core, table and send, not
Kafka, which the integration tests cover.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faust
import orjson
import pytest
from faust.types import AgentT, EventT, TopicT

from streams.metrics import Metrics
from streams.settings import Settings
from streams.topology import AccountsTopology, UsageTopology, build_accounts_topology, build_usage_topology

MARKER_KEY = b"--marker--"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Sent:
    """What the agents sent, per topic name, as (key, decoded value)."""

    records: list[tuple[str, bytes | None, Any]] = field(default_factory=list)

    def capture(self, topic: TopicT) -> None:
        name = topic.get_topic_name()

        async def send(*, key: bytes | None = None, value: bytes | None = None, **_: Any) -> asyncio.Future[None]:
            if key != MARKER_KEY:
                self.records.append((name, key, orjson.loads(value) if value else value))
            acknowledged = asyncio.get_running_loop().create_future()  # as Faust's: done once the broker has it
            acknowledged.set_result(None)
            return acknowledged

        topic.send = send  # type: ignore[method-assign]  # the test's producer

    def to(self, topic: str) -> list[tuple[bytes | None, Any]]:
        return [(key, value) for name, key, value in self.records if name == topic]


@dataclass
class Harness:
    """Both apps' stages on one test app (in a worker, each has its own: `streams.app`)."""

    app: faust.App
    topology: AccountsTopology
    metrics: Metrics
    usage: UsageTopology
    usage_metrics: Metrics
    sent: Sent
    changelog: dict[str, list[tuple[bytes, bytes]]]  # per table, every write, as sent to its changelog


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    # Built inside the test's event loop: the app binds to the loop that is running.
    settings = Settings(state_dir=tmp_path, partitions=1, signal_key="agents-test-key", usage_filter_accounts=1000, judge_batch_s=0.05)
    app = faust.App(
        "agents-test",
        store="memory://",
        datadir=str(tmp_path),
        autodiscover=False,
        key_serializer="raw",
        value_serializer="raw",
    )
    metrics, usage_metrics = Metrics(), Metrics()
    topology = build_accounts_topology(app, settings, metrics)
    usage = build_usage_topology(app, settings, usage_metrics, "127.0.0.1:9")  # never started here: no broker
    app.finalize()
    sent = Sent()
    for topic in (
        topology.account_events,
        topology.signal_claims,
        topology.eligibility,
        topology.dead_letter,
        usage.usage_out,
        usage.account_events,
        usage.dead_letter,
    ):
        sent.capture(topic)
    changelog = {name: record_writes(table) for name, table in app.tables.items()}
    yield Harness(app=app, topology=topology, metrics=metrics, usage=usage, usage_metrics=usage_metrics, sent=sent, changelog=changelog)


def record_writes(table: faust.Table) -> list[tuple[bytes, bytes]]:
    writes: list[tuple[bytes, bytes]] = []
    send_changelog = table.send_changelog

    def recording(partition: int | None, key: bytes, value: bytes, *args: Any, **kwargs: Any) -> Any:
        writes.append((key, value))
        return send_changelog(partition, key, value, *args, **kwargs)

    table.send_changelog = recording  # type: ignore[method-assign]
    return writes


async def put(agent: AgentT, value: bytes | None, key: bytes | None, topic: TopicT | None = None) -> EventT:
    """One record for `agent`, as read from `topic` (for an agent reading several topics)."""
    if topic is not None:
        agent.original_channel = topic  # type: ignore[attr-defined]  # what the test message names as its topic
    return await agent.put(value, key=key)


async def settle(agent: AgentT, topic: TopicT | None = None) -> None:
    """Wait until the agent has processed every record put before: until a marker put after them
    is acknowledged. Agents ack in offset order once processed (process-accounts, judge-signals'
    batches), or as they read the next record (route-inputs): hence a second marker. What the
    markers cause is not captured."""
    marker = await put(agent, b"", MARKER_KEY, topic)
    await put(agent, b"", MARKER_KEY, topic)
    async with asyncio.timeout(10):
        while not marker.message.acked:
            await asyncio.sleep(0.001)
