"""`usage-detector demo`: one worker on fresh topics, fed realistic traffic, decisions shown live.

Every run gets its own application id and topics (`demo-<tag>`, `demo-<tag>.tracking.hits`, ...)
so runs never share state. The worker is stopped at the end, also on Ctrl-C; the broker is left
running for the next run.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from bisect import bisect_right
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError
from pydantic import SecretStr
from rich.console import Console
from rich.live import Live

from models.timestamps import parse_timestamp
from streams.cli import bootstrap_servers
from streams.demo_view import (
    RECENT_CHANGES,
    Change,
    Latency,
    RateMeter,
    ViewState,
    changes_that_fit,
    histogram_buckets,
    render,
)
from streams.settings import Settings
from streams.topics import TopicNames, ensure_topics
from streams.traffic import DAY_MS, SIMULATION_END_MS, SIMULATION_START_MS, Traffic, generate
from streams.workerpool import settings_env

HEALTH_TIMEOUT_S = 90.0
SECONDS_PER_SIMULATED_DAY = 0.35
LONGEST_PAUSE_S = 0.4  # quiet simulated stretches pass quickly
SHORTEST_PAUSE_S = 0.05  # below this, records are batched rather than paused between
QUIET_S = 3.0  # outputs have settled once nothing new arrived for this long
SETTLE_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
LIVE_REFRESH_S = 0.25  # the live view redraws about four times per second
METRICS_SCRAPE_S = 1.0  # and reads the worker's /metrics once per second


class DemoFailed(Exception):
    """The demo cannot go on; the message says why and where to look."""


def say(text: str = "") -> None:
    print(text, flush=True)


def clock() -> str:
    return datetime.now().strftime("%H:%M:%S")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class DemoRun:
    """This run's own settings (app id, topics, port, state, token) and its folder of files."""

    settings: Settings
    servers: str
    token: str
    workdir: Path

    @classmethod
    def fresh(cls, settings: Settings, servers: str) -> DemoRun:
        tag = uuid.uuid4().hex[:8]
        app_id = f"demo-{tag}"
        workdir = Path(tempfile.mkdtemp(prefix=f"usage-detector-{app_id}-"))
        token = secrets.token_urlsafe(16)
        topic_fields = [name for name in Settings.model_fields if name.startswith("topic_")]
        topics = {name: f"{app_id}.{getattr(settings, name)}" for name in topic_fields}
        update = {
            "kafka_bootstrap_servers": servers,
            "app_id": app_id,
            **topics,
            "web_port": free_port(),
            "state_dir": workdir / "state",
            "api_token": SecretStr(token),
        }
        return cls(settings.model_copy(update=update), servers, token, workdir)

    @property
    def names(self) -> TopicNames:
        return TopicNames.from_settings(self.settings)

    @property
    def log_path(self) -> Path:
        return self.workdir / "worker.log"


