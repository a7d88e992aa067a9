"""The real broker for the whole session, and a running detector per test module."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kafka.admin import KafkaAdminClient, NewTopic

import localkafka
from streams.topics import firehose_group
from tests.support.kafka import Producer, TopicTail
from tests.support.rebalance import Group, started_group
from tests.support.worker import WorkerProcess, unique_topics, wait_all_ready
from tools.supervisor import stop_together
from tools.workerpool import LagProbe, TopicSet, delete_topics

# Input topics belong to their producers: deliberately not the detector's own count (4).
INPUT_PARTITIONS = {"hits": 3, "capi": 1, "billing": 2}


@pytest.fixture(scope="session")
def bootstrap_servers() -> str:
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or localkafka.start().bootstrap_servers


@dataclass
class Detector:
    topics: TopicSet
    workers: list[WorkerProcess]
    producer: Producer
    tail: TopicTail
    bootstrap_servers: str
    lag: LagProbe

    @property
    def worker(self) -> WorkerProcess:
        return self.workers[0]

    def hits_lag(self) -> int | None:
        """The firehose stage's lag on the hits (None before its first commit)."""
        return self.lag.group_lag(firehose_group(self.topics.app_id), [self.topics.hits])


def start_detector(
    bootstrap_servers: str, state_dir: Path, workers: int = 1, extra_env: dict[str, str] | None = None
) -> Iterator[Detector]:
    """Workers on a fresh topic set whose inputs have partition counts unlike the detector's.

    `extra_env`: more environment for the workers (settings such as USAGE_DETECTOR_MAX_RECORD_BYTES)."""
    topics = unique_topics()
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers)
    admin.create_topics([NewTopic(getattr(topics, name), n, 1) for name, n in INPUT_PARTITIONS.items()])
    admin.close()
    processes = [WorkerProcess(bootstrap_servers, topics, state_dir, extra_env) for _ in range(workers)]
    try:
        wait_all_ready(processes)
    except AssertionError:
        for process in processes:
            process.stop()
        raise
    tail = TopicTail(bootstrap_servers, [topics.usage, topics.eligibility, topics.dead_letter])
    producer = Producer(bootstrap_servers)
    lag = LagProbe(bootstrap_servers)
    yield Detector(topics, processes, producer, tail, bootstrap_servers, lag)
    lag.close()
    producer.close()
    tail.close()
    stop_together(processes)
    # The session's broker may be the developer's long-lived one: leave it as we found it.
    delete_topics(bootstrap_servers, topics.owns)


@pytest.fixture(scope="module")
def detector(bootstrap_servers: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Detector]:
    yield from start_detector(bootstrap_servers, tmp_path_factory.mktemp("detector"))


@pytest.fixture(scope="session")
def two_workers(bootstrap_servers: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Detector]:
    """Two workers of one app id sharing the partitions."""
    yield from start_detector(bootstrap_servers, tmp_path_factory.mktemp("two-workers"), workers=2)


@pytest.fixture
def group(bootstrap_servers: str, tmp_path: Path) -> Iterator[Group]:
    """A group of workers (none started yet) on fresh four-partition inputs (test_rebalance_*)."""
    yield from started_group(bootstrap_servers, tmp_path)
