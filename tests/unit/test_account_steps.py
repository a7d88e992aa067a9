"""One account's steps through both stages (`tests.unit.stages`), against CONTRACT.md ("usage.state",
"refund.eligibility", "Delivery") and the promise in the docstrings of `policy.apply` and `policy.usage.observe`: a record is
published with the next version when its content changes; an event that changes nothing
publishes the current records again, unchanged.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from models.internal import AccountEvent, UsageObserved
from models.outputs import RefundEligibility, UsageState
from models.state import AccountState
from tests.unit.factories import (
    ACCOUNT,
    DAY,
    HOUR,
    MINUTE,
    SECOND,
    C,
    make_cancellation,
    make_capi,
    make_charge,
    make_hit,
    make_plan_change,
    make_refund,
    make_subscription,
    make_trial,
)
from tests.unit.stages import Steps, detector_step

NOW = 1_790_000_000_123  # the detector's clock at the first step; 2026-09-21T14:13:20.123Z

Record = UsageState | RefundEligibility
STAMP = {UsageState: "detected_at", RefundEligibility: "decided_at"}

# --------------------------------------------------------------------------------------------
# Running events through `apply`
# --------------------------------------------------------------------------------------------


@dataclass
class AccountRun:
    """Feeds one account's events through `apply`, keeping every step and what a reader holds."""

    state: AccountState | None = None
    steps: list[Steps] = field(default_factory=list)
    nows: list[int] = field(default_factory=list)
    held: dict[type, Record] = field(default_factory=dict)  # highest version per output topic

    def feed(self, event: AccountEvent, now: int | None = None) -> Steps:
        now = NOW + len(self.steps) * SECOND if now is None else now
        step = detector_step(self.state, event, now=now)
        self.state = step.state
        self.steps.append(step)
        self.nows.append(now)
        for record in step.records:
            held = self.held.get(type(record))
            if held is None or record.version > held.version:
                self.held[type(record)] = record
        return step

    def feed_all(self, events: list[AccountEvent]) -> AccountRun:
        for event in events:
            self.feed(event)
        return self

    @property
    def usage(self) -> UsageState | None:
        return self.held.get(UsageState)  # type: ignore[return-value]

    @property
    def eligibility(self) -> RefundEligibility | None:
        return self.held.get(RefundEligibility)  # type: ignore[return-value]


def account_run_factory(events: list[AccountEvent] = ()) -> AccountRun:  # type: ignore[assignment]
    return AccountRun().feed_all(list(events))


def of_type(step: Steps, kind: type) -> list[Record]:
    return [r for r in step.records if isinstance(r, kind)]


def content(record: Record) -> dict[str, object]:
    """A record without its version and its stamp: what 'content changes' is judged on."""
    return record.model_dump(mode="json", exclude={"version", STAMP[type(record)]})


# --------------------------------------------------------------------------------------------
# usage.state: first detection
# --------------------------------------------------------------------------------------------


def test_first_tracking_hit_publishes_usage_state() -> None:
    run = account_run_factory()
    step = run.feed(make_hit(C - HOUR, "hit-1", property_id="prop-9", page_url="https://shop.example/p"), now=NOW)

    [usage] = of_type(step, UsageState)
    assert usage.account_id == ACCOUNT
    assert usage.used is True
    assert usage.usage_started_at == C - HOUR
    assert usage.detected_at == NOW
    assert isinstance(usage.version, int)
    assert usage.model_dump(mode="json") == {
        "account_id": ACCOUNT,
        "used": True,
        "usage_started_at": "2026-03-01T09:00:00.000Z",
        "first_evidence": {
            "source": "tracking_tag",
            "id": "hit-1",
            "property_id": "prop-9",
            "page_url": "https://shop.example/p",
            "received_at": "2026-03-01T09:00:00.000Z",
        },
        "detected_at": "2026-09-21T14:13:20.123Z",
        "version": usage.version,
    }


def test_first_conversion_api_event_publishes_usage_state_like_a_hit() -> None:
    run = account_run_factory()
    step = run.feed(make_capi(C - HOUR, "capi-7", integration="shopify"), now=NOW)

    [usage] = of_type(step, UsageState)
    assert usage.usage_started_at == C - HOUR
    assert usage.detected_at == NOW
    evidence = usage.model_dump(mode="json")["first_evidence"]
    assert evidence["source"] == "conversion_api"
    assert evidence["id"] == "capi-7"
    assert evidence["integration"] == "shopify"
    assert evidence["received_at"] == "2026-03-01T09:00:00.000Z"


@pytest.mark.parametrize(
    "make_evidence",
    [pytest.param(make_hit, id="tracking-tag"), pytest.param(make_capi, id="conversion-api")],
)
def test_evidence_of_either_source_is_usage_for_the_trial_rule(make_evidence: Callable[[int], UsageObserved]) -> None:
    run = account_run_factory([make_trial(), make_charge(reason="trial_conversion")])
    assert run.eligibility.state == "eligible"

    run.feed(make_evidence(C + HOUR))

    assert (run.eligibility.state, tuple(run.eligibility.reasons)) == ("discretionary", ("trial_charge_used",))
    assert run.eligibility.usage_started_at == C + HOUR
    assert run.usage.usage_started_at == C + HOUR


def test_earlier_capi_event_moves_start_before_a_tag_hit() -> None:
    run = account_run_factory([make_hit(C, "hit-1"), make_capi(C - MINUTE, "capi-1", integration="api")])
    assert run.usage.usage_started_at == C - MINUTE
    assert (run.usage.first_evidence.source, run.usage.first_evidence.id) == ("conversion_api", "capi-1")


# --------------------------------------------------------------------------------------------
# usage.state: the earliest received_at, sticky, moving only earlier
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arrivals", "started_at", "new_version"),
    [
        pytest.param([5, 3, 7, 1, 9], [5, 3, 3, 1, 1], [True, True, False, True, False], id="mixed"),
        pytest.param([1, 2, 3], [1, 1, 1], [True, False, False], id="in-order"),
        pytest.param([3, 2, 1], [3, 2, 1], [True, True, True], id="reverse-order"),
        pytest.param([4, 9, 9, 8, 2], [4, 4, 4, 4, 2], [True, False, False, False, True], id="later-ones-ignored"),
    ],
)
def test_usage_start_is_the_earliest_received_at(arrivals: list[int], started_at: list[int], new_version: list[bool]) -> None:
    run = account_run_factory()
    published: list[UsageState] = []
    for i, minutes in enumerate(arrivals):
        step = run.feed(make_hit(C + minutes * MINUTE, f"hit-{i}"))
        fresh = [r for r in of_type(step, UsageState) if not published or r.version > published[-1].version]
        assert len(fresh) == (1 if new_version[i] else 0), f"arrival {i} (+{minutes} min)"
        if fresh:
            [usage] = fresh
            assert usage.detected_at == run.nows[-1]
            assert usage.first_evidence.id == f"hit-{i}"
            published.append(usage)
        for r in of_type(step, UsageState):  # anything else on the topic repeats the current record
            assert r == published[-1]
        assert run.usage.usage_started_at == C + started_at[i] * MINUTE
    versions = [u.version for u in published]
    assert versions == sorted(set(versions))


def test_same_evidence_twice_changes_nothing() -> None:
    run = account_run_factory([make_hit(C, "hit-1")])
    held = dict(run.held)
    step = run.feed(make_hit(C, "hit-1"))
    assert run.held == held
    assert step.records == (held[UsageState], held[RefundEligibility]), "both current records again, unchanged"


def test_occurred_at_of_a_hit_is_never_used() -> None:
    honest = make_hit(C + 5 * MINUTE, "hit-honest", occurred_at=C + 5 * MINUTE)
    skewed = make_hit(C + 10 * MINUTE, "hit-skewed", occurred_at=C - 30 * DAY)  # browser clock a month behind
    for events in ([honest, skewed], [skewed, honest]):
        run = account_run_factory([make_trial(), make_charge(at=C + 7 * MINUTE, reason="trial_conversion"), *events])
        assert run.usage.usage_started_at == C + 5 * MINUTE
        assert run.usage.first_evidence.id == "hit-honest"
        assert run.eligibility.usage_started_at == C + 5 * MINUTE
        assert "occurred_at" not in run.usage.model_dump(mode="json")["first_evidence"]


