"""A worker refuses to start on existing topics that would break it, and names them.

Each test pre-creates topics on a topic set of its own, then starts `usage-detector worker`
(4 partitions, as tests/support/worker.py configures it)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from kafka.admin import KafkaAdminClient, NewTopic

from streams.topics import Role, Topics, TopicSpec
from tests.support.worker import WorkerProcess, unique_topics
from tools.workerpool import TopicSet, delete_topics

PARTITIONS = 4  # the workers' USAGE_DETECTOR_PARTITIONS (tests/support/worker.py)


@pytest.fixture
def topics(bootstrap_servers: str) -> Iterator[TopicSet]:
    topics = unique_topics()
    yield topics
    delete_topics(bootstrap_servers, topics.owns)


def create(bootstrap_servers: str, *specs: TopicSpec) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers)
    admin.create_topics([NewTopic(spec.name, spec.partitions, 1, topic_configs=dict(spec.config)) for spec in specs])
    admin.close()


def refused(bootstrap_servers: str, topics: TopicSet, state_dir: Path) -> tuple[int, str]:
    """The exit code and output of a worker that is expected to stop by itself."""
    worker = WorkerProcess(bootstrap_servers, topics, state_dir)
    try:
        code = worker.process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        worker.stop()
        raise AssertionError(f"the worker started:\n{worker.log_tail()}") from None
    return code, worker.log_path.read_text(errors="replace")


def test_a_worker_refuses_a_usage_state_that_is_not_compacted(
    bootstrap_servers: str, topics: TopicSet, tmp_path: Path
) -> None:
    usage = Topics.of(topics, PARTITIONS).usage
    create(bootstrap_servers, replace(usage, config={"cleanup.policy": "delete"}))
    code, output = refused(bootstrap_servers, topics, tmp_path)
    assert code == 2, output
    assert f"usage-detector: existing topics do not fit the detector (app id {topics.app_id}):" in output
    assert f"topic {usage.name}: cleanup.policy is delete, not compact;" in output
    assert "--add-config cleanup.policy=compact" in output


def test_a_worker_refuses_account_events_with_another_partition_count(
    bootstrap_servers: str, topics: TopicSet, tmp_path: Path
) -> None:
    account_events = Topics.of(topics, PARTITIONS).account_events
    create(bootstrap_servers, replace(account_events, partitions=PARTITIONS - 1))
    code, output = refused(bootstrap_servers, topics, tmp_path)
    assert code == 2, output
    assert f"topic {account_events.name}: 3 partitions, not 4 (USAGE_DETECTOR_PARTITIONS);" in output
    assert "set USAGE_DETECTOR_PARTITIONS=3" in output
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers)
    left = [name for name in admin.list_topics() if topics.owns(name)]
    admin.close()
    assert left == [account_events.name], "a refused start creates nothing"


def test_a_worker_starts_on_existing_topics_that_fit(bootstrap_servers: str, topics: TopicSet, tmp_path: Path) -> None:
    """Every topic already there, inputs with counts and configs of their producers' choosing."""
    registry = Topics.of(topics, PARTITIONS)
    theirs = {"retention.ms": "3600000"}
    inputs = [replace(spec, partitions=n, config=theirs) for spec, n in ((registry.hits, 3), (registry.capi, 1), (registry.billing, 2))]
    create(bootstrap_servers, *inputs, *(spec for spec in registry if spec.role is not Role.INPUT))
    worker = WorkerProcess(bootstrap_servers, topics, tmp_path)
    try:
        worker.wait_ready()
        assert "created topics" not in worker.log_path.read_text(errors="replace")
    finally:
        worker.stop()
