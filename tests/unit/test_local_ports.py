"""Ports for the servers the tools start (brokers, workers' web servers) stay clear of the ports
the OS hands to outgoing connections, which could take one before its server binds it."""

import os
import socket
import time
import uuid
from pathlib import Path

import pytest

from localkafka import broker, free_port, new_cluster_id


def test_a_free_port_is_below_the_outgoing_connections_range_and_can_be_bound() -> None:
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = {free_port() for _ in range(50)}
    assert all(1024 <= port < low for port in ports)
    assert len(ports) > 1  # drawn, not one fixed port every caller would share
    for port in list(ports)[:5]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_a_cluster_id_has_the_form_kafka_storage_prints() -> None:
    ids = {new_cluster_id() for _ in range(20)}
    assert len(ids) == 20
    assert all(len(cluster_id) == 22 and "=" not in cluster_id for cluster_id in ids)


def test_a_cluster_id_never_starts_with_a_dash() -> None:
    """`kafka-storage format --cluster-id -…` would read the id as an option and fail the start."""
    dashed = uuid.UUID(bytes=b"\xfb" + bytes(15))  # base64 "-w…"
    draws = iter([dashed, dashed, uuid.UUID(int=1)])
    assert new_cluster_id(lambda: next(draws)) == "AAAAAAAAAAAAAAAAAAAAAQ"


def test_a_port_drawn_by_one_caller_is_not_given_to_another_while_its_server_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two test processes drawing the same free port at once: the second server failed to bind (seen)."""
    draws = iter([20001, 20001, 20002])
    monkeypatch.setattr(broker.random, "randrange", lambda low, high: next(draws))
    assert (free_port(tmp_path), free_port(tmp_path)) == (20001, 20002)


def test_a_stale_reservation_frees_its_port_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(broker.random, "randrange", lambda low, high: 20003)
    assert free_port(tmp_path) == 20003
    old = time.time() - broker.RESERVED_S - 1
    os.utime(tmp_path / "20003", (old, old))
    assert free_port(tmp_path) == 20003
