"""End to end on the real broker: records in through an independent client, decisions out."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka.admin import KafkaAdminClient

from tests.integration.conftest import INPUT_PARTITIONS, Detector, start_detector
from tests.support.kafka import TopicTail
from tests.support.records import billing, cancellation, capi, charge, hit, refund, trial
from tests.support.worker import TOKEN
from tools.supervisor import HTTP

pytestmark = pytest.mark.integration

T0 = "2026-03-01T10:00:00Z"
T_CANCEL = "2026-03-10T09:00:00Z"
T_CHARGE = "2026-03-15T10:00:00Z"
T_CHARGE_MS = 1773568800000  # T_CHARGE as epoch milliseconds
T_USE = "2026-03-16T12:30:00.250Z"
T_RENEWAL = "2026-04-15T10:00:00Z"


@pytest.fixture(scope="module")
def detector(bootstrap_servers: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Detector]:
    """A worker taking its table census every second (other tests' workers keep the default, which
    costs them no CPU): the metrics test waits for a census that saw its records."""
    yield from start_detector(
        bootstrap_servers, tmp_path_factory.mktemp("detector"), extra_env={"USAGE_DETECTOR_CENSUS_INTERVAL_S": "1"}
    )


def new_account() -> str:
    return f"acct-{uuid.uuid4().hex[:10]}"


def latest(detector: Detector, topic: str, account_id: str) -> dict[str, Any] | None:
    records = detector.tail.records(topic, account_id)
    return max((r.value for r in records), key=lambda v: v["version"], default=None)


def wait_eligibility(detector: Detector, account_id: str, state: str, reasons: list[str]) -> dict[str, Any]:
    def matches() -> dict[str, Any] | None:
        record = latest(detector, detector.topics.eligibility, account_id)
        return record if record and record["state"] == state and record["reasons"] == reasons else None

    try:
        return detector.tail.wait_for(f"{account_id} to become {state} {reasons}", matches)
    except AssertionError:
        raise AssertionError(
            f"latest eligibility of {account_id}: {latest(detector, detector.topics.eligibility, account_id)}"
        ) from None


def publish(detector: Detector, records: list[tuple[str, dict[str, Any]]]) -> None:
    topics = {"billing": detector.topics.billing, "hits": detector.topics.hits, "capi": detector.topics.capi}
    for topic, value in records:
        detector.producer.send(topics[topic], value, key=value["account_id"])
    detector.producer.flush()


RULES = [
    # (id, events, expected state, expected reasons)
    ("rule1-refunded", lambda a: [("billing", trial(a, T0)), ("billing", charge(a, T_CHARGE, "c1")), ("billing", refund(a, T_RENEWAL, "c1"))], "refunded", ["charge_refunded"]),
    ("rule3-no-charge", lambda a: [("billing", trial(a, T0))], "no_charge", []),
    ("rule4-dashboard-cancel-before-charge", lambda a: [("billing", trial(a, T0)), ("billing", cancellation(a, T_CANCEL)), ("billing", charge(a, T_CHARGE, "c1"))], "eligible", ["charged_after_dashboard_cancellation"]),
    ("rule4-beats-rule5-even-with-usage", lambda a: [("billing", trial(a, T0)), ("hits", hit(a, T0)), ("billing", cancellation(a, T_CANCEL)), ("billing", charge(a, T_CHARGE, "c1"))], "eligible", ["charged_after_dashboard_cancellation"]),
    ("rule5-trial-charge-unused", lambda a: [("billing", trial(a, T0)), ("billing", charge(a, T_CHARGE_MS, "c1"))], "eligible", ["trial_charge_unused"]),
    ("rule5-trial-charge-used-via-capi", lambda a: [("billing", trial(a, T0)), ("capi", capi(a, "2026-03-02T08:00:00Z", integration="shopify")), ("billing", charge(a, T_CHARGE, "c1"))], "discretionary", ["trial_charge_used"]),
    ("rule6-email-claim", lambda a: [("billing", billing(a, "subscription_started", T0)), ("billing", cancellation(a, T_CANCEL, channel="email")), ("billing", charge(a, T_RENEWAL, "c2", reason="renewal"))], "ineligible", ["cancellation_not_via_dashboard"]),
    ("rule6-dashboard-by-non-owner", lambda a: [("billing", billing(a, "subscription_started", T0)), ("billing", cancellation(a, T_CANCEL, requested_by="other")), ("billing", charge(a, T_CHARGE, "c1", reason="renewal"))], "ineligible", ["cancellation_not_via_dashboard"]),
    ("rule7-renewal", lambda a: [("billing", billing(a, "subscription_started", T0)), ("billing", charge(a, T_RENEWAL, "c2", reason="renewal"))], "ineligible", ["no_refund_for_unused_time"]),
    ("latest-charge-wins-older-refund-ignored", lambda a: [("billing", trial(a, T0)), ("billing", charge(a, T_RENEWAL, "c2", reason="renewal")), ("billing", charge(a, T_CHARGE, "c1")), ("billing", refund(a, T_RENEWAL, "c1"))], "ineligible", ["no_refund_for_unused_time"]),
]


@pytest.mark.parametrize("scenario", RULES, ids=[r[0] for r in RULES])
def test_each_rule_end_to_end(detector: Detector, scenario: Any) -> None:
    _, events, state, reasons = scenario
    account = new_account()
    publish(detector, events(account))
    record = wait_eligibility(detector, account, state, reasons)
    assert record["account_id"] == account
    assert record["decided_at"].endswith("Z")


def test_usage_after_trial_charge_turns_eligible_into_discretionary(detector: Detector) -> None:
    account = new_account()
    publish(detector, [("billing", trial(account, T0)), ("billing", charge(account, T_CHARGE, "c1"))])
    eligible = wait_eligibility(detector, account, "eligible", ["trial_charge_unused"])
    # Each account its own site: a shared host is a repeated-trial signal (rule 2).
    page = f"https://{account}.example/cart"
    publish(detector, [("hits", hit(account, T_USE, page_url=page, property_id="p1"))])
    discretionary = wait_eligibility(detector, account, "discretionary", ["trial_charge_used"])
    assert discretionary["version"] > eligible["version"]
    assert discretionary["usage_started_at"] == "2026-03-16T12:30:00.250Z"
    usage = latest(detector, detector.topics.usage, account)
    assert usage is not None
    assert usage["usage_started_at"] == "2026-03-16T12:30:00.250Z"
    assert usage["first_evidence"]["source"] == "tracking_tag"
    assert usage["first_evidence"]["page_url"] == page
    assert usage["first_evidence"]["property_id"] == "p1"


def test_earlier_evidence_arriving_later_moves_usage_start_earlier(detector: Detector) -> None:
    account = new_account()
    publish(detector, [("hits", hit(account, "2026-03-05T00:00:00Z"))])
    first = detector.tail.wait_for("first usage.state", lambda: latest(detector, detector.topics.usage, account))
    publish(detector, [("hits", hit(account, "2026-03-06T00:00:00Z")), ("capi", capi(account, "2026-03-04T00:00:00Z", integration="api"))])
    moved = detector.tail.wait_for(
        "usage start to move earlier",
        lambda: (r := latest(detector, detector.topics.usage, account)) and r["version"] > first["version"] and r,
    )
    assert moved["usage_started_at"] == "2026-03-04T00:00:00.000Z"
    assert moved["first_evidence"]["source"] == "conversion_api"
    assert moved["first_evidence"]["integration"] == "api"


def test_later_hits_of_a_used_account_are_dropped_and_still_committed(detector: Detector) -> None:
    """The fast lane: no output for hits that change nothing, yet their offsets are committed,
    and an invalid hit among them is still dead-lettered."""
    account = new_account()
    publish(detector, [("hits", hit(account, "2026-03-05T00:00:00Z"))])
    first = detector.tail.wait_for("usage.state", lambda: latest(detector, detector.topics.usage, account))
    dropped_before = detector.worker.metric("usage_detector_evidence_dropped_total")
    later = [("hits", hit(account, f"2026-03-06T00:00:{second:02d}Z")) for second in range(40)]
    invalid = hit(account, "2026-03-06T00:01:00Z", hit_id="")
    publish(detector, [*later[:20], ("hits", invalid), *later[20:]])  # one key: one partition, in order

    letters = detector.tail.wait_for(
        "the invalid hit's dead letter",
        lambda: [r for r in detector.tail.records(detector.topics.dead_letter) if account in (r.value["raw"] or "")],
    )
    assert letters[0].value["error"]["code"] == "invalid_field"
    detector.tail.wait_for("the hits' offsets committed", lambda: detector.hits_lag() == 0)
    assert detector.worker.metric("usage_detector_evidence_dropped_total") - dropped_before == 40
    assert [r.value["version"] for r in detector.tail.records(detector.topics.usage, account)] == [first["version"]]


def test_a_hits_occurred_at_is_never_used_for_usage_start(detector: Detector) -> None:
    account = new_account()
    publish(detector, [("hits", hit(account, "2026-03-05T00:00:00Z", occurred_at="2020-01-01T00:00:00Z"))])
    usage = detector.tail.wait_for("usage.state", lambda: latest(detector, detector.topics.usage, account))
    assert usage["usage_started_at"] == "2026-03-05T00:00:00.000Z"


def test_duplicate_billing_events_have_the_effect_of_one(detector: Detector) -> None:
    account = new_account()
    charged = charge(account, T_CHARGE, "c1")
    refunded = refund(account, T_RENEWAL, "c1")
    publish(detector, [("billing", trial(account, T0)), ("billing", charged), ("billing", charged), ("billing", refunded), ("billing", refunded)])
    wait_eligibility(detector, account, "refunded", ["charge_refunded"])
    # A second charge after the refund; then the old refund event again must not refund it.
    publish(detector, [("billing", charge(account, T_RENEWAL, "c2", reason="renewal")), ("billing", refunded)])
    record = wait_eligibility(detector, account, "ineligible", ["no_refund_for_unused_time"])
    by_version: dict[int, dict[str, Any]] = {}
    for r in detector.tail.records(detector.topics.eligibility, account):
        assert by_version.setdefault(r.value["version"], r.value) == r.value, "conflicting records for one version"
    # trial (no_charge) -> charged (eligible) -> refunded -> renewal (ineligible): four changes, no more.
    assert sorted(by_version) == [1, 2, 3, 4]
    assert record["version"] == 4


def test_a_tied_hit_arriving_later_with_a_smaller_id_becomes_the_first_evidence(detector: Detector) -> None:
    """Ties on received_at are settled by the account (source, then id), whatever the arrival order:
    the hot path's filter must not drop a tie as if it were a later hit."""
    account = new_account()
    publish(detector, [("hits", hit(account, T0, hit_id="hit-b"))])
    first = detector.tail.wait_for("usage", lambda: latest(detector, detector.topics.usage, account))
    assert first["first_evidence"]["id"] == "hit-b"
    publish(detector, [("hits", hit(account, T0, hit_id="hit-a")), ("hits", hit(account, T_CHARGE, hit_id="hit-0"))])
    settled = detector.tail.wait_for(
        "the tie settled by id", lambda: (r := latest(detector, detector.topics.usage, account)) and r["version"] > 1 and r
    )
    assert settled["first_evidence"]["id"] == "hit-a"
    assert settled["usage_started_at"] == first["usage_started_at"] == "2026-03-01T10:00:00.000Z"


