"""`usage-detector kafka start|status` as the contract states them."""

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka.admin import KafkaAdminClient

pytestmark = pytest.mark.integration
CLI = str(Path(sys.executable).with_name("usage-detector"))


@pytest.fixture
def left_as_found() -> Iterator[None]:
    """The local broker stopped afterwards if it was not running before (a run on another broker
    must not leave one behind, for the next test command to find)."""
    was_running = subprocess.run([CLI, "kafka", "status"], check=False, capture_output=True, timeout=30).returncode == 0
    yield
    if not was_running:
        subprocess.run([CLI, "kafka", "stop"], check=True, capture_output=True, timeout=120)


@pytest.mark.usefixtures("left_as_found")
def test_start_is_idempotent_and_prints_the_bootstrap_servers_last() -> None:
    first = subprocess.run([CLI, "kafka", "start"], capture_output=True, text=True, timeout=180, check=True)
    again = subprocess.run([CLI, "kafka", "start"], capture_output=True, text=True, timeout=60, check=True)
    last_line = first.stdout.strip().splitlines()[-1]
    assert last_line.startswith("KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:")
    assert again.stdout.strip().splitlines()[-1] == last_line
    servers = last_line.split("=", 1)[1]
    admin = KafkaAdminClient(bootstrap_servers=servers)  # a real broker answers there
    try:
        assert isinstance(admin.list_topics(), list)
    finally:
        admin.close()
    status = subprocess.run([CLI, "kafka", "status"], check=False, capture_output=True, text=True, timeout=30)
    assert status.returncode == 0 and servers in status.stdout
