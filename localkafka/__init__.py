"""The project's own Apache Kafka (KRaft) for development, tests, CI and the demo: one broker, or a cluster.

Jars come from Maven Central through `pom.xml` beside this file and are cached per Kafka
version; the broker keeps its port, data and logs in one home folder so that `start` after
`stop` brings back the same broker with the same data. `start(brokers=3)` runs a cluster from
the home instead (`localkafka.cluster`); `status` and `stop` find whichever the home holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import overload

from localkafka import broker, cluster
from localkafka.broker import BrokerInfo, LocalKafkaError, free_port, kafka_home, new_cluster_id
from localkafka.cluster import ClusterInfo

__all__ = ["BrokerInfo", "ClusterInfo", "LocalKafkaError", "free_port", "kafka_home", "new_cluster_id", "start", "status", "stop"]


@overload
def start(home: Path | None = None, *, sasl_users: Mapping[str, str], tls: bool = False) -> BrokerInfo: ...
@overload
def start(home: Path | None = None, *, brokers: int | None = None) -> BrokerInfo | ClusterInfo: ...
def start(
    home: Path | None = None, *, brokers: int | None = None, sasl_users: Mapping[str, str] | None = None, tls: bool = False
) -> BrokerInfo | ClusterInfo:
    """Start what `home` (default `kafka_home()`) should run, or return what runs there. Idempotent.

    `brokers`: 1 is the single broker, more a cluster; None: whatever runs from the home, else
    the cluster if the home ever held one (its data and ports stay), else one broker. `sasl_users` and `tls`: the single broker's authenticated listeners (see
    `broker.start`); the cluster has plaintext ones only.
    """
    home = Path(home) if home is not None else kafka_home()
    running = status(home)
    if sasl_users is not None or tls:
        if isinstance(running, ClusterInfo):
            raise LocalKafkaError(f"a cluster runs from {home}, with plaintext listeners only: use another home")
        return broker.start(home, sasl_users=sasl_users, tls=tls)
    if running is not None and brokers is None:
        return running
    last_cluster = cluster.read_cluster(home)
    size = brokers or (len(last_cluster.nodes) if last_cluster is not None else 1)
    if isinstance(running, ClusterInfo) and size != len(running.nodes):
        raise LocalKafkaError(f"a {len(running.nodes)}-broker cluster runs from {home}: stop it first, or use another home")
    if isinstance(running, BrokerInfo) and size != 1:
        raise LocalKafkaError(f"a single broker runs from {home}: stop it first, or use another home")
    return broker.start(home) if size == 1 else cluster.start_cluster(home, size)


def status(home: Path | None = None) -> BrokerInfo | ClusterInfo | None:
    """The single broker or the cluster running from `home`, or None."""
    home = Path(home) if home is not None else kafka_home()
    return cluster.cluster_status(home) or broker.status(home)


def stop(home: Path | None = None) -> bool:
    """Stop the broker or every node of the cluster (data stays). Returns whether any was running."""
    home = Path(home) if home is not None else kafka_home()
    stopped_cluster = cluster.stop_cluster(home)
    return broker.stop(home) or stopped_cluster
