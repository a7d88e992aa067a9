"""Ports for the servers the tools start (brokers, workers' web servers) stay clear of the ports
the OS hands to outgoing connections, which could take one before its server binds it."""

import socket
import uuid
from pathlib import Path

from localkafka import free_port, new_cluster_id


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
