"""The broker going away and coming back, a worker started before its broker, and SIGTERM.

These run on a broker of their own (its own home folder), since they stop and start it.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from localkafka import broker as local_broker
from streams.workerpool import group_lag
from tests.support.kafka import Producer, TopicTail
from tests.support.records import hit
from tests.support.worker import WorkerProcess, unique_topics

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    home = tmp_path_factory.mktemp("own-kafka")
    previous = os.environ.get("USAGE_DETECTOR_KAFKA_HOME")
    os.environ["USAGE_DETECTOR_KAFKA_HOME"] = str(home)
    try:
        yield local_broker.start().bootstrap_servers, home
    finally:
        local_broker.stop()
        if previous is None:
            os.environ.pop("USAGE_DETECTOR_KAFKA_HOME", None)
        else:
            os.environ["USAGE_DETECTOR_KAFKA_HOME"] = previous


def health(worker: WorkerProcess) -> dict:
    return httpx.get(f"{worker.url}/healthz", timeout=5).json()


def wait(what: str, condition, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if result := condition():
                return result
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_worker_rides_out_a_broker_outage_and_reports_it(own_broker: tuple[str, Path], tmp_path: Path) -> None:
    servers, _ = own_broker
    topics = unique_topics()
    worker = WorkerProcess(servers, topics, tmp_path)
    try:
        worker.wait_ready()
        local_broker.stop()
        gone = wait("/healthz to report Kafka unreachable", lambda: not health(worker)["kafka_reachable"])
        assert gone and health(worker)["status"] == "not ready"
        assert httpx.get(f"{worker.url}/healthz").status_code == 503
        assert local_broker.start().bootstrap_servers == servers  # the same address comes back
        wait("/healthz to be ready again", lambda: health(worker)["status"] == "ok")
        assert worker.process.poll() is None
        producer, tail = Producer(servers), TopicTail(servers, [topics.usage])
        producer.send(topics.hits, hit("after-outage", "2026-03-01T10:00:00Z"), key="after-outage")
        producer.flush()
        tail.wait_for("usage after the outage", lambda: tail.records(topics.usage, "after-outage"), timeout=60)
        producer.close()
        tail.close()
        log = worker.log_path.read_text(errors="replace")
        assert "Kafka is unreachable" in log and "Kafka is reachable again" in log
    finally:
        worker.stop()


def test_a_worker_started_before_its_broker_waits_for_it(own_broker: tuple[str, Path], tmp_path: Path) -> None:
    servers, _ = own_broker
    local_broker.stop()
    topics = unique_topics()
    worker = WorkerProcess(servers, topics, tmp_path)
    try:
        wait("the worker to say it retries", lambda: "unreachable" in worker.log_path.read_text(errors="replace"), 30)
        assert worker.process.poll() is None
        assert local_broker.start().bootstrap_servers == servers
        worker.wait_ready(timeout=120)
    finally:
        worker.stop()


def test_sigterm_commits_everything_and_the_restarted_worker_still_knows_which_hits_change_nothing(
    own_broker: tuple[str, Path], tmp_path: Path
) -> None:
    """A clean stop commits every offset and saves the usage filter; a restart restores it."""
    servers, _ = own_broker
    local_broker.start()
    topics = unique_topics()
    same_state = {"USAGE_DETECTOR_STATE_DIR": str(tmp_path / "state")}
    worker = WorkerProcess(servers, topics, tmp_path, same_state)
    worker.wait_ready()
    producer, tail = Producer(servers), TopicTail(servers, [topics.usage])
    accounts = [f"term-{n}" for n in range(50)]
    for account in accounts:
        producer.send(topics.hits, hit(account, "2026-03-01T10:00:00Z"), key=account)
    producer.flush()
    tail.wait_for("every account's usage", lambda: all(tail.records(topics.usage, a) for a in accounts), timeout=60)
    assert worker.stop(signal.SIGTERM) == 0
    assert group_lag(servers, topics.app_id, [topics.hits, f"{topics.app_id}-account-events"]) == 0

    restarted = WorkerProcess(servers, topics, tmp_path, same_state)
    try:
        restarted.wait_ready()
        assert "usage filter: 50 accounts restored" in restarted.log_path.read_text(errors="replace")
        for account in accounts:
            producer.send(topics.hits, hit(account, "2026-03-02T10:00:00Z"), key=account)
        producer.flush()
        wait("the later hits to be committed", lambda: group_lag(servers, topics.app_id, [topics.hits]) == 0)
        assert restarted.metric("usage_detector_evidence_dropped_total") == len(accounts)
    finally:
        restarted.stop()
        producer.close()
        tail.close()
