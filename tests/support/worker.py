"""Test workers: `usage-detector worker` processes (tools.supervisor) with the tests' settings."""

from __future__ import annotations

import uuid
from pathlib import Path

from localkafka import free_port
from tools import supervisor
from tools.workerpool import TopicSet

TOKEN = "test-token"
# Tests kill workers often: a killed one's partitions move on after 6 s instead of the default 10.
SESSION_TIMEOUT_S = "6"


def unique_topics() -> TopicSet:
    """Topics and an app id of its own, so tests never see each other's records."""
    tag = uuid.uuid4().hex[:8]
    return TopicSet.named(tag, app_id=f"test-{tag}")


class WorkerProcess(supervisor.WorkerProcess):
    """A worker on `topics` with 4 partitions, the test token, and its state and log under `state_dir`."""

    def __init__(self, bootstrap_servers: str, topics: TopicSet, state_dir: Path, extra_env: dict[str, str] | None = None):
        port = free_port()
        env = {
            **topics.env(),
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
            "USAGE_DETECTOR_PARTITIONS": "4",
            "USAGE_DETECTOR_WEB_PORT": str(port),
            "USAGE_DETECTOR_API_TOKEN": TOKEN,
            "USAGE_DETECTOR_SESSION_TIMEOUT_S": SESSION_TIMEOUT_S,
            "USAGE_DETECTOR_STATE_DIR": str(state_dir / f"state-{port}"),
            **(extra_env or {}),
        }
        super().__init__(env, state_dir / f"worker-{port}.log")

    def wait_ready(self, timeout: float = 90.0) -> float:  # type: ignore[override]
        try:
            return super().wait_ready(timeout)
        except supervisor.WorkerExited as exc:
            raise AssertionError(str(exc)) from None


def wait_all_ready(processes: list[WorkerProcess], timeout: float = 90.0) -> None:
    """Every worker ready at once, each within `timeout` of its start: each that joins takes partitions
    from those already ready, which answer 503 again while they recover what they were given."""
    while not all(process.healthy() for process in processes):
        for process in processes:
            process.wait_ready(timeout)
