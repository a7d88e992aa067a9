"""Static checks of docker-compose.yml, the Dockerfile and ops/ (no Docker engine needed).

Each check is a function that raises AssertionError; the tests run them on the real files,
and `test_check_catches` runs each one on a deliberately broken copy to prove it can fail.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shlex
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import pytest
import yaml
from packaging.specifiers import SpecifierSet
from pydantic import AliasChoices

from streams.metrics import Metrics, TableCensus
from streams.settings import Settings
from streams.topics import SETTING_OF, Topics
from tools.generate import register as register_generate

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
PYPROJECT = ROOT / "pyproject.toml"

KAFKA_SERVICE = "kafka"
WORKERS = ("detector-1", "detector-2")
TOPICS_SERVICE = "topics"
LOADGEN = "loadgen"
CLUSTER_PROFILE = "cluster"
CLUSTER_BROKERS = ("kafka-1", "kafka-2", "kafka-3")
CLUSTER_TOPICS = "topics-cluster"
CLUSTER_WORKERS = ("detector-cluster-1", "detector-cluster-2")
# As `usage-detector kafka start --brokers 3` (localkafka/cluster.py); every topic here has three replicas.
CLUSTER_SETTINGS = {
    "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "3",
    "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "3",
    "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "2",
    "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "3",
    "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR": "2",
    "KAFKA_MIN_INSYNC_REPLICAS": "2",
    "KAFKA_DEFAULT_REPLICATION_FACTOR": "3",
    "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
    "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
}
PROMETHEUS = "prometheus"
GRAFANA = "grafana"
PROMETHEUS_CONFIG = "/etc/prometheus/prometheus.yml"  # the prom/prometheus image's default --config.file
PROMETHEUS_PORT = 9090  # its default --web.listen-address
GRAFANA_PROVISIONING = "/etc/grafana/provisioning"
DASHBOARD_FILE = ROOT / "ops" / "grafana" / "dashboards" / "usage-detector.json"
ALERT_RULES = ROOT / "ops" / "prometheus" / "alerts.yml"
STATE_VOLUME_DIR = "/var/lib/usage-detector"
WEB_PORT_DEFAULT = Settings.model_fields["web_port"].default
ENV_PREFIX = Settings.model_config["env_prefix"]


# ----------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip()))
    assert not pending, "Dockerfile ends inside a continued line"
    return instructions


def exec_form(args: str) -> list[str]:
    """CMD/ENTRYPOINT argument as argv (JSON exec form, or shell form run by /bin/sh -c)."""
    if args.startswith("["):
        value = json.loads(args)
        assert isinstance(value, list) and all(isinstance(part, str) for part in value), args
        return value
    return ["/bin/sh", "-c", args]


def instructions_of(dockerfile: list[Instruction], keyword: str) -> list[str]:
    return [instruction.args for instruction in dockerfile if instruction.keyword == keyword]


def dockerfile_env(dockerfile: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in instructions_of(dockerfile, "ENV"):
        parts = shlex.split(args)
        if len(parts) >= 2 and "=" not in parts[0]:  # legacy `ENV NAME value`
            env[parts[0]] = " ".join(parts[1:])
            continue
        for part in parts:
            name, sep, value = part.partition("=")
            assert sep, f"ENV entry without '=': {part!r}"
            env[name] = value
    return env


def service_env(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        pairs = (item.partition("=") for item in environment)
        return {name: value for name, _, value in pairs}
    return {name: "" if value is None else str(value) for name, value in environment.items()}


INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def interpolate(value: str, dummy: str = "compose-test-value") -> str:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR:?error}: defaults kept, required ones a dummy."""

    def replace(match: re.Match[str]) -> str:
        if match.group("op") in (":-", "-"):
            return match.group("arg")
        return dummy

    return INTERPOLATION.sub(replace, value)


def published_ports(service: dict[str, Any]) -> list[tuple[str | None, int]]:
    """(host port or None, container port) of each `ports` entry, short or long syntax."""
    result: list[tuple[str | None, int]] = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            published = entry.get("published")
            result.append((None if published is None else str(published), int(entry["target"])))
            continue
        spec = str(entry).split("/")[0]
        parts = spec.rsplit(":", 2)
        host = parts[-2] if len(parts) >= 2 else None
        result.append((host or None, int(parts[-1])))
    return result


def parse_listeners(value: str) -> dict[str, tuple[str, int]]:
    """'NAME://host:port,...' -> {NAME: (host, port)}."""
    listeners: dict[str, tuple[str, int]] = {}
    for item in value.split(","):
        name, sep, address = item.strip().partition("://")
        assert sep, f"listener without '://': {item!r}"
        host, _, port = address.rpartition(":")
        listeners[name] = (host, int(port))
    return listeners


def settings_env_names() -> set[str]:
    """Every environment variable Settings reads, derived from its fields (not hard-coded)."""
    names: set[str] = set()
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if alias is None:
            names.add(f"{ENV_PREFIX}{field_name}".upper())
        elif isinstance(alias, AliasChoices):
            names.update(choice.upper() for choice in alias.choices if isinstance(choice, str))
        else:
            names.add(str(alias).upper())
    return names


def effective_command(service: dict[str, Any], dockerfile: list[Instruction]) -> list[str]:
    """What the container runs: compose entrypoint/command over the image's ENTRYPOINT/CMD."""

    def argv(value: Any) -> list[str]:
        return shlex.split(value) if isinstance(value, str) else [str(part) for part in value]

    entrypoints = instructions_of(dockerfile, "ENTRYPOINT")
    cmds = instructions_of(dockerfile, "CMD")
    if "entrypoint" in service:
        entrypoint = argv(service["entrypoint"] or [])
        cmd = argv(service.get("command") or [])  # overriding the entrypoint drops the image's CMD
    else:
        entrypoint = exec_form(entrypoints[-1]) if entrypoints else []
        cmd = argv(service["command"]) if "command" in service else (exec_form(cmds[-1]) if cmds else [])
    return entrypoint + cmd


def built_from(service: dict[str, Any]) -> Path | None:
    build = service.get("build")
    if build is None:
        return None
    context = build if isinstance(build, str) else build.get("context", ".")
    dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
    return (COMPOSE_FILE.parent / context / dockerfile).resolve()


