"""An authenticated Kafka: workers over SASL (SCRAM-SHA-512, PLAIN) and TLS, on a broker of the
tests' own (localkafka with `sasl_users` and `tls`, in its own home: the shared plaintext broker
is untouched). Right credentials: records flow. Wrong ones: the worker stops at once with a
clear message and exit code 2. Never is a password written to the log."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import localkafka
from streams.kafka_security import KafkaSecurity
from streams.settings import Settings
from streams.topics import ensure_topics
from tests.support.kafka import Producer, TopicTail
from tests.support.records import hit
from tests.support.worker import WorkerProcess, unique_topics

pytestmark = pytest.mark.integration

USERS = {"alice": "alice-scram-secret-7f3a", "bob": "bob-plain-secret-91c2"}
FAIL_WITHIN_S = 30.0


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[localkafka.BrokerInfo]:
    home = tmp_path_factory.mktemp("sasl-kafka")
    info = localkafka.start(home, sasl_users=USERS, tls=True)
    yield info
    localkafka.stop(home)


def worker_env(protocol: str, user: str, password: str, mechanism: str = "SCRAM-SHA-512", **more: str) -> dict[str, str]:
    return {
        "USAGE_DETECTOR_KAFKA_SECURITY_PROTOCOL": protocol,
        "USAGE_DETECTOR_KAFKA_SASL_MECHANISM": mechanism,
        "USAGE_DETECTOR_KAFKA_SASL_USERNAME": user,
        "USAGE_DETECTOR_KAFKA_SASL_PASSWORD": password,
        **more,
    }


def client_config(protocol: str, user: str, mechanism: str, ca_file: str | None = None) -> dict[str, Any]:
    """The tests' own kafka-python clients, configured by hand (independent of the worker's code)."""
    config: dict[str, Any] = {
        "security_protocol": protocol,
        "sasl_mechanism": mechanism,
        "sasl_plain_username": user,
        "sasl_plain_password": USERS[user],
    }
    return {**config, "ssl_cafile": ca_file} if ca_file else config


def run_hit_through(servers: str, env: dict[str, str], client: dict[str, Any], tmp_path: Path) -> WorkerProcess:
    """Start a worker, send it a hit, wait for the account's usage.state; returns the stopped worker."""
    topics = unique_topics()
    worker = WorkerProcess(servers, topics, tmp_path, env)
    try:
        worker.wait_ready()
        tail = TopicTail(servers, [topics.usage], **client)
        producer = Producer(servers, client_config=client)
        try:
            account = f"acct-{uuid.uuid4().hex[:8]}"
            producer.send(topics.hits, hit(account, "2026-03-01T10:00:00Z"), key=account)
            producer.flush()
            usage = tail.wait_for("usage.state", lambda: tail.records(topics.usage, account), timeout=60)
            assert usage[0].value["usage_started_at"] == "2026-03-01T10:00:00.000Z"
        finally:
            producer.close()
            tail.close()
    finally:
        assert worker.stop() == 0, worker.log_tail()
    return worker


@pytest.mark.parametrize(
    ("protocol", "user", "mechanism", "password_from"),
    [
        ("SASL_PLAINTEXT", "alice", "SCRAM-SHA-512", "env"),
        ("SASL_PLAINTEXT", "bob", "PLAIN", "file"),
        ("SASL_SSL", "alice", "SCRAM-SHA-512", "file"),
    ],
    ids=["scram-sha-512", "plain-password-file", "scram-over-tls"],
)
def test_a_worker_with_the_right_credentials_processes_records(
    secure_broker: localkafka.BrokerInfo, tmp_path: Path, protocol: str, user: str, mechanism: str, password_from: str
) -> None:
    servers = secure_broker.listener(protocol)
    tls = protocol == "SASL_SSL"
    env = worker_env(protocol, user, USERS[user], mechanism)
    if password_from == "file":
        secret = tmp_path / "kafka-password"
        secret.write_text(USERS[user] + "\n")
        del env["USAGE_DETECTOR_KAFKA_SASL_PASSWORD"]
        env["USAGE_DETECTOR_KAFKA_SASL_PASSWORD_FILE"] = str(secret)
    if tls:
        env["USAGE_DETECTOR_KAFKA_SSL_CAFILE"] = str(secure_broker.ca_file)
    client = client_config(protocol, user, mechanism, secure_broker.ca_file if tls else None)
    worker = run_hit_through(servers, env, client, tmp_path)
    log = worker.log_path.read_text(errors="replace")
    assert f"over {protocol}, {mechanism} as '{user}'" in log
    assert USERS[user] not in log


