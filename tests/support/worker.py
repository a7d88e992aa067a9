"""Runs `usage-detector worker` (the installed command) as its own process, as the contract starts it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

TOKEN = "test-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class TopicSet:
    """A unique set of topic names and app id, so tests never see each other's records."""

    app_id: str
    hits: str
    capi: str
    billing: str
    usage: str
    eligibility: str
    dead_letter: str

    @classmethod
    def unique(cls) -> TopicSet:
        tag = uuid.uuid4().hex[:8]
        return cls(
            app_id=f"test-{tag}",
            hits=f"{tag}.tracking.hits",
            capi=f"{tag}.capi.events",
            billing=f"{tag}.billing.events",
            usage=f"{tag}.usage.state",
            eligibility=f"{tag}.refund.eligibility",
            dead_letter=f"{tag}.usage.dead-letter",
        )

    def owns(self, topic: str) -> bool:
        """The set's own topics, and the internal ones its workers create (`<app_id>-…`)."""
        tag = self.app_id.removeprefix("test-")
        return topic.startswith((f"{tag}.", f"{self.app_id}-"))

    def env(self) -> dict[str, str]:
        return {
            "USAGE_DETECTOR_APP_ID": self.app_id,
            "USAGE_DETECTOR_TOPIC_HITS": self.hits,
            "USAGE_DETECTOR_TOPIC_CAPI": self.capi,
            "USAGE_DETECTOR_TOPIC_BILLING": self.billing,
            "USAGE_DETECTOR_TOPIC_USAGE": self.usage,
            "USAGE_DETECTOR_TOPIC_ELIGIBILITY": self.eligibility,
            "USAGE_DETECTOR_TOPIC_DEAD_LETTER": self.dead_letter,
        }


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
