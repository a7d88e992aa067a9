"""One group of workers on fresh four-partition inputs, fed one record per account, and the
accounts it left undecided (tests/integration/test_rebalance_*.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kafka.admin import KafkaAdminClient, NewTopic

from tests.support.kafka import Producer, TopicTail
from tests.support.records import capi, hit, trial
from tests.support.worker import WorkerProcess, unique_topics
from tools.supervisor import stop_together
from tools.workerpool import TopicSet, remove_topics

BILLING_ACCOUNTS, CAPI_ACCOUNTS, HIT_ACCOUNTS = 2000, 500, 500
AT = "2026-03-01T10:00:00Z"


@dataclass
class Group:
    servers: str
    state_dir: Path
    topics: TopicSet
    workers: list[WorkerProcess]

    def start_worker(self) -> WorkerProcess:
        worker = WorkerProcess(self.servers, self.topics, self.state_dir)
        self.workers.append(worker)
        return worker


def started_group(bootstrap_servers: str, tmp_path: Path) -> Iterator[Group]:
    """A group (no worker yet) on fresh topics; afterwards its workers stopped, its topics deleted."""
    topics = unique_topics()
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers)
    admin.create_topics([NewTopic(name, 4, 1) for name in topics.inputs])
    group = Group(bootstrap_servers, tmp_path, topics, [])
    try:
        yield group
    finally:
        stop_together(group.workers)
        remove_topics(admin, [name for name in admin.list_topics() if topics.owns(name)])
        admin.close()


def one_record_per_account(producer: Producer, group: Group, spread_s: float) -> None:
    """3,000 records, each the only one of its account, sent evenly over `spread_s` seconds."""
    topics = group.topics
    records = [(topics.billing, trial(f"bill-{n:05d}", AT)) for n in range(BILLING_ACCOUNTS)]
    records += [(topics.capi, capi(f"capi-{n:05d}", AT)) for n in range(CAPI_ACCOUNTS)]
    records += [(topics.hits, hit(f"hit-{n:05d}", AT)) for n in range(HIT_ACCOUNTS)]
    records.sort(key=lambda record: record[1]["account_id"][-3:])  # interleave the three inputs
    started = time.monotonic()
    for index, (topic, value) in enumerate(records):
        producer.send(topic, value, key=value["account_id"])
        ahead = started + spread_s * index / len(records) - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
    producer.flush()


def undecided(group: Group, timeout: float = 90.0) -> list[str]:
    """The accounts without their output once the group has had `timeout` to decide them all."""
    topics = group.topics
    tail = TopicTail(group.servers, [topics.usage, topics.eligibility])
    want = {f"bill-{n:05d}" for n in range(BILLING_ACCOUNTS)} | {f"capi-{n:05d}" for n in range(CAPI_ACCOUNTS)}
    want |= {f"hit-{n:05d}" for n in range(HIT_ACCOUNTS)}

    def missing() -> set[str]:
        seen = {r.value["account_id"] for r in tail.records(topics.eligibility)}
        seen |= {r.value["account_id"] for r in tail.records(topics.usage)}
        return want - seen

    deadline = time.monotonic() + timeout
    while (left := missing()) and time.monotonic() < deadline:
        time.sleep(0.5)
    tail.close()
    return sorted(left)


def report(group: Group, left: list[str]) -> str:
    logs = "\n\n".join(worker.log_tail(15) for worker in group.workers)
    return f"{len(left)} of 3000 accounts undecided, e.g. {left[:5]}\n{logs}"


def undecided_after_a_join(group: Group, after_s: float, spread_s: float) -> list[str]:
    """One worker ready, a second joins, and `after_s` later the records come (over `spread_s`)."""
    group.start_worker().wait_ready()
    producer = Producer(group.servers)
    group.start_worker()  # joins: the group rebalances while the records arrive
    time.sleep(after_s)
    one_record_per_account(producer, group, spread_s)
    producer.close()
    return undecided(group)
