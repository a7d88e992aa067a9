"""Eager delivery in Faust's real fetch loop: records reach the agent with no task per record.

A Faust app built with the worker's consumer reads pre-filled records from the real broker.
Faust's own race (`Service.wait_first`, reached from `Consumer._drain_messages`) wraps every
delivery in a task; the eager consumer takes a delivery that does not wait at once. So every
record reaches the agent, in order, and no delivery was made a task. A Faust upgrade whose
fetch loop no longer reaches the override (the override removed, the race moved elsewhere)
makes a task per record and fails here.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import faust
import pytest
from kafka.admin import KafkaAdminClient, NewTopic

from streams import eager_delivery, rebalance
from tests.support.kafka import Producer
from tools.workerpool import remove_topics

pytestmark = pytest.mark.integration

RECORDS = 300


@pytest.fixture
def filled_topic(bootstrap_servers: str) -> Iterator[str]:
    name = f"eager-delivery-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers)
    admin.create_topics([NewTopic(name, 1, 1)])
    producer = Producer(bootstrap_servers)
    for n in range(RECORDS):
        producer.send(name, str(n).encode(), partition=0)
    producer.flush()
    producer.close()
    try:
        yield name
    finally:
        remove_topics(admin, [n for n in admin.list_topics() if n == name or n.startswith(f"{name}-")])
        admin.close()


async def consume_all(bootstrap_servers: str, topic_name: str, state_dir: Path) -> tuple[list[bytes], int]:
    """The values the agent received, and how many deliveries of a record ran as a task."""
    app = faust.App(
        f"{topic_name}-app",
        broker=f"kafka://{bootstrap_servers}",
        datadir=str(state_dir),
        store="memory://",
        web_enabled=False,
        autodiscover=False,
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",
        value_serializer="raw",
    )
    rebalance.install(app)  # as streams.app.create_app composes the worker's consumer
    eager_delivery.install(app)
    received: list[bytes] = []
    all_received = asyncio.Event()

    @app.agent(app.topic(topic_name, partitions=1))
    async def collect(stream: Any) -> None:
        async for value in stream:
            received.append(value)
            if len(received) == RECORDS:
                all_received.set()

    # A delivery is the conductor's `on_message(record)`; Faust's race runs it as a task, the
    # eager consumer runs one that would wait as `resume(...)` in that race.
    delivery_code = {app.topics.on_message.__code__, eager_delivery.resume.__code__}
    delivery_tasks = 0
    loop = asyncio.get_running_loop()

    def counting_task_factory(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **kwargs: Any) -> asyncio.Task[Any]:
        nonlocal delivery_tasks
        if getattr(coro, "cr_code", None) in delivery_code:
            delivery_tasks += 1
        return asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(counting_task_factory)  # type: ignore[arg-type]
    await app.start()
    try:
        await asyncio.wait_for(all_received.wait(), timeout=120)  # a hang guard, not a measurement
    finally:
        await app.stop()
    return received, delivery_tasks


def test_records_reach_the_agent_in_order_without_a_task_per_delivery(
    bootstrap_servers: str, filled_topic: str, tmp_path: Path
) -> None:
    received, delivery_tasks = asyncio.run(consume_all(bootstrap_servers, filled_topic, tmp_path))
    assert received == [str(n).encode() for n in range(RECORDS)]
    assert delivery_tasks == 0
