"""Stage 7, storm: many trials sharing one device id (a placeholder sent by a buggy client), on one worker.

On a worker of its own (fresh topics), 1,000 trials share one device id, each with an email of
its own, produced in the order of their trials, then another 1,000 latest first: the time until
every account's latest `refund.eligibility` record is right (its abuse standing as the oracle,
`policy.oracle`, computes it from the same records, and `linked_count` exactly the number of
earlier trials), and the eligibility records each account got. Then the usage-start lag of new,
unrelated accounts (the `lag` stage's measurement) while another such storm is processed, beside
the same measurement on a quiet worker of its own; and the bytes the accounts table stores for one
account after each of 1,000 billing events.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import orjson

from models.outputs import AbuseSummary
from policy.oracle import run as run_oracle
from streams.edge import edge_decoders
from streams.kafka_inputs import ISOLATION_LEVEL
from streams.settings import Settings
from tools.bench.catch_up import BenchFailed
from tools.bench.kafka_io import produce
from tools.bench.progress import Progress
from tools.bench.workload import DAY_MS, START_MS
from tools.supervisor import WorkerProcess
from tools.workerpool import TopicSet

Records = list[tuple[bytes, bytes]]


@dataclass(frozen=True)
class StormPlan:
    accounts: int  # trials sharing one device id, per storm
    billing_events: int  # of the account whose stored state is measured
    lag_hits_per_s: float  # hits while the usage-start lag is measured
    background_accounts: int  # the accounts those hits go to, known to the worker beforehand
    settle_timeout_s: float  # the longest wait for a storm to settle


def storm_trials(prefix: str, accounts: int, latest_first: bool) -> Records:
    """`accounts` trial_started events on one device id, an email each, a second apart in trial order."""
    ranks = range(accounts - 1, -1, -1) if latest_first else range(accounts)
    records = []
    for rank in ranks:
        account = storm_account(prefix, rank)
        trial = {
            "event_id": f"{account}-trial",
            "account_id": account,
            "type": "trial_started",
            "occurred_at": START_MS + rank * 1_000,
            "identity": {"device_id": f"{prefix}-placeholder-device", "email": f"{account}@storm.example"},
        }
        records.append((account.encode(), orjson.dumps(trial)))
    return records


def storm_account(prefix: str, rank: int) -> str:
    return f"{prefix}-{rank:05d}"


def expected_abuse(topics: TopicSet, prefix: str, accounts: int) -> dict[str, AbuseSummary]:
    """Each storm account's abuse standing as the oracle computes it (from the records in trial
    order: the final standings do not depend on it, and the oracle judges one claim at a time),
    checked against the plain count: the account of rank n is linked to exactly n earlier trials."""
    settings = Settings()
    decode = edge_decoders(topics, settings.translator(), settings.max_record_bytes)[topics.billing]
    outcome = run_oracle(decode(value) for _, value in storm_trials(prefix, accounts, latest_first=False))
    expected = {storm_account(prefix, n): outcome.accounts[storm_account(prefix, n)].eligibility for n in range(accounts)}
    found = {account: eligibility.abuse for account, eligibility in expected.items() if eligibility is not None}
    if len(found) != accounts or any(found[storm_account(prefix, n)].linked_count != n for n in range(accounts)):
        raise BenchFailed("storm: the oracle disagrees with the plain count of earlier trials")
    return found


def billing_history(account: str, events: int) -> Records:
    """One account's trial, its charge, then plan changes and renewals a day apart: the billing
    events whose ids the account remembers for deduplication, and nothing else grows with."""
    history: list[dict[str, Any]] = [
        {"type": "trial_started"},  # no identity: no signals, no verdicts, one write per event
        {"type": "charged", "charge_id": f"{account}-ch", "amount_cents": 4_900, "currency": "USD", "reason": "trial_conversion"},
    ]
    history += [{"type": ("plan_changed", "subscription_started")[n % 2]} for n in range(events - len(history))]
    return [
        (account.encode(), orjson.dumps({"event_id": f"{account}-{n:05d}", "account_id": account, "occurred_at": START_MS + n * DAY_MS, **event}))
        for n, event in enumerate(history)
    ]


@dataclass
class StormRun:
    """The storm stage's measurements on one worker and its topics."""

    servers: str
    topics: TopicSet
    worker: WorkerProcess
    plan: StormPlan
    progress: Progress

    async def _consumer(self, topic: str, from_start: bool) -> Any:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(bootstrap_servers=self.servers, group_id=None, enable_auto_commit=False, isolation_level=ISOLATION_LEVEL)
        await consumer.start()
        cluster = await consumer._client.fetch_all_metadata()
        parts = [TopicPartition(topic, p) for p in sorted(cluster.partitions_for_topic(topic) or ())]
        consumer.assign(parts)
        await (consumer.seek_to_beginning(*parts) if from_start else consumer.seek_to_end(*parts))
        for tp in parts:
            await consumer.position(tp)
        return consumer

    async def settle(self, prefix: str, latest_first: bool, what: str, expected: dict[str, AbuseSummary]) -> dict[str, Any]:
        """Produce a storm; wait until every account's latest eligibility record carries its
        `expected` abuse standing. Seconds from the first record produced, records per account."""
        consumer = await self._consumer(self.topics.eligibility, from_start=False)
        latest: dict[str, tuple[int, AbuseSummary]] = {}
        published: Counter[str] = Counter()
        wrong = len(expected)
        try:
            started, cpu = time.monotonic(), self.worker.cpu_seconds()
            await produce(self.servers, self.topics.billing, storm_trials(prefix, self.plan.accounts, latest_first), self.progress, what)
            while wrong and time.monotonic() - started < self.plan.settle_timeout_s:
                self.worker.check_running()
                for messages in (await consumer.getmany(timeout_ms=200, max_records=10_000)).values():
                    for message in messages:
                        record = orjson.loads(message.value)
                        account = record["account_id"]
                        if account not in expected:
                            continue
                        published[account] += 1
                        if account not in latest or latest[account][0] < record["version"]:
                            latest[account] = (record["version"], AbuseSummary.model_validate(record["abuse"]))
                wrong = sum(1 for account, abuse in expected.items() if account not in latest or latest[account][1] != abuse)
                self.progress(f"{what}: {len(expected) - wrong}/{len(expected)} accounts right, {sum(published.values())} records")
            seconds, cpu = time.monotonic() - started, self.worker.cpu_seconds() - cpu
        finally:
            await consumer.stop()
        counts = [published[account] for account in expected]
        result = {
            "accounts": len(expected),
            "settled": not wrong,
            "seconds": seconds,
            "worker_cpu_seconds": cpu,  # less disturbed by a busy machine than the seconds
            "wrong_accounts": wrong,
            "eligibility_records": sum(counts),
            "records_per_account_mean": sum(counts) / len(counts),
            "records_per_account_max": max(counts),
        }
        self.progress.done(
            f"{what}: {'settled' if not wrong else f'NOT settled ({wrong} accounts wrong)'} in {seconds:.1f}s ({cpu:.1f}s of the worker's CPU);"
            f" eligibility records per account: mean {result['records_per_account_mean']:.2f}, max {result['records_per_account_max']}"
        )
        return result

    async def storms(self, lag: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
        """A storm in trial order, one latest first, then `lag` (the lag stage's measurement) with
        a third storm produced a second after it begins."""
        results: dict[str, Any] = {}
        for key, latest_first in (("trial_order", False), ("latest_first", True)):
            what = f"storm: {self.plan.accounts} trials on one device, {key.replace('_', ' ')}"
            results[key] = await self.settle(f"storm-{key}", latest_first, what, expected_abuse(self.topics, f"storm-{key}", self.plan.accounts))
        # The oracle's second of CPU comes before the lag is measured: the storm's client is not on the worker's machine.
        expected = expected_abuse(self.topics, "storm-during-lag", self.plan.accounts)
        measuring = asyncio.ensure_future(lag)
        await asyncio.sleep(1.0)
        storm = await self.settle("storm-during-lag", False, "storm: a storm during the lag", expected)
        results["lag_during_storm"] = {**await measuring, "storm": storm}
        return results

    async def stored_state(self, account: str) -> dict[str, Any]:
        """The account's billing history produced; the accounts table's stored value for it after
        each event, read from the table's changelog (written once for every event processed)."""
        events = self.plan.billing_events
        consumer = await self._consumer(self.topics.accounts_changelog, from_start=True)
        sizes: list[int] = []
        try:
            started = time.monotonic()
            await produce(self.servers, self.topics.billing, billing_history(account, events), self.progress, "storm: one account's billing")
            while len(sizes) < events and time.monotonic() - started < self.plan.settle_timeout_s:
                self.worker.check_running()
                for messages in (await consumer.getmany(timeout_ms=500, max_records=10_000)).values():
                    sizes += [len(m.value) for m in messages if m.key == account.encode() and m.value is not None]
                self.progress(f"storm: {len(sizes)}/{events} writes of {account}'s state")
        finally:
            await consumer.stop()
        if len(sizes) < events:
            raise BenchFailed(f"storm: {len(sizes)} of {events} writes of {account}'s state in {self.topics.accounts_changelog}")
        after = {str(n): sizes[n - 1] for n in (1, 2, 10, 64, 65, 100, 500, events) if n <= events}
        self.progress.done(f"storm: {account}'s stored state after {events} billing events: {sizes[events - 1]:,} bytes (most: {max(sizes):,})")
        return {"account": account, "billing_events": events, "bytes_after_events": after, "max_bytes": max(sizes)}
