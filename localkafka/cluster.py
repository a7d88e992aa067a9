"""A local KRaft cluster of several nodes (each broker and controller), for replication and broker faults.

Each node has its own ports, folder (`<home>/node-<id>`: data, logs, server.properties) and
bounded heap; `<home>/cluster.json` remembers them so that a node restarted alone, or the whole
cluster started again, keeps its ports and data. The brokers' own state topics (consumer
offsets, transactions) are replicated on three nodes and need two in sync, as in production.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient
from kafka.errors import KafkaError

from localkafka.broker import (
    LocalKafkaError,
    _accepts,
    _alive,
    _java,
    _log,
    _log4j_config,
    _port_is_free,
    _server_properties,
    ensure_jars,
    free_port,
    new_cluster_id,
)

READY_TIMEOUT_S = 240.0  # three JVMs starting at once on a busy two-core machine
STOP_TIMEOUT_S = 60.0  # a controlled shutdown moves leadership away first
NODE_HEAP = ("-Xms128m", "-Xmx512m")  # after broker.HEAP on the command line: the JVM takes these


@dataclass(frozen=True)
class NodeInfo:
    node_id: int
    port: int
    controller_port: int
    pid: int
    home: str

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass(frozen=True)
class ClusterInfo:
    home: str
    nodes: tuple[NodeInfo, ...]

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.address for node in self.nodes)

    def node(self, node_id: int) -> NodeInfo:
        return next(node for node in self.nodes if node.node_id == node_id)

    def running(self) -> list[NodeInfo]:
        return [node for node in self.nodes if _alive(node.pid) and _accepts(node.port)]


def _state_file(home: Path) -> Path:
    return home / "cluster.json"


def read_cluster(home: Path) -> ClusterInfo | None:
    """The cluster last started from `home`, running or not; None when it never held one."""
    try:
        state = json.loads(_state_file(home).read_text())
        return ClusterInfo(home=state["home"], nodes=tuple(NodeInfo(**node) for node in state["nodes"]))
    except (FileNotFoundError, ValueError, TypeError, KeyError):
        return None


def _write_cluster(info: ClusterInfo) -> None:
    _state_file(Path(info.home)).write_text(json.dumps({"home": info.home, "nodes": [asdict(n) for n in info.nodes]}))


def cluster_status(home: Path) -> ClusterInfo | None:
    """The cluster of `home` when at least one of its nodes runs, else None."""
    info = read_cluster(home)
    return info if info is not None and info.running() else None


def _node_properties(node_home: Path, node_id: int, port: int, controller_port: int, voters: str, size: int) -> str:
    # The single broker's file first, then what a cluster changes: in a Java properties file the
    # last value of a key wins. The brokers' default min.insync.replicas stays 1: a topic created
    # with one replica (tests, a development setting) must stay writable with acks=all. The
    # offsets topic gets 2 once it exists (`_offsets_need_two_in_sync`); transactions get it here.
    replicas, in_sync = min(3, size), min(2, size)
    return _server_properties(node_home, port, controller_port) + f"""\