def app_services(compose: dict[str, Any]) -> list[str]:
    """Services running the project's image (workers, load generator)."""
    return [name for name, service in compose["services"].items() if built_from(service) == DOCKERFILE.resolve()]


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> source (named volume, or host path relative to the compose file)."""
    found: dict[str, str] = {}
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):
            found[entry.get("target")] = entry.get("source")
        else:
            source, _, rest = str(entry).partition(":")
            found[rest.split(":")[0]] = source
    return found


def mounted_path(service: dict[str, Any], container_path: str) -> Path:
    """The host file or directory a bind mount shows at `container_path`."""
    for target, source in mounts(service).items():
        if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
            assert source.startswith((".", "/")), f"{container_path} is on the volume {source!r}, not a project file"
            path = (COMPOSE_FILE.parent / source / container_path[len(target) :].lstrip("/")).resolve()
            assert path.exists(), f"{container_path} is mounted from {path}, which does not exist"
            return path
    raise AssertionError(f"nothing is mounted at {container_path} (mounts: {mounts(service)})")


def kafka_client_addresses(compose: dict[str, Any]) -> set[str]:
    """host:port of kafka's advertised client (non-controller) listeners."""
    kafka_env = service_env(compose["services"][KAFKA_SERVICE])
    controller_names = {name.strip() for name in kafka_env.get("KAFKA_CONTROLLER_LISTENER_NAMES", "").split(",")}
    return {
        f"{host}:{port}"
        for name, (host, port) in parse_listeners(kafka_env.get("KAFKA_ADVERTISED_LISTENERS", "")).items()
        if name not in controller_names
    }


