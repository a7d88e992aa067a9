"""The bench's stages, run one after the other on fresh topics of one broker."""

from __future__ import annotations

import asyncio
import random
import secrets
import shutil
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import orjson

from streams.kafka_inputs import ISOLATION_LEVEL
from tools.bench.agents import agents_stage
from tools.bench.catch_up import BenchFailed, RssLimit, measure_catch_up
from tools.bench.kafka_io import (
    GroupWatch,
    create_topics,
    fresh_topics,
    produce,
    raw_consume,
)
from tools.bench.lookup import lookup_stage
from tools.bench.options import Options, bench_settings
from tools.bench.profile import start_profile, summarise_profile
from tools.bench.progress import Progress, human
from tools.bench.report import machine, quantile
from tools.bench.share import share_stage
from tools.bench.stage_host import HEALTH_TIMEOUT_S
from tools.bench.storm import StormRun
from tools.bench.workload import HitMaker, Workload
from tools.supervisor import WorkerExited, WorkerProcess
from tools.workerpool import TopicSet, delete_topics

STAGES = ("throughput", "lag", "scale", "restart", "lookup", "share", "storm", "agents")
DEFAULT_SCALE = (10_000, 100_000, 1_000_000)
STOP_TIMEOUT_S = 60.0


def profile_once(
    profiler: list[subprocess.Popen[bytes] | None], from_records: int, pid: int, seconds: float, output: Path, done: int
) -> None:
    """A catch-up's sample callback: starts profiling `pid` (into `profiler`) once `from_records` are committed."""
    if not profiler and done >= from_records:
        profiler.append(start_profile(pid, seconds, output))


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