node.id={node_id}
controller.quorum.voters={voters}
default.replication.factor={replicas}
offsets.topic.replication.factor={replicas}
transaction.state.log.replication.factor={replicas}
transaction.state.log.min.isr={in_sync}
share.coordinator.state.topic.replication.factor={replicas}
share.coordinator.state.topic.min.isr={in_sync}
# A restarted node takes back the leadership it had (within seconds, not the default five minutes).
leader.imbalance.check.interval.seconds=10
"""


def _ports(previous: ClusterInfo | None, size: int) -> list[tuple[int, int]]:
    """(client port, controller port) per node: the previous ones when all are free, else new ones."""
    if previous is not None and len(previous.nodes) == size:
        kept = [(node.port, node.controller_port) for node in previous.nodes]
        if all(_port_is_free(p) for pair in kept for p in pair):
            return kept
    return [(free_port(), free_port()) for _ in range(size)]


def _format(node_home: Path, properties: Path, cluster_id: str) -> None:
    if (node_home / "data" / "meta.properties").exists():
        return
    result = subprocess.run(
        _java(ensure_jars(), "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(properties)),
        check=False,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise LocalKafkaError(f"formatting the storage of {node_home} failed:\n{result.stdout}{result.stderr}")


def _launch(node_home: Path) -> int:
    """Start the node whose files are in `node_home`; returns its pid."""
    properties, log4j = node_home / "server.properties", node_home / "log4j2.properties"
    command = _java(ensure_jars(), "kafka.Kafka", str(properties), jvm_options=(*NODE_HEAP, f"-Dlog4j2.configurationFile={log4j}"))
    with open(node_home / "logs" / "stdout.log", "ab") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True).pid


def start_cluster(home: Path, size: int = 3) -> ClusterInfo:
    """Start a `size`-node cluster from `home`, or return the one running there. Idempotent."""
    if size < 2:
        raise LocalKafkaError("a cluster has at least two nodes; one broker is `start` without --brokers")
    running = cluster_status(home)
    if running is not None:
        if len(running.nodes) != size:
            raise LocalKafkaError(f"a cluster of {len(running.nodes)} nodes runs from {home}: stop it first")
        for node in running.nodes:
            if node not in running.running():
                start_node(home, node.node_id)
        return wait_ready(running)
    previous = read_cluster(home)
    ports = _ports(previous, size)
    voters = ",".join(f"{i}@127.0.0.1:{controller}" for i, (_, controller) in enumerate(ports, 1))
    cluster_id = _cluster_id(home)
    nodes = []
    for node_id, (port, controller_port) in enumerate(ports, 1):
        node_home = home / f"node-{node_id}"
        (node_home / "logs").mkdir(parents=True, exist_ok=True)
        (node_home / "server.properties").write_text(_node_properties(node_home, node_id, port, controller_port, voters, size))
        (node_home / "log4j2.properties").write_text(_log4j_config(node_home))
        _format(node_home, node_home / "server.properties", cluster_id)
        nodes.append(NodeInfo(node_id, port, controller_port, 0, str(node_home)))
    _log(f"starting a {size}-node Kafka cluster on ports {', '.join(str(n.port) for n in nodes)} (home {home})...")
    info = ClusterInfo(str(home), tuple(NodeInfo(**{**asdict(n), "pid": _launch(Path(n.home))}) for n in nodes))
    _write_cluster(info)
    wait_ready(info)
    _offsets_need_two_in_sync(info)
    return info


OFFSETS_TOPIC = "__consumer_offsets"


def _offsets_need_two_in_sync(info: ClusterInfo, timeout_s: float = 60.0) -> None:
    """min.insync.replicas=2 on the consumer offsets topic, which has no broker setting of its own.

    The topic exists only once a group coordinator was asked for: asking for one creates it."""
    admin = KafkaAdminClient(bootstrap_servers=info.bootstrap_servers, request_timeout_ms=10_000)
    deadline = time.monotonic() + timeout_s
    try:
        while not any(t["name"] == OFFSETS_TOPIC and not t["error_code"] for t in admin.describe_topics([OFFSETS_TOPIC])):
            if time.monotonic() > deadline:
                raise LocalKafkaError(f"the cluster did not create {OFFSETS_TOPIC} within {timeout_s:.0f}s; see {info.home}")
            try:
                admin.describe_groups(["usage-detector-local-cluster"])
            except KafkaError:
                time.sleep(0.5)  # the coordinator is not available until the topic is
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, OFFSETS_TOPIC, configs={"min.insync.replicas": str(min(2, len(info.nodes)))})])
    finally:
        admin.close()


def _cluster_id(home: Path) -> str:
    """One id for every node of the cluster, kept in the home so that a restart finds the same."""
    path = home / "cluster.id"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        path.write_text(new_cluster_id())
    return path.read_text().strip()


def serving_brokers(address: str) -> int:
    """How many brokers the node at `address` knows of in its metadata; 0 when it answers none."""
    try:
        admin = KafkaAdminClient(bootstrap_servers=address, request_timeout_ms=5000)
    except (KafkaError, OSError, ValueError):
        return 0
    try:
        return len(admin.describe_cluster()["brokers"])
    except (KafkaError, OSError):
        return 0
    finally:
        admin.close()


def wait_ready(info: ClusterInfo, nodes: list[NodeInfo] | None = None, timeout_s: float = READY_TIMEOUT_S) -> ClusterInfo:
    """Wait until each of `nodes` (default: all) serves metadata naming every broker of the cluster."""
    waiting = list(nodes if nodes is not None else info.nodes)
    deadline = time.monotonic() + timeout_s
    while waiting:
        node = waiting[0]
        if not _alive(node.pid):
            raise LocalKafkaError(f"Kafka node {node.node_id} exited; see {Path(node.home) / 'logs'}")
        if _accepts(node.port) and serving_brokers(node.address) == len(info.nodes):
            waiting.pop(0)
            continue
        if time.monotonic() > deadline:
            raise LocalKafkaError(
                f"Kafka node {node.node_id} did not serve the whole cluster's metadata within {timeout_s:.0f}s; "
                f"see {Path(node.home) / 'logs'}"
            )
        time.sleep(0.5)
    _log("ready")
    return info


def start_node(home: Path, node_id: int, wait: bool = True) -> NodeInfo:
    """Start one stopped node of the cluster again, on its ports and data."""
    info = read_cluster(home)
    if info is None:
        raise LocalKafkaError(f"no cluster was ever started from {home}")
    node = info.node(node_id)
    if node in info.running():
        return node
    restarted = NodeInfo(**{**asdict(node), "pid": _launch(Path(node.home))})
    info = ClusterInfo(info.home, tuple(restarted if n.node_id == node_id else n for n in info.nodes))
    _write_cluster(info)
    _log(f"node {node_id} starting on {restarted.address}")
    if wait:
        wait_ready(info, [restarted])
    return restarted


def stop_node(home: Path, node_id: int, sig: int = signal.SIGTERM) -> bool:
    """Stop one node: SIGTERM is a controlled shutdown (leadership moves first), SIGKILL a crash.
    Returns whether it was running."""
    info = read_cluster(home)
    node = info.node(node_id) if info is not None else None
    if node is None or not _alive(node.pid):
        return False
    os.kill(node.pid, sig)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while _alive(node.pid):
        if time.monotonic() > deadline:
            _log(f"Kafka node {node_id} did not stop within {STOP_TIMEOUT_S:.0f}s: killing it")
            os.kill(node.pid, signal.SIGKILL)
        time.sleep(0.2)
    return True


def stop_cluster(home: Path) -> bool:
    """Stop every node (data stays for the next start). Returns whether any was running."""
    info = read_cluster(home)
    if info is None:
        return False
    alive = [node for node in info.nodes if _alive(node.pid)]
    for node in alive:  # all at once: a node waiting for its quorum to shut down cleanly waits in parallel
        os.kill(node.pid, signal.SIGTERM)
    for node in alive:
        stop_node(home, node.node_id)
    if alive:
        _log("stopped")
    return bool(alive)
