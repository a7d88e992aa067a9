"""Start, find and stop the local single-node Kafka broker (KRaft, broker and controller in one)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

POM = Path(__file__).with_name("pom.xml")
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
HEAP = ["-Xms256m", "-Xmx768m"]
# A broker for one machine's development and tests: C1 only and the serial collector halve its CPU
# to start and to serve a test suite's topic churn (measured: 11.6 s against 22.9 s of CPU), which on a
# two-core machine is time the workers get back. Throughput comparisons (bench) read the same broker.
JVM_OPTIONS = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]


class LocalKafkaError(RuntimeError):
    """The local broker could not be fetched, started or stopped; the message says what to do."""


@dataclass(frozen=True)
class BrokerInfo:
    port: int
    controller_port: int
    pid: int
    home: str
    # Only on a broker started with `sasl_users` (and `tls`): its authenticated listeners.
    sasl_port: int | None = None  # SASL_PLAINTEXT: mechanisms PLAIN and SCRAM-SHA-512
    sasl_ssl_port: int | None = None  # SASL_SSL: the same mechanisms over TLS
    ssl_port: int | None = None  # SSL: TLS without SASL
    ca_file: str | None = None  # the CA (PEM) that signed the TLS listeners' certificate

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def listener(self, protocol: str) -> str:
        """`host:port` of the listener speaking `protocol` (PLAINTEXT, SASL_PLAINTEXT, SASL_SSL, SSL)."""
        port = {"PLAINTEXT": self.port, "SASL_PLAINTEXT": self.sasl_port, "SASL_SSL": self.sasl_ssl_port, "SSL": self.ssl_port}[protocol]
        if port is None:
            raise LocalKafkaError(f"the broker at {self.home} has no {protocol} listener")
        return f"127.0.0.1:{port}"


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
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    if result.returncode != 0:
        raise LocalKafkaError(f"fetching Kafka jars failed (mvn exit {result.returncode}):\n{result.stdout[-4000:]}{result.stderr[-4000:]}")
    shutil.rmtree(lib, ignore_errors=True)
    staging.rename(lib)
    (lib / ".complete").touch()
    _log(f"{len(list(lib.glob('*.jar')))} jars cached")
    return lib


PORT_RESERVATIONS = Path(tempfile.gettempdir()) / "usage-detector-ports"
RESERVED_S = 600.0  # long enough for the server it was taken for to have bound it


def free_port(reservations: Path = PORT_RESERVATIONS) -> int:
    """A TCP port free on this host right now, for a server that binds it seconds later.

    Taken below the range the OS gives outgoing connections (ip_local_port_range): a port the OS
    picks is from that range, and a client connecting meanwhile (the suite's hundreds of Kafka
    connections) could take it before the server binds (seen: "address already in use"). And
    reserved for a while in `reservations`, a file per port that every caller on this host
    checks: two processes drawing the same port at once (test processes starting workers, brokers
    and Prometheus side by side) each got it free, and the second server to bind failed (seen)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for _ in range(200):
        port = random.randrange(max(1024, low - 20_000), low)
        if _port_is_free(port) and _reserve(reservations, port):
            return port
    with socket.socket() as sock:  # every one tried was taken: let the OS pick
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _reserve(reservations: Path, port: int) -> bool:
    """Whether this caller now holds `port`'s reservation: none existed, or only a stale one."""
    reservations.mkdir(parents=True, exist_ok=True)
    path = reservations / str(port)
    try:
        if time.time() - path.stat().st_mtime > RESERVED_S:
            path.unlink(missing_ok=True)
    except FileNotFoundError:
        pass
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:  # another caller's, within the last RESERVED_S
        return False
    return True


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        # As the broker binds (SO_REUSEADDR): connections of its last run in TIME_WAIT do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
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


def status(home: Path | None = None) -> BrokerInfo | None:
    """The running broker, or None when none runs from this home folder (default: `kafka_home()`)."""
    info = _read_state(Path(home) if home is not None else kafka_home())
    if info and _alive(info.pid) and _accepts(info.port):
        return info
    return None


