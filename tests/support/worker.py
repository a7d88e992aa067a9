"""Runs `usage-detector worker` (the installed command) as its own process, as the contract starts it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

from streams.workerpool import TopicSet, free_port

TOKEN = "test-token"


def unique_topics() -> TopicSet:
    """Topics and an app id of its own, so tests never see each other's records."""
    tag = uuid.uuid4().hex[:8]
    return TopicSet.named(tag, app_id=f"test-{tag}")


class WorkerProcess:
    def __init__(self, bootstrap_servers: str, topics: TopicSet, state_dir: Path, extra_env: dict[str, str] | None = None):
        self.port = free_port()
        self.log_path = state_dir / f"worker-{self.port}.log"
        env = {
            **os.environ,
            **topics.env(),
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
            "USAGE_DETECTOR_PARTITIONS": "4",
            "USAGE_DETECTOR_WEB_PORT": str(self.port),
            "USAGE_DETECTOR_API_TOKEN": TOKEN,
            "USAGE_DETECTOR_STATE_DIR": str(state_dir / f"state-{self.port}"),
            "USAGE_DETECTOR_CENSUS_INTERVAL_S": "1",
            **(extra_env or {}),
        }
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [str(Path(sys.executable).with_name("usage-detector")), "worker"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"worker not ready within {timeout:.0f}s:\n{self.log_tail()}")

    def metric(self, name: str) -> float:
        """The sum of a metric's samples on /metrics, over all its labels."""
        lines = httpx.get(f"{self.url}/metrics").text.splitlines()
        return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.split("{")[0].split(" ")[0] == name)

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode
