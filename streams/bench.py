"""`usage-detector bench`: the detector measured side by side with a raw Kafka consumer.

One run, one broker, fresh topics and app ids (`bench-<tag>...`, deleted at the end):

1. baseline   a raw aiokafka consumer reads the pre-filled input topics from the start and
              decodes every value with orjson (records/s);
2. detector   a `usage-detector worker` subprocess processes the same topics from the start
              until caught up (its consumer group's committed offsets reach the end offsets of
              the inputs and of its internal topics); records/s and the ratio 2/1;
3. lag        the same worker, fed at a steady half of rate 2: usage-start lag from the input
              record's timestamp to its `usage.state` record's, both LogAppendTime (the
              broker's clock);
4. scale      per account count (10k, 100k, 1M): a fresh worker learns every account until
              caught up, is stopped, the steady hits over those accounts are produced, and the
              worker restarted on its state reads them: steady-state hits/s, and its RSS
              (every point's steady hits hold as many usage starts: the smallest point's);
5. restart    the largest scale worker is stopped, more records arrive, a new worker starts
              on the same state: time to healthy and to caught up.

Prints a table, writes JSON (with the machine and the settings) and a PNG of the scale curve
(matplotlib, from the `bench` extra) under bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import importlib.metadata
import os
import platform
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from models.timestamps import format_timestamp
from streams.workerpool import TopicSet, free_port

STAGES = ("throughput", "lag", "scale", "restart")
DEFAULT_SCALE = (10_000, 100_000, 1_000_000)
INPUT_PARTITIONS = {"hits": 8, "capi": 2, "billing": 4}
LOG_APPEND = {"message.timestamp.type": "LogAppendTime"}
COMPACTED_LOG_APPEND = {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000", **LOG_APPEND}
POLL_S = 0.25
HEALTH_TIMEOUT_S = 120.0

# What the hits look like (about 500 bytes, as the collectors send them).
PAGES = ("/", "/", "/pricing", "/products/{item}", "/products/{item}", "/blog/{item}", "/cart", "/checkout")
ITEMS = ("linen-shirt", "trail-runner", "espresso-blend", "gift-card", "summer-sale", "how-we-roast", "size-guide")
HIT_EVENTS = ("page_view", "page_view", "page_view", "add_to_cart", "click")
REFERRERS = ("https://www.google.com/", "https://www.bing.com/", "https://t.co/", "", "https://news.ycombinator.com/")
LANGUAGES = ("en-US", "en-GB", "de-DE", "fr-FR", "es-ES", "ja-JP")
SCREENS = ("1920x1080", "1440x900", "390x844", "412x915", "2560x1440")
USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36",
)
WORDS = ("blue", "north", "urban", "quiet", "bright", "little", "green", "copper", "wild", "golden")
KINDS = ("fox", "harbor", "bakery", "outfitters", "garden", "studio", "supply", "roasters", "threads", "cycles")
START_MS = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp() * 1000)
DAY_MS = 86_400_000


# ---------------------------------------------------------------------------------------------
# Output


class Progress:
    """One status line, rewritten in place on a terminal, printed every few seconds otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self._last = 0.0
        self._started = time.monotonic()

    def __call__(self, text: str, force: bool = False) -> None:
        now = time.monotonic()
        stamp = f"[bench {now - self._started:6.1f}s] {text}"
        if self.tty:
            sys.stderr.write("\r\033[K" + stamp)
            sys.stderr.flush()
        elif force or now - self._last >= 5.0:
            print(stamp, file=sys.stderr, flush=True)
            self._last = now

    def done(self, text: str) -> None:
        if self.tty:
            sys.stderr.write("\r\033[K")
        print(f"[bench {time.monotonic() - self._started:6.1f}s] {text}", file=sys.stderr, flush=True)


def human(n: float) -> str:
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if abs(n) >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:.3g}"


# ---------------------------------------------------------------------------------------------
# The workload


def account_id(number: int) -> str:
    return f"acct-{number:07d}"


def website(number: int) -> str:
    return f"https://www.{WORDS[number % 10]}{KINDS[number // 10 % 10]}{number}.com"


def exact(value: bytes) -> bytes:
    """A copy of exactly its size: orjson's bytes keep a buffer of 4 KiB or more, whatever their
    length, which for a million kept records is gigabytes."""
    return memoryview(value).tobytes()


class HitMaker:
    """Realistic Tracking Tag hits of about 500 bytes; both timestamp forms, browser skew."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def hit(self, number: int, received_at: int, hit_id: str | None = None) -> tuple[bytes, bytes, str]:
        rng = self.rng
        acct = account_id(number)
        hit_id = hit_id or f"hit_{rng.getrandbits(64):016x}"
        skew = rng.randint(50, 3_000)
        value = {
            "hit_id": hit_id,
            "account_id": acct,
            "received_at": received_at if rng.random() < 0.4 else format_timestamp(received_at),
            "property_id": f"prop_{number:08x}",
            "event_name": rng.choice(HIT_EVENTS),
            "page_url": website(number) + rng.choice(PAGES).format(item=rng.choice(ITEMS)),
            "occurred_at": received_at - skew if rng.random() < 0.5 else format_timestamp(received_at - skew),
            "click_id": f"gclid_{rng.getrandbits(96):024x}" if rng.random() < 0.3 else None,
            "user_agent": rng.choice(USER_AGENTS),
            "ip": f"{rng.randint(11, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
            "referrer": rng.choice(REFERRERS),
            "session_id": f"sess_{rng.getrandbits(64):016x}",
            "language": rng.choice(LANGUAGES),
            "screen": rng.choice(SCREENS),
            "collector": f"collector-{rng.randint(1, 12)}.eu-west-1",
        }
        if value["click_id"] is None:
            del value["click_id"]
        return acct.encode(), exact(orjson.dumps(value)), hit_id


def billing_records(rng: random.Random, number: int) -> list[tuple[bytes, bytes]]:
    """A trial account: trial_started (with an identity of its own) and the trial's charge."""
    acct = account_id(number)
    started = START_MS + rng.randint(0, 10 * DAY_MS)
    trial = {
        "event_id": f"evt_{rng.getrandbits(64):016x}",
        "account_id": acct,
        "type": "trial_started",
        "occurred_at": format_timestamp(started),
        "trial_ends_at": format_timestamp(started + 7 * DAY_MS),
        "identity": {
            "email": f"owner{number}@{website(number)[12:]}",
            "card_fingerprint": f"fp_{rng.getrandbits(64):016x}",
            "device_id": f"dev_{rng.getrandbits(64):016x}",
            "website": website(number),
            "signup_ip": f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        },
    }
    charge = {
        "event_id": f"evt_{rng.getrandbits(64):016x}",
        "account_id": acct,
        "type": "charged",
        "occurred_at": started + 7 * DAY_MS + 60_000,
        "charge_id": f"ch_{rng.getrandbits(64):016x}",
        "amount_cents": rng.choice((2_900, 7_900, 19_900)),
        "currency": "USD",
        "reason": "trial_conversion",
    }
    return [(acct.encode(), exact(orjson.dumps(trial))), (acct.encode(), exact(orjson.dumps(charge)))]


