"""`usage-detector chaos`: proof that nothing is lost across crashes, restarts and rebalances.

A seeded workload is produced while workers are SIGKILLed at random moments, the broker is
restarted and the group is scaled 1 -> 3 -> 1. When everything has settled, every account's
highest-version output is compared with the oracle: the pure policy core run in memory over the
same records (`policy.oracle`). Prints and writes (JSON) what happened and what was found.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaTimeoutError

import localkafka
from streams.settings import Settings
from streams.topics import TopicNames, ensure_topics
from tools.broker_faults import BrokerFaults, evidence_index
from tools.chaos_workload import Workload, decode_inputs, expected_outcome, generate, generate_sparse
from tools.ledger import account_for
from tools.options import add_setting_options, bootstrap_servers, settings_from
from tools.outputs import content, latest_by_account, read_topics
from tools.workerpool import LagProbe, WorkerPool, wait_caught_up


@dataclass
class Report:
    seed: int
    input_records: int = 0
    accounts: int = 0
    bad_records: int = 0
    kills: int = 0
    # Workers that SIGKILLed themselves between a firehose batch's acknowledged sends and its commit.
    commit_kills: int = 0
    broker_restarts: int = 0
    rebalances: int = 0
    worker_starts: int = 0
    output_records: int = 0
    lost: int = 0
    conflicting: int = 0
    mismatched: int = 0
    dead_letters_expected: int = 0
    dead_letters_missing: int = 0
    dead_letters_unexpected: int = 0
    caught_up: bool = False
    seconds: float = 0.0
    workload: str = "dense"
    ledger: dict[str, Any] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)
    broker_faults: list[dict[str, Any]] = field(default_factory=list)  # tools/broker_faults.py, on a local cluster

    @property
    def ok(self) -> bool:
        return self.caught_up and not (
            self.lost or self.conflicting or self.mismatched or self.dead_letters_missing or self.dead_letters_unexpected
            or self.ledger.get("records_unaccounted", 1)
        )


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')}  {message}", flush=True)


class Chaos:
    def __init__(self, settings: Settings, servers: str, args: argparse.Namespace, workdir: Path) -> None:
        self.settings, self.servers, self.args = settings, servers, args
        self.pool = WorkerPool(settings, servers, workdir, reuse_state=args.reuse_state, extra_env=self.arm_commit_kill)
        self.commit_kills_armed = 0
        self.faults_over = False  # from then on no new worker is armed: the last ones must stay
        self.report = Report(seed=args.seed)
        self.rng = random.Random(args.seed)
        self.produced = 0
        self.unsent = 0
        self.disturb_error: Exception | None = None
        self.bad_offsets: set[tuple[str, int, int]] = set()
        self._lock = threading.Lock()
        # Held by the producer while it sends a record, and by the broker restart from a flush
        # until the broker is back: the restart is the workers' fault to survive, not the input
        # producer's. kafka-python 3.0's idempotent producer, caught with requests in flight by a
        # broker stopping, can wait for a producer id forever: once seen, 463k records stuck.
        self._sending = threading.Lock()
        self._producer: KafkaProducer | None = None

    def produce(self, workload: Workload, names: TopicNames) -> None:
        """Produce at a steady pace so that the chaos happens while records flow."""
        topics = {"hits": names.hits, "capi": names.capi, "billing": names.billing}
        producer = KafkaProducer(bootstrap_servers=self.servers, acks="all", linger_ms=20, batch_size=256 * 1024,
                                 retries=2_147_483_647, max_in_flight_requests_per_connection=1, request_timeout_ms=30_000)
        self._producer = producer
        started = time.monotonic()
        for index, (topic, key, value) in enumerate(workload.records):
            with self._sending:
                future = producer.send(topics[topic], key=key, value=value)
            if index in workload.bad:
                future.add_callback(lambda meta: self._note_bad(meta.topic, meta.partition, meta.offset))
            future.add_errback(self._note_unsent)
            self.produced = index + 1
            ahead = self.produced / self.args.rate - (time.monotonic() - started)
            if ahead > 0.05:
                time.sleep(ahead)
        flush_fully(producer)
        producer.close()
        if self.unsent:
            # The oracle expects every record of the workload: a run missing some proves nothing.
            raise SystemExit(f"usage-detector chaos: {self.unsent} input records could not be produced; "
                             "the run is void, start it again")

    def restart_broker(self) -> None:
        """Stop and start the local broker, with the inputs' producer flushed and held meanwhile."""
        with self._sending:
            if self._producer is not None:
                self._producer.flush(timeout=600)
            localkafka.stop()
            time.sleep(2)
            localkafka.start()

    def arm_commit_kill(self) -> dict[str, str]:
        """For the first `--commit-kills` new workers: a SIGKILL of itself before committing one of its
        first firehose batches (one started and killed before it read anything fires nothing)."""
        if self.faults_over or self.commit_kills_armed >= self.args.commit_kills:
            return {}
        self.commit_kills_armed += 1
        return {"USAGE_DETECTOR_FAULT_KILL_BEFORE_COMMIT_BATCH": str(self.rng.randint(1, self.args.commit_kill_within))}

    def settling(self, lag: int | None) -> None:
        # A worker armed before the faults ended may still kill itself: replace it, unarmed.
        self.pool.scale(1)
        log(f"waiting to catch up: lag {lag}")

    def _note_bad(self, topic: str, partition: int, offset: int) -> None:
        with self._lock:
            self.bad_offsets.add((topic, partition, offset))

    def _note_unsent(self, error: Exception) -> None:
        with self._lock:
            self.unsent += 1

    def disturb_safely(self, total: int, done: threading.Event) -> None:
        """`disturb` in its thread, keeping what stopped it for the main thread to raise."""
        try:
            self.disturb(total, done)
        except Exception as error:  # noqa: BLE001 (handed to the main thread, which ends the run with it)
            self.disturb_error = error

    def disturb(self, total: int, done: threading.Event) -> None:
        """Kill workers at random moments; scale 1 -> 3 -> 1; restart the broker once."""
        kills_left, scaled_up, scaled_down = self.args.kills, False, False
        broker_restarts_left = self.args.broker_restarts
        interval = total / self.args.rate / max(1, self.args.kills + 2)
        while not done.is_set() or kills_left:
            time.sleep(self.rng.uniform(0.3, 1.7) * interval)
            progress = self.produced / total
            if not scaled_up and progress > 0.2:
                log("scaling to 3 workers")
                self.pool.scale(3)
                scaled_up = True
                self.report.rebalances += 1
            elif broker_restarts_left and progress > 0.5:
                log("restarting the broker")
                self.restart_broker()
                broker_restarts_left -= 1
                self.report.broker_restarts += 1
            elif not scaled_down and progress > 0.8:
                log("scaling to 1 worker (SIGTERM)")
                self.pool.scale(1)
                scaled_down = True
                self.report.rebalances += 1
            elif kills_left:
                victims = self.pool.alive()
                if victims:
                    victim = self.rng.choice(victims)
                    self.pool.kill(victim, signal.SIGKILL)
                    kills_left -= 1
                    self.report.kills += 1
                    log(f"SIGKILL worker pid {victim.pid} ({self.report.kills} of {self.args.kills}); produced {self.produced}/{total}")
                    self.pool.start()
                    self.report.rebalances += 1
            # A worker may also have died by itself (say, with the broker away): replace it.
            target = 3 if scaled_up and not scaled_down else 1
            if len(self.pool.alive()) < target:
                self.pool.scale(target)
        self.faults_over = True
        self.pool.scale(1)