class Worker:
    """`usage-detector worker` as a subprocess in its own session: Ctrl-C reaches only the demo,
    which then stops the worker deliberately."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.url = f"http://{settings.web_host}:{settings.web_port}"
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "worker"],
                env={**os.environ, **settings_env(settings)},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log_excerpt(self) -> str:
        """The worker's error lines, or its last lines when it logged no error."""
        lines = self.log_path.read_text(errors="replace").splitlines()
        errors = [line for line in lines if "[ERROR]" in line or "[CRITICAL]" in line]
        return "\n".join(errors[:5] or lines[-15:])

    def check_running(self) -> None:
        code = self.process.poll()
        if code is not None:
            raise DemoFailed(f"the worker exited with code {code}; see its log {self.log_path}:\n{self.log_excerpt()}")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=1.0) as response:
                return response.status == 200
        except OSError:  # refused while starting, or 503 while recovering
            return False

    def wait_healthy(self) -> None:
        """Until GET /healthz answers 200, with progress dots."""
        started = time.monotonic()
        print(f"{clock()}  waiting for the worker at {self.url} ", end="", flush=True)
        while not self.healthy():
            self.check_running()
            if time.monotonic() - started > HEALTH_TIMEOUT_S:
                raise DemoFailed(
                    f"the worker was not healthy within {HEALTH_TIMEOUT_S:.0f}s; "
                    f"see its log {self.log_path}:\n{self.log_excerpt()}"
                )
            print(".", end="", flush=True)
            time.sleep(0.5)
        say(f" healthy after {time.monotonic() - started:.1f}s")

    def stop(self) -> int:
        """SIGTERM, then SIGKILL when it does not stop in time (or on a second Ctrl-C)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except (subprocess.TimeoutExpired, KeyboardInterrupt):
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def describe(eligibility: dict[str, Any] | None) -> str:
    if eligibility is None:
        return "(new)"
    reasons = ", ".join(eligibility["reasons"])
    return f"{eligibility['state']} ({reasons})" if reasons else eligibility["state"]


def what_else_changed(previous: dict[str, Any] | None, record: dict[str, Any]) -> str:
    """Besides state and reasons, a record changes with its charge, usage start or abuse."""
    before = previous or {"charge": None, "usage_started_at": None, "abuse": record["abuse"]}
    changes = []
    if record["charge"] is not None and record["charge"] != before["charge"]:
        changes.append(f"charge: {record['charge']['reason']}")
    if record["usage_started_at"] != before["usage_started_at"]:
        changes.append(f"usage_started_at: {record['usage_started_at']}")
    if record["abuse"] != before["abuse"]:
        changes.append(f"abuse: {record['abuse']}")
    return f"  [{'; '.join(changes)}]" if changes else ""


@dataclass
class Outputs:
    """What the demo read back from the detector: the latest record per account, and tallies."""

    eligibility: dict[str, dict[str, Any]] = field(default_factory=dict)
    usage: dict[str, dict[str, Any]] = field(default_factory=dict)
    became_discretionary: list[str] = field(default_factory=list)  # eligible -> discretionary
    usage_moved_earlier: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)
    consumed: Counter[str] = field(default_factory=Counter)
    last_record_at: float = field(default_factory=time.monotonic)


class OutputWatcher:
    """Reads this run's output topics and prints every change as it arrives."""

    def __init__(self, servers: str, names: TopicNames) -> None:
        self.names = names
        self.outputs = Outputs()
        self.echo: Callable[[str], None] = say  # each change as a line; silent under the live view
        self.view: LiveDemo | None = None
        self._consumer = KafkaConsumer(
            names.usage,
            names.eligibility,
            names.dead_letter,
            bootstrap_servers=servers,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )

    def watch(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if self.view is not None:
                remaining = min(remaining, LIVE_REFRESH_S / 2)
            for messages in self._consumer.poll(timeout_ms=int(remaining * 1000) + 1).values():
                for message in messages:
                    self._handle(message.topic, orjson.loads(message.value))
            if self.view is not None:
                self.view.tick()

    def _handle(self, topic: str, record: dict[str, Any]) -> None:
        self.outputs.consumed[topic] += 1
        self.outputs.last_record_at = time.monotonic()
        if topic == self.names.eligibility:
            self._eligibility(record)
        elif topic == self.names.usage:
            self._usage(record)
        else:
            self._dead_letter(record)

    def _eligibility(self, record: dict[str, Any]) -> None:
        account = record["account_id"]
        previous = self.outputs.eligibility.get(account)
        if previous is not None and record["version"] <= previous["version"]:
            return  # delivered again, or republished unchanged
        self.outputs.eligibility[account] = record
        if self.view is not None:
            self.view.saw_eligibility(previous, record)
        if previous is not None and (previous["state"], record["state"]) == ("eligible", "discretionary"):
            self.outputs.became_discretionary.append(account)
            note = "  <- usage began after the trial charge"
        else:
            note = what_else_changed(previous, record)
        before, after = describe(previous), describe(record)
        change = f"{after} (unchanged)" if before == after else f"{before} -> {after}"
        self.echo(f"{clock()}  {account}  {change}  v{record['version']}{note}")

    def _usage(self, record: dict[str, Any]) -> None:
        account = record["account_id"]
        previous = self.outputs.usage.get(account)
        if previous is not None and record["version"] <= previous["version"]:
            return
        self.outputs.usage[account] = record
        if self.view is not None:
            self.view.saw_output(account, record["detected_at"])
        evidence = record["first_evidence"]
        where = evidence.get("page_url") or evidence.get("integration") or ""
        if previous is None:
            what = f"usage started {record['usage_started_at']}"
        else:
            self.outputs.usage_moved_earlier += 1
            what = f"usage start moved earlier to {record['usage_started_at']} (late evidence)"
        self.echo(f"{clock()}  {account}  {what} via {evidence['source']} {where}  v{record['version']}")

    def _dead_letter(self, record: dict[str, Any]) -> None:
        code = record["error"]["code"]
        self.outputs.dead_letters[code] += 1
        place = f"{record['topic']} (partition {record['partition']}, offset {record['offset']})"
        self.echo(f"{clock()}  dead letter  {code} from {place}: {record['error']['message'][:80]}")

    def close(self) -> None:
        self._consumer.close()


@dataclass
class Publisher:
    """Sends the traffic like the upstream producers would; counts what Kafka acknowledged."""

    servers: str
    names: TopicNames
    acknowledged: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    sent: int = 0
    sent_at_ms: dict[str, list[float]] = field(default_factory=dict)  # per account, wall clock, ascending

    def __post_init__(self) -> None:
        self._producer = KafkaProducer(bootstrap_servers=self.servers, acks="all", linger_ms=5)

    def send(self, topic: str, key: str, value: bytes) -> None:
        self.sent += 1
        self.sent_at_ms.setdefault(key, []).append(time.time() * 1000)
        future = self._producer.send(topic, key=key.encode(), value=value)
        future.add_callback(lambda _: self.acknowledged.update([topic]))
        future.add_errback(lambda error: self.failures.append(f"{topic}: {error!r}"))

    def flush(self) -> None:
        self._producer.flush(timeout=30)

    def close(self) -> None:
        self._producer.close(timeout=5)


class LiveDemo:
    """The live terminal view (rich): gathers what the demo sent and read back, and the worker's
    /metrics, into a `ViewState` and redraws it a few times per second from the demo's own loop."""

    def __init__(
        self, title: str, traffic: Traffic, worker: Worker, watcher: OutputWatcher, publisher: Publisher
    ) -> None:
        self.title = title
        self.phase = "starting"
        self.traffic = traffic
        self.worker = worker
        self.watcher = watcher
        self.publisher = publisher
        self.started = time.monotonic()
        self.sent_rate = RateMeter()
        self.output_rate = RateMeter()
        self.pipeline_s: deque[float] = deque(maxlen=5000)
        self.changes: deque[Change] = deque(maxlen=RECENT_CHANGES)
        self.metrics_text = ""
        self.metrics_note = "waiting for the worker's /metrics"
        self.console = Console()
        self.live = Live(console=self.console, auto_refresh=False, redirect_stdout=True, redirect_stderr=True)
        self._drawn_at = 0.0
        self._scraped_at = 0.0
        watcher.echo = lambda _text: None
        watcher.view = self

    @contextmanager
    def showing(self) -> Iterator[LiveDemo]:
        with self.live:
            self.tick(force=True)
            try:
                yield self
            finally:
                self.scrape()
                self.tick(force=True)

    def saw_output(self, account: str, stamped_at: str | int) -> None:
        """Produce -> read back, for a new output record: from the account's latest input handed to
        the producer before the worker stamped the record (its decided_at / detected_at)."""
        sent = self.publisher.sent_at_ms.get(account, [])
        index = bisect_right(sent, parse_timestamp(stamped_at) + 1) - 1
        if index >= 0:
            self.pipeline_s.append(max(0.0, time.time() - sent[index] / 1000))

    def saw_eligibility(self, previous: dict[str, Any] | None, record: dict[str, Any]) -> None:
        self.saw_output(record["account_id"], record["decided_at"])
        reasons = ", ".join(record["reasons"])
        if previous is not None and describe(previous) == describe(record):
            reasons = f"{reasons}  {what_else_changed(previous, record).strip()}".strip()
        before = previous["state"] if previous is not None else "(new)"
        account, version = record["account_id"], record["version"]
        self.changes.appendleft(Change(clock(), account, before, record["state"], reasons, version))

    def scrape(self) -> None:
        self._scraped_at = time.monotonic()
        try:
            with urllib.request.urlopen(f"{self.worker.url}/metrics", timeout=0.5) as response:
                self.metrics_text = response.read().decode()
            self.metrics_note = ""
        except OSError as error:
            self.metrics_note = f"the worker's /metrics could not be read ({error}); showing the last scrape"

    def state(self) -> ViewState:
        now = time.monotonic()
        outputs = self.watcher.outputs
        output_total = sum(outputs.consumed.values())
        self.sent_rate.add(now, self.publisher.sent)
        self.output_rate.add(now, output_total)
        decided = [outputs.eligibility[a]["state"] for a in self.traffic.account_ids if a in outputs.eligibility]
        state = ViewState(
            title=self.title,
            phase=self.phase,
            elapsed_s=now - self.started,
            sent_total=self.publisher.sent,
            sent_planned=len(self.traffic.sends),
            sent_per_s=self.sent_rate.rate(),
            output_total=output_total,
            output_per_s=self.output_rate.rate(),
            latencies=[
                Latency.from_samples(
                    "end to end", "demo", list(self.pipeline_s), note="input sent -> its output read back"
                ),
                Latency.from_buckets(
                    "decision publish",
                    "worker",
                    histogram_buckets(self.metrics_text, "usage_detector_decision_publish_latency_seconds"),
                    note="account event -> its records sent",
                ),
                Latency.from_buckets(
                    "usage-start lag",
                    "worker",
                    histogram_buckets(self.metrics_text, "usage_detector_usage_start_lag_seconds"),
                    note="now - usage start (simulated Mar 2026): huge",
                ),
            ],
            accounts_total=len(self.traffic.account_ids),
            states=dict(Counter(decided)),
            dead_letters=dict(outputs.dead_letters),
            changes=list(self.changes),
            metrics_note=self.metrics_note,
        )
        if self.console.is_terminal:  # a pipe (`--live | tee`) gets the final view once, all of it
            width, height = self.console.size
            state.changes_shown = changes_that_fit(state, width, height)
        return state

    def tick(self, force: bool = False) -> None:
        """Redraws when due (and re-reads /metrics when that is due); cheap to call often."""
        now = time.monotonic()
        if not force and now - self._drawn_at < LIVE_REFRESH_S:
            return
        if now - self._scraped_at >= METRICS_SCRAPE_S:
            self.scrape()
        self._drawn_at = now
        self.live.update(render(self.state()), refresh=True)


def simulated_date(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%a %Y-%m-%d")


def play(
    traffic: Traffic, publisher: Publisher, watcher: OutputWatcher, worker: Worker, view: LiveDemo | None = None
) -> None:
    """Sends in simulated-time order, pausing in proportion so that changes show up live."""
    topics = {"hits": publisher.names.hits, "capi": publisher.names.capi, "billing": publisher.names.billing}
    clock_at = SIMULATION_START_MS
    day_shown = -1
    for sent, send in enumerate(traffic.sends):
        pause = min((send.at - clock_at) / DAY_MS * SECONDS_PER_SIMULATED_DAY, LONGEST_PAUSE_S)
        if pause >= SHORTEST_PAUSE_S:
            publisher.flush()
            watcher.watch(pause)
            worker.check_running()
            clock_at = send.at
        day = (send.at - SIMULATION_START_MS) // DAY_MS
        if day != day_shown:
            if view is None:
                say(f"{clock()}  -- simulated day {day + 1}: {simulated_date(send.at)} -- ({sent} records sent so far)")
            else:
                view.phase = f"simulated day {day + 1}: {simulated_date(send.at)}"
            day_shown = day
        publisher.send(topics[send.topic], send.account_id, send.value)
        if view is not None:
            view.tick()
    publisher.flush()
    if publisher.failures:
        raise DemoFailed(f"{len(publisher.failures)} records were not accepted by Kafka, e.g. {publisher.failures[0]}")


def wait_until_settled(watcher: OutputWatcher, worker: Worker, account_ids: tuple[str, ...]) -> bool:
    """True once every account has a decision and nothing new arrived for QUIET_S seconds."""
    sent_at = time.monotonic()
    deadline = sent_at + SETTLE_TIMEOUT_S
    while time.monotonic() < deadline:
        watcher.watch(0.25)
        worker.check_running()
        quiet_for = time.monotonic() - max(watcher.outputs.last_record_at, sent_at)
        if quiet_for >= QUIET_S and all(a in watcher.outputs.eligibility for a in account_ids):
            return True
    return False


def lookup(worker: Worker, token: str, account_id: str) -> tuple[int | None, dict[str, Any] | str]:
    """GET /accounts/{id} as the refund service would: (status, document or error text)."""
    url = f"{worker.url}/accounts/{account_id}"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=5.0) as response:
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    except OSError as error:
        return None, repr(error)


def tally(counter: Counter[str]) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(counter.items())) or "none"