@dataclass
class Workload:
    """What one topic set is pre-filled with.

    `accounts` accounts: `trial_share` of them are trial accounts (trial_started with an
    identity, then charged for the trial); half of those (or `starting` of them) start using the
    product during the run (their first hit comes at a random point, a few more follow), the
    others never do.
    The others are established accounts, sending `hits` hits with a skewed activity (a few
    busy, many quiet). With `warm`, every established account's first hit comes before them,
    so the measured hits run against a detector that knows every account.
    """

    accounts: int
    hits: int
    seed: int = 1
    trial_share: float = 0.1
    warm: bool = False
    starting: int | None = None
    hit_records: list[tuple[bytes, bytes]] = field(default_factory=list)
    billing: list[tuple[bytes, bytes]] = field(default_factory=list)
    warm_hits: int = 0
    established: int = 0
    starters: int = 0

    def build(self) -> Workload:
        rng = random.Random(self.seed)
        maker = HitMaker(self.seed + 1)
        trials = max(1, int(self.accounts * self.trial_share))
        self.established = established = self.accounts - trials
        self.billing = [record for number in range(established, self.accounts) for record in billing_records(rng, number)]
        rng.shuffle(self.billing)
        clock = START_MS + 20 * DAY_MS
        if self.warm:
            order = list(range(established))
            rng.shuffle(order)
            for number in order:
                clock += 1
                key, value, _ = maker.hit(number, clock)
                self.hit_records.append((key, value))
            self.warm_hits = established
        # Positions in the measured stream: established accounts' hits, skewed towards low numbers,
        # and each starting trial account's hits from a random point on.
        slots: list[tuple[float, int]] = []
        starters = list(range(established, self.accounts, 2))[: self.starting]
        self.starters = len(starters)
        per_starter = 5
        steady = max(0, self.hits - per_starter * len(starters))
        for _ in range(steady):
            slots.append((rng.random(), int(established * rng.random() ** 2)))
        for number in starters:
            begin = rng.random()
            slots.extend((begin + (1 - begin) * (k / per_starter) * rng.random(), number) for k in range(per_starter))
        slots.sort()
        step = max(1, (40 * DAY_MS) // max(1, len(slots)))
        for _, number in slots:
            clock += step
            jitter = rng.randint(0, 5_000) if rng.random() < 0.02 else 0  # a collector a little late
            key, value, _ = maker.hit(number, clock - jitter)
            self.hit_records.append((key, value))
        return self

    @property
    def measured_hits(self) -> int:
        return len(self.hit_records) - self.warm_hits

    @property
    def total(self) -> int:
        return len(self.hit_records) + len(self.billing)

    @property
    def mean_hit_bytes(self) -> float:
        sample = self.hit_records[: 10_000]
        return sum(len(v) for _, v in sample) / max(1, len(sample))


# ---------------------------------------------------------------------------------------------
# Kafka


def fresh_topics(run_tag: str, stage: str) -> TopicSet:
    prefix = f"bench-{run_tag}-{stage}"
    return TopicSet.named(prefix, app_id=prefix)


def create_topics(servers: str, topics: TopicSet, partitions: int) -> None:
    """Inputs and usage.state with LogAppendTime, so both ends of the lag are the broker's clock."""
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=servers, client_id="usage-detector-bench")
    try:
        admin.create_topics(
            [
                NewTopic(topics.hits, INPUT_PARTITIONS["hits"], 1, topic_configs=LOG_APPEND),
                NewTopic(topics.capi, INPUT_PARTITIONS["capi"], 1, topic_configs=LOG_APPEND),
                NewTopic(topics.billing, INPUT_PARTITIONS["billing"], 1, topic_configs=LOG_APPEND),
                NewTopic(topics.usage, partitions, 1, topic_configs=COMPACTED_LOG_APPEND),
            ]
        )
    finally:
        admin.close()


def delete_topics(servers: str, prefix: str) -> list[str]:
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=servers, client_id="usage-detector-bench")
    try:
        doomed = [name for name in admin.list_topics() if name.startswith(prefix)]
        for start in range(0, len(doomed), 20):
            admin.delete_topics(doomed[start : start + 20])
        return doomed
    finally:
        admin.close()


async def produce(servers: str, topic: str, records: list[tuple[bytes, bytes]], progress: Progress, what: str) -> float:
    """Publishes as fast as the broker takes it; returns the seconds it took."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=servers, acks=1, linger_ms=20, max_batch_size=1 << 20, max_request_size=8 << 20
    )
    await producer.start()
    started = time.monotonic()
    try:
        pending: list[asyncio.Future[Any]] = []
        for index, (key, value) in enumerate(records, start=1):
            pending.append(await producer.send(topic, value=value, key=key))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
                progress(f"{what}: produced {human(index)}/{human(len(records))}")
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.monotonic() - started


async def raw_consume(
    servers: str, topics: list[str], expected: int, progress: Progress, handle: Callable[[Any], object] | None = None
) -> dict[str, float]:
    """The baseline: read every record from the start and decode it with orjson.

    Timed like the worker: from the moment it has its partitions to the last record decoded.
    With `handle`, each record goes to it instead (a reference: the detector's own routing
    work without Faust around it).
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=servers, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        cluster = await consumer._client.fetch_all_metadata()  # noqa: SLF001 - partitions of unsubscribed topics
        partitions = [TopicPartition(t, p) for t in topics for p in sorted(cluster.partitions_for_topic(t) or ())]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        count = nbytes = keys = 0
        first = last = time.monotonic()
        while count < expected:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for messages in batches.values():
                for message in messages:
                    if handle is None:
                        keys += len(orjson.loads(message.value))
                    else:
                        handle(message)
                    nbytes += len(message.value)
                count += len(messages)
            last = time.monotonic()
            progress(f"{'baseline' if handle is None else 'route without Faust'}: {human(count)}/{human(expected)} records")
    finally:
        await consumer.stop()
    seconds = max(last - first, 1e-6)
    return {"records": count, "seconds": seconds, "records_per_s": count / seconds, "mb_per_s": nbytes / seconds / 1e6}


