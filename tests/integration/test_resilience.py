"""The broker going away and coming back, a worker started before its broker, and SIGTERM.

These run on a broker of their own (its own home folder), since they stop and start it.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from localkafka import broker as local_broker
from streams import usage_filter
from streams.topics import firehose_group
from tests.support.kafka import Producer, TopicTail
from tests.support.records import hit
from tests.support.worker import WorkerProcess, unique_topics
from tools.supervisor import HTTP
from tools.workerpool import LagProbe, TopicSet

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
    return HTTP.get(f"{worker.url}/healthz", timeout=5).json()


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
        assert HTTP.get(f"{worker.url}/healthz").status_code == 503
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


@dataclass
class Scene:
    """A worker on a state folder that outlives it, and the accounts whose usage it has seen start."""

    servers: str
    tmp_path: Path
    topics: TopicSet
    env: dict[str, str]
    accounts: list[str]
    producer: Producer
    tail: TopicTail
    lag: LagProbe

    def hits_committed(self) -> bool:
        return self.lag.group_lag(firehose_group(self.topics.app_id), [self.topics.hits]) == 0

    def send_hits(self, received_at: str, accounts: list[str] | None = None) -> None:
        for account in self.accounts if accounts is None else accounts:
            self.producer.send(self.topics.hits, hit(account, received_at), key=account)
        self.producer.flush()

    def worker(self) -> WorkerProcess:
        started = WorkerProcess(self.servers, self.topics, self.tmp_path, self.env)
        started.wait_ready()
        return started

    def close(self) -> None:
        self.producer.close()
        self.tail.close()
        self.lag.close()


def scene_with_usage(servers: str, tmp_path: Path, prefix: str, count: int, **env: str) -> tuple[Scene, WorkerProcess]:
    topics = unique_topics()
    scene = Scene(
        servers, tmp_path, topics, {"USAGE_DETECTOR_STATE_DIR": str(tmp_path / "state"), **env},
        [f"{prefix}-{n}" for n in range(count)], Producer(servers), TopicTail(servers, [topics.usage, topics.eligibility]),
        LagProbe(servers),
    )  # fmt: skip
    worker = scene.worker()
    scene.send_hits("2026-03-01T10:00:00Z")
    scene.tail.wait_for("every account's usage", lambda: all(scene.tail.records(topics.usage, a) for a in scene.accounts), 60)
    # Then its decision: the usage record has reached the account's processor too.
    scene.tail.wait_for(
        "every account's decision", lambda: all(scene.tail.records(topics.eligibility, a) for a in scene.accounts), 60
    )
    return scene, worker


def test_sigterm_commits_everything_and_the_restarted_worker_still_knows_which_hits_change_nothing(
    own_broker: tuple[str, Path], tmp_path: Path
) -> None:
    """A clean stop commits every offset and saves the usage filter; a restart restores it."""
    servers, _ = own_broker
    local_broker.start()
    scene, worker = scene_with_usage(servers, tmp_path, "term", 50)
    assert worker.stop(signal.SIGTERM) == 0
    assert scene.lag.app_lag(scene.topics.app_id, scene.topics) == 0

    restarted = scene.worker()
    try:
        assert "usage filter: 50 accounts restored" in restarted.log_path.read_text(errors="replace")
        scene.send_hits("2026-03-02T10:00:00Z")
        wait("the later hits to be committed", scene.hits_committed)
        assert restarted.metric("usage_detector_evidence_dropped_total") == 50
    finally:
        restarted.stop()
        scene.close()


def test_a_sigkilled_worker_restarted_on_its_state_restores_the_filter_it_saved_last(
    own_broker: tuple[str, Path], tmp_path: Path
) -> None:
    """A filter saved before a kill still drops only strictly later hits; earlier evidence gets through."""
    servers, _ = own_broker
    local_broker.start()
    scene, worker = scene_with_usage(servers, tmp_path, "kill", 30, USAGE_DETECTOR_USAGE_FILTER_SAVE_INTERVAL_S="0.5")
    saved = tmp_path / "state" / f"{scene.topics.app_id}-usage-filter.json"
    wait("the filter to be saved with every account", lambda: len(usage_filter.load(saved)) == 30)
    assert worker.stop(signal.SIGKILL) == -signal.SIGKILL

    restarted = scene.worker()
    try:
        assert "usage filter: 30 accounts restored" in restarted.log_path.read_text(errors="replace")
        scene.send_hits("2026-03-02T10:00:00Z")
        scene.send_hits("2026-02-28T10:00:00Z", ["kill-0"])  # earlier: must get through
        wait("the later hits to be committed", scene.hits_committed)
        usage = scene.tail.records
        scene.tail.wait_for(
            "kill-0's usage to move earlier",
            lambda: usage(scene.topics.usage, "kill-0")[-1].value["usage_started_at"] == "2026-02-28T10:00:00.000Z",
            timeout=60,
        )
        assert restarted.metric("usage_detector_evidence_dropped_total") == 30
        for account in scene.accounts[1:]:
            assert usage(scene.topics.usage, account)[-1].value["usage_started_at"] == "2026-03-01T10:00:00.000Z"
    finally:
        restarted.stop()
        scene.close()
