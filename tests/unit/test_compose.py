"""Static checks of docker-compose.yml and the Dockerfile (no Docker engine needed).

Each check is a function that raises AssertionError; the tests run them on the real files,
and `test_check_catches` runs each one on a deliberately broken copy to prove it can fail.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from packaging.specifiers import SpecifierSet
from pydantic import AliasChoices

from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
PYPROJECT = ROOT / "pyproject.toml"

KAFKA_SERVICE = "kafka"
WORKERS = ("detector-1", "detector-2")
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


def load_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def load_dockerfile() -> list[Instruction]:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


def load_pyproject() -> dict[str, Any]:
    return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------- checks: compose


def check_services(compose: dict[str, Any]) -> None:
    services = compose.get("services") or {}
    missing = {KAFKA_SERVICE, *WORKERS} - set(services)
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
        build = compose["services"][worker].get("build")
        assert build is not None, f"{worker} must be built from the project's Dockerfile"
        context = build if isinstance(build, str) else build.get("context", ".")
        dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        built_from = (COMPOSE_FILE.parent / context / dockerfile).resolve()
        assert built_from == DOCKERFILE.resolve(), f"{worker} is built from {built_from}, not {DOCKERFILE}"


def check_worker_command(compose: dict[str, Any], dockerfile: list[Instruction]) -> None:
    scripts = load_pyproject()["project"]["scripts"]
    assert scripts.get("usage-detector") == "streams.cli:main", "the usage-detector script is not streams.cli:main"
    for worker in WORKERS:
        argv = effective_command(compose["services"][worker], dockerfile)
        assert argv[:2] == ["usage-detector", "worker"], f"{worker} runs {argv}, not `usage-detector worker`"


def check_worker_env_names(compose: dict[str, Any], dockerfile: list[Instruction]) -> None:
    known = settings_env_names()
    for worker in WORKERS:
        unknown = set(service_env(compose["services"][worker])) - known
        assert not unknown, f"{worker} sets variables no setting reads: {sorted(unknown)}"
    image_unknown = {
        name for name in dockerfile_env(dockerfile) if name.startswith(ENV_PREFIX) or name.startswith("KAFKA_")
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
    controller_names = {name.strip() for name in kafka_env.get("KAFKA_CONTROLLER_LISTENER_NAMES", "").split(",")}
    advertised = {
        f"{host}:{port}"
        for name, (host, port) in parse_listeners(kafka_env.get("KAFKA_ADVERTISED_LISTENERS", "")).items()
        if name not in controller_names
    }
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
        mounts = {}
        for entry in compose["services"][worker].get("volumes") or []:
            if isinstance(entry, dict):
                mounts[entry.get("target")] = entry.get("source")
            else:
                source, _, rest = str(entry).partition(":")
                mounts[rest.split(":")[0]] = source
        source = mounts.get(state_dir)
        assert source in named, f"{worker}'s state dir {state_dir} is not on a named volume (mounts: {mounts})"
        assert source not in used, f"{worker} and {used[source]} share the state volume {source}"
        used[source] = worker


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
    needed = {"pyproject.toml", *pyproject["tool"]["setuptools"]["packages"]}
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
    ("no pip install", check_dockerfile_installs_project, "RUN pip install .", "RUN pip install faust-streaming"),
    ("no streams copied", check_dockerfile_installs_project, "COPY streams ./streams", ""),
    ("no pyproject copied", check_dockerfile_installs_project, "COPY pyproject.toml README.md* ./", "COPY README.md* ./"),
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