@pytest.mark.parametrize(
    ("mechanism", "user", "password"),
    [("SCRAM-SHA-512", "alice", "not-alices-password"), ("PLAIN", "bob", "not-bobs-password"), ("SCRAM-SHA-512", "mallory", "guessed-password")],
    ids=["scram-wrong-password", "plain-wrong-password", "scram-unknown-user"],
)
def test_wrong_credentials_stop_the_worker_at_once_with_a_clear_message(
    secure_broker: localkafka.BrokerInfo, tmp_path: Path, mechanism: str, user: str, password: str
) -> None:
    worker = WorkerProcess(secure_broker.listener("SASL_PLAINTEXT"), unique_topics(), tmp_path, worker_env("SASL_PLAINTEXT", user, password, mechanism))
    try:
        code = worker.process.wait(timeout=FAIL_WITHIN_S)
    except subprocess.TimeoutExpired:
        worker.stop()
        raise AssertionError(f"the worker still runs after {FAIL_WITHIN_S:.0f}s:\n{worker.log_tail()}") from None
    log = worker.log_path.read_text(errors="replace")
    assert code == 2, log
    assert f"rejected the SASL credentials of user '{user}' ({mechanism})" in log
    assert "Authentication failed" in log  # the broker's own reason
    assert password not in log


def test_tls_without_the_brokers_ca_fails_with_a_clear_message(secure_broker: localkafka.BrokerInfo, tmp_path: Path) -> None:
    env = {"USAGE_DETECTOR_KAFKA_SECURITY_PROTOCOL": "SSL"}  # no CA: the system's, which did not sign it
    worker = WorkerProcess(secure_broker.listener("SSL"), unique_topics(), tmp_path, env)
    try:
        code = worker.process.wait(timeout=FAIL_WITHIN_S)
    except subprocess.TimeoutExpired:
        worker.stop()
        raise AssertionError(f"the worker still runs after {FAIL_WITHIN_S:.0f}s:\n{worker.log_tail()}") from None
    log = worker.log_path.read_text(errors="replace")
    assert code == 2, log
    assert "TLS handshake with Kafka at" in log and "certificate verify failed" in log


def test_plain_tls_with_the_ca_creates_the_topics(secure_broker: localkafka.BrokerInfo) -> None:
    """SSL without SASL, in-process: the admin client (kafka-python) and the access check (aiokafka)."""
    topics = unique_topics()
    settings = Settings(
        app_id=topics.app_id,
        topic_hits=topics.hits,
        topic_capi=topics.capi,
        topic_billing=topics.billing,
        topic_usage=topics.usage,
        topic_eligibility=topics.eligibility,
        topic_dead_letter=topics.dead_letter,
        partitions=2,
        kafka_security_protocol="SSL",
        kafka_ssl_cafile=Path(str(secure_broker.ca_file)),
    )
    created = ensure_topics(settings, secure_broker.listener("SSL"))
    assert topics.usage in created and topics.hits in created
    # The same settings on the SASL listener, which wants a SASL handshake the client never starts.
    with pytest.raises(ConnectionError, match=r"does the listener want SASL.*SECURITY_PROTOCOL"):
        KafkaSecurity.from_settings(settings).check_access(secure_broker.listener("SASL_SSL"), timeout_s=3)
