"""`usage-detector generate`: realistic input traffic at a steady rate, for load tests and dashboards.

It plays the demo's seeded traffic (tools.traffic) as cohorts: each cohort is `--accounts`
trial accounts living through their weeks, compressed into the time it takes to send their
records at `--rate`. A cohort follows the last one until `--duration` is over or Ctrl-C.

Three things make the records fit to run for hours against one detector:
- time: every timestamp moves from the simulated weeks onto the wall clock of the send
  schedule, in the same order, so `received_at` is about when the record is sent and the
  usage-start lag the workers report is their own;
- accounts: each cohort has its own account ids (`s7c0.acct-001`: seed 7, cohort 0);
- identities: websites, page URLs and emails carry the cohort's tag, so a cohort never looks
  like repeated trials of an earlier one.
The same seed gives the same accounts and records (timestamps aside). The few deliberately
malformed records of tools.traffic are sent as they are, for the dead-letter topic.
"""

from __future__ import annotations

import argparse
import signal
import threading
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
from kafka import KafkaProducer

from streams.kafka_security import KafkaSecurity
from streams.settings import Settings
from streams.topics import TopicNames, ensure_topics
from tools.options import add_setting_options, bootstrap_servers, settings_from
from tools.traffic import Send, Traffic, generate

TIMESTAMP_FIELDS = ("received_at", "occurred_at", "trial_ends_at")
GMAIL_DOMAINS = ("gmail.com", "googlemail.com")
MAX_BEHIND_S = 2.0  # further behind the schedule than this (a stall), the backlog is dropped, not burst out
FLUSH_TIMEOUT_S = 30.0


def clock() -> str:
    return datetime.now().strftime("%H:%M:%S")


class Pacer:
    """A steady schedule: the record at position i is due at `anchor + i / rate` (epoch seconds)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self.anchor = time.time()

    def due(self, position: float) -> float:
        return self.anchor + position * self.interval

    def wait_turn(self, position: int) -> None:
        delay = self.due(position) - time.time()
        if delay > 0:
            time.sleep(delay)
        elif -delay > MAX_BEHIND_S:
            self.anchor -= delay  # restart the schedule from now


@dataclass(frozen=True)
class Cohort:
    """One run of tools.traffic, with its own account ids and identities."""

    tag: str
    traffic: Traffic
    first_position: int  # schedule position of its first record

    @classmethod
    def of(cls, accounts: int, seed: int, number: int, first_position: int) -> Cohort:
        # A seed of its own per (seed, cohort): distinct cards and devices across cohorts and runs.
        return cls(f"s{seed}c{number}", generate(accounts, seed * 1_000_003 + number), first_position)

    def account_id(self, generated: str) -> str:
        return f"{self.tag}.{generated}" if generated in self.traffic.account_ids else generated

    def host(self, host: str) -> str:
        name, dot, tld = host.rpartition(".")
        return f"{name}-{self.tag}.{tld}" if dot else f"{host}-{self.tag}"

    def url(self, url: str) -> str:
        parts = urlsplit(url)
        if not parts.hostname:
            return url
        return urlunsplit(parts._replace(netloc=parts.netloc.replace(parts.hostname, self.host(parts.hostname), 1)))

    def email(self, email: str) -> str:
        local, at, domain = email.rpartition("@")
        if not at:
            return email
        if domain.lower() in GMAIL_DOMAINS:  # dots in the local part do not count there
            return f"{local}.{self.tag}@{domain}"
        return f"{local}@{self.host(domain)}"


class Timeline:
    """Simulated milliseconds -> wall-clock milliseconds, following the cohort's send schedule.

    A moment between two sends maps between their due times; before the first or after the last
    send, simulated time runs at real speed. The map only grows, so the order of every
    timestamp (trial, usage, charge, cancellation) is kept.
    """

    def __init__(self, cohort: Cohort, pacer: Pacer) -> None:
        self._ats = [send.at for send in cohort.traffic.sends]
        self._first = cohort.first_position
        self._pacer = pacer

    def wall_ms(self, simulated_ms: int) -> int:
        ats, due = self._ats, self._pacer.due
        i = bisect_left(ats, simulated_ms)
        if i == 0:
            return round(due(self._first) * 1000) + simulated_ms - ats[0]
        if i == len(ats):
            return round(due(self._first + i - 1) * 1000) + simulated_ms - ats[-1]
        low, high = ats[i - 1], ats[i]
        return round(due(self._first + i - 1 + (simulated_ms - low) / (high - low)) * 1000)


def moved(value: Any, timeline: Timeline) -> Any:
    """A timestamp moved onto the wall clock, in the form the producer used (ms, or RFC 3339 with its offset)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return timeline.wall_ms(value)
    if not isinstance(value, str):
        return value
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is None:
        return value
    ms = timeline.wall_ms(round(moment.timestamp() * 1000))
    text = datetime.fromtimestamp(ms / 1000, tz=moment.tzinfo).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def live_record(send: Send, cohort: Cohort, timeline: Timeline) -> tuple[str, bytes]:
    """(key, value) of a generated record as this cohort sends it now."""
    try:
        record = orjson.loads(send.value)
    except orjson.JSONDecodeError:
        record = None
    if not isinstance(record, dict):
        return cohort.account_id(send.account_id), send.value  # deliberately malformed: as it is
    if isinstance(record.get("account_id"), str):
        record["account_id"] = cohort.account_id(record["account_id"])
    for name in TIMESTAMP_FIELDS:
        if name in record:
            record[name] = moved(record[name], timeline)
    if isinstance(record.get("page_url"), str):
        record["page_url"] = cohort.url(record["page_url"])
    identity = record.get("identity")
    if isinstance(identity, dict):
        if isinstance(identity.get("website"), str):
            identity["website"] = cohort.url(identity["website"])
        if isinstance(identity.get("email"), str):
            identity["email"] = cohort.email(identity["email"])
    return cohort.account_id(send.account_id), orjson.dumps(record)


