"""A broker lost under load, on a three-broker cluster of its own: the detector's topics are
replicated as configured, and with the broker that led most of them SIGKILLed mid-flow the
cluster serves with two, the worker catches up, and every account's outcome is the oracle's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType

import localkafka
from localkafka import cluster
from streams.settings import Settings
from streams.topics import Topics
from tests.support.worker import WorkerProcess, unique_topics
from tools.broker_faults import leaders
from tools.chaos import Report, compare, read_outputs
from tools.chaos_workload import decode_inputs, expected_outcome, generate_sparse
from tools.workerpool import LagProbe, TopicSet, wait_caught_up

pytestmark = pytest.mark.integration

CLI = str(Path(sys.executable).with_name("usage-detector"))
RECORDS = 3000
RATE = 400.0  # records a second: the kill falls in the middle of the flow
DURABLE_ENV = {"USAGE_DETECTOR_REPLICATION_FACTOR": "3", "USAGE_DETECTOR_MIN_INSYNC_REPLICAS": "2"}


@pytest.fixture(scope="module")
def three_brokers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[localkafka.ClusterInfo]:
    home = tmp_path_factory.mktemp("cluster")
    info = localkafka.start(home, brokers=3)
    assert isinstance(info, localkafka.ClusterInfo)
    yield info
    localkafka.stop(home)


def test_the_cli_finds_the_running_cluster(three_brokers: localkafka.ClusterInfo) -> None:
    env = {**os.environ, "USAGE_DETECTOR_KAFKA_HOME": three_brokers.home}
    again = subprocess.run([CLI, "kafka", "start", "--brokers", "3"], env=env, capture_output=True, text=True,
                           timeout=120, check=True)
    assert again.stdout.strip().splitlines()[-1] == f"KAFKA_BOOTSTRAP_SERVERS={three_brokers.bootstrap_servers}"
    assert len(three_brokers.bootstrap_servers.split(",")) == 3
    status = subprocess.run([CLI, "kafka", "status"], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert status.returncode == 0 and "(3 of 3 nodes up)" in status.stdout, status.stdout
    one = subprocess.run([CLI, "kafka", "start", "--brokers", "1"], env=env, capture_output=True, text=True, timeout=60,
                         check=False)
    assert one.returncode == 2 and "stop it first, or use another home" in one.stderr


def test_nothing_is_lost_when_the_broker_leading_most_partitions_is_killed_mid_flow(
    three_brokers: localkafka.ClusterInfo, tmp_path: Path
) -> None:
    servers, home = three_brokers.bootstrap_servers, Path(three_brokers.home)
    topics = unique_topics()
    worker = WorkerProcess(servers, topics, tmp_path, DURABLE_ENV)
    try:
        worker.wait_ready()
        _kill_the_busiest_broker_mid_flow(worker, topics, servers, home)
    finally:
        worker.stop()


def _kill_the_busiest_broker_mid_flow(worker: WorkerProcess, topics: TopicSet, servers: str, home: Path) -> None:
    settings = Settings(**{name.removeprefix("USAGE_DETECTOR_").lower(): value for name, value in topics.env().items()},
                        partitions=4, replication_factor=3, min_insync_replicas=2)
    own = [spec.name for spec in Topics.from_settings(settings)]  # the worker created them all
    admin = KafkaAdminClient(bootstrap_servers=servers)
    described = admin.describe_topics(own)
    configs = admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name, configs={"min.insync.replicas": None}) for name in own]
    )["topic"]
    admin.close()
    assert {len(p["replica_nodes"]) for t in described for p in t["partitions"]} == {3}
    assert {configs[name]["min.insync.replicas"]["value"] for name in own} == {"2"}

    workload = generate_sparse(seed=14, records=RECORDS)
    expected = expected_outcome(decode_inputs(workload, settings), settings.duplicate_window())
    topic_of = {"hits": topics.hits, "capi": topics.capi, "billing": topics.billing}
    producer = KafkaProducer(bootstrap_servers=servers, acks="all", retries=2_147_483_647,
                             max_in_flight_requests_per_connection=1, request_timeout_ms=30_000)
    bad_offsets: set[tuple[str, int, int]] = set()
    victim = None
    started = time.monotonic()
    for index, (kind, key, value) in enumerate(workload.records):
        if index == len(workload.records) // 2:
            victim, led = leaders(servers, own).most_common(1)[0]
            assert led > 0
            cluster.stop_node(home, victim, signal.SIGKILL)
        future = producer.send(topic_of[kind], key=key, value=value)
        if index in workload.bad:
            future.add_callback(lambda meta: bad_offsets.add((meta.topic, meta.partition, meta.offset)))
        ahead = (index + 1) / RATE - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)
    producer.flush(timeout=120)
    producer.close()
    running = cluster.cluster_status(home)
    assert victim is not None and running is not None and victim not in [node.node_id for node in running.running()]

    # Caught up with the killed broker still down: two brokers serve every partition.
    lags: list[int | None] = []
    with LagProbe(servers) as probe:
        caught_up = wait_caught_up(probe, topics.app_id, topics, timeout=300, progress=lags.append)
    assert caught_up, f"lag over the last checks: {lags[-10:]}\n{worker.log_excerpt()}"
    report = Report(seed=14)
    compare(report, expected, read_outputs(servers, topics), bad_offsets)
    assert report.dead_letters_expected == len(workload.bad) > 0
    assert (report.lost, report.conflicting, report.mismatched) == (0, 0, 0), report.examples
    assert (report.dead_letters_missing, report.dead_letters_unexpected) == (0, 0)
    worker.check_running()