def created_topics(service: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    """The `kafka-topics.sh --create` calls of a service's script: topic -> {option: values}."""
    created: dict[str, dict[str, list[str]]] = {}
    for part in effective_command(service, []):
        for line in part.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if not words or Path(words[0]).name != "kafka-topics.sh" or "--create" not in words:
                continue
            options: dict[str, list[str]] = {}
            for word, following in zip(words, [*words[1:], None], strict=True):
                if word.startswith("--"):
                    values = options.setdefault(word, [])
                    if following is not None and not following.startswith("--"):
                        values.append(following)
            created[options["--topic"][0]] = options
    return created


def exported_metrics() -> dict[str, set[str]]:
    """Every metric family a worker exports -> the sample names Prometheus sees for it.

    From a real registry; families with labels but no observations yet have no samples, so
    the names also follow from each family's type.
    """
    metrics = Metrics()
    census = TableCensus({"accounts": {}, "signals": {}})
    asyncio.run(census.take())
    metrics.watch(list, census)  # the scrape-time gauges
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    return {
        family.name: {sample.name for sample in family.samples} | {family.name + s for s in suffixes[family.type]}
        for family in metrics.registry.collect()
    }


def dashboard_exprs(panels: list[dict[str, Any]]) -> Iterator[str]:
    for panel in panels:
        yield from (target["expr"] for target in panel.get("targets") or [] if target.get("expr"))
        yield from dashboard_exprs(panel.get("panels") or [])  # inside rows


def load_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def load_dockerfile() -> list[Instruction]:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


def load_pyproject() -> dict[str, Any]:
    return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------- checks: compose


def check_services(compose: dict[str, Any]) -> None:
    services = compose.get("services") or {}
    missing = {KAFKA_SERVICE, *WORKERS, TOPICS_SERVICE, PROMETHEUS, GRAFANA, LOADGEN} - set(services)
    assert not missing, f"services missing from docker-compose.yml: {sorted(missing)}"


def check_kafka_image(compose: dict[str, Any]) -> None:
    image = str(compose["services"][KAFKA_SERVICE].get("image", ""))
    assert re.fullmatch(r"(docker\.io/)?apache/kafka:4\.\d+\.\d+", image), (
        f"kafka must run the official apache/kafka image with a pinned 4.x tag, not {image!r}"
    )


def check_kafka_kraft(compose: dict[str, Any]) -> None:
    env = service_env(compose["services"][KAFKA_SERVICE])
    roles = {role.strip() for role in env.get("KAFKA_PROCESS_ROLES", "").split(",") if role.strip()}
    assert roles == {"broker", "controller"}, f"KAFKA_PROCESS_ROLES must be broker,controller, got {roles}"
    node_id = env.get("KAFKA_NODE_ID")
    assert node_id == "1", f"KAFKA_NODE_ID must be 1, got {node_id!r}"
    controller_names = {name.strip() for name in env.get("KAFKA_CONTROLLER_LISTENER_NAMES", "").split(",")}
    listeners = parse_listeners(env.get("KAFKA_LISTENERS", ""))
    controllers = [name for name in listeners if name in controller_names]
    assert controllers, f"no controller listener among KAFKA_LISTENERS {sorted(listeners)}"
    controller_port = listeners[controllers[0]][1]
    voters = [voter.strip() for voter in env.get("KAFKA_CONTROLLER_QUORUM_VOTERS", "").split(",") if voter.strip()]
    assert len(voters) == 1, f"a single-node quorum has exactly one voter, got {voters}"
    voter_id, _, voter_address = voters[0].partition("@")
    voter_host, _, voter_port = voter_address.rpartition(":")
    assert voter_id == node_id, f"the quorum voter {voters[0]!r} is not node {node_id}"
    assert voter_host in (KAFKA_SERVICE, compose["services"][KAFKA_SERVICE].get("hostname")), voters[0]
    assert voter_port == str(controller_port), (
        f"quorum voter port {voter_port} is not the controller listener's port {controller_port}"
    )
    protocol_map = dict(
        pair.split(":", 1) for pair in env.get("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "").split(",") if ":" in pair
    )
    unmapped = [name for name in listeners if name not in protocol_map and name not in ("PLAINTEXT", "SSL")]
    assert not unmapped, f"listeners without a security protocol: {unmapped}"


def check_kafka_single_node_settings(compose: dict[str, Any]) -> None:
    env = service_env(compose["services"][KAFKA_SERVICE])
    for name in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR",
    ):
        assert env.get(name) == "1", f"{name} must be 1 on a single node, got {env.get(name)!r}"
    for name in ("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR"):
        assert env.get(name, "1") == "1", f"{name} must not exceed 1 on a single node, got {env.get(name)!r}"
    delay = env.get("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS")
    assert delay == "0", f"KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS must be 0, got {delay!r}"
    auto_create = env.get("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "").lower()
    assert auto_create == "false", f"KAFKA_AUTO_CREATE_TOPICS_ENABLE must be false, got {auto_create!r}"


def check_kafka_healthcheck(compose: dict[str, Any]) -> None:
    healthcheck = compose["services"][KAFKA_SERVICE].get("healthcheck") or {}
    test = healthcheck.get("test")
    assert test and not healthcheck.get("disable"), "kafka needs a healthcheck (workers wait for it)"
    if isinstance(test, list):
        assert test[0] in ("CMD", "CMD-SHELL"), f"healthcheck test must start with CMD or CMD-SHELL: {test}"


def check_worker_build(compose: dict[str, Any]) -> None:
    for worker in WORKERS:
        source = built_from(compose["services"][worker])
        assert source is not None, f"{worker} must be built from the project's Dockerfile"
        assert source == DOCKERFILE.resolve(), f"{worker} is built from {source}, not {DOCKERFILE}"


def check_worker_command(compose: dict[str, Any], dockerfile: list[Instruction]) -> None:
    scripts = load_pyproject()["project"]["scripts"]
    assert scripts.get("usage-detector") == "tools.cli:main", "the usage-detector script is not tools.cli:main"
    for worker in WORKERS:
        argv = effective_command(compose["services"][worker], dockerfile)
        assert argv[:2] == ["usage-detector", "worker"], f"{worker} runs {argv}, not `usage-detector worker`"


def check_worker_env_names(compose: dict[str, Any], dockerfile: list[Instruction]) -> None:
    known = settings_env_names()
    for worker in WORKERS:
        unknown = set(service_env(compose["services"][worker])) - known
        assert not unknown, f"{worker} sets variables no setting reads: {sorted(unknown)}"
    image_unknown = {
        name for name in dockerfile_env(dockerfile) if name.startswith((ENV_PREFIX, "KAFKA_"))
    } - known
    assert not image_unknown, f"the Dockerfile sets variables no setting reads: {sorted(image_unknown)}"
    required = {"KAFKA_BOOTSTRAP_SERVERS"} | {
        f"{ENV_PREFIX}{name}".upper() for name in ("app_id", "web_host", "web_port", "api_token", "state_dir", "partitions")
    }
    for worker in WORKERS:
        missing = required - set(service_env(compose["services"][worker]))
        assert not missing, f"{worker} does not set {sorted(missing)}"


def worker_settings(compose: dict[str, Any], dockerfile: list[Instruction], worker: str) -> Settings:
    """The Settings the worker would run with: image ENV, then the service's environment."""
    env = {**dockerfile_env(dockerfile), **service_env(compose["services"][worker])}
    env = {name: interpolate(value) for name, value in env.items()}
    with mock.patch.dict(os.environ, env, clear=True):
        return Settings()


def check_worker_env_values(compose: dict[str, Any], dockerfile: list[Instruction]) -> None:
    for worker in WORKERS:
        try:
            worker_settings(compose, dockerfile, worker)
        except ValueError as exc:
            raise AssertionError(f"{worker}'s environment is not a valid configuration: {exc}") from exc


def check_api_token_from_host(compose: dict[str, Any]) -> None:
    name = f"{ENV_PREFIX}API_TOKEN"
    for worker in WORKERS:
        value = service_env(compose["services"][worker]).get(name, "")
        assert re.fullmatch(rf"\$\{{{name}:?\?[^}}]*\}}", value), (
            f"{worker}'s {name} must come from the host environment and be required (${{{name}:?...}}), not {value!r}"
        )


def check_bootstrap_servers(compose: dict[str, Any], dockerfile: list[Instruction]) -> None:
    kafka_env = service_env(compose["services"][KAFKA_SERVICE])
    advertised = kafka_client_addresses(compose)
    bound_ports = {port for _, port in parse_listeners(kafka_env.get("KAFKA_LISTENERS", "")).values()}
    kafka_names = {KAFKA_SERVICE, compose["services"][KAFKA_SERVICE].get("hostname")}
    for address in advertised:
        host, _, port = address.rpartition(":")
        assert host in kafka_names, f"kafka advertises {address}, not reachable as the {KAFKA_SERVICE} service"
        assert int(port) in bound_ports, f"kafka advertises {address} but listens on no port {port}"
    for worker in WORKERS:
        servers = worker_settings(compose, dockerfile, worker).kafka_bootstrap_servers
        assert servers, f"{worker} has no KAFKA_BOOTSTRAP_SERVERS (it would try to start a local broker)"
        for server in servers.split(","):
            assert server.strip() in advertised, f"{worker} bootstraps from {server!r}, not kafka's {sorted(advertised)}"


def check_ports(compose: dict[str, Any], dockerfile: list[Instruction]) -> None:
    host_ports: dict[str, str] = {}
    for worker in WORKERS:
        web_port = worker_settings(compose, dockerfile, worker).web_port
        ports = published_ports(compose["services"][worker])
        assert ports, f"{worker} publishes no port"
        for host, container in ports:
            assert container == web_port, f"{worker} publishes container port {container}, its web port is {web_port}"
            assert host, f"{worker} publishes port {container} on no fixed host port"
            assert host not in host_ports, f"{worker} and {host_ports[host]} both publish host port {host}"
            host_ports[host] = worker


def check_workers_share_work(compose: dict[str, Any], dockerfile: list[Instruction]) -> None:
    settings = {worker: worker_settings(compose, dockerfile, worker) for worker in WORKERS}
    app_ids = {s.app_id for s in settings.values()}
    assert len(app_ids) == 1, f"the workers must share one app id to share the work, got {sorted(app_ids)}"
    hosts = [s.web_host for s in settings.values()]
    assert len(set(hosts)) == len(hosts), f"the workers must have distinct web hosts, got {hosts}"
    for worker, s in settings.items():
        assert s.web_host == worker, f"{worker}'s web host {s.web_host!r} is not its service name"
    per_worker = {"web_host", "web_port", "state_dir"}
    first, *others = settings.values()
    for other in others:
        differing = {
            name
            for name in Settings.model_fields
            if name not in per_worker and getattr(first, name) != getattr(other, name)
        }
        assert not differing, f"the workers disagree on {sorted(differing)}"


def check_depends_on_kafka_healthy(compose: dict[str, Any]) -> None:
    for worker in WORKERS:
        depends_on = compose["services"][worker].get("depends_on") or {}
        assert isinstance(depends_on, dict) and KAFKA_SERVICE in depends_on, f"{worker} must depend on kafka"
        condition = (depends_on[KAFKA_SERVICE] or {}).get("condition")
        assert condition == "service_healthy", f"{worker} must wait for kafka to be healthy, not {condition!r}"


def check_state_volumes(compose: dict[str, Any], dockerfile: list[Instruction]) -> None:
    named = set(compose.get("volumes") or {})
    used: dict[str, str] = {}
    for worker in WORKERS:
        state_dir = str(worker_settings(compose, dockerfile, worker).state_dir)
        mounted = mounts(compose["services"][worker])
        source = mounted.get(state_dir)
        assert source in named, f"{worker}'s state dir {state_dir} is not on a named volume (mounts: {mounted})"
        assert source not in used, f"{worker} and {used[source]} share the state volume {source}"
        used[source] = worker


# ----------------------------------------------------------------------------- checks: around the workers


def check_app_env_names(compose: dict[str, Any]) -> None:
    known = settings_env_names()
    for name in app_services(compose):
        unknown = set(service_env(compose["services"][name])) - known
        assert not unknown, f"{name} sets variables no setting reads: {sorted(unknown)}"


def check_topics_service(compose: dict[str, Any], dockerfile: list[Instruction]) -> None:
    """Creates every topic the settings name, as the registry (streams/topics.py) declares it for
    the workers' settings (outputs compacted), once; the app's own topics are the workers' to create."""
    check_topics_job(compose, dockerfile, TOPICS_SERVICE, WORKERS[0], kafka_client_addresses(compose))
    service = compose["services"][TOPICS_SERVICE]
    depends_on = service.get("depends_on") or {}
    assert (depends_on.get(KAFKA_SERVICE) or {}).get("condition") == "service_healthy", depends_on
    for name in app_services(compose):
        if CLUSTER_PROFILE in (compose["services"][name].get("profiles") or []):
            continue  # check_cluster_profile: they wait for the cluster's own topics job
        condition = ((compose["services"][name].get("depends_on") or {}).get(TOPICS_SERVICE) or {}).get("condition")
        assert condition == "service_completed_successfully", f"{name} must wait for {TOPICS_SERVICE} to succeed"


def check_topics_job(
    compose: dict[str, Any], dockerfile: list[Instruction], job: str, worker: str, addresses: set[str]
) -> None:
    """`job` creates every topic `worker`'s settings name, through `addresses`, as the registry declares them."""
    service = compose["services"][job]
    kafka_image = compose["services"][KAFKA_SERVICE]["image"]
    assert service.get("image") == kafka_image, f"{job} must use kafka's image ({kafka_image}) and its tools"
    settings = worker_settings(compose, dockerfile, worker)
    registry = Topics.from_settings(settings)
    specs = {spec.name: spec for spec in (getattr(registry, field) for field in SETTING_OF)}
    named = set(specs)
    created = created_topics(service)
    assert set(created) == named, f"{job} creates {sorted(created)}; the settings name {sorted(named)}"
    for name, options in created.items():
        spec = specs[name]
        assert "--if-not-exists" in options, f"creating {name} fails on the next `up` without --if-not-exists"
        servers = options.get("--bootstrap-server", [""])[0].split(",")
        assert set(servers) <= addresses, f"{name} is created through {servers}"
        assert options.get("--partitions") == [str(spec.partitions)], f"{name}: {options.get('--partitions')}"
        assert options.get("--replication-factor") == [str(spec.replication_factor)], name
        configs = dict(config.split("=", 1) for config in options.get("--config", []))
        assert configs == spec.config, f"{name} is created with {configs}; the workers would use {spec.config}"
    for output in (settings.topic_usage, settings.topic_eligibility):
        assert specs[output].config.get("cleanup.policy") == "compact", f"{output} must be compacted"
    assert service.get("restart", "no") in ("no", False), f"{job} is one-shot: no restart"


def check_cluster_profile(compose: dict[str, Any], dockerfile: list[Instruction]) -> None:
    """`--profile cluster`: three KRaft nodes (broker and controller each, one quorum of three voters),
    the brokers' own topics on three replicas with two in sync, and workers whose topics are the same."""
    services = compose["services"]
    members = [CLUSTER_BROKERS, (CLUSTER_TOPICS,), CLUSTER_WORKERS]
    for name in (name for group in members for name in group):
        assert name in services and CLUSTER_PROFILE in (services[name].get("profiles") or []), f"{name} not in the profile"
    envs = {name: service_env(services[name]) for name in CLUSTER_BROKERS}
    voters = {env.get("KAFKA_CONTROLLER_QUORUM_VOTERS") for env in envs.values()}
    assert len(voters) == 1, f"the nodes disagree on their quorum: {voters}"
    assert len({env.get("CLUSTER_ID") for env in envs.values()}) == 1, "the nodes have different CLUSTER_IDs"
    quorum = set()
    for voter in str(voters.pop()).split(","):
        node_id, _, address = voter.partition("@")
        quorum.add((node_id, address))
    nodes, addresses = set(), set()
    for name, env in envs.items():
        assert services[name].get("image") == services[KAFKA_SERVICE]["image"], f"{name} runs another image"
        roles = {role.strip() for role in env.get("KAFKA_PROCESS_ROLES", "").split(",")}
        assert roles == {"broker", "controller"}, f"{name}: KAFKA_PROCESS_ROLES {roles}"
        listeners = parse_listeners(env.get("KAFKA_LISTENERS", ""))
        controller = env.get("KAFKA_CONTROLLER_LISTENER_NAMES", "")
        nodes.add((env.get("KAFKA_NODE_ID"), f"{services[name].get('hostname', name)}:{listeners[controller][1]}"))
        for listener, (host, port) in parse_listeners(env.get("KAFKA_ADVERTISED_LISTENERS", "")).items():
            assert host in (name, services[name].get("hostname")) and port == listeners[listener][1], f"{name} advertises {host}:{port}"
            addresses.add(f"{host}:{port}")
        for setting, value in CLUSTER_SETTINGS.items():
            assert env.get(setting) == value, f"{name}: {setting} must be {value}, got {env.get(setting)!r}"
        assert "-Xmx" in env.get("KAFKA_HEAP_OPTS", ""), f"{name} needs a bounded heap (KAFKA_HEAP_OPTS)"
        assert (services[name].get("healthcheck") or {}).get("test"), f"{name} needs a healthcheck"
    assert nodes == quorum and len(nodes) == 3, f"the quorum {sorted(quorum)} is not the nodes {sorted(nodes)}"
    default = worker_settings(compose, dockerfile, WORKERS[0])
    for worker in CLUSTER_WORKERS:
        settings = worker_settings(compose, dockerfile, worker)
        assert set(str(settings.kafka_bootstrap_servers).split(",")) == addresses, f"{worker} bootstraps elsewhere"
        assert (settings.replication_factor, settings.min_insync_replicas) == (3, 2), worker
        assert (settings.app_id, settings.partitions) == (default.app_id, default.partitions), worker
        depends_on = services[worker].get("depends_on") or {}
        for broker in CLUSTER_BROKERS:
            assert (depends_on.get(broker) or {}).get("condition") == "service_healthy", f"{worker} must wait for {broker}"
        assert (depends_on.get(CLUSTER_TOPICS) or {}).get("condition") == "service_completed_successfully", worker
        assert KAFKA_SERVICE not in depends_on, f"{worker} must not wait for the single broker"
    check_topics_job(compose, dockerfile, CLUSTER_TOPICS, CLUSTER_WORKERS[0], addresses)


def check_loadgen(compose: dict[str, Any], dockerfile: list[Instruction]) -> None:
    """`usage-detector generate` on demand, into the very topics and Kafka the workers read."""
    service = compose["services"][LOADGEN]
    assert "load" in (service.get("profiles") or []), f"{LOADGEN} must run only with `--profile load`"
    assert built_from(service) == DOCKERFILE.resolve(), f"{LOADGEN} must run the project's image"
    argv = [interpolate(part) for part in effective_command(service, dockerfile)]
    assert argv[:2] == ["usage-detector", "generate"], f"{LOADGEN} runs {argv}"
    parser = argparse.ArgumentParser(prog="usage-detector")
    register_generate(parser.add_subparsers(dest="command"))
    try:
        parser.parse_args(argv[1:])
    except SystemExit:
        raise AssertionError(f"{LOADGEN}'s command {argv} is not valid for `usage-detector generate`") from None
    unknown = set(service_env(service)) - settings_env_names()
    assert not unknown, f"{LOADGEN} sets variables no setting reads: {sorted(unknown)}"
    mine, workers = worker_settings(compose, dockerfile, LOADGEN), worker_settings(compose, dockerfile, WORKERS[0])
    shared = ["kafka_bootstrap_servers", "app_id", "partitions", "replication_factor"]
    shared += [name for name in Settings.model_fields if name.startswith("topic_")]
    differing = [name for name in shared if getattr(mine, name) != getattr(workers, name)]
    assert not differing, f"{LOADGEN} and the workers disagree on {differing}"


def check_prometheus_targets(compose: dict[str, Any], dockerfile: list[Instruction]) -> None:
    config = yaml.safe_load(mounted_path(compose["services"][PROMETHEUS], PROMETHEUS_CONFIG).read_text("utf-8"))
    targets: set[str] = set()
    for job in config.get("scrape_configs") or []:
        assert job.get("metrics_path", "/metrics") == "/metrics" and job.get("scheme", "http") == "http", job
        for static in job.get("static_configs") or []:
            targets.update(static.get("targets") or [])
    settings = [worker_settings(compose, dockerfile, worker) for worker in WORKERS]
    expected = {f"{s.web_host}:{s.web_port}" for s in settings}
    assert targets == expected, f"Prometheus scrapes {sorted(targets)}, the workers serve {sorted(expected)}"


def check_prometheus_rules(compose: dict[str, Any]) -> None:
    """Prometheus loads the project's alert rules: its config names them, the service mounts them."""
    prometheus = compose["services"][PROMETHEUS]
    config = yaml.safe_load(mounted_path(prometheus, PROMETHEUS_CONFIG).read_text("utf-8"))
    config_dir = PROMETHEUS_CONFIG.rsplit("/", 1)[0]
    loaded = {mounted_path(prometheus, f"{config_dir}/{name}") for name in config.get("rule_files") or []}
    assert loaded == {ALERT_RULES.resolve()}, f"Prometheus loads the rule files {sorted(map(str, loaded))}"


def check_grafana(compose: dict[str, Any]) -> None:
    """Grafana reads the Prometheus service and the dashboard folder; the dashboard uses that datasource."""
    grafana = compose["services"][GRAFANA]
    provisioning = mounted_path(grafana, GRAFANA_PROVISIONING)

    def provisioned(kind: str, key: str) -> list[dict[str, Any]]:
        files = sorted((provisioning / kind).glob("*.y*ml"))
        return [item for f in files for item in yaml.safe_load(f.read_text("utf-8")).get(key) or []]

    datasources = [ds for ds in provisioned("datasources", "datasources") if ds.get("type") == "prometheus"]
    assert datasources, f"no Prometheus datasource under {provisioning / 'datasources'}"
    for datasource in datasources:
        url = urlsplit(datasource.get("url", ""))
        assert (url.hostname, url.port) == (PROMETHEUS, PROMETHEUS_PORT), f"the datasource points at {url.geturl()}"
    providers = [provider for provider in provisioned("dashboards", "providers") if provider.get("type", "file") == "file"]
    assert providers, f"no dashboard provider under {provisioning / 'dashboards'}"
    for provider in providers:
        folder = mounted_path(grafana, (provider.get("options") or {}).get("path", ""))
        assert folder == DASHBOARD_FILE.parent.resolve(), f"the dashboard provider reads {folder}"
    dashboard = json.loads(DASHBOARD_FILE.read_text("utf-8"))
    uids = {ds.get("uid") for ds in datasources}
    used = {panel["datasource"].get("uid") for panel in dashboard["panels"] if panel.get("datasource")}
    assert used <= uids, f"dashboard panels use datasources {sorted(map(str, used))}, provisioned: {sorted(uids)}"


def check_dashboard_metrics(dashboard: dict[str, Any]) -> None:
    """Every metric the dashboard queries is exported by the workers, and every one exported is charted."""
    exported = exported_metrics()
    used = {name for expr in dashboard_exprs(dashboard["panels"]) for name in re.findall(r"\busage_detector_\w+", expr)}
    unknown = used - set().union(*exported.values())
    assert not unknown, f"the dashboard queries metrics no worker exports: {sorted(unknown)}"
    uncharted = sorted(family for family, names in exported.items() if not names & used)
    assert not uncharted, f"exported metrics no dashboard panel shows: {uncharted}"


# ----------------------------------------------------------------------------- checks: Dockerfile


def check_dockerfile_base(dockerfile: list[Instruction]) -> None:
    froms = instructions_of(dockerfile, "FROM")
    assert froms, "the Dockerfile has no FROM"
    image = froms[-1].split()[0]
    match = re.fullmatch(r"(?:docker\.io/)?(?:library/)?python:(\d+\.\d+)(?:\.\d+)?-slim(?:-\w+)?", image)
    assert match, f"the image must be based on python:3.11-slim, not {image!r}"
    requires = SpecifierSet(load_pyproject()["project"]["requires-python"])
    assert requires.contains(match.group(1)), f"python {match.group(1)} does not satisfy requires-python {requires}"


def check_dockerfile_installs_project(dockerfile: list[Instruction]) -> None:
    installs = [
        args for args in instructions_of(dockerfile, "RUN") if re.search(r"\bpip3? install\b[^&;|]*\s\.(\s|$)", args)
    ]
    assert installs, "the Dockerfile never runs `pip install .`"
    copied: set[str] = set()
    for args in instructions_of(dockerfile, "COPY") + instructions_of(dockerfile, "ADD"):
        parts = [part for part in shlex.split(args) if not part.startswith("--")]
        copied.update(part.rstrip("/").removeprefix("./") for part in parts[:-1])
    pyproject = load_pyproject()
    needed = {"pyproject.toml", *(package.split(".")[0] for package in pyproject["tool"]["setuptools"]["packages"])}  # a subpackage comes with its folder
    if "." not in copied:
        missing = needed - copied
        assert not missing, f"`pip install .` needs {sorted(missing)}, which the Dockerfile does not copy"


def check_dockerfile_non_root(dockerfile: list[Instruction]) -> None:
    users = instructions_of(dockerfile, "USER")
    assert users, "the image runs as root (no USER)"
    user = users[-1].split(":")[0].strip()
    assert user not in ("root", "0", ""), f"the image runs as root (USER {users[-1]})"


def check_dockerfile_web_and_state(dockerfile: list[Instruction]) -> None:
    exposed = {int(port.split("/")[0]) for args in instructions_of(dockerfile, "EXPOSE") for port in args.split()}
    env = dockerfile_env(dockerfile)
    web_port = int(env.get(f"{ENV_PREFIX}WEB_PORT", WEB_PORT_DEFAULT))
    assert web_port in exposed, f"the image does not expose its web port {web_port} (EXPOSE {sorted(exposed)})"
    volumes: set[str] = set()
    for args in instructions_of(dockerfile, "VOLUME"):
        volumes.update(json.loads(args) if args.startswith("[") else args.split())
    assert STATE_VOLUME_DIR in volumes, f"{STATE_VOLUME_DIR} is not a VOLUME (got {sorted(volumes)})"
    state_dir = env.get(f"{ENV_PREFIX}STATE_DIR")
    assert state_dir == STATE_VOLUME_DIR, f"{ENV_PREFIX}STATE_DIR in the image is {state_dir!r}, not the volume"


# ----------------------------------------------------------------------------- the real files


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def dockerfile() -> list[Instruction]:
    return load_dockerfile()


def test_expected_services(compose: dict[str, Any]) -> None:
    check_services(compose)


def test_kafka_is_apache_kafka_4_in_kraft_mode(compose: dict[str, Any]) -> None:
    check_kafka_image(compose)
    check_kafka_kraft(compose)
    check_kafka_single_node_settings(compose)
    check_kafka_healthcheck(compose)


def test_workers_are_built_from_the_dockerfile_and_run_the_worker(
    compose: dict[str, Any], dockerfile: list[Instruction]
) -> None:
    check_worker_build(compose)
    check_worker_command(compose, dockerfile)


def test_worker_environment_is_real_configuration(compose: dict[str, Any], dockerfile: list[Instruction]) -> None:
    assert "KAFKA_BOOTSTRAP_SERVERS" in settings_env_names()
    assert f"{ENV_PREFIX}APP_ID" in settings_env_names()
    check_worker_env_names(compose, dockerfile)
    check_worker_env_values(compose, dockerfile)
    check_api_token_from_host(compose)


def test_workers_reach_kafka_and_wait_for_it(compose: dict[str, Any], dockerfile: list[Instruction]) -> None:
    check_bootstrap_servers(compose, dockerfile)
    check_depends_on_kafka_healthy(compose)


def test_published_ports_are_the_web_ports(compose: dict[str, Any], dockerfile: list[Instruction]) -> None:
    check_ports(compose, dockerfile)


def test_workers_share_work_with_distinct_addresses(compose: dict[str, Any], dockerfile: list[Instruction]) -> None:
    check_workers_share_work(compose, dockerfile)
    check_state_volumes(compose, dockerfile)


def test_topics_service_creates_the_configured_topics(compose: dict[str, Any], dockerfile: list[Instruction]) -> None:
    check_topics_service(compose, dockerfile)


def test_cluster_profile_runs_the_workers_on_three_replicated_brokers(
    compose: dict[str, Any], dockerfile: list[Instruction]
) -> None:
    check_cluster_profile(compose, dockerfile)


def test_load_generator_feeds_the_workers(compose: dict[str, Any], dockerfile: list[Instruction]) -> None:
    check_app_env_names(compose)
    check_loadgen(compose, dockerfile)


def test_prometheus_scrapes_every_worker(compose: dict[str, Any], dockerfile: list[Instruction]) -> None:
    check_prometheus_targets(compose, dockerfile)
    check_prometheus_rules(compose)


def test_grafana_provisions_prometheus_and_the_dashboard(compose: dict[str, Any]) -> None:
    check_grafana(compose)


def test_dashboard_charts_the_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD_FILE.read_text("utf-8"))
    check_dashboard_metrics(dashboard)
    exprs = " ".join(dashboard_exprs(dashboard["panels"]))
    assert "histogram_quantile(0.99, sum by (le) (rate(usage_detector_usage_start_lag_seconds_bucket" in exprs
    broken = json.loads(json.dumps(dashboard).replace("usage_detector_consumer_lag", "usage_detector_consumer_lags"))
    with pytest.raises(AssertionError):
        check_dashboard_metrics(broken)


def test_dockerfile(dockerfile: list[Instruction]) -> None:
    check_dockerfile_base(dockerfile)
    check_dockerfile_installs_project(dockerfile)
    check_dockerfile_non_root(dockerfile)
    check_dockerfile_web_and_state(dockerfile)


# ----------------------------------------------------------------------------- each check can fail


def _set(path: tuple[str, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        target = doc
        for key in path[:-1]:
            target = target[key]
        if value is _DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value

    return mutate


_DELETE = object()
_K = ("services", KAFKA_SERVICE, "environment")
_W1 = ("services", WORKERS[0])
_W2 = ("services", WORKERS[1])
_L = ("services", LOADGEN)
_T = ("services", TOPICS_SERVICE)
_C = ("services", CLUSTER_BROKERS[2], "environment")
_CW = ("services", CLUSTER_WORKERS[1])


def _edit(path: tuple[Any, ...], old: str, new: str) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        target = doc
        for key in path[:-1]:
            target = target[key]
        assert old in target[path[-1]]
        target[path[-1]] = target[path[-1]].replace(old, new)

    return mutate

COMPOSE_BREAKS: list[tuple[str, Callable[..., None], Callable[[dict[str, Any]], None]]] = [
    ("no detector-2", check_services, _set(_W2, _DELETE)),
    ("bitnami image", check_kafka_image, _set(("services", KAFKA_SERVICE, "image"), "bitnami/kafka:4.1.1")),
    ("kafka 3.x", check_kafka_image, _set(("services", KAFKA_SERVICE, "image"), "apache/kafka:3.9.1")),
    ("unpinned kafka", check_kafka_image, _set(("services", KAFKA_SERVICE, "image"), "apache/kafka:latest")),
    ("no process roles", check_kafka_kraft, _set((*_K, "KAFKA_PROCESS_ROLES"), _DELETE)),
    ("broker only", check_kafka_kraft, _set((*_K, "KAFKA_PROCESS_ROLES"), "broker")),
    ("voter wrong node", check_kafka_kraft, _set((*_K, "KAFKA_CONTROLLER_QUORUM_VOTERS"), "2@kafka:9093")),
    ("voter wrong port", check_kafka_kraft, _set((*_K, "KAFKA_CONTROLLER_QUORUM_VOTERS"), "1@kafka:9092")),
    (
        "offsets rf 3",
        check_kafka_single_node_settings,
        _set((*_K, "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"), 3),
    ),
    (
        "no share rf",
        check_kafka_single_node_settings,
        _set((*_K, "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR"), _DELETE),
    ),
    (
        "rebalance delay",
        check_kafka_single_node_settings,
        _set((*_K, "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"), 3000),
    ),
    (
        "auto create on",
        check_kafka_single_node_settings,
        _set((*_K, "KAFKA_AUTO_CREATE_TOPICS_ENABLE"), "true"),
    ),
    ("no kafka healthcheck", check_kafka_healthcheck, _set(("services", KAFKA_SERVICE, "healthcheck"), _DELETE)),
    ("prebuilt worker", check_worker_build, _set((*_W1, "build"), _DELETE)),
    ("wrong build context", check_worker_build, _set((*_W1, "build"), {"context": "streams"})),
    ("demo command", check_worker_command, _set((*_W2, "command"), ["usage-detector", "demo"])),
    ("kafka command", check_worker_command, _set((*_W1, "command"), "usage-detector kafka start")),
    ("other entrypoint", check_worker_command, _set((*_W1, "entrypoint"), ["python", "-m", "http.server"])),
    ("unread variable", check_worker_env_names, _set((*_W1, "environment", "USAGE_DETECTOR_WEB_BIND"), "0.0.0.0")),
    ("misspelled variable", check_worker_env_names, _set((*_W2, "environment", "USAGE_DETECTOR_APPID"), "x")),
    ("missing app id", check_worker_env_names, _set((*_W2, "environment", "USAGE_DETECTOR_APP_ID"), _DELETE)),
    ("bad partitions", check_worker_env_values, _set((*_W1, "environment", "USAGE_DETECTOR_PARTITIONS"), "zero")),
    ("bad app id", check_worker_env_values, _set((*_W1, "environment", "USAGE_DETECTOR_APP_ID"), "a b")),
    ("hard-coded token", check_api_token_from_host, _set((*_W1, "environment", "USAGE_DETECTOR_API_TOKEN"), "s3cret")),
    (
        "token with default",
        check_api_token_from_host,
        _set((*_W2, "environment", "USAGE_DETECTOR_API_TOKEN"), "${USAGE_DETECTOR_API_TOKEN:-dev}"),
    ),
    ("localhost bootstrap", check_bootstrap_servers, _set((*_W1, "environment", "KAFKA_BOOTSTRAP_SERVERS"), "localhost:9092")),
    ("controller bootstrap", check_bootstrap_servers, _set((*_W2, "environment", "KAFKA_BOOTSTRAP_SERVERS"), "kafka:9093")),
    ("no bootstrap", check_bootstrap_servers, _set((*_W2, "environment", "KAFKA_BOOTSTRAP_SERVERS"), _DELETE)),
    (
        "advertised localhost",
        check_bootstrap_servers,
        _set((*_K, "KAFKA_ADVERTISED_LISTENERS"), "PLAINTEXT://localhost:9092"),
    ),
    ("no depends_on", check_depends_on_kafka_healthy, _set((*_W1, "depends_on"), _DELETE)),
    ("depends_on started", check_depends_on_kafka_healthy, _set((*_W2, "depends_on"), {KAFKA_SERVICE: {"condition": "service_started"}})),
    ("wrong container port", check_ports, _set((*_W1, "ports"), ["6066:8080"])),
    ("web port moved", check_ports, _set((*_W2, "environment", "USAGE_DETECTOR_WEB_PORT"), "7000")),
    ("same host port", check_ports, _set((*_W2, "ports"), ["6066:6066"])),
    ("random host port", check_ports, _set((*_W2, "ports"), ["6066"])),
    ("no ports", check_ports, _set((*_W1, "ports"), _DELETE)),
    ("different app ids", check_workers_share_work, _set((*_W2, "environment", "USAGE_DETECTOR_APP_ID"), "other")),
    ("same web host", check_workers_share_work, _set((*_W2, "environment", "USAGE_DETECTOR_WEB_HOST"), WORKERS[0])),
    ("web host 0.0.0.0", check_workers_share_work, _set((*_W1, "environment", "USAGE_DETECTOR_WEB_HOST"), "0.0.0.0")),
    ("partitions differ", check_workers_share_work, _set((*_W2, "environment", "USAGE_DETECTOR_PARTITIONS"), "3")),
    ("state not on volume", check_state_volumes, _set((*_W1, "volumes"), _DELETE)),
    ("state on bind mount", check_state_volumes, _set((*_W1, "volumes"), ["./state:/var/lib/usage-detector"])),
    ("shared state volume", check_state_volumes, _set((*_W2, "volumes"), ["detector-1-state:/var/lib/usage-detector"])),
    ("loadgen unread variable", check_loadgen, _set((*_L, "environment", "USAGE_DETECTOR_RATE"), "50")),
    ("loadgen other app id", check_loadgen, _set((*_L, "environment", "USAGE_DETECTOR_APP_ID"), "load")),
    ("loadgen bad option", check_loadgen, _set((*_L, "command"), ["usage-detector", "generate", "--rps", "5"])),
    ("loadgen always on", check_loadgen, _set((*_L, "profiles"), _DELETE)),
    ("worker skips topics", check_topics_service, _set((*_W1, "depends_on", TOPICS_SERVICE), _DELETE)),
    ("outputs not compacted", check_topics_service, _edit((*_T, "command", 0), "compact", "delete")),
    ("topic missing", check_topics_service, _edit((*_T, "command", 0), "--topic capi.events", "--topic capi")),
    (
        "partitions unlike the registry",
        check_topics_service,
        _edit((*_T, "command", 0), "--topic tracking.hits --partitions 8", "--topic tracking.hits --partitions 3"),
    ),
    (
        "dead letters kept forever",
        check_topics_service,
        _edit((*_T, "command", 0), "retention.ms=2592000000", "retention.ms=-1"),
    ),
    ("cluster voter missing", check_cluster_profile, _set((*_C, "KAFKA_CONTROLLER_QUORUM_VOTERS"), "1@kafka-1:9093,2@kafka-2:9093")),
    ("cluster node ids clash", check_cluster_profile, _set((*_C, "KAFKA_NODE_ID"), 2)),
    ("cluster offsets rf 1", check_cluster_profile, _set((*_C, "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"), 1)),
    ("cluster transactions min isr 1", check_cluster_profile, _set((*_C, "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"), 1)),
    ("cluster heap unbounded", check_cluster_profile, _set((*_C, "KAFKA_HEAP_OPTS"), _DELETE)),
    ("cluster advertises another", check_cluster_profile, _set((*_C, "KAFKA_ADVERTISED_LISTENERS"), "PLAINTEXT://kafka-1:9092")),
    ("cluster worker rf 2", check_cluster_profile, _set((*_CW, "environment", "USAGE_DETECTOR_REPLICATION_FACTOR"), "2")),
    ("cluster worker one broker", check_cluster_profile, _set((*_CW, "environment", "KAFKA_BOOTSTRAP_SERVERS"), "kafka-1:9092")),
    ("cluster worker on kafka", check_cluster_profile, _set((*_CW, "depends_on", KAFKA_SERVICE), {"condition": "service_healthy"})),
    (
        "cluster topics rf 1",
        check_cluster_profile,
        _edit(("services", CLUSTER_TOPICS, "command", 0), "--replication-factor 3", "--replication-factor 1"),
    ),
    ("scrape stale port", check_prometheus_targets, _set((*_W2, "environment", "USAGE_DETECTOR_WEB_PORT"), "7000")),
    ("rules not mounted", check_prometheus_rules, _set(("services", PROMETHEUS, "volumes"), [f"./ops/prometheus/prometheus.yml:{PROMETHEUS_CONFIG}"])),
    ("no provisioning", check_grafana, _set(("services", GRAFANA, "volumes"), ["./ops/grafana/dashboards:/x:ro"])),
]


@pytest.mark.parametrize(("case", "check", "mutate"), COMPOSE_BREAKS, ids=[case for case, _, _ in COMPOSE_BREAKS])
def test_check_catches(
    case: str, check: Callable[..., None], mutate: Callable[[dict[str, Any]], None], dockerfile: list[Instruction]
) -> None:
    # The compose file's anchors make the workers share mapping objects: a JSON round trip
    # unshares them, so a break hits one worker only.
    broken = json.loads(json.dumps(load_compose()))
    mutate(broken)
    args = (broken, dockerfile) if check.__code__.co_argcount == 2 else (broken,)
    with pytest.raises(AssertionError):
        check(*args)


DOCKERFILE_BREAKS: list[tuple[str, Callable[[list[Instruction]], None], str, str]] = [
    ("alpine base", check_dockerfile_base, "FROM python:3.11-slim", "FROM python:3.11-alpine"),
    ("python 3.12", check_dockerfile_base, "FROM python:3.11-slim", "FROM python:3.12-slim"),
    ("no pip install", check_dockerfile_installs_project, "RUN pip install --constraint constraints.txt .", "RUN pip install faust-streaming"),
    ("no streams copied", check_dockerfile_installs_project, "COPY streams ./streams", ""),
    ("no pyproject copied", check_dockerfile_installs_project, "COPY pyproject.toml constraints.txt README.md* ./", "COPY constraints.txt README.md* ./"),
    ("runs as root", check_dockerfile_non_root, "USER 10001:10001", "USER root"),
    ("no USER", check_dockerfile_non_root, "USER 10001:10001", ""),
    ("no EXPOSE", check_dockerfile_web_and_state, "EXPOSE 6066", "EXPOSE 8080"),
    ("no VOLUME", check_dockerfile_web_and_state, 'VOLUME ["/var/lib/usage-detector"]', ""),
    (
        "state dir elsewhere",
        check_dockerfile_web_and_state,
        "USAGE_DETECTOR_STATE_DIR=/var/lib/usage-detector",
        "USAGE_DETECTOR_STATE_DIR=/tmp/state",
    ),
]


@pytest.mark.parametrize(
    ("case", "check", "old", "new"), DOCKERFILE_BREAKS, ids=[case for case, _, _, _ in DOCKERFILE_BREAKS]
)
def test_dockerfile_check_catches(
    case: str, check: Callable[[list[Instruction]], None], old: str, new: str
) -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert old in text, f"the break {case!r} no longer applies to the Dockerfile"
    with pytest.raises(AssertionError):
        check(parse_dockerfile(text.replace(old, new)))


@pytest.mark.parametrize(
    ("old", "new"),
    [('CMD ["usage-detector", "worker"]', 'CMD ["usage-detector", "demo"]'), ('CMD ["usage-detector", "worker"]', "")],
)
def test_worker_command_check_uses_the_image_cmd(old: str, new: str) -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert old in text
    compose = load_compose()
    for worker in WORKERS:
        compose["services"][worker].pop("command", None)
    check_worker_command(compose, parse_dockerfile(text))  # the image's CMD alone is right
    with pytest.raises(AssertionError):
        check_worker_command(compose, parse_dockerfile(text.replace(old, new)))


def test_dockerfile_env_is_checked_against_settings() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8").replace(
        "USAGE_DETECTOR_WEB_PORT=6066", "USAGE_DETECTOR_WEB_PORT=6066 USAGE_DETECTOR_LOG_LEVEL=info"
    )
    with pytest.raises(AssertionError):
        check_worker_env_names(load_compose(), parse_dockerfile(text))
