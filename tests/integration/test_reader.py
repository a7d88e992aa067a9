"""The refund service's reader on the real broker: highest version per account, callbacks, catch-up."""

from __future__ import annotations

import threading
import uuid

import orjson
import pytest
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from models.outputs import AbuseSummary, RefundEligibility
from reader import EligibilityReader

pytestmark = pytest.mark.integration


def record(account: str, version: int, state: str) -> bytes:
    reasons = {"no_charge": (), "eligible": ("trial_charge_unused",), "discretionary": ("trial_charge_used",)}[state]
    return orjson.dumps(
        RefundEligibility(
            account_id=account, version=version, decided_at=1000 + version, state=state, reasons=reasons,
            charge=None, trial=True, usage_started_at=None, abuse=AbuseSummary(),
        ).model_dump(mode="json")
    )


@pytest.fixture
def eligibility_topic(bootstrap_servers: str) -> str:
    name = f"{uuid.uuid4().hex[:8]}.refund.eligibility"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers)
    admin.create_topics([NewTopic(name, 3, 1, topic_configs={"cleanup.policy": "compact"})])
    admin.close()
    return name


def test_reader_keeps_the_highest_version_and_reports_each_change(bootstrap_servers: str, eligibility_topic: str) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap_servers)
    # Out of order and duplicated, as a reader may see after a worker's crash.
    for account, version, state in [("a", 1, "no_charge"), ("a", 2, "eligible"), ("a", 2, "eligible"), ("b", 1, "no_charge"), ("a", 1, "no_charge")]:
        producer.send(eligibility_topic, key=account.encode(), value=record(account, version, state))
    producer.send(eligibility_topic, key=b"junk", value=b"not a record")
    producer.flush()
    changes: list[tuple[str, int]] = []
    changed = threading.Event()

    def on_change(r: RefundEligibility) -> None:
        changes.append((r.account_id, r.version))
        if r.version == 3:
            changed.set()

    with EligibilityReader(bootstrap_servers, eligibility_topic, on_change=on_change) as reader:
        assert reader.wait_until_caught_up(timeout=30)
        assert reader.get("a").state == "eligible" and reader.get("a").version == 2
        assert reader.get("b").state == "no_charge"
        assert reader.get("nobody") is None
        assert len(reader) == 2
        producer.send(eligibility_topic, key=b"a", value=record("a", 3, "discretionary"))
        producer.flush()
        assert changed.wait(timeout=30)
        assert reader.get("a").state == "discretionary"
    producer.close()
    assert sorted(changes) == [("a", 1), ("a", 2), ("a", 3), ("b", 1)]  # each version once, duplicates not


def test_reader_of_a_missing_topic_says_so(bootstrap_servers: str) -> None:
    with pytest.raises(LookupError, match="does not exist"):
        EligibilityReader(bootstrap_servers, f"missing-{uuid.uuid4().hex}", request_timeout_ms=5000)