def test_browser_clock_alone_does_not_make_a_hit_earliest() -> None:
    run = account_run_factory([make_hit(C, "hit-1")])
    usage = run.usage
    run.feed(make_hit(C + MINUTE, "hit-2", occurred_at=C - DAY))
    assert run.usage == usage


def test_earlier_evidence_arriving_later_publishes_new_usage_and_eligibility() -> None:
    run = account_run_factory([make_trial(), make_charge(reason="trial_conversion"), make_hit(C + HOUR, "hit-late")])
    usage_before, eligibility_before = run.usage, run.eligibility
    assert eligibility_before.state == "discretionary"

    step = run.feed(make_capi(C - HOUR, "capi-early"), now=NOW + DAY)

    [usage] = [r for r in of_type(step, UsageState) if r.version > usage_before.version]
    assert usage.usage_started_at == C - HOUR
    assert usage.first_evidence.id == "capi-early"
    assert usage.detected_at == NOW + DAY
    # A reader holding the highest eligibility version sees the new start too.
    assert run.eligibility.version > eligibility_before.version
    assert run.eligibility.usage_started_at == C - HOUR
    assert run.eligibility.decided_at == NOW + DAY
    assert (run.eligibility.state, tuple(run.eligibility.reasons)) == ("discretionary", ("trial_charge_used",))


@pytest.mark.parametrize(
    "event_factory",
    [
        pytest.param(lambda: make_charge("ch_2", at=C + 30 * DAY, reason="renewal"), id="charge"),
        pytest.param(lambda: make_refund("ch_1", at=C + 2 * DAY), id="refund"),
        pytest.param(lambda: make_cancellation(C + DAY), id="dashboard-cancellation"),
        pytest.param(lambda: make_cancellation(C + DAY, channel="payment_method_revoked"), id="payment-revoked"),
        pytest.param(lambda: make_plan_change(C + DAY), id="plan-change"),
        pytest.param(lambda: make_subscription(C + DAY), id="subscription"),
        pytest.param(lambda: make_trial(C + DAY), id="trial"),
    ],
)
def test_usage_once_started_never_stops(event_factory: Callable[[], AccountEvent]) -> None:
    run = account_run_factory([make_charge(reason="trial_conversion"), make_hit(C - DAY, "hit-1")])
    usage = run.usage
    run.feed(event_factory())
    assert run.usage == usage
    assert run.eligibility.usage_started_at == C - DAY


# --------------------------------------------------------------------------------------------
# The same billing event_id twice has the effect of one
# --------------------------------------------------------------------------------------------

BILLING_EVENTS = {
    "trial_started": lambda: make_trial(),
    "subscription_started": lambda: make_subscription(),
    "charged-trial": lambda: make_charge("ch_2", at=C + DAY, reason="trial_conversion"),
    "charged-renewal": lambda: make_charge("ch_2", at=C + DAY, reason="renewal"),
    "cancellation-dashboard": lambda: make_cancellation(C - HOUR),
    "cancellation-email": lambda: make_cancellation(C - HOUR, channel="email"),
    "refund_issued": lambda: make_refund("ch_1", at=C + 2 * DAY),
    "plan_changed": lambda: make_plan_change(C + DAY),
}


@pytest.mark.parametrize("kind", sorted(BILLING_EVENTS))
@pytest.mark.parametrize("with_usage", [False, True], ids=["no-usage", "usage"])
def test_duplicate_event_republishes_current_records_unchanged(kind: str, with_usage: bool) -> None:
    history: list[AccountEvent] = [make_charge("ch_1", reason="renewal")]
    if with_usage:
        history.append(make_hit(C + MINUTE))
    event = BILLING_EVENTS[kind]()
    run = account_run_factory([*history, event])
    held, state = dict(run.held), run.state

    step = run.feed(event, now=NOW + 10 * DAY)

    assert step.state == state and not step.changed
    assert run.held == held, "no new version for a duplicate"
    # The account's stage publishes its record again; the usage record is the usage stage's,
    # published again when evidence is read again (test_same_evidence_twice_changes_nothing).
    assert step.records == (held[RefundEligibility],), "the current eligibility record is published again"


