"""Records of an aborted transaction never count; committed ones and plain producers' records do.

Two transactional producers (kafka-python), one aborting and one committing, and a plain producer
write interleaved into partition 0 of every input topic. An aborted record is followed, in its
partition, by a plain record of the same account: the worker handles an account's records in
the order of its input partition, so had the aborted one counted, the account's outputs would
show it first.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer

from tests.integration.conftest import Detector
from tests.support.records import capi, charge, hit, trial

pytestmark = pytest.mark.integration

EARLY, LATE = "2026-03-01T10:00:00.000Z", "2026-03-02T10:00:00.000Z"
CHARGED = "2026-03-15T10:00:00Z"


def transactional(servers: str) -> KafkaProducer:
    producer = KafkaProducer(bootstrap_servers=servers, transactional_id=f"test-tx-{uuid.uuid4().hex[:8]}")
    producer.init_transactions()
    producer.begin_transaction()
    return producer


def send(producer: KafkaProducer, topic: str, value: dict[str, Any]) -> None:
    producer.send(topic, orjson.dumps(value), key=value["account_id"].encode(), partition=0)
    producer.flush()  # in the log now: the three producers' records interleave in the order written here


def account(role: str) -> str:
    return f"{role}-{uuid.uuid4().hex[:8]}"


def test_aborted_records_never_count_committed_and_plain_ones_do(detector: Detector) -> None:
    topics, tail = detector.topics, detector.tail
    plain = KafkaProducer(bootstrap_servers=detector.bootstrap_servers)
    aborting, committing = transactional(detector.bootstrap_servers), transactional(detector.bootstrap_servers)
    hit_aborted, hit_committed, hit_plain = account("hit-aborted"), account("hit-committed"), account("hit-plain")
    capi_aborted, capi_committed, capi_plain = account("capi-aborted"), account("capi-committed"), account("capi-plain")
    bill_aborted, bill_committed, bill_plain = account("bill-aborted"), account("bill-committed"), account("bill-plain")

    send(aborting, topics.hits, hit(hit_aborted, EARLY))
    send(plain, topics.hits, hit(hit_plain, EARLY))
    send(committing, topics.hits, hit(hit_committed, EARLY))
    send(aborting, topics.capi, capi(capi_aborted, EARLY))
    send(committing, topics.capi, capi(capi_committed, EARLY))
    send(plain, topics.capi, capi(capi_plain, EARLY))
    send(committing, topics.billing, trial(bill_committed, EARLY))
    send(aborting, topics.billing, charge(bill_aborted, CHARGED, "ch-aborted"))
    send(plain, topics.billing, trial(bill_plain, EARLY))
    send(committing, topics.billing, charge(bill_committed, CHARGED, "ch-committed"))
    aborting.abort_transaction()
    committing.commit_transaction()
    aborting.close()
    committing.close()
    # After the aborted records, in the same partitions: a plain record of each aborted account.
    send(plain, topics.hits, hit(hit_aborted, LATE))
    send(plain, topics.capi, capi(capi_aborted, LATE))
    send(plain, topics.billing, trial(bill_aborted, LATE))
    plain.close()

    def usage_starts(account_id: str) -> list[str]:
        return [r.value["usage_started_at"] for r in tail.records(topics.usage, account_id)]

    for account_id in (hit_committed, hit_plain, capi_committed, capi_plain):
        assert tail.wait_for(f"usage of {account_id}", lambda a=account_id: usage_starts(a)) == [EARLY]
    for account_id in (hit_aborted, capi_aborted):
        assert tail.wait_for(f"usage of {account_id}", lambda a=account_id: usage_starts(a)) == [LATE], "an aborted record counted"

    def eligibility(account_id: str) -> list[dict[str, Any]]:
        return [r.value for r in tail.records(topics.eligibility, account_id)]

    charged = tail.wait_for("the committed charge", lambda: [e for e in eligibility(bill_committed) if e["charge"]])
    assert charged[-1]["charge"]["charge_id"] == "ch-committed" and charged[-1]["state"] == "eligible"
    tail.wait_for(f"the trial of {bill_plain}", lambda: eligibility(bill_plain))
    tail.wait_for(f"the trial of {bill_aborted}", lambda: [e for e in eligibility(bill_aborted) if e["trial"]])
    assert [e["charge"] for e in eligibility(bill_aborted)] == [None], "the aborted charge counted"


def test_what_transactions_leave_behind_the_last_record_is_no_lag(detector: Detector) -> None:
    """A partition ending with a commit marker, one ending with an aborted transaction: the worker
    has read everything there is, and the tools that wait for it (replay, chaos) must see that."""
    topics, servers = detector.topics, detector.bootstrap_servers
    committed_account = account("marker")
    committing = transactional(servers)
    committing.send(topics.hits, orjson.dumps(hit(committed_account, EARLY)), key=committed_account.encode(), partition=1)
    committing.commit_transaction()
    committing.close()
    aborting = transactional(servers)
    aborting.send(topics.hits, orjson.dumps(hit(account("aborted-last"), EARLY)), partition=2)
    aborting.abort_transaction()
    aborting.close()

    detector.tail.wait_for("the committed hit's usage", lambda: detector.tail.records(topics.usage, committed_account))
    detector.tail.wait_for("no lag on the hits", lambda: detector.hits_lag() == 0)
