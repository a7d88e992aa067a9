"""Start, find and stop the local single-node Kafka broker (KRaft, broker and controller in one)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

POM = Path(__file__).with_name("pom.xml")
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
HEAP = ["-Xms256m", "-Xmx768m"]


class LocalKafkaError(RuntimeError):
    """The local broker could not be fetched, started or stopped; the message says what to do."""


@dataclass(frozen=True)
class BrokerInfo:
    port: int
    controller_port: int
    pid: int
    home: str

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"


def kafka_home() -> Path:
    default = Path.home() / ".local" / "state" / "usage-detector" / "kafka"
    return Path(os.environ.get("USAGE_DETECTOR_KAFKA_HOME", default))


def jar_cache() -> Path:
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:12]
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return root / "usage-detector" / f"kafka-jars-{digest}"


def _log(message: str) -> None:
    print(f"[kafka] {message}", file=sys.stderr, flush=True)


def ensure_jars() -> Path:
    """Fetch Kafka's runtime jars from Maven Central once; later calls reuse the cache."""
    lib = jar_cache()
    if (lib / ".complete").exists():
        return lib
    if shutil.which("mvn") is None:
        raise LocalKafkaError("Maven (mvn) is not on PATH: install Maven 3.8+ to fetch Kafka's jars.")
    _log(f"fetching Apache Kafka jars from Maven Central into {lib} (first run only)...")
    staging = lib.with_name(lib.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    command = ["mvn", "-B", "-q", "-f", str(POM), "dependency:copy-dependencies", f"-DoutputDirectory={staging}"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise LocalKafkaError(f"fetching Kafka jars failed (mvn exit {result.returncode}):\n{result.stdout[-4000:]}{result.stderr[-4000:]}")
    shutil.rmtree(lib, ignore_errors=True)
    staging.rename(lib)
    (lib / ".complete").touch()
    _log(f"{len(list(lib.glob('*.jar')))} jars cached")
    return lib


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still answers kill(0); /proc tells whether it really runs.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ", 1)[-1].startswith("Z"))


def _state_file(home: Path) -> Path:
    return home / "broker.json"


def _read_state(home: Path) -> BrokerInfo | None:
    try:
        return BrokerInfo(**json.loads(_state_file(home).read_text()))
    except (FileNotFoundError, ValueError, TypeError):
        return None


def status() -> BrokerInfo | None:
    """The running broker, or None when none runs from this home folder."""
    info = _read_state(kafka_home())
    if info and _alive(info.pid) and _accepts(info.port):
        return info
    return None


def _server_properties(home: Path, port: int, controller_port: int) -> str:
    return f"""\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={home / "data"}
num.partitions=1
num.network.threads=2
num.io.threads=4
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=168
"""


def _log4j_config(home: Path) -> str:
    return f"""\
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {home / "logs" / "server.log"}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
"""


def _java(lib: Path, main_class: str, *args: str, jvm_options: tuple[str, ...] = ()) -> list[str]:
    java = shutil.which("java")
    if java is None:
        raise LocalKafkaError("java is not on PATH: install a JDK 17+ to run the local Kafka broker.")
    return [java, *HEAP, "-XX:+UseG1GC", "-Djava.awt.headless=true", *jvm_options, "-cp", f"{lib}/*", main_class, *args]


def _format_storage(lib: Path, home: Path, properties: Path) -> None:
    if (home / "data" / "meta.properties").exists():
        return
    cluster_id = subprocess.run(
        _java(lib, "kafka.tools.StorageTool", "random-uuid"), capture_output=True, text=True, check=True
    ).stdout.strip().splitlines()[-1]
    result = subprocess.run(
        _java(lib, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(properties)),
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise LocalKafkaError(f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}")


def start() -> BrokerInfo:
    """Start the broker, or return the one already running. Idempotent."""
    running = status()
    if running:
        return running
    home = kafka_home()
    lib = ensure_jars()
    (home / "logs").mkdir(parents=True, exist_ok=True)
    previous = _read_state(home)
    # A restarted broker keeps its ports so that clients configured before the restart reconnect.
    if previous and _port_is_free(previous.port) and _port_is_free(previous.controller_port):
        port, controller_port = previous.port, previous.controller_port
    else:
        port, controller_port = _free_port(), _free_port()
    properties = home / "server.properties"
    properties.write_text(_server_properties(home, port, controller_port))
    log4j = home / "log4j2.properties"
    log4j.write_text(_log4j_config(home))
    _format_storage(lib, home, properties)
    command = _java(lib, "kafka.Kafka", str(properties), jvm_options=(f"-Dlog4j2.configurationFile={log4j}",))
    _log(f"starting Kafka on 127.0.0.1:{port} (home {home})...")
    with open(home / "logs" / "stdout.log", "ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    info = BrokerInfo(port=port, controller_port=controller_port, pid=process.pid, home=str(home))
    _state_file(home).write_text(json.dumps(asdict(info)))
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not _accepts(port):
        if process.poll() is not None:
            raise LocalKafkaError(f"Kafka exited with code {process.returncode}; see {home / 'logs'}")
        if time.monotonic() > deadline:
            raise LocalKafkaError(f"Kafka did not accept connections within {READY_TIMEOUT_S:.0f}s; see {home / 'logs'}")
        time.sleep(0.2)
    _log("ready")
    return info


def stop() -> bool:
    """Stop the broker (its data stays for the next start). Returns whether one was running."""
    info = _read_state(kafka_home())
    if info is None or not _alive(info.pid):
        return False
    os.kill(info.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while _alive(info.pid):
        if time.monotonic() > deadline:
            _log(f"Kafka did not stop within {STOP_TIMEOUT_S:.0f}s: killing it")
            os.kill(info.pid, signal.SIGKILL)
            break
        time.sleep(0.2)
    _log("stopped")
    return True