def test_an_event_that_changes_nothing_still_saves_the_account_to_the_changelog(detector: Detector) -> None:
    """The repair for a worker restarted on a local store ahead of the changelog (see process-accounts)."""
    account = new_account()
    started = trial(account, T0)
    changelog = TopicTail(detector.bootstrap_servers, [f"{detector.topics.app_id}-accounts-changelog"])
    try:
        publish(detector, [("billing", started)])
        wait_eligibility(detector, account, "no_charge", [])
        saved = lambda: changelog.records(f"{detector.topics.app_id}-accounts-changelog", account)
        first = changelog.wait_for("the account in the changelog", saved)
        publish(detector, [("billing", started)])  # the very same event: nothing changes
        again = changelog.wait_for("the account saved again", lambda: len(saved()) > len(first) and saved())
        assert again[-1].value == first[-1].value
        published = lambda: detector.tail.records(detector.topics.eligibility, account)
        detector.tail.wait_for("the decision republished", lambda: len(published()) == 2)
        assert published()[0].value == published()[1].value
    finally:
        changelog.close()


@pytest.mark.parametrize("key", [None, b"someone-else", b"\xff\xfe"], ids=["null-key", "other-account", "non-utf8"])
def test_the_account_id_in_the_value_decides_not_the_key(detector: Detector, key: bytes | None) -> None:
    account = new_account()
    detector.producer.send(detector.topics.billing, trial(account, T0), key=key)
    detector.producer.send(detector.topics.billing, charge(account, T_CHARGE, "c1"), key=key)
    detector.producer.flush()
    record = wait_eligibility(detector, account, "eligible", ["trial_charge_unused"])
    outputs = list(detector.tail.records(detector.topics.eligibility, account))
    assert {r.key for r in outputs} == {account.encode()}
    assert record["account_id"] == account


