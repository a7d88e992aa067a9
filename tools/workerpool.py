"""Worker processes of one app, started, killed and scaled from outside, and their group's lag.

Used by the commands that drive whole workers (chaos, replay): each worker is a real
`usage-detector worker` process, configured through the environment as in production.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Self

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError, UnknownTopicOrPartitionError

from streams.kafka_inputs import ISOLATION_LEVEL
from streams.settings import Settings
from streams.topics import SETTING_OF, TopicNames, consumer_groups
from tools.outputs import topic_partitions
from tools.supervisor import WorkerProcess, stop_together


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


def delete_topics(bootstrap_servers: str, which: Callable[[str], bool], **client_options: Any) -> list[str]:
    """Deletes the topics `which` picks (a `TopicSet.owns`, a run's prefix); returns their names."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, **client_options)
    try:
        doomed = [name for name in admin.list_topics() if which(name)]
        remove_topics(admin, doomed)
        return doomed
    finally:
        admin.close()


def remove_topics(admin: KafkaAdminClient, names: list[str]) -> None:
    """Deletes `names`. One deleted a moment ago may still be listed (deletion spreads through the
    cluster's metadata) and is gone by the time it is asked to go: that is no error (seen)."""
    for start in range(0, len(names), 20):
        result = admin.delete_topics(names[start : start + 20], raise_errors=False)
        failed = {topic["name"]: topic["error_message"] for topic in result["topics"]
                  if topic["error_code"] not in (0, UnknownTopicOrPartitionError.errno)}
        if failed:
            raise KafkaError(f"deleting topics failed: {failed}")


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
    # More environment for each new worker, asked at its start (chaos arms fault injection with it).
    extra_env: Callable[[], dict[str, str]] = dict
    killed_itself: int = 0  # workers that ended by SIGKILL the pool did not send (injected faults)
    _stopping: set[int] = field(default_factory=set)  # pids the pool sent a signal to

    def start(self) -> WorkerProcess:
        """A new worker with its own port, and its own state folder (see `reuse_state`)."""
        self.started += 1
        state = self.vacant_states.pop(0) if self.vacant_states else self.workdir / f"state-{self.started}"
        env = {**self.settings.as_env(self.bootstrap_servers), "USAGE_DETECTOR_STATE_DIR": str(state), **self.extra_env()}
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
            if process.process.returncode == -signal.SIGKILL and process.pid not in self._stopping:
                self.killed_itself += 1
            if self.reuse_state:  # it exited: its files (and RocksDB's locks) are free again
                self.vacant_states.append(state)
        self.processes = running
        return self.processes

    def kill(self, process: WorkerProcess, sig: int = signal.SIGKILL, timeout: float = 30.0) -> None:
        self._stopping.add(process.pid)
        process.stop(sig, timeout)
        self.alive()

    def scale(self, count: int) -> None:
        """Start or gracefully stop (SIGTERM) workers until `count` run."""
        while len(self.alive()) < count:
            self.start()
        surplus = self.alive()[count:]
        self._stopping.update(process.pid for process in surplus)
        stop_together(surplus)  # their graceful stops overlap
        self.alive()

    def stop_all(self) -> None:
        self.scale(0)


class LagProbe:
    """Asks how far consumer groups are behind, over one admin client and one consumer kept open.

    A fresh pair of clients costs about 40 ms of CPU a question, half of it the broker's, and the
    waits below ask for minutes on end. Close it (or use it in a `with`) when done.
    """

    def __init__(self, bootstrap_servers: str, **client_options: Any) -> None:
        self._admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, **client_options)
        # Small fetches: a partition with records tells so by its first batch.
        self._consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, isolation_level=ISOLATION_LEVEL,
                                       max_partition_fetch_bytes=64 * 1024, fetch_max_bytes=1024 * 1024, **client_options)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._consumer.close()
        self._admin.close()

    def group_lag(self, group_id: str, topics: list[str]) -> int | None:
        """Records of `topics` the group has not committed yet; None before it has committed at all.

        Counted as the workers read (`read_committed`): behind a partition's committed offset, what
        only transactions left (their commit and abort markers, their aborted records) is nothing to
        read, and a worker never commits past it, so such a partition counts as caught up.
        """
        committed = self._admin.list_group_offsets(group_id).get(group_id, {})
        partitions = topic_partitions(self._consumer, topics)
        ends = self._consumer.end_offsets(partitions)  # read_committed: up to the last stable offset
        if not committed and any(ends.values()):
            return None
        starts = {tp: committed[tp].offset if tp in committed and committed[tp].offset > 0 else 0 for tp in partitions}
        behind = {tp: ends[tp] - starts[tp] for tp in partitions if ends[tp] > starts[tp]}
        holding = partitions_with_records(self._consumer, {tp: starts[tp] for tp in behind}, ends)
        return sum(count for tp, count in behind.items() if tp in holding)

    def app_lag(self, app_id: str, names: TopicNames, among: Collection[str] | None = None) -> int | None:
        """Records the app's workers have not committed yet, over both of its consumer groups (Faust's
        agents and the firehose stage: `consumer_groups`), of `among` topics only when given; None
        while either has not committed at all."""
        total = 0
        for group, topics in consumer_groups(app_id, names).items():
            lag = self.group_lag(group, [t for t in topics if among is None or t in among])
            if lag is None:
                return None
            total += lag
        return total


def partitions_with_records(
    consumer: KafkaConsumer, starts: dict[TopicPartition, int], ends: dict[TopicPartition, int], timeout_s: float = 10.0
) -> set[TopicPartition]:
    """Those of `starts` where `consumer` gets a record before `ends`; one that does not settle
    within `timeout_s` counts as holding records (never reported caught up by mistake)."""
    if not starts:
        return set()
    consumer.assign(list(starts))
    consumer.resume(*consumer.paused())  # an assignment keeps what an earlier question paused
    for tp, start in starts.items():
        consumer.seek(tp, start)
    holding: set[TopicPartition] = set()
    unsettled = set(starts)
    deadline = time.monotonic() + timeout_s
    while unsettled and time.monotonic() < deadline:
        found = {tp for tp, records in consumer.poll(timeout_ms=100, max_records=len(starts)).items() if records}
        holding |= found
        consumer.pause(*found)
        unsettled = {tp for tp in unsettled - holding if consumer.position(tp) < ends[tp]}
    return holding | unsettled


def wait_caught_up(
    probe: LagProbe,
    app_id: str,
    names: TopicNames,
    timeout: float,
    settle: float = 6.0,
    progress: Callable[[int | None], None] | None = None,
) -> bool:
    """Wait until the app's lag is zero for `settle` seconds on end (nothing in flight)."""
    deadline = time.monotonic() + timeout
    zero_since: float | None = None
    while time.monotonic() < deadline:
        lag = probe.app_lag(app_id, names)
        if progress is not None:
            progress(lag)
        if lag == 0:
            zero_since = zero_since or time.monotonic()
            if time.monotonic() - zero_since >= settle:
                return True
        else:
            zero_since = None
        # While far behind (minutes of work), ask less often and leave the CPU to the workers.
        time.sleep(5.0 if lag is not None and lag >= 100_000 else 1.0)
    return False
