"""The firehose stage's commit rule, on the real broker: a partition's offset is committed only
after every send its batch caused is acknowledged."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from tests.integration.conftest import Detector, start_detector
from tests.support.records import hit
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def firehose_detector(bootstrap_servers: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Detector]:
    # Its own: the test changes its usage-evidence topic.
    yield from start_detector(bootstrap_servers, tmp_path_factory.mktemp("firehose"))


def set_max_message_bytes(servers: str, topic: str, value: int) -> None:
    """The topic refuses records larger than `value` bytes."""
    admin = KafkaAdminClient(bootstrap_servers=servers)
    try:
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={"max.message.bytes": str(value)})])
    finally:
        admin.close()


def wait_for(what: str, condition, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def test_no_offset_is_committed_past_a_send_the_broker_refused(firehose_detector: Detector) -> None:
    detector = firehose_detector
    accounts = [f"refused-{n}" for n in range(30)]
    first = [(account, hit(account, "2026-03-01T10:00:00Z")) for account in accounts]
    for account, record in first[:10]:  # forwarded and committed before the broker refuses
        detector.producer.send(detector.topics.hits, record, key=account)
    detector.producer.flush()
    wait_for("the first hits committed", lambda: detector.hits_lag() == 0)

    # Every account event is larger than this: each of the next batches' sends is refused.
    set_max_message_bytes(detector.bootstrap_servers, detector.topics.usage_evidence, 64)
    try:
        for account, record in first[10:]:
            detector.producer.send(detector.topics.hits, record, key=account)
        detector.producer.flush()
        wait_for("the batch's sends refused (or its offsets committed)",
                 lambda: "sends failed" in detector.worker.log_path.read_text(errors="replace") or detector.hits_lag() != 20)
        time.sleep(3)  # several attempts, each read again from the batch's start
        assert detector.hits_lag() == 20, "an offset was committed past a record whose send was refused"
    finally:
        set_max_message_bytes(detector.bootstrap_servers, detector.topics.usage_evidence, 1_048_588)  # the default

    wait_for("the refused hits committed once their sends are accepted", lambda: detector.hits_lag() == 0)
    usage = detector.tail.wait_for(
        "every account's usage", lambda: all(detector.tail.records(detector.topics.usage, a) for a in accounts)
    )
    assert usage
    assert all(len(detector.tail.records(detector.topics.usage, a)) == 1 for a in accounts), "read again, published once"


def test_a_worker_killed_between_acknowledged_sends_and_the_commit_loses_nothing(
    firehose_detector: Detector, tmp_path: Path
) -> None:
    """The injected fault `usage-detector chaos` uses: the batch is read again by the next worker."""
    detector = firehose_detector
    detector.worker.stop()  # the fault-injected worker takes the partitions alone
    doomed = WorkerProcess(
        detector.bootstrap_servers, detector.topics, tmp_path, {"USAGE_DETECTOR_FAULT_KILL_BEFORE_COMMIT_BATCH": "1"}
    )
    doomed.wait_ready()
    committed_before = detector.hits_lag()
    accounts = [f"killed-{n}" for n in range(20)]
    for account in accounts:
        detector.producer.send(detector.topics.hits, hit(account, "2026-03-01T10:00:00Z"), key=account)
    detector.producer.flush()
    wait_for("the injected SIGKILL", lambda: not doomed.running())
    assert "fault injection: SIGKILL before committing firehose batch 1" in doomed.log_path.read_text(errors="replace")
    left = detector.hits_lag()  # None: the group never committed at all (this test alone)
    assert committed_before == 0 and (left is None or left > 0), "the killed batch was not committed"

    successor = WorkerProcess(detector.bootstrap_servers, detector.topics, tmp_path)
    detector.workers[0] = successor  # stopped by the fixture
    successor.wait_ready()
    detector.tail.wait_for(
        "every account's usage", lambda: all(detector.tail.records(detector.topics.usage, a) for a in accounts), 60
    )
    wait_for("the batch committed by the successor", lambda: detector.hits_lag() == 0)
