"""The refund decision, rule by rule, read side by side with CONTRACT.md ("refund.eligibility").

Every case folds a sequence of events through `policy.apply`, then reads the decision the way a
consumer of `refund.eligibility` does: the record with the highest `version`.

Events are what the account's processor receives (`models.internal.AccountEvent`): billing events
as published, except `trial_started`, whose identity is reduced to signals on the way in, and usage
evidence. Rule 2 is reached the way the processor learns of abuse: an abuse verdict for one of the
account's signals naming earlier accounts (`make_abuse_verdict`, the one place that knows its form).

Times: the latest charge is at C (2026-03-01T10:00:00Z); everything else is placed around it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from models.internal import AccountEvent
from models.outputs import RefundEligibility
from models.state import AccountState
from tests.unit.factories import (
    ACCOUNT,
    DAY,
    HOUR,
    MS,
    C,
    make_abuse_verdict,
    make_cancellation,
    make_capi,
    make_charge,
    make_dashboard_cancellation,
    make_email_claim,
    make_hit,
    make_plan_change,
    make_refund,
    make_subscription,
    make_trial,
    make_trial_charge,
    rfc3339,
)
from tests.unit.stages import detector_step

NOW = C + 400 * DAY  # the detector's clock; only stamps records, never decides

# The fields of a refund.eligibility record that carry the decision (the rest: account_id,
# version, decided_at, policy_version).
DECISION_FIELDS = {"state", "reasons", "charge", "trial", "usage_started_at", "abuse"}

INELIGIBLE_UNUSED_TIME = ("ineligible", ("no_refund_for_unused_time",))
INELIGIBLE_NOT_VIA_DASHBOARD = ("ineligible", ("cancellation_not_via_dashboard",))
ELIGIBLE_DASHBOARD = ("eligible", ("charged_after_dashboard_cancellation",))
ELIGIBLE_UNUSED = ("eligible", ("trial_charge_unused",))
DISCRETIONARY_USED = ("discretionary", ("trial_charge_used",))
REFUNDED = ("refunded", ("charge_refunded",))
NO_CHARGE = ("no_charge", ())
ABUSE = ("ineligible", ("repeated_trial_abuse",))

# --------------------------------------------------------------------------------------------
# Running events the way the processor does, and reading the result the way a consumer does
# --------------------------------------------------------------------------------------------


def eligibility_after(events: Sequence[AccountEvent]) -> RefundEligibility:
    """The refund.eligibility record a reader keeping the highest version holds after `events`."""
    state: AccountState | None = None
    latest: RefundEligibility | None = None
    for i, event in enumerate(events):
        step = detector_step(state, event, now=NOW + i)
        state = step.state
        for record in step.records:
            if isinstance(record, RefundEligibility) and (latest is None or record.version > latest.version):
                latest = record
    assert latest is not None, "no refund.eligibility record was published"
    return latest


def outcome(events: Sequence[AccountEvent]) -> tuple[str, tuple[str, ...]]:
    record = eligibility_after(events)
    return record.state, tuple(record.reasons)


def decision_content(record: RefundEligibility) -> dict[str, object]:
    return record.model_dump(mode="json", include=DECISION_FIELDS)


def state_after(events: Sequence[AccountEvent]) -> AccountState:
    state: AccountState | None = None
    for i, event in enumerate(events):
        state = detector_step(state, event, now=NOW + i).state
    assert state is not None
    return state


# --------------------------------------------------------------------------------------------
# The rules, one table
# --------------------------------------------------------------------------------------------

RULE_CASES = [
    # Rule 3: no charge yet -> no_charge, and reasons empty.
    pytest.param([make_trial()], NO_CHARGE, id="r3-trial-only"),
    pytest.param([make_subscription()], NO_CHARGE, id="r3-subscription-only"),
    pytest.param([make_plan_change()], NO_CHARGE, id="r3-plan-change-only"),
    pytest.param([make_hit(C)], NO_CHARGE, id="r3-usage-only"),
    pytest.param([make_dashboard_cancellation(C)], NO_CHARGE, id="r3-dashboard-cancellation-only"),
    pytest.param([make_email_claim(C)], NO_CHARGE, id="r3-email-claim-only"),
    pytest.param([make_refund("ch_unknown")], NO_CHARGE, id="r3-refund-of-unseen-charge"),
    pytest.param(
        [make_trial(), make_hit(C - DAY), make_dashboard_cancellation(C - HOUR), make_email_claim(C)],
        NO_CHARGE,
        id="r3-trial-usage-and-cancellations",
    ),
    # Rule 1: the latest charge was refunded.
    pytest.param([make_charge("ch_1"), make_refund("ch_1")], REFUNDED, id="r1-renewal-refunded"),
    pytest.param([make_refund("ch_1", at=C + DAY), make_charge("ch_1")], REFUNDED, id="r1-refund-arrives-before-its-charge"),
    pytest.param([make_trial(), make_trial_charge("ch_1"), make_refund("ch_1")], REFUNDED, id="r1-beats-r5-unused"),
    pytest.param(
        [make_trial(), make_hit(C - DAY), make_trial_charge("ch_1"), make_refund("ch_1")],
        REFUNDED,
        id="r1-beats-r5-used",
    ),
    pytest.param(
        [make_dashboard_cancellation(C - DAY), make_charge("ch_1"), make_refund("ch_1")], REFUNDED, id="r1-beats-r4"
    ),
    pytest.param([make_email_claim(C - DAY), make_charge("ch_1"), make_refund("ch_1")], REFUNDED, id="r1-beats-r6"),
    pytest.param(
        [make_charge("ch_old", at=C - 30 * DAY), make_charge("ch_new", at=C), make_refund("ch_new")],
        REFUNDED,
        id="r1-latest-of-two-refunded",
    ),
    pytest.param(
        [make_charge("ch_old", at=C - 30 * DAY), make_refund("ch_old"), make_charge("ch_new", at=C), make_refund("ch_new")],
        REFUNDED,
        id="r1-both-refunded",
    ),
    pytest.param(
        [make_charge("ch_old", at=C - 30 * DAY), make_charge("ch_new", at=C), make_refund("ch_old")],
        INELIGIBLE_UNUSED_TIME,
        id="r1-refund-of-older-charge-does-not-count",
    ),
    pytest.param(
        [make_trial(), make_trial_charge("ch_trial", at=C - 30 * DAY), make_refund("ch_trial"), make_charge("ch_renewal")],
        INELIGIBLE_UNUSED_TIME,
        id="r1-refunded-trial-charge-then-renewal",
    ),
    pytest.param(
        [make_charge("ch_old", at=C - 30 * DAY), make_refund("ch_old"), make_trial_charge("ch_new", at=C)],
        ELIGIBLE_UNUSED,
        id="r1-refund-of-older-charge-then-unused-trial-charge",
    ),
    pytest.param(
        [make_charge("ch_1"), make_refund("ch_other")], INELIGIBLE_UNUSED_TIME, id="r1-refund-of-another-charge-id"
    ),
    # Rule 4: owner's dashboard cancellation before the charge, after the charge before it.
    pytest.param([make_dashboard_cancellation(C - DAY), make_charge()], ELIGIBLE_DASHBOARD, id="r4-day-before-only-charge"),
    pytest.param([make_dashboard_cancellation(C - MS), make_charge()], ELIGIBLE_DASHBOARD, id="r4-1ms-before"),
    pytest.param(
        [make_dashboard_cancellation(C - 365 * DAY), make_charge()], ELIGIBLE_DASHBOARD, id="r4-long-before-only-charge"
    ),
    pytest.param([make_charge(), make_dashboard_cancellation(C - DAY)], ELIGIBLE_DASHBOARD, id="r4-cancellation-arrives-late"),
    pytest.param([make_dashboard_cancellation(C), make_charge()], INELIGIBLE_UNUSED_TIME, id="r4-at-charge-time-not-before"),
    pytest.param([make_charge(), make_dashboard_cancellation(C + MS)], INELIGIBLE_UNUSED_TIME, id="r4-after-charge"),
    pytest.param(
        [make_charge("ch_1", at=C - 30 * DAY), make_dashboard_cancellation(C - DAY), make_charge("ch_2", at=C)],
        ELIGIBLE_DASHBOARD,
        id="r4-between-previous-and-latest",
    ),
    pytest.param(
        [make_charge("ch_1", at=C - 30 * DAY), make_dashboard_cancellation(C - 30 * DAY + MS), make_charge("ch_2", at=C)],
        ELIGIBLE_DASHBOARD,
        id="r4-1ms-after-previous",
    ),
    pytest.param(
        [make_charge("ch_1", at=C - 30 * DAY), make_dashboard_cancellation(C - 30 * DAY), make_charge("ch_2", at=C)],
        INELIGIBLE_UNUSED_TIME,
        id="r4-at-previous-charge-time-not-after",
    ),
    pytest.param(
        [make_dashboard_cancellation(C - 31 * DAY), make_charge("ch_1", at=C - 30 * DAY), make_charge("ch_2", at=C)],
        INELIGIBLE_UNUSED_TIME,
        id="r4-before-previous-charge",
    ),
    pytest.param(
        [
            make_charge("ch_1", at=C - 60 * DAY),
            make_dashboard_cancellation(C - 45 * DAY),
            make_charge("ch_2", at=C - 30 * DAY),
            make_charge("ch_3", at=C),
        ],
        INELIGIBLE_UNUSED_TIME,
        id="r4-window-belongs-to-an-older-charge",
    ),
    pytest.param(
        [
            make_dashboard_cancellation(C - 31 * DAY),
            make_charge("ch_1", at=C - 30 * DAY),
            make_dashboard_cancellation(C - HOUR),
            make_charge("ch_2", at=C),
        ],
        ELIGIBLE_DASHBOARD,
        id="r4-one-in-window-one-before-previous",
    ),
    pytest.param(
        [make_charge("ch_2", at=C), make_dashboard_cancellation(C - DAY), make_charge("ch_1", at=C - 30 * DAY)],
        ELIGIBLE_DASHBOARD,
        id="r4-charges-arrive-newest-first",
    ),
    pytest.param(
        [make_cancellation(C - DAY, channel="dashboard", requested_by="other"), make_charge()],
        INELIGIBLE_NOT_VIA_DASHBOARD,
        id="r4-not-by-owner-is-r6",
    ),
    pytest.param(
        [make_cancellation(C - DAY, channel="email", requested_by="owner"), make_charge()],
        INELIGIBLE_NOT_VIA_DASHBOARD,
        id="r4-owner-by-email-is-r6",
    ),
    pytest.param(
        [make_trial(), make_dashboard_cancellation(C - DAY), make_trial_charge()], ELIGIBLE_DASHBOARD, id="r4-beats-r5-unused"
    ),
    pytest.param(
        [make_trial(), make_hit(C - 2 * DAY), make_dashboard_cancellation(C - DAY), make_trial_charge()],
        ELIGIBLE_DASHBOARD,
        id="r4-beats-r5-used",
    ),
    pytest.param(
        [make_trial(), make_dashboard_cancellation(C - DAY), make_trial_charge(), make_hit(C + DAY)],
        ELIGIBLE_DASHBOARD,
        id="r4-beats-r5-used-after-charge",
    ),
    pytest.param(
        [make_email_claim(C - 2 * DAY), make_dashboard_cancellation(C - DAY), make_charge()],
        ELIGIBLE_DASHBOARD,
        id="r4-beats-r6",
    ),
    # Rule 5: the charge's reason is trial_conversion.
    pytest.param([make_trial(), make_trial_charge()], ELIGIBLE_UNUSED, id="r5-unused"),
    pytest.param([make_trial_charge()], ELIGIBLE_UNUSED, id="r5-charge-reason-decides-without-trial-event"),
    pytest.param([make_trial(), make_hit(C - DAY), make_trial_charge()], DISCRETIONARY_USED, id="r5-used-before-charge"),
    pytest.param(
        [make_hit(C - 100 * DAY), make_trial(), make_trial_charge()], DISCRETIONARY_USED, id="r5-used-before-trial"
    ),
    pytest.param([make_trial(), make_trial_charge(), make_hit(C + DAY)], DISCRETIONARY_USED, id="r5-used-after-charge"),
    pytest.param(
        [make_trial(), make_trial_charge(), make_capi(C - DAY, "capi-1")],
        DISCRETIONARY_USED,
        id="r5-used-via-conversion-api",
    ),
    pytest.param([make_trial(), make_email_claim(C - DAY), make_trial_charge()], ELIGIBLE_UNUSED, id="r5-beats-r6-unused"),
    pytest.param(
        [make_trial(), make_hit(C - 2 * DAY), make_email_claim(C - DAY), make_trial_charge()],
        DISCRETIONARY_USED,
        id="r5-beats-r6-used",
    ),
    pytest.param(
        [make_trial(), make_trial_charge(), make_dashboard_cancellation(C + HOUR)],
        ELIGIBLE_UNUSED,
        id="r5-dashboard-cancellation-after-charge",
    ),
    pytest.param(
        [make_trial(), make_trial_charge("ch_1", at=C - 30 * DAY), make_charge("ch_2", at=C)],
        INELIGIBLE_UNUSED_TIME,
        id="r5-latest-charge-is-a-renewal",
    ),
    pytest.param(
        [make_trial(), make_charge("ch_2", at=C), make_trial_charge("ch_1", at=C - 30 * DAY)],
        INELIGIBLE_UNUSED_TIME,
        id="r5-older-trial-charge-arrives-last",
    ),
    pytest.param(
        [make_charge("ch_1", at=C - 30 * DAY), make_trial_charge("ch_2", at=C)],
        ELIGIBLE_UNUSED,
        id="r5-latest-charge-is-the-trial-charge",
    ),
    # Rule 6: a cancellation claimed through another channel, or by another person, before the charge.
    pytest.param(
        [make_cancellation(C - DAY, channel="email", requested_by="other"), make_charge()],
        INELIGIBLE_NOT_VIA_DASHBOARD,
        id="r6-email-by-other",
    ),
    pytest.param([make_email_claim(C), make_charge()], INELIGIBLE_UNUSED_TIME, id="r6-at-charge-time-not-before"),
    pytest.param([make_charge(), make_email_claim(C + MS)], INELIGIBLE_UNUSED_TIME, id="r6-claim-after-charge"),
    pytest.param(
        [make_charge(), make_cancellation(C + HOUR, channel="dashboard", requested_by="other")],
        INELIGIBLE_UNUSED_TIME,
        id="r6-non-owner-dashboard-after-charge",
    ),
    pytest.param(
        [make_email_claim(C - 31 * DAY), make_charge("ch_1", at=C - 30 * DAY), make_charge("ch_2", at=C)],
        INELIGIBLE_NOT_VIA_DASHBOARD,
        id="r6-claim-before-previous-charge-still-before",
    ),
    pytest.param([make_charge(), make_email_claim(C - DAY)], INELIGIBLE_NOT_VIA_DASHBOARD, id="r6-claim-arrives-late"),
    pytest.param(
        [make_hit(C - DAY), make_email_claim(C - HOUR), make_charge(reason="upgrade")],
        INELIGIBLE_NOT_VIA_DASHBOARD,
        id="r6-beats-r7-with-usage",
    ),
    # Rule 7: otherwise.
    pytest.param([make_trial(), make_charge(reason="renewal")], INELIGIBLE_UNUSED_TIME, id="r7-trial-then-renewal"),
    pytest.param([make_hit(C - DAY), make_charge()], INELIGIBLE_UNUSED_TIME, id="r7-used-renewal"),
    pytest.param([make_subscription(), make_charge(reason="other")], INELIGIBLE_UNUSED_TIME, id="r7-subscription-other"),
    # Latest charge: the latest occurred_at, ties broken by the greater charge_id.
    pytest.param(
        [make_trial_charge("ch_a", at=C), make_charge("ch_b", at=C)],
        INELIGIBLE_UNUSED_TIME,
        id="latest-tie-greater-id-renewal-wins",
    ),
    pytest.param(
        [make_charge("ch_b", at=C), make_trial_charge("ch_a", at=C)],
        INELIGIBLE_UNUSED_TIME,
        id="latest-tie-greater-id-renewal-wins-reversed",
    ),
    pytest.param(
        [make_charge("ch_a", at=C), make_trial_charge("ch_b", at=C)],
        ELIGIBLE_UNUSED,
        id="latest-tie-greater-id-trial-wins",
    ),
    pytest.param(
        [make_trial_charge("ch_b", at=C), make_charge("ch_a", at=C)],
        ELIGIBLE_UNUSED,
        id="latest-tie-greater-id-trial-wins-reversed",
    ),
    pytest.param(
        [make_charge("ch_a", at=C), make_charge("ch_b", at=C), make_refund("ch_a")],
        INELIGIBLE_UNUSED_TIME,
        id="latest-tie-refund-of-lesser-id-does-not-count",
    ),
    pytest.param(
        [make_charge("ch_a", at=C), make_charge("ch_b", at=C), make_refund("ch_b")],
        REFUNDED,
        id="latest-tie-refund-of-greater-id-counts",
    ),
    pytest.param(
        [make_charge("ch_z", at=C - MS), make_trial_charge("ch_a", at=C)],
        ELIGIBLE_UNUSED,
        id="latest-time-beats-greater-id",
    ),
    pytest.param(
        [make_charge("ch_1", at=C - 30 * DAY), make_refund("ch_1"), make_charge("ch_2", at=C)],
        INELIGIBLE_UNUSED_TIME,
        id="latest-new-charge-after-refund",
    ),
]


@pytest.mark.parametrize(("events", "expected"), RULE_CASES)
def test_decision(events: list[AccountEvent], expected: tuple[str, tuple[str, ...]]) -> None:
    assert outcome(events) == expected


@pytest.mark.parametrize("channel", ["email", "chat", "phone", "payment_method_revoked", "other"])
@pytest.mark.parametrize("requested_by", ["owner", "other"])
def test_rule_6_every_channel_but_the_dashboard(channel: str, requested_by: str) -> None:
    events = [make_cancellation(C - DAY, channel=channel, requested_by=requested_by), make_charge()]
    assert outcome(events) == INELIGIBLE_NOT_VIA_DASHBOARD


@pytest.mark.parametrize("channel", ["email", "chat", "phone", "payment_method_revoked", "other"])
def test_rule_6_claim_is_not_a_cancellation_before_a_trial_charge(channel: str) -> None:
    """Rule 5 comes before rule 6: a claimed cancellation does not cost the unused-trial refund."""
    events = [make_trial(), make_cancellation(C - DAY, channel=channel), make_trial_charge()]
    assert outcome(events) == ELIGIBLE_UNUSED


@pytest.mark.parametrize("reason", ["renewal", "upgrade", "other"])
@pytest.mark.parametrize("used", [False, True], ids=["unused", "used"])
def test_rule_7_no_refund_for_unused_time(reason: str, used: bool) -> None:
    events: list[AccountEvent] = [make_subscription(), make_charge(reason=reason)]
    if used:
        events.append(make_hit(C + HOUR))
    assert outcome(events) == INELIGIBLE_UNUSED_TIME


# --------------------------------------------------------------------------------------------
# The rest of the record: charge, trial, usage_started_at, abuse
# --------------------------------------------------------------------------------------------


def test_record_describes_the_latest_charge() -> None:
    events = [
        make_trial(),
        make_charge("ch_old", at=C - 30 * DAY, amount_cents=100, currency="EUR"),
        make_trial_charge("ch_mid", at=C - DAY),
        make_charge("ch_new", at=C, reason="upgrade", amount_cents=12_345, currency="usd"),
        make_hit(C - 3 * DAY, "h-first"),
        make_hit(C - 2 * DAY, "h-second"),
    ]
    record = eligibility_after(events)
    assert record.account_id == ACCOUNT
    assert record.charge is not None
    assert (record.charge.charge_id, record.charge.reason, record.charge.amount_cents, record.charge.currency) == (
        "ch_new",
        "upgrade",
        12_345,
        "USD",
    )
    assert record.charge.charged_at == C
    assert record.trial is True
    assert record.usage_started_at == C - 3 * DAY
    assert record.abuse.suspected is False
    assert record.model_dump(mode="json")["charge"]["charged_at"] == "2026-03-01T10:00:00.000Z"
    assert record.model_dump(mode="json")["usage_started_at"] == "2026-02-26T10:00:00.000Z"


@pytest.mark.parametrize(
    ("events", "trial"),
    [
        pytest.param([make_subscription(), make_charge()], False, id="subscription"),
        pytest.param([make_trial(), make_charge()], True, id="trial-then-charge"),
        pytest.param([make_charge(), make_trial()], True, id="trial-arrives-late"),
        pytest.param([make_trial()], True, id="trial-no-charge"),
        pytest.param([make_trial_charge()], False, id="trial-charge-without-trial-event"),
    ],
)
def test_trial_flag_says_whether_a_trial_ever_started(events: list[AccountEvent], trial: bool) -> None:
    assert eligibility_after(events).trial is trial


def test_no_charge_record_has_null_charge_and_empty_reasons() -> None:
    record = eligibility_after([make_trial(), make_hit(C)])
    assert record.state == "no_charge"
    assert tuple(record.reasons) == ()
    assert record.charge is None
    assert record.model_dump(mode="json")["charge"] is None
    assert record.usage_started_at == C


@pytest.mark.parametrize(
    "events",
    [
        pytest.param([make_charge()], id="charge"),
        pytest.param([make_trial(), make_trial_charge()], id="trial-charge"),
    ],
)
def test_no_usage_gives_null_usage_started_at(events: list[AccountEvent]) -> None:
    record = eligibility_after(events)
    assert record.usage_started_at is None
    assert record.model_dump(mode="json")["usage_started_at"] is None


# --------------------------------------------------------------------------------------------
# Usage that begins after the charge: eligible -> discretionary, published at once
# --------------------------------------------------------------------------------------------


def test_usage_after_the_charge_turns_eligible_into_discretionary_at_once() -> None:
    history = [make_trial(), make_trial_charge()]
    state = state_after(history)
    before = eligibility_after(history)
    assert (before.state, tuple(before.reasons)) == ELIGIBLE_UNUSED

    step = detector_step(state, make_hit(C + 5 * DAY), now=NOW + 100)

    published = [r for r in step.records if isinstance(r, RefundEligibility)]
    assert len(published) == 1, "the change must be published by the step that saw the usage"
    record = published[0]
    assert (record.state, tuple(record.reasons)) == DISCRETIONARY_USED
    assert record.version > before.version
    assert record.usage_started_at == C + 5 * DAY
    assert record.decided_at == NOW + 100


# --------------------------------------------------------------------------------------------
# Rule 2: suspected repeated-trial abuse
# --------------------------------------------------------------------------------------------

ABUSE_CASES = [
    pytest.param([make_trial(), make_abuse_verdict()], ABUSE, id="r2-beats-r3-no-charge"),
    pytest.param([make_trial(), make_abuse_verdict(), make_trial_charge()], ABUSE, id="r2-beats-r5-unused"),
    pytest.param([make_trial(), make_trial_charge(), make_abuse_verdict()], ABUSE, id="r2-beats-r5-unused-verdict-late"),
    pytest.param(
        [make_trial(), make_hit(C - DAY), make_trial_charge(), make_abuse_verdict()], ABUSE, id="r2-beats-r5-used"
    ),
    pytest.param(
        [make_trial(), make_dashboard_cancellation(C - DAY), make_charge(), make_abuse_verdict()], ABUSE, id="r2-beats-r4"
    ),
    pytest.param([make_trial(), make_email_claim(C - DAY), make_charge(), make_abuse_verdict()], ABUSE, id="r2-beats-r6"),
    pytest.param([make_trial(), make_charge(), make_abuse_verdict()], ABUSE, id="r2-beats-r7"),
    pytest.param([make_trial(), make_trial_charge(), make_refund(), make_abuse_verdict()], REFUNDED, id="r1-beats-r2"),
    pytest.param([make_abuse_verdict(), make_trial(), make_trial_charge(), make_refund()], REFUNDED, id="r1-beats-r2-verdict-first"),
    pytest.param(
        [make_trial(), make_charge("ch_1", at=C - DAY), make_refund("ch_1"), make_charge("ch_2"), make_abuse_verdict()],
        ABUSE,
        id="r2-older-charge-refunded-only",
    ),
]


@pytest.mark.parametrize(("events", "expected"), ABUSE_CASES)
def test_abuse_rule(events: list[AccountEvent], expected: tuple[str, tuple[str, ...]]) -> None:
    record = eligibility_after(events)
    assert (record.state, tuple(record.reasons)) == expected
    assert record.abuse.suspected is True
    assert tuple(record.abuse.linked_accounts) == ("acct-earlier",)
    assert tuple(record.abuse.signals) == ("card_fingerprint",)


def test_earliest_trial_keeps_its_standing() -> None:
    """A verdict naming no earlier account (this trial came first on the signal) is no suspicion."""
    record = eligibility_after([make_trial(), make_trial_charge(), make_abuse_verdict(earlier_accounts=())])
    assert (record.state, tuple(record.reasons)) == ELIGIBLE_UNUSED
    assert record.abuse.suspected is False


def test_abuse_record_lists_every_earlier_account_and_signal_kind() -> None:
    events = [
        make_trial(),
        make_charge(),
        make_abuse_verdict(earlier_accounts=("acct-b", "acct-a"), kind="card_fingerprint"),
        make_abuse_verdict(earlier_accounts=("acct-c",), kind="email"),
        make_abuse_verdict(earlier_accounts=(), kind="device_id"),
    ]
    record = eligibility_after(events)
    assert (record.state, tuple(record.reasons)) == ABUSE
    assert set(record.abuse.linked_accounts) == {"acct-a", "acct-b", "acct-c"}
    assert record.abuse.linked_count == 3
    assert set(record.abuse.signals) == {"card_fingerprint", "email"}


# --------------------------------------------------------------------------------------------
# subscription_started and plan_changed have no effect
# --------------------------------------------------------------------------------------------

BASE_SCENARIOS = {
    "no-charge": lambda: [make_trial(), make_hit(C)],
    "refunded": lambda: [make_charge(), make_refund()],
    "dashboard": lambda: [make_dashboard_cancellation(C - DAY), make_charge()],
    "trial-unused": lambda: [make_trial(), make_trial_charge()],
    "trial-used": lambda: [make_trial(), make_trial_charge(), make_hit(C + HOUR)],
    "email-claim": lambda: [make_email_claim(C - DAY), make_charge()],
    "renewal": lambda: [make_charge("ch_1", at=C - 30 * DAY), make_charge("ch_2")],
}

NEUTRAL_EVENTS = {
    "subscription-before-charge": lambda: make_subscription(C - DAY),
    "subscription-after-charge": lambda: make_subscription(C + DAY),
    "subscription-at-charge": lambda: make_subscription(C),
    "plan-change-before-charge": lambda: make_plan_change(C - DAY),
    "plan-change-after-charge": lambda: make_plan_change(C + DAY),
    "plan-change-at-charge": lambda: make_plan_change(C),
}


@pytest.mark.parametrize("scenario", sorted(BASE_SCENARIOS))
@pytest.mark.parametrize("neutral", sorted(NEUTRAL_EVENTS))
def test_subscription_started_and_plan_changed_have_no_effect(scenario: str, neutral: str) -> None:
    base = BASE_SCENARIOS[scenario]()
    expected = decision_content(eligibility_after(base))
    for position in range(len(base) + 1):
        events = [*base[:position], NEUTRAL_EVENTS[neutral](), *base[position:]]
        assert decision_content(eligibility_after(events)) == expected, f"inserted at position {position}"


# --------------------------------------------------------------------------------------------
# Timestamps: epoch milliseconds and RFC 3339 decide the same
# --------------------------------------------------------------------------------------------

TIME_FORMS: dict[str, Callable[[int], int | str]] = {
    "epoch-ms": lambda ms: ms,
    "rfc3339-z": lambda ms: rfc3339(ms),
    "rfc3339-+00:00": lambda ms: rfc3339(ms, zulu=False),
    "rfc3339-+01:30": lambda ms: rfc3339(ms, offset_minutes=90),
    "rfc3339--05:00": lambda ms: rfc3339(ms, offset_minutes=-300),
    "rfc3339-space-separator": lambda ms: rfc3339(ms, separator=" "),
}

TIMED_SCENARIOS: dict[str, Callable[[Callable[[int], int | str]], list[AccountEvent]]] = {
    "dashboard-1ms-before": lambda t: [
        make_trial(t(C - 14 * DAY)),
        make_dashboard_cancellation(t(C - MS)),
        make_trial_charge(at=t(C)),
        make_hit(t(C + MS)),
    ],
    "dashboard-at-charge": lambda t: [
        make_trial(t(C - 14 * DAY)),
        make_dashboard_cancellation(t(C)),
        make_trial_charge(at=t(C)),
    ],
    "latest-by-1ms": lambda t: [
        make_trial_charge("ch_z", at=t(C - MS)),
        make_charge("ch_a", at=t(C)),
        make_refund("ch_z", at=t(C + DAY)),
    ],
    "email-at-previous-charge": lambda t: [
        make_charge("ch_1", at=t(C - 30 * DAY)),
        make_dashboard_cancellation(t(C - 30 * DAY)),
        make_email_claim(t(C - MS)),
        make_charge("ch_2", at=t(C)),
    ],
}


@pytest.mark.parametrize("scenario", sorted(TIMED_SCENARIOS))
@pytest.mark.parametrize("form", sorted(set(TIME_FORMS) - {"epoch-ms"}))
def test_rfc3339_and_epoch_ms_give_the_same_decision(scenario: str, form: str) -> None:
    build = TIMED_SCENARIOS[scenario]
    as_epoch_ms = decision_content(eligibility_after(build(TIME_FORMS["epoch-ms"])))
    assert decision_content(eligibility_after(build(TIME_FORMS[form]))) == as_epoch_ms


def test_rfc3339_lower_case_t_and_z_give_the_same_decision() -> None:
    """RFC 3339, section 5.6: "T" and "Z" may alternatively be lower case "t" and "z"."""
    build = TIMED_SCENARIOS["dashboard-1ms-before"]
    as_epoch_ms = decision_content(eligibility_after(build(TIME_FORMS["epoch-ms"])))
    assert decision_content(eligibility_after(build(lambda ms: rfc3339(ms, lower=True)))) == as_epoch_ms


@pytest.mark.parametrize(
    ("cancelled_at", "charged_at", "expected"),
    [
        pytest.param(C - MS, rfc3339(C), ELIGIBLE_DASHBOARD, id="ms-cancel-rfc-charge-before"),
        pytest.param(rfc3339(C - MS, offset_minutes=120), C, ELIGIBLE_DASHBOARD, id="rfc-offset-cancel-ms-charge-before"),
        pytest.param(C, rfc3339(C, offset_minutes=-420), INELIGIBLE_UNUSED_TIME, id="ms-cancel-rfc-charge-same-instant"),
        pytest.param("2026-03-01T11:00:00+01:00", "2026-03-01T10:00:00Z", INELIGIBLE_UNUSED_TIME, id="rfc-same-instant"),
        pytest.param("2026-03-01T10:59:59.999+01:00", "2026-03-01T10:00:00Z", ELIGIBLE_DASHBOARD, id="rfc-1ms-before"),
        pytest.param(
            "2026-03-01T09:59:59.9995Z", "2026-03-01T10:00:00.000Z", ELIGIBLE_DASHBOARD, id="rfc-sub-ms-before"
        ),
    ],
)
def test_mixed_timestamp_forms_compare_as_instants(
    cancelled_at: int | str, charged_at: int | str, expected: tuple[str, tuple[str, ...]]
) -> None:
    assert outcome([make_dashboard_cancellation(cancelled_at), make_charge(at=charged_at)]) == expected