def route_without_faust(topics: TopicSet) -> Callable[[Any], object]:
    """route-inputs' own work per record (the fast lane, else full decode and translation, the
    usage filter), on a raw consumer: what the routing costs without Faust's per-message machinery.
    Sends are left out (only usage starts and dead letters send)."""
    from models.codec import decode
    from models.errors import InvalidRecord
    from policy.translate import Translator
    from streams.agents import BILLING, CAPI, HITS
    from streams.hit_gate import DominatedHits
    from streams.usage_filter import EarliestForwarded

    edge = Translator(b"bench")
    forwarded = EarliestForwarded(1_000_000)
    limit = 262_144
    dominated = DominatedHits(forwarded, limit)
    decoders = {
        topics.hits: lambda value: edge.hit(decode(HITS, value, limit)),
        topics.capi: lambda value: edge.capi(decode(CAPI, value, limit)),
        topics.billing: lambda value: edge.billing(decode(BILLING, value, limit)),
    }

    def handle(message: Any) -> object:
        if message.topic == topics.hits and dominated(message.value):
            return None
        try:
            record = decoders[message.topic](message.value)
        except InvalidRecord as error:
            return error
        evidence = getattr(record, "evidence", None)
        return forwarded.admit(record.account_id, evidence.received_at) if evidence is not None else record

    return handle


class GroupWatch:
    """Committed offsets of the worker's consumer group against the end offsets (kafka-python)."""

    def __init__(self, servers: str, topics: TopicSet) -> None:
        from kafka import KafkaConsumer
        from kafka.admin import KafkaAdminClient

        self.group = topics.app_id
        self.inputs = topics.inputs
        self.internal = topics.internal
        self.admin = KafkaAdminClient(bootstrap_servers=servers, client_id="usage-detector-bench-watch")
        self.consumer = KafkaConsumer(bootstrap_servers=servers, group_id=None, enable_auto_commit=False)
        self._partitions: dict[str, list[Any]] = {}

    def partitions(self, topic: str) -> list[Any]:
        from kafka import TopicPartition

        if not self._partitions.get(topic):
            found = self.consumer.partitions_for_topic(topic) or set()
            self._partitions[topic] = [TopicPartition(topic, p) for p in sorted(found)]
        return self._partitions[topic]

    def sample(self) -> tuple[int, int, int, int]:
        """(committed on inputs, end of inputs, committed on internal topics, end of internal)."""
        offsets = self.admin.list_group_offsets({self.group: None}).get(self.group) or {}
        committed = {tp: meta.offset for tp, meta in offsets.items()}
        out = []
        for topics in (self.inputs, self.internal):
            tps = [tp for topic in topics for tp in self.partitions(topic)]
            ends = self.consumer.end_offsets(tps) if tps else {}
            out += [sum(max(0, committed.get(tp, 0)) for tp in tps), sum(ends.values())]
        return out[0], out[1], out[2], out[3]

    def close(self) -> None:
        self.admin.close()
        self.consumer.close()


@dataclass
class CatchUp:
    seconds: float
    samples: list[tuple[float, int]]  # (seconds since start, committed input records)
    cpu: list[float]  # the worker's CPU seconds at each sample

    def rate_between(self, low: int, high: int) -> float:
        """Records per second while the committed count went from `low` to `high` (interpolated)."""
        t_low, t_high = self.time_at(low), self.time_at(high)
        return (high - low) / max(t_high - t_low, 1e-6)

    def cpu_per_record_between(self, low: int, high: int) -> float:
        """The worker's CPU microseconds per record while the committed count went from low to high."""
        t_low, t_high = self.time_at(low), self.time_at(high)
        return (self.cpu_at(t_high) - self.cpu_at(t_low)) / max(1, high - low) * 1e6

    def cpu_at(self, t: float) -> float:
        previous = (0.0, 0.0)
        for (ts, _), used in zip(self.samples, self.cpu):
            if ts >= t:
                t0, c0 = previous
                return c0 + (used - c0) * (t - t0) / max(ts - t0, 1e-9)
            previous = (ts, used)
        return self.cpu[-1] if self.cpu else 0.0

    def time_at(self, count: int) -> float:
        previous = (0.0, 0)
        for t, n in self.samples:
            if n >= count:
                (t0, n0) = previous
                return t0 + (t - t0) * (count - n0) / max(1, n - n0)
            previous = (t, n)
        return self.samples[-1][0]


def wait_caught_up(
    watch: GroupWatch,
    worker: WorkerProcess,
    progress: Progress,
    what: str,
    timeout: float,
    on_sample: Callable[[int], None] | None = None,
    max_rss: int = 0,
) -> CatchUp:
    """Until the group's committed offsets equal the end offsets of inputs and internal topics.

    Raises RssLimit when the worker's RSS goes over `max_rss` (a shared machine stays usable).
    """
    started = time.monotonic()
    samples: list[tuple[float, int]] = []
    cpu: list[float] = []
    cpu_start = worker.cpu_seconds()
    stable = 0
    while True:
        worker.check_alive()
        done_in, end_in, done_internal, end_internal = watch.sample()
        elapsed = time.monotonic() - started
        samples.append((elapsed, done_in))
        cpu.append(worker.cpu_seconds() - cpu_start)
        if on_sample is not None:
            on_sample(done_in)
        rss = worker.rss()
        progress(
            f"{what}: inputs {human(done_in)}/{human(end_in)}, internal {human(done_internal)}/{human(end_internal)},"
            f" {elapsed:.0f}s, RSS {rss / 2**20:.0f} MiB, CPU {cpu[-1] / max(elapsed, 1e-3):.0%}"
        )
        if max_rss and rss > max_rss:
            raise RssLimit(f"{what}: worker RSS {rss / 2**30:.1f} GiB over the limit of {max_rss / 2**30:.1f} GiB", rss, done_in)
        if done_in >= end_in and done_internal >= end_internal:
            stable += 1
            if stable >= 2:
                # The first sample that showed it all done is when it was caught up.
                first_done = next(t for t, n in samples if n >= end_in)
                return CatchUp(seconds=max(first_done, samples[-2][0]), samples=samples, cpu=cpu)
        else:
            stable = 0
        if elapsed > timeout:
            raise BenchFailed(f"{what}: not caught up within {timeout:.0f}s (worker log: {worker.log_path})")
        time.sleep(POLL_S)