def test_inputs_on_differing_partition_counts_converge_per_account(detector: Detector) -> None:
    admin = KafkaAdminClient(bootstrap_servers=detector.bootstrap_servers)
    described = {t["name"]: len(t["partitions"]) for t in admin.describe_topics([detector.topics.hits, detector.topics.capi, detector.topics.billing, detector.topics.eligibility])}
    admin.close()
    assert described == {
        detector.topics.hits: INPUT_PARTITIONS["hits"],
        detector.topics.capi: INPUT_PARTITIONS["capi"],
        detector.topics.billing: INPUT_PARTITIONS["billing"],
        detector.topics.eligibility: 4,
    }
    account = new_account()
    # The same account's records spread over every partition of every input.
    for partition in range(INPUT_PARTITIONS["hits"]):
        detector.producer.send(detector.topics.hits, hit(account, f"2026-03-2{partition}T00:00:00Z"), key=account, partition=partition)
    detector.producer.send(detector.topics.billing, trial(account, T0), key=account, partition=0)
    detector.producer.send(detector.topics.billing, charge(account, T_CHARGE, "c1"), key=account, partition=1)
    detector.producer.flush()
    wait_eligibility(detector, account, "discretionary", ["trial_charge_used"])
    # The three partitions are read in any order: a later hit may be decided on first, then the
    # usage start moves to the earliest hit (a new version). Wait for that, not the first decision.
    record = detector.tail.wait_for(
        "usage start to converge on the earliest hit",
        lambda: (r := latest(detector, detector.topics.eligibility, account)) and r["usage_started_at"] == "2026-03-20T00:00:00.000Z" and r,
    )
    assert (record["state"], record["reasons"]) == ("discretionary", ["trial_charge_used"])


