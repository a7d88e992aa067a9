"""`usage-detector generate` against the real broker: steady, valid, live traffic on fresh topics."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from kafka import KafkaConsumer
from pydantic import TypeAdapter

from models.codec import decode
from models.errors import InvalidRecord
from models.inputs import BillingEvent, ConversionApiEvent, TrackingHit
from tests.support.worker import unique_topics
from tools.workerpool import TopicSet

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ADAPTERS = {"hits": TypeAdapter(TrackingHit), "capi": TypeAdapter(ConversionApiEvent), "billing": TypeAdapter(BillingEvent)}
# What tools.traffic deliberately breaks: a truncated hit, an undefined billing type, a display name as id.
DELIBERATELY_MALFORMED = {"not_json", "unknown_type", "invalid_account_id"}
RATE = 50
SEED = 5
DONE = re.compile(r"done: sent (\d+) in")


def command(*options: str) -> list[str]:
    return [sys.executable, "-m", "tools.cli", "generate", "--rate", str(RATE), "--accounts", "12",
            "--seed", str(SEED), "--progress-every", "0.5", *options]  # fmt: skip


def environment(bootstrap_servers: str, topics: TopicSet) -> dict[str, str]:
    return {**os.environ, **topics.env(), "KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers, "USAGE_DETECTOR_PARTITIONS": "2"}


def read_inputs(bootstrap_servers: str, topics: TopicSet, expected: int) -> list[tuple[str, bytes | None, bytes]]:
    """(kind, key, value) of every record on the three input topics, once `expected` arrived."""
    kinds = {topics.hits: "hits", topics.capi: "capi", topics.billing: "billing"}
    consumer = KafkaConsumer(
        *kinds, bootstrap_servers=bootstrap_servers, group_id=None, auto_offset_reset="earliest", enable_auto_commit=False
    )
    records: list[tuple[str, bytes | None, bytes]] = []
    deadline = time.monotonic() + 30
    try:
        while len(records) < expected and time.monotonic() < deadline:
            for messages in consumer.poll(timeout_ms=200).values():
                records += [(kinds[m.topic], m.key, m.value) for m in messages]
    finally:
        consumer.close()
    return records


def check_records(records: list[tuple[str, bytes | None, bytes]], started_ms: int, ended_ms: int) -> None:
    """Valid input records of this seed's first cohort, stamped with the time they were sent."""
    unusable: Counter[str] = Counter()
    for kind, key, value in records:
        try:
            record = decode(ADAPTERS[kind], value, 262_144)
        except InvalidRecord as error:
            unusable[error.code] += 1
            continue
        assert record.account_id.startswith(f"s{SEED}c0.acct-"), record
        assert key == record.account_id.encode(), (key, record.account_id)
        trusted = record.occurred_at if kind == "billing" else record.received_at
        # Moved from the simulated weeks onto the send schedule (a late hit may be a little earlier).
        assert started_ms - 60_000 <= trusted <= ended_ms + 5_000, (kind, trusted, started_ms, ended_ms)
    assert set(unusable) <= DELIBERATELY_MALFORMED, unusable
    assert sum(unusable.values()) <= 3, unusable


def test_sends_valid_live_records_at_the_rate_for_the_duration(bootstrap_servers: str) -> None:
    topics = unique_topics()
    started_ms = int(time.time() * 1000)
    result = subprocess.run(
        command("--duration", "2"),
        cwd=ROOT,
        env=environment(bootstrap_servers, topics),
        check=False,
        capture_output=True,
        text=True,
        timeout=90,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    done = DONE.search(output)
    assert done is not None, output[-4000:]
    sent = int(done[1])
    assert 0.6 * RATE * 2 <= sent <= RATE * 2 + 2, output[-4000:]  # steady: neither a burst nor a trickle
    assert re.search(r"sent \d+ at \d+/s", output), output[-4000:]  # progress lines
    assert f"{sent} acknowledged" in output, output[-4000:]
    records = read_inputs(bootstrap_servers, topics, sent)
    assert len(records) == sent
    assert {kind for kind, _, _ in records} >= {"hits", "billing"}
    check_records(records, started_ms, int(time.time() * 1000))


def test_ctrl_c_stops_it_with_everything_sent(bootstrap_servers: str) -> None:
    topics = unique_topics()
    started_ms = int(time.time() * 1000)
    process = subprocess.Popen(
        command(),  # no --duration: until Ctrl-C
        cwd=ROOT,
        env=environment(bootstrap_servers, topics),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def read_lines() -> None:
        for line in process.stdout or ():
            lines.put(line)

    threading.Thread(target=read_lines, daemon=True).start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while not any(re.search(r"sent \d+ at", line) for line in seen):  # sending, past the topic setup
            assert time.monotonic() < deadline and process.poll() is None, "".join(seen)
            try:
                seen.append(lines.get(timeout=0.5))
            except queue.Empty:
                pass
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    time.sleep(0.2)  # the reader thread drains the pipe
    while not lines.empty():
        seen.append(lines.get())
    output = "".join(seen)
    assert "interrupted" in output, output
    done = DONE.search(output)
    assert done is not None and int(done[1]) > 0, output
    records = read_inputs(bootstrap_servers, topics, int(done[1]))
    assert len(records) == int(done[1]), output
    check_records(records, started_ms, int(time.time() * 1000))