# ---------------------------------------------------------------------------------------------
# The worker as its own process


class BenchFailed(Exception):
    pass


class RssLimit(BenchFailed):
    def __init__(self, message: str, rss: int, committed: int) -> None:
        super().__init__(message)
        self.rss = rss
        self.committed = committed


class WorkerProcess:
    """`usage-detector worker` as a subprocess, configured through the environment."""

    def __init__(self, servers: str, topics: TopicSet, state_dir: Path, partitions: int, extra_env: dict[str, str]) -> None:
        self.port = free_port()
        state_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir = state_dir
        self.log_path = state_dir.parent / f"{topics.app_id}-worker-{self.port}.log"
        self.env = {
            **os.environ,
            **topics.env(),
            "KAFKA_BOOTSTRAP_SERVERS": servers,
            "USAGE_DETECTOR_PARTITIONS": str(partitions),
            "USAGE_DETECTOR_WEB_PORT": str(self.port),
            "USAGE_DETECTOR_API_TOKEN": secrets.token_hex(16),
            "USAGE_DETECTOR_STATE_DIR": str(state_dir),
            **extra_env,
        }
        self.started = time.monotonic()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(Path(sys.executable).with_name("usage-detector")), "worker"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.pid = self.process.pid

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise BenchFailed(f"worker exited with {self.process.returncode}:\n{self.log_tail()}")

    def wait_healthy(self, timeout: float = HEALTH_TIMEOUT_S) -> float:
        """Seconds from start until GET /healthz answers 200."""
        deadline = self.started + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1.0) as response:
                    if response.status == 200:
                        return time.monotonic() - self.started
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        raise BenchFailed(f"worker not healthy within {timeout:.0f}s:\n{self.log_tail()}")

    def status(self, field_name: str) -> int:
        """A /proc/<pid>/status memory field (VmRSS, VmHWM) in bytes."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def rss(self) -> int:
        return self.status("VmRSS")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the worker process so far (all its threads)."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return 0.0

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 60.0) -> float:
        """SIGTERM, wait; the seconds the graceful stop took."""
        started = time.monotonic()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return time.monotonic() - started


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


# ---------------------------------------------------------------------------------------------
# Profiling (optional: py-spy)


def start_profile(pid: int, seconds: float, output: Path) -> subprocess.Popen[bytes] | None:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists() and not shutil.which("py-spy"):
        print("[bench] --profile: py-spy not found (pip install py-spy); skipping the profile", file=sys.stderr)
        return None
    command = [py_spy, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))), "--rate", "200",
               "--format", "raw", "--output", str(output)]  # fmt: skip
    if os.geteuid() != 0:
        command.append("--nonblocking")  # less exact stacks, but needs no ptrace rights
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarise_profile(collapsed: Path, top: int = 15) -> dict[str, list[tuple[str, float]]]:
    """Top functions by own time and by time including callees, as shares of all samples."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [frame.split(" (")[0] + " (" + frame.split(" (")[-1].split(":")[0].rsplit("/", 1)[-1] + ")"
                  for frame in stack.split(";") if frame]  # fmt: skip
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    share = lambda c: [(name, round(n / max(1, total), 4)) for name, n in c.most_common(top)]  # noqa: E731
    return {"samples": [("all", total)], "own": share(own), "inclusive": share(inclusive)}  # type: ignore[list-item]


# ---------------------------------------------------------------------------------------------
# The stages


@dataclass
class Options:
    hits: int
    accounts: int
    stages: tuple[str, ...]
    scale_accounts: tuple[int, ...]
    scale_hits: int
    lag_seconds: float
    restart_hits: int
    partitions: int
    out: Path
    label: str
    keep_topics: bool
    profile: bool
    tiny: bool
    timeout: float
    max_rss: int = 0
    scale_trial_share: float = 0.1


class Bench:
    def __init__(self, options: Options, servers: str) -> None:
        self.o = options
        self.servers = servers
        self.tag = uuid.uuid4().hex[:8]
        self.workdir = Path(tempfile.mkdtemp(prefix=f"usage-detector-bench-{self.tag}-"))
        self.progress = Progress()
        self.workers: list[WorkerProcess] = []
        self.results: dict[str, Any] = {}

    def worker(self, topics: TopicSet, state_dir: Path) -> WorkerProcess:
        worker = WorkerProcess(self.servers, topics, state_dir, self.o.partitions, {})
        self.workers.append(worker)
        return worker

    def prefill(self, topics: TopicSet, what: str, hits: list[tuple[bytes, bytes]], billing: list[tuple[bytes, bytes]]) -> float:
        seconds = asyncio.run(produce(self.servers, topics.hits, hits, self.progress, f"{what} hits"))
        seconds += asyncio.run(produce(self.servers, topics.billing, billing, self.progress, f"{what} billing"))
        self.progress.done(f"{what}: {human(len(hits) + len(billing))} records produced in {seconds:.1f}s")
        return seconds

    # 1, 2, 3 ------------------------------------------------------------------------------------

    def throughput_and_lag(self) -> None:
        o = self.o
        topics = fresh_topics(self.tag, "tp")
        self.progress.done(f"throughput: generating {human(o.hits)} hits over {human(o.accounts)} accounts")
        workload = Workload(accounts=o.accounts, hits=o.hits, seed=11).build()
        create_topics(self.servers, topics, o.partitions)
        self.prefill(topics, "throughput", workload.hit_records, workload.billing)
        self.results["workload"] = {
            "hits": len(workload.hit_records),
            "billing_events": len(workload.billing),
            "accounts": o.accounts,
            "trial_accounts": o.accounts - workload.established,
            "accounts_starting_during_run": workload.starters,
            "mean_hit_bytes": round(workload.mean_hit_bytes, 1),
        }
        if "throughput" in o.stages:
            baseline = asyncio.run(raw_consume(self.servers, list(topics.inputs), workload.total, self.progress))
            self.results["baseline"] = baseline
            self.progress.done(f"baseline: {human(baseline['records_per_s'])} records/s (raw aiokafka + orjson)")
            reference = asyncio.run(
                raw_consume(self.servers, list(topics.inputs), workload.total, self.progress, route_without_faust(topics))
            )
            reference["ratio"] = reference["records_per_s"] / baseline["records_per_s"]
            self.results["route_without_faust"] = reference
            self.progress.done(f"route without Faust: {human(reference['records_per_s'])} records/s (a reference, not the detector)")
        worker = self.worker(topics, self.workdir / "tp-state")
        ready = worker.wait_healthy()
        watch = GroupWatch(self.servers, topics)
        profiler = None
        if o.profile:
            estimate = workload.total / 5_000
            profiler = start_profile(worker.pid, min(60.0, max(5.0, estimate * 0.6)), self.profile_path("throughput"))
        caught = wait_caught_up(watch, worker, self.progress, "detector", o.timeout, max_rss=o.max_rss)
        rate = workload.total / caught.seconds
        total = workload.total
        self.results["detector"] = {
            "records": total,
            "seconds": caught.seconds,
            "records_per_s": rate,
            "steady_records_per_s": caught.rate_between(int(total * 0.1), int(total * 0.9)),
            "cpu_us_per_record": caught.cpu[-1] / total * 1e6,
            "cpu_share": caught.cpu[-1] / caught.seconds,
            "ready_s": ready,
            "rss_bytes": worker.rss(),
        }
        if "baseline" in self.results:
            self.results["detector"]["ratio"] = rate / self.results["baseline"]["records_per_s"]
        self.progress.done(
            f"detector: {human(rate)} records/s"
            + (f", ratio {self.results['detector']['ratio']:.3f}" if "ratio" in self.results["detector"] else "")
        )
        if profiler is not None:
            profiler.wait()
            self.record_profile("throughput")
        if "lag" in o.stages:
            self.results["lag"] = asyncio.run(self.lag(topics, worker, rate / 2, workload))
            lag = self.results["lag"]
            self.progress.done(f"lag: p50 {lag['p50_ms']:.0f} ms, p95 {lag['p95_ms']:.0f} ms, p99 {lag['p99_ms']:.0f} ms")
        watch.close()
        worker.stop()

    async def lag(self, topics: TopicSet, worker: WorkerProcess, rate: float, workload: Workload) -> dict[str, Any]:
        """Hits at a steady `rate`; a share are the first hits of new accounts, whose lag is measured."""
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

        o = self.o
        consumer = AIOKafkaConsumer(bootstrap_servers=self.servers, group_id=None, enable_auto_commit=False)
        await consumer.start()
        cluster = await consumer._client.fetch_all_metadata()  # noqa: SLF001
        parts = [TopicPartition(topics.usage, p) for p in sorted(cluster.partitions_for_topic(topics.usage) or ())]
        consumer.assign(parts)
        await consumer.seek_to_end(*parts)
        for tp in parts:
            await consumer.position(tp)
        producer = AIOKafkaProducer(bootstrap_servers=self.servers, acks=1, linger_ms=0)
        await producer.start()
        maker = HitMaker(99)
        rng = random.Random(5)
        new_share = 0.02
        sent: dict[str, asyncio.Future[Any]] = {}
        count = 0
        first_new = o.accounts + 1_000_000
        started = time.monotonic()
        tick = 0.005
        try:
            while (elapsed := time.monotonic() - started) < o.lag_seconds:
                due = int(rate * elapsed) - count
                for _ in range(due):
                    now = time.time_ns() // 1_000_000
                    if rng.random() < new_share:
                        number = first_new + len(sent)
                        key, value, hit_id = maker.hit(number, now)
                        sent[hit_id] = await producer.send(topics.hits, value=value, key=key)
                    else:
                        key, value, _ = maker.hit(int(workload.established * rng.random() ** 2), now)
                        await producer.send(topics.hits, value=value, key=key)
                    count += 1
                self.progress(f"lag: {count} hits sent at {human(rate)}/s, {len(sent)} new accounts, {elapsed:.0f}s")
                await asyncio.sleep(tick)
            produced_s = time.monotonic() - started
            await producer.flush()
            input_ts: dict[str, int] = {}
            for hit_id, future in sent.items():
                meta = await future
                if meta.timestamp_type != 1:
                    raise BenchFailed(f"{topics.hits} is not LogAppendTime (timestamp type {meta.timestamp_type})")
                input_ts[hit_id] = meta.timestamp
            lags: list[float] = []
            by_second: dict[int, float] = {}  # the worst lag of the starts that entered in each second
            first_ts = min(input_ts.values(), default=0)
            deadline = time.monotonic() + 120
            seen: set[str] = set()
            while len(seen) < len(input_ts) and time.monotonic() < deadline:
                worker.check_alive()
                batches = await consumer.getmany(timeout_ms=500, max_records=5_000)
                for messages in batches.values():
                    for message in messages:
                        record = orjson.loads(message.value)
                        hit_id = record.get("first_evidence", {}).get("id")
                        if hit_id in input_ts and hit_id not in seen and record.get("version") == 1:
                            if message.timestamp_type != 1:
                                raise BenchFailed(f"{topics.usage} is not LogAppendTime")
                            seen.add(hit_id)
                            lag = message.timestamp - input_ts[hit_id]
                            lags.append(lag)
                            second = (input_ts[hit_id] - first_ts) // 1000
                            by_second[second] = max(by_second.get(second, 0), lag)
                self.progress(f"lag: {len(seen)}/{len(input_ts)} usage records back")
        finally:
            await producer.stop()
            await consumer.stop()
        if not lags:
            raise BenchFailed("lag: no usage.state record came back")
        lags.sort()
        pick = lambda q: float(lags[min(len(lags) - 1, int(q * len(lags)))])  # noqa: E731
        return {
            "target_hits_per_s": rate,
            "achieved_hits_per_s": count / produced_s,
            "seconds": produced_s,
            "hits": count,
            "samples": len(lags),
            "missing": len(input_ts) - len(lags),
            "p50_ms": pick(0.50),
            "p95_ms": pick(0.95),
            "p99_ms": pick(0.99),
            "max_ms": float(lags[-1]),
            "mean_ms": sum(lags) / len(lags),
            "worst_ms_by_second": [by_second.get(second, 0) for second in range(max(by_second, default=-1) + 1)],
        }

    # 4, 5 ---------------------------------------------------------------------------------------

    def scale(self) -> None:
        o = self.o
        rows = []
        largest = max(o.scale_accounts)
        # Every point gets as many steady hits with as many usage starts among them (those of the
        # smallest point, built first): the points differ only in how many accounts the worker knows.
        starting: int | None = None
        for accounts in sorted(o.scale_accounts):
            what = f"scale {human(accounts)}"
            self.progress.done(f"{what}: generating {human(accounts)} accounts + {human(o.scale_hits)} steady hits")
            topics = fresh_topics(self.tag, f"s{accounts}")
            workload = Workload(
                accounts=accounts, hits=o.scale_hits, seed=accounts, warm=True, trial_share=o.scale_trial_share, starting=starting
            ).build()
            starting = workload.starters
            warm = workload.warm_hits + len(workload.billing)
            span = workload.measured_hits
            create_topics(self.servers, topics, o.partitions)
            # Learning first (every account's first hit, the billing), until the worker has caught
            # up on its internal topics too; only then the steady hits arrive, so that they are
            # measured alone, not beside the tail of the learning.
            self.prefill(topics, f"{what} learning", workload.hit_records[: workload.warm_hits], workload.billing)
            state_dir = self.workdir / f"scale-{accounts}-state"
            worker = self.worker(topics, state_dir)
            worker.wait_healthy()
            idle_rss = worker.rss()
            watch = GroupWatch(self.servers, topics)
            profiler: list[subprocess.Popen[bytes] | None] = []

            def profile_steady(done: int) -> None:
                # The steady part's profile: from when the worker has learnt every account.
                if o.profile and not profiler and done >= workload.warm_hits + len(workload.billing) + span // 5:
                    seconds = min(60.0, max(5.0, span / 20_000))
                    profiler.append(start_profile(worker.pid, seconds, self.profile_path(f"scale-{accounts}")))

            try:
                learnt_in = wait_caught_up(watch, worker, self.progress, f"{what} learning", o.timeout, max_rss=o.max_rss)
                worker.stop()
                self.prefill(topics, f"{what} steady", workload.hit_records[workload.warm_hits :], [])
                worker = self.worker(topics, state_dir)  # the same state: it knows every account
                worker.wait_healthy(timeout=o.timeout)
                caught = wait_caught_up(watch, worker, self.progress, what, o.timeout, profile_steady, o.max_rss)
            except RssLimit as exc:
                # Stopped before learning every account: report how far it got and the memory slope.
                learnt = min(accounts, exc.committed)
                rows.append({
                    "accounts": accounts,
                    "aborted": str(exc),
                    "inputs_committed": exc.committed,
                    "rss_bytes": exc.rss,
                    "idle_rss_bytes": idle_rss,
                    "added_bytes_per_account": max(0, exc.rss - idle_rss) / max(1, learnt),
                })  # fmt: skip
                self.progress.done(f"{what}: aborted, {exc}")
                watch.close()
                worker.stop()
                if accounts == largest and "restart" in o.stages:
                    self.results["restart"] = {"accounts": accounts, "skipped": "the scale point did not finish"}
                if not o.keep_topics:
                    delete_topics(self.servers, topics.prefix)
                    shutil.rmtree(state_dir, ignore_errors=True)
                self.results["scale"] = rows
                self.save()
                continue
            if profiler and profiler[0] is not None:
                profiler[0].wait()
                self.record_profile(f"scale-{accounts}")
            # Steady state: the measured hits, after the learning that taught the worker every account.
            steady = caught.rate_between(warm + int(span * 0.1), warm + int(span * 0.9))
            rss = worker.rss()
            row = {
                "accounts": accounts,
                "warm_records": warm,
                "warm_seconds": learnt_in.seconds,
                "steady_hits": span,
                "usage_starts": workload.starters,
                "hits_per_s": steady,
                "cpu_us_per_hit": caught.cpu_per_record_between(warm + int(span * 0.1), warm + int(span * 0.9))
                or caught.cpu[-1] / span * 1e6,  # a window too short for the CPU clock: all of it
                "records_per_s_overall": workload.total / caught.seconds,
                "rss_bytes": rss,
                "idle_rss_bytes": idle_rss,
                "peak_rss_bytes": worker.status("VmHWM"),
                "bytes_per_account": rss / accounts,
                "added_bytes_per_account": max(0, rss - idle_rss) / accounts,
                "state_dir_bytes": dir_bytes(state_dir),
            }
            rows.append(row)
            self.progress.done(
                f"{what}: {human(steady)} hits/s steady, RSS {rss / 2**20:.0f} MiB"
                f" ({row['bytes_per_account']:.0f} B/account)"
            )
            watch.close()
            if accounts == largest and "restart" in o.stages:
                self.results["restart"] = self.restart(topics, worker, state_dir, workload, accounts)
            else:
                worker.stop()
            if not o.keep_topics:
                delete_topics(self.servers, topics.prefix)
                shutil.rmtree(state_dir, ignore_errors=True)
            self.results["scale"] = rows
            self.save()

    def restart(self, topics: TopicSet, worker: WorkerProcess, state_dir: Path, workload: Workload, accounts: int) -> dict[str, Any]:
        """Stop the worker, let records arrive, start a new one on the same state."""
        what = f"restart {human(accounts)}"
        stop_s = worker.stop()
        maker = HitMaker(7)
        rng = random.Random(8)
        now = time.time_ns() // 1_000_000
        extra = [maker.hit(int(workload.established * rng.random() ** 2), now + i)[:2] for i in range(self.o.restart_hits)]
        asyncio.run(produce(self.servers, topics.hits, extra, self.progress, f"{what} extra hits"))
        restarted = self.worker(topics, state_dir)
        healthy = restarted.wait_healthy(timeout=self.o.timeout)
        watch = GroupWatch(self.servers, topics)
        caught = wait_caught_up(watch, restarted, self.progress, what, self.o.timeout, max_rss=self.o.max_rss)
        watch.close()
        result = {
            "accounts": accounts,
            "stop_s": stop_s,
            "extra_hits": len(extra),
            "healthy_s": healthy,
            "caught_up_s": healthy + caught.seconds,
            "rss_bytes": restarted.rss(),
        }
        restarted.stop()
        self.progress.done(f"{what}: healthy after {healthy:.1f}s, caught up after {result['caught_up_s']:.1f}s")
        return result

    # ------------------------------------------------------------------------------------------

    def profile_path(self, stage: str) -> Path:
        return self.o.out / f"{self.o.label}-profile-{stage}.txt"

    def record_profile(self, stage: str) -> None:
        path = self.profile_path(stage)
        if path.exists():
            self.results.setdefault("profiles", {})[stage] = summarise_profile(path)

    def run(self) -> dict[str, Any]:
        o = self.o
        o.out.mkdir(parents=True, exist_ok=True)
        self.results = {
            "label": o.label,
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(self.servers),
            "settings": bench_settings(o),
        }
        try:
            if "throughput" in o.stages or "lag" in o.stages:
                self.throughput_and_lag()
                self.save()
            if "scale" in o.stages:
                self.scale()
        except (BenchFailed, KeyboardInterrupt) as exc:
            self.results["error"] = str(exc) or exc.__class__.__name__
            self.results["worker_logs"] = str(self.workdir)  # kept for a look at what went wrong
        finally:
            for worker in self.workers:
                worker.stop()
            if not o.keep_topics:
                delete_topics(self.servers, f"bench-{self.tag}")
            if "error" not in self.results:
                shutil.rmtree(self.workdir, ignore_errors=True)
            else:  # worker logs only: the state can be large
                for state in self.workdir.glob("*-state"):
                    shutil.rmtree(state, ignore_errors=True)
        self.results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        self.save()
        return self.results

    @property
    def json_path(self) -> Path:
        return self.o.out / f"{self.o.label}.json"

    def save(self) -> None:
        """The results so far: a run cut short still leaves what it measured."""
        options = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
        self.json_path.write_bytes(orjson.dumps(self.results, option=options) + b"\n")


# ---------------------------------------------------------------------------------------------
# Reporting


def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def machine(servers: str) -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) * 1024
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_bytes": memory,
        "os": platform.platform(),
        "python": platform.python_version(),
        "kafka_broker": kafka_broker_version(servers),
        "bootstrap_servers": servers,
        "packages": {name: version(name) for name in ("faust-streaming", "aiokafka", "kafka-python", "orjson", "pydantic", "rocksdict")},
    }