def print_summary(outputs: Outputs, traffic: Traffic, publisher: Publisher, elapsed_s: float) -> None:
    decided = [outputs.eligibility[a] for a in traffic.account_ids if a in outputs.eligibility]
    say()
    say("Summary")
    say(f"  accounts decided:      {len(decided)} of {len(traffic.account_ids)}")
    for state, count in sorted(Counter(r["state"] for r in decided).items()):
        reasons = Counter(", ".join(r["reasons"]) for r in decided if r["state"] == state and r["reasons"])
        say(f"    {state:<14} {count:>3}   {tally(reasons) if reasons else ''}".rstrip())
    changed = outputs.became_discretionary
    accounts = f" (usage began after the charge: {', '.join(changed)})" if changed else ""
    say(f"  eligible -> discretionary changes: {len(changed)}{accounts}")
    sources = Counter(r["first_evidence"]["source"] for r in outputs.usage.values())
    moved = outputs.usage_moved_earlier
    say(f"  usage starts detected: {len(outputs.usage)} ({tally(sources)}); moved earlier by late evidence: {moved}")
    say(f"  dead letters:          {sum(outputs.dead_letters.values())} ({tally(outputs.dead_letters)})")
    say(f"  records produced:      {sum(publisher.acknowledged.values())} ({tally(publisher.acknowledged)})")
    say(f"  records consumed:      {sum(outputs.consumed.values())} ({tally(outputs.consumed)})")
    say(f"  elapsed:               {elapsed_s:.1f}s")


