"""A worker is ready only when both of its processes are: its own app, and its usage process as
last seen (its firehose running); every unreadable input partition of both is listed."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from streams.health import BrokerProbe, readiness, usage_readiness
from streams.kafka_inputs import UnreadableBatch


def app(unreadable: list[UnreadableBatch] = (), recovered: bool = True, rebalancing: bool = False) -> Any:  # type: ignore[assignment]
    done = asyncio.Event()
    if recovered:
        done.set()
    return SimpleNamespace(
        tables=SimpleNamespace(recovery=SimpleNamespace(completed=done)),
        consumer=SimpleNamespace(unreadable=SimpleNamespace(batches=lambda: list(unreadable))),
        rebalancing=rebalancing,
    )


PROBE = BrokerProbe("127.0.0.1:9")  # reachable until a check says otherwise
LZ4 = UnreadableBatch(topic="tracking.hits", partition=0, waits_at=7, batch_offset=7, error="no lz4 for lz4 compression")


def usage(ready: bool, **health: object) -> Any:
    return SimpleNamespace(ready=ready, health={"status": "ok" if ready else "not ready", **health})


def test_the_worker_is_not_ready_while_its_usage_process_is_not() -> None:
    ready, body = readiness(app(), PROBE, usage(False, firehose="stopped"))
    assert not ready and body["status"] == "not ready" and body["usage"] == {"status": "not ready", "firehose": "stopped"}
    ready, body = readiness(app(), PROBE, usage(True))
    assert ready and body["status"] == "ok"
    ready, body = readiness(app(recovered=False), PROBE, usage(True))
    assert not ready and body["recovered"] is False


def test_unreadable_inputs_of_both_processes_are_listed_together() -> None:
    child = usage(False, unreadable_inputs=[{"topic": "tracking.hits", "partition": 0}])
    ready, body = readiness(app(), PROBE, child)
    assert not ready and body["unreadable_inputs"] == [{"topic": "tracking.hits", "partition": 0}]


def test_the_usage_process_is_ready_only_while_its_firehose_runs() -> None:
    firehose = SimpleNamespace(state="running", unreadable=SimpleNamespace(batches=list))
    assert usage_readiness(app(), PROBE, firehose)[0]
    firehose.state = "stopping"
    ready, body = usage_readiness(app(), PROBE, firehose)
    assert not ready and body["firehose"] == "stopping"
    firehose.state, firehose.unreadable = "running", SimpleNamespace(batches=lambda: [LZ4])
    ready, body = usage_readiness(app(), PROBE, firehose)
    assert not ready and [(b["topic"], b["partition"]) for b in body["unreadable_inputs"]] == [("tracking.hits", 0)]
