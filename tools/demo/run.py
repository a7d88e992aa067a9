"""`usage-detector demo`: one worker on fresh topics, fed realistic traffic, decisions shown live.

Every run gets its own application id and topics (`demo-<tag>`, `demo-<tag>.tracking.hits`, ...)
so runs never share state. The worker is stopped at the end, also on Ctrl-C; the broker is left
running for the next run.
"""

from __future__ import annotations

import argparse
import secrets
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import closing, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from kafka.errors import KafkaError
from pydantic import SecretStr

from localkafka import free_port
from streams.settings import Settings
from streams.topics import TopicNames, ensure_topics
from tools.demo.console import DemoFailed, clock, say
from tools.demo.live import LiveDemo
from tools.demo.watch import Outputs, OutputWatcher, Publisher, describe
from tools.options import add_setting_options, bootstrap_servers, settings_from
from tools.supervisor import HTTP, WorkerExited, WorkerProcess
from tools.traffic import DAY_MS, SIMULATION_END_MS, SIMULATION_START_MS, Traffic, generate

HEALTH_TIMEOUT_S = 90.0
SECONDS_PER_SIMULATED_DAY = 0.35
LONGEST_PAUSE_S = 0.4  # quiet simulated stretches pass quickly
SHORTEST_PAUSE_S = 0.05  # below this, records are batched rather than paused between
QUIET_S = 3.0  # outputs have settled once nothing new arrived for this long
SETTLE_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


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


def wait_healthy(worker: WorkerProcess) -> None:
    """Until GET /healthz answers 200, with progress dots."""
    print(f"{clock()}  waiting for the worker at {worker.url} ", end="", flush=True)
    seconds = worker.wait_ready(HEALTH_TIMEOUT_S, waiting=lambda: print(".", end="", flush=True), poll_s=0.5)
    say(f" healthy after {seconds:.1f}s")


def simulated_date(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%a %Y-%m-%d")


def play(
    traffic: Traffic, publisher: Publisher, watcher: OutputWatcher, worker: WorkerProcess, view: LiveDemo | None = None
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


def wait_until_settled(watcher: OutputWatcher, worker: WorkerProcess, account_ids: tuple[str, ...]) -> bool:
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


def lookup(worker: WorkerProcess, token: str, account_id: str) -> tuple[int | None, dict[str, Any] | str]:
    """GET /accounts/{id} as the refund service would: (status, document or error text)."""
    try:
        response = HTTP.get(f"{worker.url}/accounts/{account_id}", headers={"Authorization": f"Bearer {token}"}, timeout=5.0)
    except httpx.HTTPError as error:
        return None, repr(error)
    return response.status_code, response.json() if response.is_success else response.text


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


def show_lookup(worker: WorkerProcess, token: str, outputs: Outputs) -> None:
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


def show_run(run: DemoRun, worker: WorkerProcess, traffic: Traffic, started: float, live: bool = False) -> None:
    """Traffic in, changes shown as they come out (printed line by line, or in the live view),
    then the summary and one HTTP lookup."""
    wait_healthy(worker)
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


def stop_worker(worker: WorkerProcess) -> int:
    if worker.running():
        say(f"{clock()}  stopping the worker (SIGTERM)...")
    code = worker.stop(timeout=STOP_TIMEOUT_S)
    say(f"{clock()}  worker stopped, exit code {code}; its log: {worker.log_path}")
    return code


def keep_for_the_console(run: DemoRun, worker: WorkerProcess) -> None:
    """The worker stays up for the billing team's console until Ctrl-C (or SIGTERM)."""
    say(f"{clock()}  the console: {worker.url}/console (log in with the token {run.token}); Ctrl-C stops the worker")
    try:
        while worker.running():
            time.sleep(0.5)
    except KeyboardInterrupt:
        return
    raise WorkerExited(f"the worker exited while the console was open; see its log {worker.log_path}")


def run_demo(settings: Settings, accounts: int, seed: int, live: bool | None = None, console: bool = False) -> int:
    """Local broker (unless configured) + one worker + seeded traffic; 0 when every account was decided.

    `live`: the rich live view instead of one line per change; by default when stdout is a terminal.
    `console`: afterwards, keep the worker up for the console (README, "The console") until Ctrl-C.
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
            worker = WorkerProcess(run.settings.as_env(), run.log_path, own_session=True)
            show_run(run, worker, traffic, started, live)
            if console:
                keep_for_the_console(run, worker)
            code = 0
        except KeyboardInterrupt:
            say("\ninterrupted")
            code = 130
        except (DemoFailed, WorkerExited) as failure:
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


def register(commands: argparse._SubParsersAction) -> None:
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
    demo.add_argument("--console", action="store_true", help="afterwards, keep the worker up for the console until Ctrl-C")
    demo.set_defaults(
        run=lambda args: run_demo(settings_from(args), accounts=args.accounts, seed=args.seed, live=args.live, console=args.console)
    )