def kafka_broker_version(servers: str) -> str:
    try:
        from kafka import KafkaConsumer

        consumer = KafkaConsumer(bootstrap_servers=servers)
        try:
            found = consumer.config.get("api_version") or consumer._client.check_version()  # noqa: SLF001
        finally:
            consumer.close()
        api = ".".join(str(part) for part in found) if isinstance(found, tuple) else str(found)
    except Exception as exc:  # noqa: BLE001 - the version is informational
        api = f"unknown ({exc.__class__.__name__})"
    pom = Path(__file__).resolve().parent.parent / "localkafka" / "pom.xml"
    try:
        text = pom.read_text()
        local = text.split("<kafka.version>", 1)[1].split("<", 1)[0]
    except (OSError, IndexError):
        local = "unknown"
    return f"{local} (local broker's jars), api {api}"


def bench_settings(o: Options) -> dict[str, Any]:
    from streams.settings import Settings

    worker = Settings(partitions=o.partitions).model_dump(mode="json", exclude={"api_token", "signal_key"})
    return {
        "bench": {
            "hits": o.hits,
            "accounts": o.accounts,
            "stages": list(o.stages),
            "scale_accounts": list(o.scale_accounts),
            "scale_hits": o.scale_hits,
            "scale_trial_share": o.scale_trial_share,
            "lag_seconds": o.lag_seconds,
            "restart_hits": o.restart_hits,
            "partitions": o.partitions,
            "input_partitions": INPUT_PARTITIONS,
            "tiny": o.tiny,
        },
        "worker": worker,
        "worker_env": {k: v for k, v in os.environ.items() if k.startswith("USAGE_DETECTOR_") and "TOKEN" not in k and "KEY" not in k},
    }