def _server_properties(home: Path, port: int, controller_port: int, extra: dict[str, int] | None = None) -> str:
    """`extra`: more client listeners, {security protocol (also the listener's name): port}."""
    extra = extra or {}
    more = "".join(f",{name}://127.0.0.1:{extra_port}" for name, extra_port in extra.items())
    protocols = "".join(f",{name}:{name}" for name in extra)
    return f"""\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port}{more},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}{more}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT{protocols}
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


SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-512")
_SAFE_CREDENTIAL = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


def _check_sasl_users(sasl_users: Mapping[str, str]) -> None:
    """Names and passwords go into JAAS and StorageTool syntax unquoted: keep them plain."""
    if not sasl_users:
        raise LocalKafkaError("sasl_users is empty: name at least one user")
    for name, password in sasl_users.items():
        if not (_SAFE_CREDENTIAL.match(name) and _SAFE_CREDENTIAL.match(password)):
            raise LocalKafkaError(f"SASL user {name!r}: names and passwords must be 1-64 of A-Z a-z 0-9 _ . -")


def _security_properties(sasl_listeners: list[str], sasl_users: Mapping[str, str], keystore: Path | None) -> str:
    """JAAS per SASL listener (PLAIN users inline, SCRAM users from the metadata log) and TLS."""
    plain_users = " ".join(f'user_{name}="{password}"' for name, password in sasl_users.items())
    lines = [f"sasl.enabled.mechanisms={','.join(SASL_MECHANISMS)}"]
    for listener in sasl_listeners:
        prefix = f"listener.name.{listener.lower()}"
        lines += [
            f"{prefix}.sasl.enabled.mechanisms={','.join(SASL_MECHANISMS)}",
            f"{prefix}.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};",
            f"{prefix}.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;",
        ]
    if keystore is not None:
        lines += ["ssl.keystore.type=PEM", f"ssl.keystore.location={keystore}", "ssl.client.auth=none"]
    return "\n".join(lines) + "\n"


def _make_certificates(home: Path) -> tuple[Path, Path]:
    """A throwaway CA and a certificate for 127.0.0.1/localhost signed by it: (CA file, keystore PEM)."""
    tls = home / "tls"
    ca_file, keystore = tls / "ca.pem", tls / "server-keystore.pem"
    if ca_file.exists() and keystore.exists():
        return ca_file, keystore
    if shutil.which("openssl") is None:
        raise LocalKafkaError("openssl is not on PATH: it makes the local broker's TLS certificates")
    tls.mkdir(parents=True, exist_ok=True)
    (tls / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    steps = [
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "3650", "-subj", "/CN=usage-detector local CA"],
        ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"],
        ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "3650", "-extfile", "san.ext"],
    ]
    for step in steps:
        result = subprocess.run(["openssl", *step], cwd=tls, check=False, capture_output=True, text=True)
        if result.returncode != 0:
            raise LocalKafkaError(f"openssl {step[0]} failed:\n{result.stderr}")
    # Kafka's PEM keystore: the private key (PKCS#8, unencrypted) followed by the certificate chain.
    keystore.write_text((tls / "server.key").read_text() + (tls / "server.pem").read_text() + ca_file.read_text())
    return ca_file, keystore


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
    return [java, *HEAP, *JVM_OPTIONS, "-Djava.awt.headless=true", *jvm_options, "-cp", f"{lib}/*", main_class, *args]


def new_cluster_id(draw: Callable[[], uuid.UUID] = uuid.uuid4) -> str:
    """What `kafka-storage random-uuid` prints (a UUID in unpadded URL-safe base64), without a JVM.

    Never one starting with "-", as Kafka's own `Uuid.randomUuid` does: `kafka-storage format
    --cluster-id -x...` would read it as an option (seen, one format in 64)."""
    while (cluster_id := base64.urlsafe_b64encode(draw().bytes).rstrip(b"=").decode()).startswith("-"):
        pass
    return cluster_id


def _format_storage(lib: Path, home: Path, properties: Path, scram_users: Mapping[str, str] | None = None) -> None:
    """Format once; SCRAM users can only be added here (KRaft keeps them in the metadata log)."""
    if (home / "data" / "meta.properties").exists():
        return
    cluster_id = new_cluster_id()
    scram = [
        arg
        for name, password in (scram_users or {}).items()
        for arg in ("--add-scram", f"SCRAM-SHA-512=[name={name},password={password}]")
    ]
    result = subprocess.run(
        _java(lib, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(properties), *scram),
        check=False,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise LocalKafkaError(f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}")


def start(home: Path | None = None, *, sasl_users: Mapping[str, str] | None = None, tls: bool = False) -> BrokerInfo:
    """Start the broker, or return the one already running. Idempotent.

    `home` defaults to `kafka_home()`. With `sasl_users` ({name: password}) the broker also
    listens on SASL_PLAINTEXT, accepting those users with PLAIN and SCRAM-SHA-512 (SCRAM users
    are created when the home is first formatted); with `tls` also on SASL_SSL and SSL, with a
    certificate from a CA made for this home (`BrokerInfo.ca_file`). Use a home of its own for
    such a broker: the default one is the shared plaintext broker.
    """
    home = Path(home) if home is not None else kafka_home()
    running = status(home)
    if running:
        if (sasl_users and running.sasl_port is None) or (tls and running.sasl_ssl_port is None):
            raise LocalKafkaError(f"the broker running from {home} has no SASL/TLS listeners: stop it or use another home")
        return running
    if sasl_users is not None:
        _check_sasl_users(sasl_users)
    elif tls:
        raise LocalKafkaError("tls needs sasl_users (the TLS listeners come with the SASL one)")
    lib = ensure_jars()
    (home / "logs").mkdir(parents=True, exist_ok=True)
    previous = _read_state(home)
    listeners = (["SASL_PLAINTEXT"] if sasl_users else []) + (["SASL_SSL", "SSL"] if tls else [])
    # A restarted broker keeps its ports so that clients configured before the restart reconnect.
    previous_ports = (
        [previous.port, previous.controller_port, *(previous.sasl_port, previous.sasl_ssl_port, previous.ssl_port)[: len(listeners)]]
        if previous
        else [None]
    )
    ports = [p for p in previous_ports if p is not None]
    if len(ports) < len(previous_ports) or not all(_port_is_free(p) for p in ports):
        ports = [free_port() for _ in range(2 + len(listeners))]
    port, controller_port, *extra_ports = ports
    extra = dict(zip(listeners, extra_ports, strict=True))
    ca_file, keystore = _make_certificates(home) if tls else (None, None)
    properties = home / "server.properties"
    properties.write_text(_server_properties(home, port, controller_port, extra))
    if sasl_users:
        with open(properties, "a") as out:
            out.write(_security_properties([n for n in listeners if n.startswith("SASL")], sasl_users, keystore))
        properties.chmod(0o600)  # PLAIN users' passwords are in it
    log4j = home / "log4j2.properties"
    log4j.write_text(_log4j_config(home))
    _format_storage(lib, home, properties, sasl_users)
    command = _java(lib, "kafka.Kafka", str(properties), jvm_options=(f"-Dlog4j2.configurationFile={log4j}",))
    _log(f"starting Kafka on 127.0.0.1:{port} (home {home})...")
    with open(home / "logs" / "stdout.log", "ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    info = BrokerInfo(
        port=port,
        controller_port=controller_port,
        pid=process.pid,
        home=str(home),
        sasl_port=extra.get("SASL_PLAINTEXT"),
        sasl_ssl_port=extra.get("SASL_SSL"),
        ssl_port=extra.get("SSL"),
        ca_file=str(ca_file) if ca_file else None,
    )
    _state_file(home).write_text(json.dumps(asdict(info)))
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not all(_accepts(p) for p in (port, *extra_ports)):
        if process.poll() is not None:
            raise LocalKafkaError(f"Kafka exited with code {process.returncode}; see {home / 'logs'}")
        if time.monotonic() > deadline:
            raise LocalKafkaError(f"Kafka did not accept connections within {READY_TIMEOUT_S:.0f}s; see {home / 'logs'}")
        time.sleep(0.2)
    _log("ready")
    return info


def stop(home: Path | None = None) -> bool:
    """Stop the broker (its data stays for the next start). Returns whether one was running."""
    info = _read_state(Path(home) if home is not None else kafka_home())
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