BAD_RECORDS = [
    ("empty_value", None),
    ("invalid_encoding", b'{"hit_id": "\xff"}'),
    ("not_json", b"hello"),
    ("not_json", b'{"received_at": NaN}'),
    ("not_an_object", b"[1, 2]"),
    ("missing_field", b'{"account_id": "acct-x", "received_at": 1}'),
    ("invalid_field", b'{"hit_id": 5, "account_id": "acct-x", "received_at": 1}'),
    ("invalid_field", b'{"hit_id": "h", "account_id": "acct-x", "received_at": "yesterday"}'),
    ("invalid_account_id", b'{"hit_id": "h", "account_id": "no spaces allowed", "received_at": 1}'),
    ("too_large", b'{"hit_id": "h", "account_id": "acct-x", "received_at": 1, "pad": "' + b"x" * 300_000 + b'"}'),
]


def test_each_kind_of_bad_record_is_dead_lettered_and_processing_goes_on(detector: Detector) -> None:
    marker = uuid.uuid4().hex
    for _, value in BAD_RECORDS:
        detector.producer.send(detector.topics.hits, value, key=marker)
    unknown_type = billing(new_account(), "teleported", T0)
    detector.producer.send(detector.topics.billing, unknown_type, key=marker)
    account = new_account()
    publish(detector, [("hits", hit(account, T_USE))])
    letters = detector.tail.wait_for(
        "every bad record in the dead-letter topic",
        lambda: (found := [r for r in detector.tail.records(detector.topics.dead_letter) if r.value["key"] == marker])
        and len(found) == len(BAD_RECORDS) + 1
        and found,
    )
    codes = sorted(r.value["error"]["code"] for r in letters)
    assert codes == sorted([code for code, _ in BAD_RECORDS] + ["unknown_type"])
    for letter in letters:
        assert letter.value["topic"] in (detector.topics.hits, detector.topics.billing)
        assert letter.value["offset"] >= 0 and letter.value["error"]["message"]
        assert len(letter.value["raw"] or "") <= 64 * 1024
    not_utf8 = next(r for r in letters if r.value["error"]["code"] == "invalid_encoding")
    assert not_utf8.value["raw"] == "eyJoaXRfaWQiOiAi/yJ9"  # base64 of the original bytes
    detector.tail.wait_for("the valid hit after them", lambda: latest(detector, detector.topics.usage, account))


