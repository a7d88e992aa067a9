"""Worker processes of one app, started, killed and scaled from outside, and their group's lag.

Used by the commands that drive whole workers (chaos, replay): each worker is a real
`usage-detector worker` process, configured through the environment as in production.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from streams.settings import Settings
from streams.topics import SETTING_OF, TopicNames
from tools.supervisor import WorkerProcess, settings_env


@dataclass(frozen=True)
class TopicSet(TopicNames):
    """One app's topics named from a prefix, so runs on one broker never see each other's records."""

    prefix: str
    app_id: str

    @classmethod
    def named(cls, prefix: str, app_id: str) -> TopicSet:
        return cls(prefix=prefix, app_id=app_id, **asdict(TopicNames.prefixed(prefix, app_id)))

    def owns(self, topic: str) -> bool:
        """The set's own topics, and the internal ones its workers create (`<app_id>-…`)."""
        return topic.startswith((f"{self.prefix}.", f"{self.app_id}-"))

    def env(self) -> dict[str, str]:
        """The environment that points a worker process at these topics."""
        named = {f"USAGE_DETECTOR_{setting.upper()}": getattr(self, name) for name, setting in SETTING_OF.items()}
        return {"USAGE_DETECTOR_APP_ID": self.app_id, **named}


@dataclass
class WorkerPool:
    settings: Settings
    bootstrap_servers: str
    workdir: Path
    # A new worker starts on the state folder of one that stopped (as a restarted machine would,
    # on its volume) rather than on a fresh one (a replacement machine).
    reuse_state: bool = False
    processes: list[WorkerProcess] = field(default_factory=list)
    started: int = 0
    state_of: dict[int, Path] = field(default_factory=dict)  # by pid
    vacant_states: list[Path] = field(default_factory=list)

    def start(self) -> WorkerProcess:
        """A new worker with its own port, and its own state folder (see `reuse_state`)."""
        self.started += 1
        state = self.vacant_states.pop(0) if self.vacant_states else self.workdir / f"state-{self.started}"
        env = {**settings_env(self.settings, self.bootstrap_servers), "USAGE_DETECTOR_STATE_DIR": str(state)}
        env.pop("USAGE_DETECTOR_WEB_PORT", None)  # each worker its own
        worker = WorkerProcess(env, self.workdir / f"worker-{self.started}.log")
        self.processes.append(worker)
        self.state_of[worker.pid] = state
        return worker

    def alive(self) -> list[WorkerProcess]:
        running = []
        for process in self.processes:
            if process.running():
                running.append(process)
                continue
            state = self.state_of.pop(process.pid)
            if self.reuse_state:  # it exited: its files (and RocksDB's locks) are free again
                self.vacant_states.append(state)
        self.processes = running
        return self.processes

    def kill(self, process: WorkerProcess, sig: int = signal.SIGKILL, timeout: float = 30.0) -> None:
        process.stop(sig, timeout)
        self.alive()

    def scale(self, count: int) -> None:
        """Start or gracefully stop (SIGTERM) workers until `count` run."""
        while len(self.alive()) < count:
            self.start()
        while len(self.alive()) > count:
            self.kill(self.processes[-1], signal.SIGTERM)

    def stop_all(self) -> None:
        for process in list(self.alive()):
            self.kill(process, signal.SIGTERM)


def group_lag(bootstrap_servers: str, group_id: str, topics: list[str], **client_options: Any) -> int | None:
    """Records of `topics` the group has not committed yet; None before it has committed at all."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, **client_options)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, **client_options)
    try:
        committed = admin.list_group_offsets(group_id).get(group_id, {})
        partitions = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or ())]
        ends = consumer.end_offsets(partitions)
        if not committed and any(ends.values()):
            return None
        return sum(max(0, end - (committed[tp].offset if tp in committed else 0)) for tp, end in ends.items())
    finally:
        consumer.close()
        admin.close()


def wait_caught_up(
    bootstrap_servers: str,
    group_id: str,
    topics: list[str],
    timeout: float,
    settle: float = 6.0,
    progress: Callable[[int | None], None] | None = None,
    **client_options: Any,
) -> bool:
    """Wait until the group's lag is zero for `settle` seconds on end (nothing in flight)."""
    deadline = time.monotonic() + timeout
    zero_since: float | None = None
    while time.monotonic() < deadline:
        lag = group_lag(bootstrap_servers, group_id, topics, **client_options)
        if progress is not None:
            progress(lag)
        if lag == 0:
            zero_since = zero_since or time.monotonic()
            if time.monotonic() - zero_since >= settle:
                return True
        else:
            zero_since = None
        # Asking costs two fresh clients: while far behind, ask less often and leave the CPU to the workers.
        time.sleep(1.0 if lag is not None and lag < 10_000 else 5.0)
    return False
