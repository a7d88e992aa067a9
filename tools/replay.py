"""`usage-detector replay`: rebuild every account from the input topics, beside the live detector.

A fresh application id (`<app>-replay-<tag>`) processes the inputs from the start into output
topics of its own (`<topic>.replay-<tag>`), so the live outputs and their versions are never
touched. When it has caught up, its final records are compared with the live ones by content.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer

from streams.kafka_inputs import ISOLATION_LEVEL
from streams.kafka_security import KafkaSecurity
from streams.settings import Settings
from streams.topics import TopicNames, ensure_topics
from tools.options import add_setting_options, bootstrap_servers, settings_from
from tools.outputs import content, latest_by_account, read_topics, topic_partitions
from tools.workerpool import LagProbe, WorkerPool, wait_caught_up

BAR_WIDTH = 40


def replay_settings(live: Settings, tag: str) -> Settings:
    return live.model_copy(
        update={
            "app_id": f"{live.app_id}-replay-{tag}",
            "topic_usage": f"{live.topic_usage}.replay-{tag}",
            "topic_eligibility": f"{live.topic_eligibility}.replay-{tag}",
            "topic_dead_letter": f"{live.topic_dead_letter}.replay-{tag}",
        }
    )


def input_size(servers: str, topics: tuple[str, ...], **client_options: Any) -> int:
    # Read committed, end offsets are the last stable ones: the records the replay can read.
    consumer = KafkaConsumer(bootstrap_servers=servers, isolation_level=ISOLATION_LEVEL, **client_options)
    try:
        partitions = topic_partitions(consumer, topics)
        return sum(consumer.end_offsets(partitions).values())
    finally:
        consumer.close()


def show_progress(done: int, total: int, started: float) -> None:
    share = done / total if total else 1.0
    filled = int(share * BAR_WIDTH)
    rate = done / max(1e-9, time.monotonic() - started)
    line = f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {share:6.1%}  {done}/{total} input records  {rate:,.0f}/s"
    print(f"\r{line}" if sys.stdout.isatty() else line, end="" if sys.stdout.isatty() else "\n", flush=True)


def compare_outputs(servers: str, live: Settings, replayed: Settings, **client_options: Any) -> dict[str, dict[str, int]]:
    topics = [live.topic_usage, live.topic_eligibility, replayed.topic_usage, replayed.topic_eligibility]
    found = read_topics(servers, topics, **client_options)
    result = {}
    for kind, live_topic, replay_topic in (
        ("usage", live.topic_usage, replayed.topic_usage),
        ("eligibility", live.topic_eligibility, replayed.topic_eligibility),
    ):
        before, after = latest_by_account(found[live_topic]), latest_by_account(found[replay_topic])
        result[kind] = {
            "equal": sum(1 for a in after if a in before and content(after[a]) == content(before[a])),
            "different": sum(1 for a in after if a in before and content(after[a]) != content(before[a])),
            "only_live": len(before.keys() - after.keys()),
            "only_replay": len(after.keys() - before.keys()),
        }
    return result


def run_replay(args: argparse.Namespace) -> int:
    live = settings_from(args)
    servers = bootstrap_servers(live)
    replayed = replay_settings(live, uuid.uuid4().hex[:6])
    names = TopicNames.from_settings(replayed)
    security = KafkaSecurity.from_settings(live).kafka_python_config()
    total = input_size(servers, names.inputs, **security)
    print(f"replaying {total} input records into app {replayed.app_id} with {args.workers} worker(s)", flush=True)
    ensure_topics(replayed, servers)
    pool = WorkerPool(replayed, servers, Path(args.workdir or tempfile.mkdtemp(prefix="usage-detector-replay-")))
    started = time.monotonic()
    try:
        pool.scale(args.workers)
        with LagProbe(servers, **security) as probe:

            def progress(lag: int | None) -> None:
                inputs_left = probe.app_lag(replayed.app_id, names, among=names.inputs)
                show_progress(total - (inputs_left if inputs_left is not None else total), total, started)

            caught_up = wait_caught_up(probe, replayed.app_id, names, timeout=args.timeout, progress=progress)
        if not caught_up:
            print(f"\nreplay did not catch up within {args.timeout:.0f}s; worker logs: {pool.workdir}", file=sys.stderr)
            return 1
    finally:
        pool.stop_all()
    print(f"\ncaught up in {time.monotonic() - started:.1f}s; comparing with the live outputs", flush=True)
    result = compare_outputs(servers, live, replayed, **security)
    for kind, counts in result.items():
        print(f"  {kind:<12} " + "  ".join(f"{name} {count}" for name, count in counts.items()))
    same = all(c["different"] == c["only_live"] == c["only_replay"] == 0 for c in result.values())
    print("the replay equals the live outputs" if same else "the replay DIFFERS from the live outputs")
    print(f"replayed outputs: {replayed.topic_usage}, {replayed.topic_eligibility} (app id {replayed.app_id})")
    return 0 if same else 1


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("replay", help="rebuild state from the inputs into a fresh app id; compare with live")
    add_setting_options(parser)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for catching up")
    parser.add_argument("--workdir", help="worker logs and state (default: a new temporary folder)")
    parser.set_defaults(run=run_replay)