def test_a_step_says_whether_the_account_changed() -> None:
    """The shell saves a changed state and writes an unchanged one back as stored: a step that
    hid a change would lose it, one that claimed a change it did not make would count it."""
    run = account_run_factory()
    assert run.feed(make_hit(C + HOUR, "hit-2")).changed, "an account's first event"
    assert not run.feed(make_hit(C + 2 * HOUR, "hit-3")).changed, "a later hit: usage started earlier"
    assert run.feed(make_hit(C, "hit-1")).changed, "an earlier hit moves usage start"
    charge = make_charge("ch_1", reason="renewal")
    assert run.feed(charge).changed
    assert not run.feed(charge).changed, "a duplicate"


@pytest.mark.parametrize("kind", sorted(BILLING_EVENTS))
def test_duplicate_event_later_in_the_stream_has_the_effect_of_one(kind: str) -> None:
    event = BILLING_EVENTS[kind]()
    later = [
        make_refund("ch_9", at=C + 2 * DAY),
        make_hit(C + 3 * DAY),
        make_charge("ch_3", at=C + 60 * DAY, reason="upgrade"),
    ]
    once = account_run_factory([make_charge("ch_1", reason="trial_conversion"), event, *later])
    twice = account_run_factory([make_charge("ch_1", reason="trial_conversion"), event, *later[:2], event, later[2]])
    for kind_ in (UsageState, RefundEligibility):
        assert content(twice.held[kind_]) == content(once.held[kind_])
        assert twice.held[kind_].version == once.held[kind_].version


def test_redelivered_charge_after_its_refund_stays_refunded() -> None:
    charge = make_charge("ch_1", reason="renewal")
    run = account_run_factory([charge, make_refund("ch_1", at=C + 2 * DAY)])
    assert run.eligibility.state == "refunded"
    held = dict(run.held)
    run.feed(charge)
    assert run.held == held


def test_redelivered_cancellation_is_counted_once() -> None:
    cancellation = make_cancellation(C - DAY)
    run = account_run_factory([cancellation, make_charge("ch_1", reason="renewal")])
    assert run.eligibility.state == "eligible"
    held = dict(run.held)
    run.feed(cancellation)
    assert run.held == held


# --------------------------------------------------------------------------------------------
# Versions, content changes, and stamps across a whole account history
# --------------------------------------------------------------------------------------------

_trial_charge = make_charge("ch_1", at=C, reason="trial_conversion")
_refund = make_refund("ch_1", at=C + 2 * DAY)

# (event, a new usage.state expected, a new refund.eligibility expected, eligibility state after)
HISTORY = [
    pytest.param(make_plan_change(C - 20 * DAY), False, True, "no_charge", id="first-event-plan-change"),
    pytest.param(make_trial(), False, True, "no_charge", id="trial-sets-trial-flag"),
    pytest.param(make_subscription(C - 13 * DAY), False, False, "no_charge", id="subscription-nothing"),
    pytest.param(_trial_charge, False, True, "eligible", id="trial-charge"),
    pytest.param(make_cancellation(C + HOUR, channel="chat"), False, False, "eligible", id="claim-after-charge-nothing"),
    pytest.param(make_hit(C + DAY, "hit-1"), True, True, "discretionary", id="first-usage"),
    pytest.param(make_hit(C + 2 * DAY, "hit-2"), False, False, "discretionary", id="later-hit-nothing"),
    pytest.param(make_capi(C + DAY + 5, "capi-1"), False, False, "discretionary", id="later-capi-nothing"),
    pytest.param(make_capi(C - DAY, "capi-0"), True, True, "discretionary", id="earlier-capi-moves-start"),
    pytest.param(_trial_charge, False, False, "discretionary", id="duplicate-charge-nothing"),
    pytest.param(make_plan_change(C + DAY), False, False, "discretionary", id="plan-change-nothing"),
    pytest.param(_refund, False, True, "refunded", id="refund"),
    pytest.param(_refund, False, False, "refunded", id="duplicate-refund-nothing"),
    pytest.param(make_refund("ch_0", at=C + 2 * DAY), False, False, "refunded", id="refund-of-unknown-charge-nothing"),
    pytest.param(make_cancellation(C + 20 * DAY), False, False, "refunded", id="dashboard-cancellation-for-next"),
    pytest.param(make_charge("ch_2", at=C + 30 * DAY, reason="renewal"), False, True, "eligible", id="renewal"),
    pytest.param(make_hit(C - 2 * DAY, "hit-0"), True, True, "eligible", id="earliest-hit-moves-start"),
]