class Bench:
    def __init__(self, options: Options, servers: str) -> None:
        self.o = options
        self.servers = servers
        self.tag = uuid.uuid4().hex[:8]
        self.workdir = Path(tempfile.mkdtemp(prefix=f"usage-detector-bench-{self.tag}-"))
        self.progress = Progress()
        self.workers: list[WorkerProcess] = []
        self.results: dict[str, Any] = {}
        self.token = secrets.token_hex(16)  # one for all workers: a routed lookup carries the caller's

    def worker(self, topics: TopicSet, state_dir: Path, extra_env: dict[str, str] | None = None) -> WorkerProcess:
        env = {
            **topics.env(),
            "KAFKA_BOOTSTRAP_SERVERS": self.servers,
            "USAGE_DETECTOR_PARTITIONS": str(self.o.partitions),
            "USAGE_DETECTOR_API_TOKEN": self.token,
            "USAGE_DETECTOR_STATE_DIR": str(state_dir),
            **(extra_env or {}),
        }
        worker = WorkerProcess(env, state_dir.parent / f"{topics.app_id}-worker-{len(self.workers) + 1}.log")
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
        worker = self.worker(topics, self.workdir / "tp-state")
        ready = worker.wait_ready(HEALTH_TIMEOUT_S, poll_s=0.05)
        watch = GroupWatch(self.servers, topics)
        profiler = None
        if o.profile:
            estimate = workload.total / 5_000
            profiler = start_profile(worker.pid, min(60.0, max(5.0, estimate * 0.6)), self.profile_path("throughput"))
        caught = measure_catch_up(watch, worker, self.progress, "detector", o.timeout, max_rss=o.max_rss)
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
            "rss_bytes": worker.memory(),
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
            # Half the steady rate: the first seconds of a catch-up are Faust's, learning the accounts.
            steady = self.results["detector"]["steady_records_per_s"]
            self.results["lag"] = asyncio.run(self.lag(topics, worker, steady / 2, workload))
            lag = self.results["lag"]
            self.progress.done(f"lag: p50 {lag['p50_ms']:.0f} ms, p95 {lag['p95_ms']:.0f} ms, p99 {lag['p99_ms']:.0f} ms")
        watch.close()
        worker.stop(timeout=STOP_TIMEOUT_S)

    async def lag(self, topics: TopicSet, worker: WorkerProcess, rate: float, workload: Workload) -> dict[str, Any]:
        """Hits at a steady `rate`; a share are the first hits of new accounts, whose lag is measured."""
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

        o = self.o
        consumer = AIOKafkaConsumer(bootstrap_servers=self.servers, group_id=None, enable_auto_commit=False,
                                    isolation_level=ISOLATION_LEVEL)
        await consumer.start()
        cluster = await consumer._client.fetch_all_metadata()
        parts = [TopicPartition(topics.usage, p) for p in sorted(cluster.partitions_for_topic(topics.usage) or ())]
        consumer.assign(parts)
        await consumer.seek_to_end(*parts)
        for tp in parts:
            await consumer.position(tp)
        producer = AIOKafkaProducer(bootstrap_servers=self.servers, acks=1, linger_ms=0)
        await producer.start()
        maker = HitMaker(99)
        rng = random.Random(5)
        new_share = min(1.0, o.lag_starts_per_s / rate)  # usage starts cost Faust's agents ~1 ms each: a set rate
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
                worker.check_running()
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
        pick = partial(quantile, lags)
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
        rows: list[dict[str, Any]] = []
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
            worker.wait_ready(HEALTH_TIMEOUT_S, poll_s=0.05)
            idle_rss = worker.memory()
            watch = GroupWatch(self.servers, topics)
            profiler: list[subprocess.Popen[bytes] | None] = []
            try:
                learnt_in = measure_catch_up(watch, worker, self.progress, f"{what} learning", o.timeout, max_rss=o.max_rss)
                worker.stop(timeout=STOP_TIMEOUT_S)
                self.prefill(topics, f"{what} steady", workload.hit_records[workload.warm_hits :], [])
                # The raw consumer on the same hits (all of the topic), the worker stopped meanwhile.
                baseline = asyncio.run(raw_consume(self.servers, [topics.hits], workload.warm_hits + span, self.progress))
                worker = self.worker(topics, state_dir)  # the same state: it knows every account
                worker.wait_ready(o.timeout, poll_s=0.05)
                # The steady part's profile: from when the worker has learnt every account.
                profile_steady = (
                    partial(
                        profile_once,
                        profiler,
                        warm + span // 5,
                        worker.pid,
                        min(60.0, max(5.0, span / 20_000)),
                        self.profile_path(f"scale-{accounts}"),
                    )
                    if o.profile
                    else None
                )
                caught = measure_catch_up(watch, worker, self.progress, what, o.timeout, profile_steady, o.max_rss)
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
                worker.stop(timeout=STOP_TIMEOUT_S)
                if accounts == largest and "restart" in o.stages:
                    self.results["restart"] = {"accounts": accounts, "skipped": "the scale point did not finish"}
                if not o.keep_topics:
                    delete_topics(self.servers, topics.owns)
                    shutil.rmtree(state_dir, ignore_errors=True)
                self.results["scale"] = rows
                self.save()
                continue
            if profiler and profiler[0] is not None:
                profiler[0].wait()
                self.record_profile(f"scale-{accounts}")
            # Steady state: the measured hits, after the learning that taught the worker every account.
            steady = caught.rate_between(warm + int(span * 0.1), warm + int(span * 0.9))
            rss = worker.memory()
            row = {
                "accounts": accounts,
                "warm_records": warm,
                "warm_seconds": learnt_in.seconds,
                "steady_hits": span,
                "usage_starts": workload.starters,
                "hits_per_s": steady,
                "cpu_us_per_hit": caught.cpu_per_record_between(warm + int(span * 0.1), warm + int(span * 0.9))
                or caught.cpu[-1] / span * 1e6,  # a window too short for the CPU clock: all of it
                "baseline": baseline,
                "ratio": steady / baseline["records_per_s"],
                "records_per_s_overall": workload.total / caught.seconds,
                "rss_bytes": rss,
                "idle_rss_bytes": idle_rss,
                "peak_rss_bytes": worker.memory("VmHWM"),
                "bytes_per_account": rss / accounts,
                "added_bytes_per_account": max(0, rss - idle_rss) / accounts,
                "state_dir_bytes": dir_bytes(state_dir),
            }
            rows.append(row)
            self.progress.done(
                f"{what}: {human(steady)} hits/s steady ({row['ratio']:.2f} of the raw consumer's "
                f"{human(baseline['records_per_s'])}/s), {row['cpu_us_per_hit']:.1f} µs CPU a hit, RSS {rss / 2**20:.0f} MiB"
                f" ({row['bytes_per_account']:.0f} B/account)"
            )
            watch.close()
            if accounts == largest and "restart" in o.stages:
                self.results["restart"] = self.restart(topics, worker, state_dir, workload, accounts)
            else:
                worker.stop(timeout=STOP_TIMEOUT_S)
            if not o.keep_topics:
                delete_topics(self.servers, topics.owns)
                shutil.rmtree(state_dir, ignore_errors=True)
            self.results["scale"] = rows
            self.save()

    def restart(self, topics: TopicSet, worker: WorkerProcess, state_dir: Path, workload: Workload, accounts: int) -> dict[str, Any]:
        """Stop the worker, let records arrive, start a new one on the same state."""
        what = f"restart {human(accounts)}"
        stopping = time.monotonic()
        worker.stop(timeout=STOP_TIMEOUT_S)
        stop_s = time.monotonic() - stopping
        maker = HitMaker(7)
        rng = random.Random(8)
        now = time.time_ns() // 1_000_000
        extra = [maker.hit(int(workload.established * rng.random() ** 2), now + i)[:2] for i in range(self.o.restart_hits)]
        asyncio.run(produce(self.servers, topics.hits, extra, self.progress, f"{what} extra hits"))
        restarted = self.worker(topics, state_dir)
        healthy = restarted.wait_ready(self.o.timeout, poll_s=0.05)
        watch = GroupWatch(self.servers, topics)
        caught = measure_catch_up(watch, restarted, self.progress, what, self.o.timeout, max_rss=self.o.max_rss)
        watch.close()
        result = {
            "accounts": accounts,
            "stop_s": stop_s,
            "extra_hits": len(extra),
            "healthy_s": healthy,
            "caught_up_s": healthy + caught.seconds,
            "rss_bytes": restarted.memory(),
        }
        restarted.stop(timeout=STOP_TIMEOUT_S)
        self.progress.done(f"{what}: healthy after {healthy:.1f}s, caught up after {result['caught_up_s']:.1f}s")
        return result

    # 6 ------------------------------------------------------------------------------------------

    def lookup(self) -> None:
        """Two workers holding every account of a fresh topic set, then the lookups (tools/bench/lookup.py)."""
        plan = self.o.lookup
        topics = fresh_topics(self.tag, "lk")
        workload = Workload(accounts=plan.accounts, hits=0, seed=21, warm=True).build()
        create_topics(self.servers, topics, self.o.partitions)
        self.prefill(topics, "lookup", workload.hit_records, workload.billing)
        workers = [self.worker(topics, self.workdir / f"lookup-{n}-state") for n in (1, 2)]
        for worker in workers:
            worker.wait_ready(HEALTH_TIMEOUT_S, poll_s=0.05)
        watch = GroupWatch(self.servers, topics)
        measure_catch_up(watch, workers[0], self.progress, "lookup: learning the accounts", self.o.timeout)
        watch.close()
        for worker in workers:  # not rebalancing any more
            worker.wait_ready(HEALTH_TIMEOUT_S, poll_s=0.05)
        self.results["lookup"] = asyncio.run(lookup_stage(workers, self.token, plan, self.servers, topics.hits, self.progress))
        for worker in workers:
            worker.stop(timeout=STOP_TIMEOUT_S)
        if not self.o.keep_topics:
            delete_topics(self.servers, topics.owns)

    # 7 ------------------------------------------------------------------------------------------

    def storm(self) -> None:
        """Lag and one account's stored state on a quiet worker; storms, and the lag beside one, on
        another (tools/bench/storm.py). Both know the same background accounts."""
        plan = self.o.storm
        background = Workload(accounts=plan.background_accounts, hits=0, seed=41, warm=True).build()
        results: dict[str, Any] = {"accounts": plan.accounts}
        self.results["storm"] = results
        for name in ("quiet", "storm"):
            topics = fresh_topics(self.tag, f"st{name[0]}")
            create_topics(self.servers, topics, self.o.partitions)
            self.prefill(topics, f"storm {name}: background", background.hit_records, background.billing)
            worker = self.worker(topics, self.workdir / f"storm-{name}-state")
            worker.wait_ready(HEALTH_TIMEOUT_S, poll_s=0.05)
            watch = GroupWatch(self.servers, topics)
            measure_catch_up(watch, worker, self.progress, f"storm {name}: learning the background", self.o.timeout)
            watch.close()
            run = StormRun(self.servers, topics, worker, plan, self.progress)
            lag = self.lag(topics, worker, plan.lag_hits_per_s, background)
            if name == "quiet":
                results["lag_quiet"] = asyncio.run(lag)
                results["stored_state"] = asyncio.run(run.stored_state("history-account"))
            else:
                results |= asyncio.run(run.storms(lag))
                results["lag_p99_ratio"] = results["lag_during_storm"]["p99_ms"] / max(1.0, results["lag_quiet"]["p99_ms"])
                self.progress.done(
                    f"storm: usage-start lag p99 {results['lag_quiet']['p99_ms']:.0f} ms quiet,"
                    f" {results['lag_during_storm']['p99_ms']:.0f} ms during a storm ({results['lag_p99_ratio']:.2f}x)"
                )
            worker.stop(timeout=STOP_TIMEOUT_S)
            self.save()

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
            if "lookup" in o.stages:
                self.lookup()
            if "share" in o.stages:
                self.results["share"] = share_stage(self)
                self.save()
            if "storm" in o.stages:
                self.storm()
            if "agents" in o.stages:
                self.results["agents"] = agents_stage(self)
                self.save()
        except (BenchFailed, WorkerExited, KeyboardInterrupt) as exc:
            self.results["error"] = str(exc) or exc.__class__.__name__
            self.results["worker_logs"] = str(self.workdir)  # kept for a look at what went wrong
        finally:
            for worker in self.workers:
                worker.stop(timeout=STOP_TIMEOUT_S)
            if not o.keep_topics:
                delete_topics(self.servers, lambda name: name.startswith(f"bench-{self.tag}-"))
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