def table(results: dict[str, Any]) -> str:
    lines = [f"usage-detector bench ({results['label']}) on {results['machine']['cpu']}, {results['machine']['cores']} cores"]
    rows: list[tuple[str, str, str]] = []
    if "baseline" in results:
        b = results["baseline"]
        rows.append(("1 baseline (aiokafka + orjson)", f"{b['records_per_s']:,.0f} records/s", f"{b['records']:,} in {b['seconds']:.1f}s"))
    if "route_without_faust" in results:
        f = results["route_without_faust"]
        rows.append(("  reference: route-inputs' work, no Faust", f"{f['records_per_s']:,.0f} records/s", f"{f['ratio']:.3f} of baseline"))
    if "detector" in results:
        d = results["detector"]
        ratio = f"ratio 2/1 = {d['ratio']:.3f}" if "ratio" in d else ""
        rows.append(("2 detector (worker)", f"{d['records_per_s']:,.0f} records/s", f"{ratio}; steady {d['steady_records_per_s']:,.0f}/s"))
    if "lag" in results:
        g = results["lag"]
        rows.append((
            f"3 usage-start lag @ {g['achieved_hits_per_s']:,.0f} hits/s",
            f"p50 {g['p50_ms']:.0f} / p95 {g['p95_ms']:.0f} / p99 {g['p99_ms']:.0f} ms",
            f"{g['samples']} starts, max {g['max_ms']:.0f} ms",
        ))  # fmt: skip
    for row in results.get("scale", []):
        if "aborted" in row:
            rows.append((f"4 scale {human(row['accounts'])} accounts", "aborted", row["aborted"]))
            continue
        rows.append((
            f"4 scale {human(row['accounts'])} accounts",
            f"{row['hits_per_s']:,.0f} hits/s",
            f"RSS {row['rss_bytes'] / 2**20:,.0f} MiB = {row['bytes_per_account']:,.0f} B/account"
            f" (+{row['added_bytes_per_account']:,.0f}); disk {row['state_dir_bytes'] / 2**20:,.0f} MiB",
        ))  # fmt: skip
    if "restart" in results and "skipped" not in results["restart"]:
        r = results["restart"]
        rows.append((f"5 restart on {human(r['accounts'])} accounts", f"caught up in {r['caught_up_s']:.1f}s", f"healthy in {r['healthy_s']:.1f}s"))
    width = [max(len(row[i]) for row in rows) for i in range(3)] if rows else [0, 0, 0]
    for row in rows:
        lines.append("  ".join(cell.ljust(width[i]) for i, cell in enumerate(row)))
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "PNG skipped: matplotlib is not installed (pip install -e '.[bench]' or pip install matplotlib)"
    rows = [row for row in results.get("scale") or [] if "hits_per_s" in row]
    if not rows:
        return "PNG skipped: no scale stage in this run"
    accounts = [row["accounts"] for row in rows]
    fig, left = plt.subplots(figsize=(7, 4.2), dpi=110)
    left.plot(accounts, [row["hits_per_s"] for row in rows], "o-", color="tab:blue", label="hits/s (steady)")
    left.set_xscale("log")
    left.set_xlabel("accounts known to the worker")
    left.set_ylabel("hits/s", color="tab:blue")
    left.set_ylim(0, max(row["hits_per_s"] for row in rows) * 1.2)
    right = left.twinx()
    right.plot(accounts, [row["bytes_per_account"] for row in rows], "s--", color="tab:red", label="RSS bytes/account")
    right.set_ylabel("worker RSS bytes per account", color="tab:red")
    right.set_ylim(0, max(row["bytes_per_account"] for row in rows) * 1.2)
    left.set_title(f"usage-detector scale ({results['label']}, {results['machine']['cores']} cores)")
    left.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return f"wrote {path}"