def test_history_publishes_exactly_on_content_change() -> None:
    run = account_run_factory()
    for i, case in enumerate(HISTORY):
        event, expect_new_usage, expect_new_eligibility, expected_state = case.values
        before = dict(run.held)
        step = run.feed(event, now=NOW + i * MINUTE)
        expected_new = {UsageState: expect_new_usage, RefundEligibility: expect_new_eligibility}

        for kind, expect_new in expected_new.items():
            prior = before.get(kind)
            published = of_type(step, kind)
            fresh = [r for r in published if prior is None or r.version > prior.version]
            assert len(fresh) == (1 if expect_new else 0), f"{case.id}: new {kind.__name__} records"
            for record in published:
                if record in fresh:
                    assert prior is None or content(record) != content(prior), f"{case.id}: new version, same content"
                    assert getattr(record, STAMP[kind]) == NOW + i * MINUTE, f"{case.id}: stamped with `now`"
                    assert record.account_id == ACCOUNT
                else:
                    assert record == prior, f"{case.id}: a repeated record must be identical to the current one"
        assert run.eligibility.state == expected_state, case.id


def test_versions_strictly_increase_per_topic_over_the_history() -> None:
    run = account_run_factory([case.values[0] for case in HISTORY])
    for kind in (UsageState, RefundEligibility):
        seen: dict[int, Record] = {}
        last_version = 0
        for step in run.steps:
            for record in of_type(step, kind):
                if record.version in seen:
                    assert record == seen[record.version], f"two different {kind.__name__} records share a version"
                else:
                    assert record.version > last_version, f"{kind.__name__} version went backwards"
                    seen[record.version] = record
                    last_version = record.version
        in_order = [seen[v] for v in sorted(seen)]
        for older, newer in itertools.pairwise(in_order):
            assert content(newer) != content(older), f"{kind.__name__} v{newer.version}: new version, same content"
    assert len({r.version for s in run.steps for r in of_type(s, UsageState)}) == 3
    assert len({r.version for s in run.steps for r in of_type(s, RefundEligibility)}) == 8


@pytest.mark.parametrize(
    "redelivered",
    [pytest.param(0, id="charge"), pytest.param(1, id="hit"), pytest.param(2, id="plan-change")],
)
def test_republished_records_keep_their_original_stamps(redelivered: int) -> None:
    events = [make_charge(reason="trial_conversion"), make_hit(C + HOUR), make_plan_change(C + DAY)]
    run = account_run_factory()
    run.feed(events[0], now=NOW)
    run.feed(events[1], now=NOW + DAY)
    run.feed(events[2], now=NOW + 2 * DAY)
    step = run.feed(events[redelivered], now=NOW + 3 * DAY)
    stamps = {type(r): getattr(r, STAMP[type(r)]) for r in step.records}
    republished = {UsageState: NOW + DAY, RefundEligibility: NOW + DAY}
    # Each stage publishes its own record again: the usage record for evidence, eligibility for any event.
    assert stamps == (republished if redelivered == 1 else {RefundEligibility: NOW + DAY})


def test_stamps_are_the_now_passed_in_as_rfc3339() -> None:
    run = account_run_factory()
    step = run.feed(make_hit(C, "hit-1"), now=1_772_359_200_007)  # 2026-03-01T10:00:00.007Z
    dumped = {type(r): r.model_dump(mode="json") for r in step.records}
    assert dumped[UsageState]["detected_at"] == "2026-03-01T10:00:00.007Z"
    assert dumped[RefundEligibility]["decided_at"] == "2026-03-01T10:00:00.007Z"


def test_accounts_are_independent() -> None:
    other = "acct-steps-2"
    mine = account_run_factory([make_charge(reason="trial_conversion"), make_hit(C + HOUR)])
    theirs_event = UsageObserved(account_id=other, evidence={"source": "tracking_tag", "id": "x", "received_at": C})
    step = detector_step(None, theirs_event, now=NOW)
    assert {r.account_id for r in step.records} == {other}
    assert step.state.account_id == other
    assert mine.usage.account_id == ACCOUNT