def test_http_lookup_needs_the_token_and_answers_the_account(detector: Detector) -> None:
    account = new_account()
    publish(detector, [("billing", trial(account, T0)), ("billing", charge(account, T_CHARGE, "c1"))])
    wait_eligibility(detector, account, "eligible", ["trial_charge_unused"])
    url = f"{detector.worker.url}/accounts/{account}"
    assert HTTP.get(url).status_code == 401
    assert HTTP.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    found = HTTP.get(url, headers={"Authorization": f"Bearer {TOKEN}"})
    assert found.status_code == 200
    body = found.json()
    assert body["eligibility"]["state"] == "eligible" and body["usage"] is None
    missing = HTTP.get(f"{detector.worker.url}/accounts/{new_account()}", headers={"Authorization": f"Bearer {TOKEN}"})
    assert missing.status_code == 404
    assert HTTP.get(f"{detector.worker.url}/healthz").status_code == 200
    # The table census runs in the background (every second for this module's worker): wait for one
    # that has seen the eligible account.
    detector.tail.wait_for(
        "a census with an eligible account",
        lambda: 'usage_detector_accounts{state="eligible"}' in HTTP.get(f"{detector.worker.url}/metrics").text,
    )
    metrics = HTTP.get(f"{detector.worker.url}/metrics").text
    for name in (
        "usage_detector_usage_start_lag_seconds_bucket",
        "usage_detector_decision_publish_latency_seconds_bucket",
        "usage_detector_consumer_lag{",
        'usage_detector_table_keys{table="accounts"}',
        'usage_detector_accounts{state="eligible"}',
        "usage_detector_census_age_seconds",
        'usage_detector_eligibility_transitions_total{from_state="no_charge",to_state="eligible"}',
    ):
        assert name in metrics, name


def test_explain_tells_the_decision_in_words(detector: Detector) -> None:
    account = new_account()
    page = f"https://{account}.example/"  # its own site: a shared host would link the trials (rule 2)
    publish(detector, [("billing", trial(account, T0)), ("billing", charge(account, T_CHARGE, "c1")), ("hits", hit(account, T_USE, page_url=page))])
    wait_eligibility(detector, account, "discretionary", ["trial_charge_used"])
    cli = str(Path(sys.executable).with_name("usage-detector"))
    env_args = ["--kafka-bootstrap-servers", detector.bootstrap_servers, "--app-id", detector.topics.app_id]

    def explain() -> subprocess.CompletedProcess[str]:
        return subprocess.run([cli, "explain", account, *env_args], check=False, capture_output=True, text=True, timeout=60)

    # The state reaches the changelog a moment after the records reach their topics.
    explained = detector.tail.wait_for("explain to show the decision", lambda: (e := explain()) and f"{account}: discretionary" in e.stdout and e)
    assert explained.returncode == 0, explained.stderr
    assert "rule 5" in explained.stdout and "tracking_tag" in explained.stdout and page in explained.stdout
    unknown = subprocess.run([cli, "explain", new_account(), *env_args], check=False, capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 1 and "unknown" in unknown.stdout