def flush_fully(producer: KafkaProducer, timeout_s: float = 600.0) -> None:
    """Wait until every record sent is acknowledged; a producer that stalls ends the run, loudly."""
    try:
        producer.flush(timeout=timeout_s)
    except KafkaTimeoutError as stalled:
        raise SystemExit(f"usage-detector chaos: the input producer did not get every record acknowledged within {timeout_s:.0f}s "
                         f"({stalled}); the run is void, start it again") from stalled


def read_outputs(servers: str, names: TopicNames) -> dict[str, list[dict[str, Any]]]:
    topics = {"usage": names.usage, "eligibility": names.eligibility, "dead_letter": names.dead_letter}
    found = read_topics(servers, list(topics.values()))
    return {kind: found[topic] for kind, topic in topics.items()}


def compare(report: Report, expected: dict[str, dict[str, Any]], outputs: dict[str, list[dict[str, Any]]],
            bad_offsets: set[tuple[str, int, int]]) -> None:
    report.output_records = len(outputs["usage"]) + len(outputs["eligibility"])
    for kind in ("usage", "eligibility"):
        seen: dict[tuple[str, int], dict[str, Any]] = {}
        for record in outputs[kind]:
            key = (record["account_id"], record["version"])
            if seen.setdefault(key, record) != record:
                report.conflicting += 1
                report.examples.append(f"conflicting {kind} {key}")
        latest = latest_by_account(outputs[kind])
        for account, want in expected.items():
            if want[kind] is None:
                continue
            got = latest.get(account)
            if got is None:
                report.lost += 1
                report.examples.append(f"lost {kind} of {account}")
            elif content(got) != want[kind]:
                report.mismatched += 1
                report.examples.append(f"mismatched {kind} of {account}: got {content(got)} want {want[kind]}")
    letters = {(d["topic"], d["partition"], d["offset"]) for d in outputs["dead_letter"]}
    report.dead_letters_expected = len(bad_offsets)
    report.dead_letters_missing = len(bad_offsets - letters)
    report.dead_letters_unexpected = len(letters - bad_offsets)
    del report.examples[10:]


