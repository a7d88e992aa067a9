"""Stage 6, lookup: `GET /accounts/{id}` against two workers sharing the accounts, and the
billing team's page of an account (`GET /console/accounts/{id}`, rendered HTML) on idle workers.

Every request goes to the first worker. Faust's table routing decides who answers: a *local*
lookup is of an account the first worker holds, a *routed* one of an account the second holds
(the first forwards it). The bench asks the first worker's `/router/accounts/{id}/` (Faust's
own routing table) which accounts are which, then measures each kind at a fixed rate (an open
loop: latency counted from when a request was due, so a stall delays every request after it)
and at the maximum (a fixed number of requests in flight), with the workers idle and under a
firehose of hits (a separate process producing them at a set rate while the lookups run).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from typing import Any

from streams.topics import ACCOUNTS_TABLE
from tools.bench.catch_up import BenchFailed
from tools.bench.progress import Progress, human
from tools.bench.report import quantile
from tools.bench.workload import HitMaker, account_id
from tools.supervisor import WorkerProcess

LOOKUP_KINDS = ("local", "routed")


@dataclass(frozen=True)
class LookupPlan:
    accounts: int
    rate: float  # lookups/s of the fixed-rate runs
    seconds: float  # length of each fixed-rate run
    requests: int  # of each run at the maximum
    concurrency: int  # requests in flight in a run at the maximum
    load_hits_per_s: float  # the firehose's rate


def summarise(latencies: Sequence[float], seconds: float, failures: Counter[str]) -> dict[str, Any]:
    """Answered requests' latencies (seconds) as milliseconds, the rate, and what failed, by status."""
    ordered = sorted(latencies)
    answered = len(ordered)
    summary: dict[str, Any] = {
        "requests": answered + sum(failures.values()),
        "failed": dict(failures),
        "seconds": seconds,
        "requests_per_s": answered / seconds if seconds > 0 else 0.0,
    }
    if ordered:
        summary |= {
            f"p{round(q * 100)}_ms": quantile(ordered, q) * 1000 for q in (0.50, 0.95, 0.99)
        } | {"max_ms": ordered[-1] * 1000, "mean_ms": sum(ordered) / answered * 1000}
    return summary


def split_by_owner(owners: dict[str, str], here: str) -> tuple[list[str], list[str]]:
    """Accounts the worker at `here` holds (local) and the ones another worker holds (routed)."""
    local = [account for account, url in owners.items() if url.rstrip("/") == here.rstrip("/")]
    routed = [account for account, url in owners.items() if url.rstrip("/") != here.rstrip("/")]
    return local, routed