def show_lookup(worker: Worker, token: str, outputs: Outputs) -> None:
    if not outputs.eligibility:
        return
    account_id = (outputs.became_discretionary or sorted(outputs.eligibility))[0]
    say()
    say(f"Looking up {account_id} over HTTP as the refund service would (works while the worker runs):")
    say(f"  curl -H 'Authorization: Bearer {token}' {worker.url}/accounts/{account_id}")
    status, body = lookup(worker, token, account_id)
    if isinstance(body, dict) and body.get("eligibility"):
        usage_started_at = (body["usage"] or {}).get("usage_started_at")
        say(f"  -> {status}: {describe(body['eligibility'])}, usage started {usage_started_at}")
    else:
        say(f"  -> {status}: {body}")


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """A SIGTERM to the demo (a CI timeout, `kill`) stops the worker the way Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def say_broker_left_running(configured: bool, run: DemoRun) -> None:
    topics = f"{run.settings.app_id}.*"
    if configured:
        say(f"Kafka at {run.servers} (from KAFKA_BOOTSTRAP_SERVERS) was left as it was; this run's topics are {topics}.")
    else:
        say(f"The local Kafka broker keeps running at {run.servers} (this run's topics: {topics}); "
            "stop it with `usage-detector kafka stop`.")


def show_run(run: DemoRun, worker: Worker, traffic: Traffic, started: float, live: bool = False) -> None:
    """Traffic in, changes shown as they come out (printed line by line, or in the live view),
    then the summary and one HTTP lookup."""
    worker.wait_healthy()
    with (
        closing(OutputWatcher(run.servers, run.names)) as watcher,
        closing(Publisher(run.servers, run.names)) as publisher,
    ):
        title = f"usage-detector demo {run.settings.app_id}"
        view = LiveDemo(title, traffic, worker, watcher, publisher) if live else None
        with view.showing() if view is not None else nullcontext():
            play(traffic, publisher, watcher, worker, view)
            if view is None:
                say(f"{clock()}  all input sent; waiting for the outputs to settle")
            else:
                view.phase = "all input sent; waiting for the outputs to settle"
            settled = wait_until_settled(watcher, worker, traffic.account_ids)
            if view is not None:
                view.phase = "settled" if settled else "not settled"
        print_summary(watcher.outputs, traffic, publisher, time.monotonic() - started)
        show_lookup(worker, run.token, watcher.outputs)
    if not settled:
        undecided = [a for a in traffic.account_ids if a not in watcher.outputs.eligibility]
        raise DemoFailed(
            f"{len(undecided)} accounts got no decision within {SETTLE_TIMEOUT_S:.0f}s "
            f"(e.g. {', '.join(undecided[:5])}); see the worker log {worker.log_path}"
        )


def stop_worker(worker: Worker) -> int:
    if worker.process.poll() is None:
        say(f"{clock()}  stopping the worker (SIGTERM)...")
    code = worker.stop()
    say(f"{clock()}  worker stopped, exit code {code}; its log: {worker.log_path}")
    return code


def run_demo(settings: Settings, accounts: int, seed: int, live: bool | None = None) -> int:
    """Local broker (unless configured) + one worker + seeded traffic; 0 when every account was decided.

    `live`: the rich live view instead of one line per change; by default when stdout is a terminal.
    """
    if accounts < 1:
        print("usage-detector demo: --accounts must be at least 1", file=sys.stderr)
        return 2
    if live is None:
        live = sys.stdout.isatty()
    started = time.monotonic()
    run = DemoRun.fresh(settings, bootstrap_servers(settings))
    traffic = generate(accounts, seed)
    days = (SIMULATION_END_MS - SIMULATION_START_MS) // DAY_MS
    say(f"{clock()}  demo {run.settings.app_id}: {accounts} trial accounts over {days} simulated days "
        f"from {simulated_date(SIMULATION_START_MS)} (seed {seed})")
    say(f"{clock()}  {len(traffic.sends)} input records, among them {traffic.duplicates} billing events sent twice "
        f"and {traffic.malformed} malformed records")
    say(f"{clock()}  Kafka at {run.servers}; worker log: {run.log_path}")
    code = 1
    with sigterm_as_interrupt():
        worker = None
        try:
            ensure_topics(run.settings, run.servers)
            worker = Worker(run.settings, run.log_path)
            show_run(run, worker, traffic, started, live)
            code = 0
        except KeyboardInterrupt:
            say("\ninterrupted")
            code = 130
        except DemoFailed as failure:
            print(f"\nusage-detector demo: {failure}", file=sys.stderr, flush=True)
        except KafkaError as error:
            print(
                f"\nusage-detector demo: Kafka at {run.servers} failed: {error!r}; "
                "check the broker (`usage-detector kafka status`) or KAFKA_BOOTSTRAP_SERVERS",
                file=sys.stderr,
                flush=True,
            )
        finally:
            worker_code = stop_worker(worker) if worker is not None else 0
    if code == 0 and worker_code != 0:
        print(f"usage-detector demo: the worker did not stop cleanly; see its log {run.log_path}", file=sys.stderr)
        code = 1
    say_broker_left_running(settings.kafka_bootstrap_servers is not None, run)
    return code