def run_chaos(args: argparse.Namespace) -> int:
    base = settings_from(args)
    if base.kafka_bootstrap_servers and args.broker_restarts:
        print("usage-detector chaos: restarting the broker needs the local one; unset KAFKA_BOOTSTRAP_SERVERS "
              "or pass --broker-restarts 0", file=sys.stderr)
        return 2
    tag = uuid.uuid4().hex[:6]
    settings = base.model_copy(update={
        "app_id": f"chaos-{tag}",
        **{f"topic_{kind}": f"chaos-{tag}.{getattr(base, f'topic_{kind}')}"
           for kind in ("hits", "capi", "billing", "usage", "eligibility", "dead_letter")},
    })
    servers = bootstrap_servers(settings)
    names = TopicNames.from_settings(settings)
    started = time.monotonic()
    if args.workload == "sparse":
        log(f"generating {args.records} records, every one of them visible in its account's outcome (seed {args.seed})")
        workload = generate_sparse(args.seed, args.records)
    else:
        log(f"generating {args.records} records over {args.accounts} accounts (seed {args.seed})")
        workload = generate(args.seed, args.accounts, args.records)
    log("computing the expected outcome (oracle)")
    decoded = decode_inputs(workload, settings)
    expected = expected_outcome(decoded, settings.duplicate_window())
    ensure_topics(settings, servers)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix=f"usage-detector-chaos-{tag}-"))
    chaos = Chaos(settings, servers, args, workdir)
    chaos.report.input_records, chaos.report.accounts = len(workload.records), len(expected)
    chaos.report.workload = args.workload
    chaos.report.bad_records = len(workload.bad)
    log(f"app {settings.app_id}, topics chaos-{tag}.*, worker logs in {workdir}")
    chaos.pool.scale(1)
    faults = (BrokerFaults(localkafka.kafka_home(), servers, names, lambda: chaos.produced / len(workload.records),
                           args.broker_down_s, log) if args.broker_faults else None)
    if faults is not None:
        faults.start()
    done = threading.Event()
    disturber = threading.Thread(target=chaos.disturb_safely, args=(len(workload.records), done), daemon=True)
    disturber.start()
    try:
        chaos.produce(workload, names)
        log(f"all {len(workload.records)} records produced")
        if faults is not None:
            faults.finish()
        done.set()
        disturber.join()
        if chaos.disturb_error is not None:
            raise SystemExit(f"usage-detector chaos: the faults stopped early ({chaos.disturb_error!r}); "
                             "the run is void, start it again") from chaos.disturb_error
        with LagProbe(servers) as probe:
            chaos.report.caught_up = wait_caught_up(probe, settings.app_id, names, timeout=args.settle_timeout,
                                                    progress=chaos.settling)
        outputs = read_outputs(servers, names)
        compare(chaos.report, expected, outputs, chaos.bad_offsets)
        chaos.report.ledger = account_for(decoded, outputs, expected, chaos.bad_offsets).as_report()
        if faults is not None:
            chaos.report.broker_faults = faults.report(evidence_index(workload.records), len(workload.records))
    finally:
        done.set()
        chaos.pool.stop_all()
    chaos.report.worker_starts = chaos.pool.started
    chaos.report.commit_kills = chaos.pool.killed_itself
    chaos.report.seconds = round(time.monotonic() - started, 1)
    result = asdict(chaos.report) | {"ok": chaos.report.ok}
    print(json.dumps(result, indent=2))
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
        log(f"wrote {args.output}")
    return 0 if chaos.report.ok else 1


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("chaos", help="prove nothing is lost: kills, a broker restart, scaling; vs the oracle")
    add_setting_options(parser)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--accounts", type=int, default=50_000, help="accounts of the dense workload")
    parser.add_argument("--workload", choices=["dense", "sparse"], default="dense",
                        help="dense: many hits per account, as in production; sparse: every record shows in its "
                             "account's outcome, so a single lost record is seen")
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs of a random worker")
    parser.add_argument("--commit-kills", type=int, default=10,
                        help="at most this many new workers SIGKILL themselves between a firehose batch's acknowledged "
                             "sends and its commit (a moment random kills rarely hit)")
    parser.add_argument("--commit-kill-within", type=int, default=40,
                        help="an armed worker kills itself before committing one of its first this many forwarding batches")
    parser.add_argument("--broker-restarts", type=int, default=1)
    parser.add_argument("--broker-faults", action="store_true",
                        help="on a local `kafka start --brokers 3` cluster: kill, restart, shut down and keep down a "
                             "broker (tools/broker_faults.py); use with --broker-restarts 0")
    parser.add_argument("--broker-down-s", type=float, default=60.0, help="how long --broker-faults keeps a broker down")
    parser.add_argument("--rate", type=float, default=8000.0, help="records produced per second")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--settle-timeout", type=float, default=900.0, help="seconds to wait for catching up at the end")
    parser.add_argument("--reuse-state", action="store_true",
                        help="start each new worker on the state folder of one that stopped (a restarted machine), "
                             "not a fresh one (a replacement machine)")
    parser.add_argument("--workdir", help="worker logs and state (default: a new temporary folder)")
    parser.add_argument("--output", help="write the report as JSON here")
    parser.set_defaults(run=run_chaos)