class Lookups:
    """An HTTP client of one worker: the token, one connection pool, and the measured runs of `path`
    (`/accounts/{}`: the JSON lookup; `/console/accounts/{}`: the console's page, after logging in)."""

    def __init__(self, url: str, token: str, connections: int, path: str = "/accounts/{}") -> None:
        import aiohttp

        self.url = url
        self.path = path
        self.token = token
        self.session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {token}"},
            connector=aiohttp.TCPConnector(limit=connections),
            timeout=aiohttp.ClientTimeout(total=30),
            cookie_jar=aiohttp.CookieJar(unsafe=True),  # the console's cookie, from a worker at an IP address
        )

    async def log_in(self) -> None:
        """The console's session cookie, kept by the client for every request after."""
        async with self.session.post(f"{self.url}/console/login", data={"token": self.token}, allow_redirects=False) as response:
            if response.status != 303:
                raise BenchFailed(f"lookup: the console refused the token ({response.status})")

    async def close(self) -> None:
        await self.session.close()

    async def owners(self, accounts: Sequence[str]) -> dict[str, str]:
        """The worker URL each account belongs to, as Faust's router says."""
        found: dict[str, str] = {}
        for account in accounts:
            async with self.session.get(f"{self.url}/router/{ACCOUNTS_TABLE}/{account}/") as response:
                response.raise_for_status()
                found[account] = str(await response.json())
        return found

    async def get(self, account: str, since: float, latencies: list[float], failures: Counter[str]) -> None:
        try:
            # A redirect (to the console's login) is a failure, not an answer.
            async with self.session.get(self.url + self.path.format(account), allow_redirects=False) as response:
                await response.read()
                status = response.status
        except Exception as exc:  # noqa: BLE001 - a failed request is counted by its kind, never fatal
            failures[exc.__class__.__name__] += 1
            return
        if status == 200:
            latencies.append(time.monotonic() - since)
        else:
            failures[str(status)] += 1

    async def at_rate(self, accounts: Sequence[str], rate: float, seconds: float, seed: int) -> dict[str, Any]:
        """An open loop: request i is due at i/rate; its latency runs from then, however late it left."""
        rng = random.Random(seed)
        latencies: list[float] = []
        failures: Counter[str] = Counter()
        pending = []
        started = time.monotonic()
        for index in range(int(rate * seconds)):
            due = started + index / rate
            if (wait := due - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            pending.append(asyncio.ensure_future(self.get(rng.choice(accounts), due, latencies, failures)))
        await asyncio.gather(*pending)
        return {"target_per_s": rate} | summarise(latencies, time.monotonic() - started, failures)

    async def at_max(self, accounts: Sequence[str], requests: int, concurrency: int, seed: int) -> dict[str, Any]:
        """`concurrency` requests in flight until `requests` are answered."""
        rng = random.Random(seed)
        latencies: list[float] = []
        failures: Counter[str] = Counter()
        left = iter(range(requests))

        async def one_at_a_time() -> None:
            for _ in left:
                await self.get(rng.choice(accounts), time.monotonic(), latencies, failures)

        started = time.monotonic()
        await asyncio.gather(*(one_at_a_time() for _ in range(concurrency)))
        return {"concurrency": concurrency} | summarise(latencies, time.monotonic() - started, failures)


async def measure(
    lookups: Lookups, by_kind: dict[str, list[str]], plan: LookupPlan, workers: Sequence[WorkerProcess], progress: Progress, what: str
) -> dict[str, Any]:
    """Each kind at the plan's rate, then at the maximum; with the workers' CPU time per lookup,
    a figure that a busy machine disturbs less than it does the latencies."""
    results: dict[str, Any] = {}
    for seed, kind in enumerate(LOOKUP_KINDS):
        progress(f"{what}: {kind} lookups at {human(plan.rate)}/s for {plan.seconds:.0f}s", force=True)
        before = [worker.cpu_seconds() for worker in workers]
        at_rate = await lookups.at_rate(by_kind[kind], plan.rate, plan.seconds, seed)
        at_rate["worker_cpu_us_per_lookup"] = cpu_per_lookup(workers, before, at_rate["requests"])
        progress(f"{what}: {kind} lookups at the maximum, {plan.concurrency} in flight", force=True)
        before = [worker.cpu_seconds() for worker in workers]
        at_max = await lookups.at_max(by_kind[kind], plan.requests, plan.concurrency, seed + 10)
        at_max["worker_cpu_us_per_lookup"] = cpu_per_lookup(workers, before, at_max["requests"])
        results[kind] = {"at_rate": at_rate, "at_max": at_max}
        progress.done(
            f"{what}: {kind} at {human(at_rate['requests_per_s'])}/s: p99 {at_rate.get('p99_ms', 0):.1f} ms;"
            f" at the maximum {human(at_max['requests_per_s'])}/s, p99 {at_max.get('p99_ms', 0):.1f} ms;"
            f" worker CPU {sum(at_max['worker_cpu_us_per_lookup']):.0f} µs a lookup"
        )
    return results


def cpu_per_lookup(workers: Sequence[WorkerProcess], before: Sequence[float], lookups: int) -> list[float]:
    """Each worker's CPU microseconds per lookup since the `before` readings (all it did, lookups or not)."""
    return [(worker.cpu_seconds() - used) / max(1, lookups) * 1e6 for worker, used in zip(workers, before, strict=True)]


def firehose(servers: str, topic: str, accounts: int, rate: float, stop: Event, sent: Synchronized[int]) -> None:
    """Hits of known accounts at `rate` until `stop` (a process of its own: the bench's client keeps its core)."""
    asyncio.run(_firehose(servers, topic, accounts, rate, stop, sent))


async def _firehose(servers: str, topic: str, accounts: int, rate: float, stop: Event, sent: Synchronized[int]) -> None:
    from aiokafka import AIOKafkaProducer

    maker = HitMaker(17)
    rng = random.Random(18)
    producer = AIOKafkaProducer(bootstrap_servers=servers, acks=1, linger_ms=5)
    await producer.start()
    started = time.monotonic()
    count = 0
    try:
        while not stop.is_set():
            due = int(rate * (time.monotonic() - started)) - count
            for _ in range(due):
                key, value, _ = maker.hit(rng.randrange(accounts), time.time_ns() // 1_000_000)
                await producer.send(topic, value=value, key=key)
            count += due
            sent.value = count
            await asyncio.sleep(0.005)
        await producer.flush()
    finally:
        await producer.stop()


class Firehose:
    """The firehose process, started and stopped around the loaded measurements."""

    def __init__(self, servers: str, topic: str, accounts: int, rate: float) -> None:
        context = multiprocessing.get_context("spawn")  # no copy of the bench's threads and sockets
        self.stop_event = context.Event()
        self.sent = context.Value("q", 0)
        self.rate = rate
        self.process = context.Process(
            target=firehose, args=(servers, topic, accounts, rate, self.stop_event, self.sent), daemon=True
        )
        self.started = time.monotonic()
        self.process.start()

    def stop(self) -> dict[str, Any]:
        self.stop_event.set()
        self.process.join(30)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        seconds = time.monotonic() - self.started
        return {"target_hits_per_s": self.rate, "hits": self.sent.value, "achieved_hits_per_s": self.sent.value / seconds}


def cpu_shares(workers: Sequence[WorkerProcess], before: Sequence[float], seconds: float) -> list[float]:
    """Each worker's CPU use over `seconds` since the `before` readings (1.0: one core busy)."""
    return [(worker.cpu_seconds() - used) / seconds for worker, used in zip(workers, before, strict=True)]


async def lookup_stage(
    workers: Sequence[WorkerProcess], token: str, plan: LookupPlan, servers: str, hits_topic: str, progress: Progress
) -> dict[str, Any]:
    """Both kinds, idle then under the firehose, against `workers[0]` (two workers holding `plan.accounts`)."""
    first = workers[0]
    lookups = Lookups(first.url, token, connections=max(plan.concurrency, 100))
    try:
        owners = await lookups.owners([account_id(n) for n in range(plan.accounts)])
        local, routed = split_by_owner(owners, first.url)
        if not local or not routed:
            raise BenchFailed(f"lookup: one worker holds every account ({len(local)} local, {len(routed)} routed)")
        by_kind = {"local": local, "routed": routed}
        # Every account answers before anything is measured (and the connections are open).
        warm = await lookups.at_max(local + routed, len(owners), 16, seed=99)
        if warm["failed"]:
            raise BenchFailed(f"lookup: accounts did not answer 200 before the measurement: {warm['failed']}")
        results: dict[str, Any] = {"accounts": plan.accounts, "local_accounts": len(local), "routed_accounts": len(routed)}
        for load in ("idle", "firehose"):
            hose = Firehose(servers, hits_topic, plan.accounts, plan.load_hits_per_s) if load == "firehose" else None
            before = [worker.cpu_seconds() for worker in workers]
            started = time.monotonic()
            try:
                results[load] = await measure(lookups, by_kind, plan, workers, progress, f"lookup {load}")
            finally:
                hits = hose.stop() if hose is not None else None
            results[load]["worker_cpu_shares"] = cpu_shares(workers, before, time.monotonic() - started)
            if hits is not None:
                results[load]["hits"] = hits
            for worker in workers:
                worker.check_running()
        results["console_page"] = await console_page(first.url, token, by_kind, plan, workers, progress)
        return results
    finally:
        await lookups.close()


async def console_page(
    url: str, token: str, by_kind: dict[str, list[str]], plan: LookupPlan, workers: Sequence[WorkerProcess], progress: Progress
) -> dict[str, Any]:
    """The console's account page, each kind at the plan's rate and at the maximum, the workers idle."""
    pages = Lookups(url, token, connections=max(plan.concurrency, 100), path="/console/accounts/{}")
    try:
        await pages.log_in()
        return await measure(pages, by_kind, plan, workers, progress, "console page")
    finally:
        await pages.close()