def live_traffic(accounts: int, seed: int, pacer: Pacer) -> Iterator[tuple[int, str, str, bytes]]:
    """(position, topic kind, key, value) for ever: cohort after cohort, positions counting on."""
    position = 0
    number = 0
    while True:
        cohort = Cohort.of(accounts, seed, number, position)
        timeline = Timeline(cohort, pacer)
        for send in cohort.traffic.sends:
            key, value = live_record(send, cohort, timeline)
            yield position, send.topic, key, value
            position += 1
        number += 1


@dataclass
class Tally:
    """Records handed to the producer, and what Kafka acknowledged (callbacks run on its thread)."""

    sent: Counter[str] = field(default_factory=Counter)
    acknowledged: int = 0
    failures: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def ack(self, _: Any) -> None:
        with self._lock:
            self.acknowledged += 1

    def fail(self, error: Exception) -> None:
        with self._lock:
            self.failures.append(repr(error))

    def line(self) -> str:
        by_topic = ", ".join(f"{kind} {self.sent[kind]}" for kind in ("hits", "capi", "billing"))
        failed = f", {len(self.failures)} failed (e.g. {self.failures[0]})" if self.failures else ""
        return f"({by_topic}); {self.acknowledged} acknowledged{failed}"


def run_generate(
    settings: Settings, rate: float, duration: float | None, accounts: int, seed: int, progress_every: float
) -> int:
    servers = bootstrap_servers(settings)
    security = KafkaSecurity.from_settings(settings)  # the worker's TLS / SASL settings apply here too
    names = TopicNames.from_settings(settings)
    created = ensure_topics(settings, servers)
    if created:
        print(f"{clock()}  created topics: {', '.join(created)}", flush=True)
    topics = {"hits": names.hits, "capi": names.capi, "billing": names.billing}
    until = f"for {duration:g}s" if duration else "until Ctrl-C"
    print(
        f"{clock()}  sending to {', '.join(topics.values())} at {servers}: {rate:g} records/s {until}, "
        f"cohorts of {accounts} accounts, seed {seed}",
        flush=True,
    )
    producer = KafkaProducer(
        bootstrap_servers=servers,
        acks="all",
        linger_ms=10,
        client_id=f"{settings.app_id}-generate",
        **security.kafka_python_config(),
    )
    tally = Tally()
    pacer = Pacer(rate)
    started = time.monotonic()
    next_report, reported, reported_at = started + progress_every, 0, started
    with stop_requested() as stop:
        for position, kind, key, value in live_traffic(accounts, seed, pacer):
            pacer.wait_turn(position)
            now = time.monotonic()
            if stop.is_set():
                print(f"\n{clock()}  interrupted; flushing", flush=True)
                break
            if duration is not None and now - started >= duration:
                break
            if now >= next_report:
                total = sum(tally.sent.values())
                achieved = (total - reported) / (now - reported_at)
                print(f"{clock()}  sent {total} at {achieved:.0f}/s {tally.line()}", flush=True)
                next_report, reported, reported_at = now + progress_every, total, now
            future = producer.send(topics[kind], key=key.encode(), value=value)
            future.add_callback(tally.ack)
            future.add_errback(tally.fail)
            tally.sent[kind] += 1
    elapsed = time.monotonic() - started
    try:
        producer.flush(timeout=FLUSH_TIMEOUT_S)
    except KeyboardInterrupt:
        pass  # a second Ctrl-C: stop waiting for acknowledgements
    finally:
        producer.close(timeout=5)
    total = sum(tally.sent.values())
    print(f"{clock()}  done: sent {total} in {elapsed:.1f}s ({total / max(elapsed, 1e-9):.0f}/s) {tally.line()}")
    return 1 if tally.failures or tally.acknowledged < total else 0


@contextmanager
def stop_requested() -> Iterator[threading.Event]:
    """Ctrl-C (SIGINT) and `docker stop` (SIGTERM) ask the generator to stop between two records.

    A flag, not an exception: a KeyboardInterrupt raised inside `producer.send` could leave a
    record sent but not counted. Outside this block a second Ctrl-C interrupts the flush."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.signal(sig, lambda signum, frame: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be greater than 0, not {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def register(commands: argparse._SubParsersAction) -> None:
    generate_ = commands.add_parser(
        "generate", help="publish realistic traffic to the input topics at a steady rate (load, dashboards)"
    )
    add_setting_options(generate_)
    generate_.add_argument("--rate", type=positive(float), default=100.0, help="records per second (default 100)")
    generate_.add_argument(
        "--duration", type=positive(float), default=None, help="seconds to run (default: until Ctrl-C)"
    )
    generate_.add_argument(
        "--accounts", type=positive(int), default=100, help="trial accounts per cohort (default 100)"
    )
    generate_.add_argument("--seed", type=int, default=1, help="the same seed gives the same accounts and records")
    generate_.add_argument(
        "--progress-every", type=positive(float), default=5.0, help="seconds between progress lines (default 5)"
    )
    generate_.set_defaults(
        run=lambda args: run_generate(
            settings_from(args), args.rate, args.duration, args.accounts, args.seed, args.progress_every
        )
    )
