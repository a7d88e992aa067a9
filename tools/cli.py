"""`usage-detector`: the worker, the local Kafka, and the operator tools. Options override the environment."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import localkafka
from models.errors import ConfigurationError
from tools.options import add_setting_options, bootstrap_servers, settings_from


def run_worker(args: argparse.Namespace) -> int:
    from streams.worker import run_worker as run  # Faust's import costs a second; only the worker needs it

    settings = settings_from(args)
    return run(settings, bootstrap_servers(settings))


def run_kafka(args: argparse.Namespace) -> int:
    if args.action == "start":
        info = localkafka.start(brokers=args.brokers)
        print(f"KAFKA_BOOTSTRAP_SERVERS={info.bootstrap_servers}")
    elif args.action == "stop":
        print("stopped" if localkafka.stop() else "not running")
    else:
        running = localkafka.status()
        nodes = f" ({len(running.running())} of {len(running.nodes)} nodes up)" if isinstance(running, localkafka.ClusterInfo) else ""
        print(f"running{nodes}: KAFKA_BOOTSTRAP_SERVERS={running.bootstrap_servers}" if running else "not running")
        return 0 if running else 3
    return 0


def register_runtime_commands(commands: argparse._SubParsersAction) -> None:
    worker = commands.add_parser("worker", help="run one worker (many share the work by app id)")
    add_setting_options(worker)
    worker.set_defaults(run=run_worker)
    kafka = commands.add_parser("kafka", help="the project's local Kafka: one broker, or a cluster")
    kafka.add_argument("action", choices=["start", "stop", "status"])
    kafka.add_argument("--brokers", type=int, choices=[1, 3], default=None,
                       help="start: 1 (default) or a 3-node cluster; default: what runs from the home, else 1")
    kafka.set_defaults(run=run_kafka)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="usage-detector", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    register_runtime_commands(commands)
    if argv[:1] not in (["worker"], ["kafka"]):
        # Only then the operator tools: their imports would add a third to every worker's start.
        from tools import bench, chaos, demo, explain, generate, replay

        # Each tool adds its subcommand, which sets `run(args) -> exit code`.
        for tool in (demo, explain, generate, bench, chaos, replay):
            tool.register(commands)
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except (ConfigurationError, localkafka.LocalKafkaError, ConnectionError) as exc:
        print(f"usage-detector: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
