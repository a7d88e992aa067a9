"""`usage-detector`: worker, local Kafka, demo. Options override the environment."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import Any

import localkafka
from models.errors import ConfigurationError
from streams.settings import Settings


def add_setting_options(parser: argparse.ArgumentParser) -> None:
    """One option per setting (--app-id for USAGE_DETECTOR_APP_ID, ...), defaulting to the env.

    Passwords marked `env_only` get none: a command line is visible to every user of the host."""
    for name, field in Settings.model_fields.items():
        if isinstance(field.json_schema_extra, dict) and field.json_schema_extra.get("env_only"):
            continue
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, default=None, help=field.description)


def settings_from(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {
        name: getattr(args, name) for name in Settings.model_fields if getattr(args, name, None) is not None
    }
    try:
        return Settings(**overrides)
    except ValueError as exc:
        raise ConfigurationError(f"invalid configuration:\n{exc}") from exc


def bootstrap_servers(settings: Settings) -> str:
    """The configured brokers, or the project's local broker (started when not running)."""
    return settings.kafka_bootstrap_servers or localkafka.start().bootstrap_servers


def run_worker(settings: Settings) -> int:
    import faust

    from streams.app import create_app
    from streams.kafka_security import KafkaSecurity
    from streams.topics import ensure_topics

    security = KafkaSecurity.from_settings(settings)  # a bad combination stops here, before any connection
    servers = bootstrap_servers(settings)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] [%(levelname)s] %(name)s: %(message)s")
    logging.getLogger("usage_detector").info("Kafka at %s over %s", servers, security.describe())
    created = ensure_topics(settings, servers)
    if created:
        logging.getLogger("usage_detector").info("created topics: %s", ", ".join(created))
    detector = create_app(settings, servers)
    worker = faust.Worker(detector.app, loglevel="info")
    if not sys.stdout.isatty():
        worker.spinner = None
    worker.execute_from_commandline()
    return 0


def run_kafka(args: argparse.Namespace) -> int:
    if args.action == "start":
        info = localkafka.start()
        print(f"KAFKA_BOOTSTRAP_SERVERS={info.bootstrap_servers}")
    elif args.action == "stop":
        print("stopped" if localkafka.stop() else "not running")
    else:
        running = localkafka.status()
        print(f"running: KAFKA_BOOTSTRAP_SERVERS={running.bootstrap_servers}" if running else "not running")
        return 0 if running else 3
    return 0


def register_core_commands(commands: argparse._SubParsersAction) -> None:
    worker = commands.add_parser("worker", help="run one worker (many share the work by app id)")
    add_setting_options(worker)
    worker.set_defaults(run=lambda args: run_worker(settings_from(args)))
    kafka = commands.add_parser("kafka", help="the project's local single-node Kafka")
    kafka.add_argument("action", choices=["start", "stop", "status"])
    kafka.set_defaults(run=run_kafka)
    demo = commands.add_parser("demo", help="local broker + worker + realistic traffic, printing decisions")
    add_setting_options(demo)
    demo.add_argument("--accounts", type=int, default=60, help="trial accounts to simulate")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument(
        "--live",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a live terminal view instead of one line per change (default: when stdout is a terminal)",
    )
    demo.set_defaults(run=run_demo_command)


def run_demo_command(args: argparse.Namespace) -> int:
    from streams.demo import run_demo

    return run_demo(settings_from(args), accounts=args.accounts, seed=args.seed, live=args.live)


# Modules adding subcommands: each has `register(commands)`, which sets `run(args) -> exit code`.
# Imported when the CLI runs, so that they may import this module's helpers.
COMMAND_MODULES: list[str] = ["streams.explain", "streams.generate", "streams.bench", "streams.chaos", "streams.replay"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="usage-detector", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    register_core_commands(commands)
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(commands)
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except (ConfigurationError, localkafka.LocalKafkaError, ConnectionError) as exc:
        print(f"usage-detector: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