# ---------------------------------------------------------------------------------------------
# Command line


def count(text: str) -> int:
    text = text.strip().lower().replace("_", "")
    factor = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if factor > 1 else text) * factor)


def register(commands: argparse._SubParsersAction) -> None:
    bench = commands.add_parser(
        "bench",
        help="measure the detector side by side with a raw Kafka consumer (throughput, lag, scale, restart)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.add_argument("--hits", type=count, default=None, help="hits in the throughput topic (default 1M; 5k with --tiny)")
    bench.add_argument("--accounts", type=count, default=None, help="accounts in the throughput topic (default 50k)")
    bench.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated, of: {', '.join(STAGES)} (default: all)")
    bench.add_argument("--scale-accounts", default=None, help="account counts of the scale stage (default 10k,100k,1M)")
    bench.add_argument("--scale-hits", type=count, default=None, help="steady hits per scale point (default 500k)")
    bench.add_argument(
        "--scale-trial-share",
        type=float,
        default=0.1,
        help="share of trial accounts in the scale stage (each costs ~10 internal events: claims, verdicts; default 0.1)",
    )
    bench.add_argument("--lag-seconds", type=float, default=None, help="how long the lag stage produces (default 30)")
    bench.add_argument("--restart-hits", type=count, default=None, help="hits that arrive while the worker is down (default 50k)")
    bench.add_argument("--partitions", type=int, default=8, help="USAGE_DETECTOR_PARTITIONS of the workers (default 8)")
    bench.add_argument("--out", type=Path, default=Path("bench/results"), help="where JSON and PNG go (default bench/results)")
    bench.add_argument("--label", default=None, help="name of this run in file names (default bench-<time>)")
    bench.add_argument("--timeout", type=float, default=1800.0, help="longest wait for a worker to catch up, seconds")
    bench.add_argument("--keep-topics", action="store_true", help="leave the bench's topics on the broker")
    bench.add_argument("--max-rss", type=float, default=8.0, help="GiB: a worker over this is stopped, its stage reported as aborted (0: no limit)")
    bench.add_argument("--profile", action="store_true", help="py-spy the worker in stage 2 and in the steady part of each scale point (needs py-spy)")
    bench.add_argument("--tiny", action="store_true", help="a quick smoke run: small sizes everywhere (seconds, not minutes)")
    bench.set_defaults(run=run_bench)


def options_from(args: argparse.Namespace) -> Options:
    from models.errors import ConfigurationError

    tiny = args.tiny
    stages = tuple(s.strip() for s in args.stages.split(",") if s.strip())
    unknown = [s for s in stages if s not in STAGES]
    if unknown or not stages:
        raise ConfigurationError(f"--stages: unknown {', '.join(unknown) or '(none)'}; choose from {', '.join(STAGES)}")
    if "restart" in stages and "scale" not in stages:
        raise ConfigurationError("--stages: restart runs on the largest scale point; add scale")
    scale = tuple(count(s) for s in args.scale_accounts.split(",")) if args.scale_accounts else None
    label = args.label or f"bench-{datetime.now():%Y%m%d-%H%M%S}"
    return Options(
        hits=args.hits or (5_000 if tiny else 1_000_000),
        accounts=args.accounts or (500 if tiny else 50_000),
        stages=stages,
        scale_accounts=scale or ((500, 1_000) if tiny else DEFAULT_SCALE),
        scale_hits=args.scale_hits or (3_000 if tiny else 500_000),
        lag_seconds=args.lag_seconds or (3.0 if tiny else 30.0),
        restart_hits=args.restart_hits or (500 if tiny else 50_000),
        partitions=args.partitions,
        out=args.out,
        label=label,
        keep_topics=args.keep_topics,
        profile=args.profile,
        tiny=tiny,
        timeout=args.timeout,
        max_rss=int(args.max_rss * 2**30),
        scale_trial_share=args.scale_trial_share,
    )


def run_bench(args: argparse.Namespace) -> int:
    from streams.cli import bootstrap_servers, settings_from

    o = options_from(args)
    servers = bootstrap_servers(settings_from(argparse.Namespace()))
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("[bench] matplotlib is missing: the PNG will be skipped; install it with pip install -e '.[bench]'", file=sys.stderr)
    print(f"[bench] broker {servers}; stages {', '.join(o.stages)}; results in {o.out}/{o.label}.*", file=sys.stderr)
    signal.signal(signal.SIGTERM, _interrupt)  # stop workers and delete topics on the way out
    bench = Bench(o, servers)
    results = bench.run()
    print(table(results))
    print(f"wrote {bench.json_path}")
    print(plot(results, o.out / f"{o.label}-scale.png"))
    if "error" in results:
        print(f"usage-detector bench: {results['error']}", file=sys.stderr)
        return 1
    return 0


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
