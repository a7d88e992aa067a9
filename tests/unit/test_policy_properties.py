"""Properties of the policy core over random histories of one account (hypothesis).

CONTRACT.md, "Delivery": replaying the inputs gives the same final records, a reader keeping
the highest version holds exactly the right state, and the same event_id twice has the effect
of one. Input topics have independent partitions, so one account's events may arrive in any
interleaving: the final decision must not depend on arrival order.

Histories are drawn from a small space on purpose (a few minutes, a few charge and hit ids) so
that ties in time and in ids are common.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.codec import encode
from models.inputs import CancellationRequested, Charged, PlanChanged, RefundIssued, SubscriptionStarted
from models.internal import AccountEvent, UsageObserved
from models.outputs import RefundEligibility, UsageState
from models.state import AccountState
from policy.account import DEFAULT_DUPLICATE_WINDOW, DuplicateWindow
from tests.unit.factories import ACCOUNT, ACCOUNT_EVENT, MINUTE, make_abuse_verdict, rfc3339
from tests.unit.stages import Steps, detector_step

T0 = 1_772_359_200_000  # 2026-03-01T10:00:00.000Z
NOW = 1_790_000_000_000
DECISION_FIELDS = {"state", "reasons", "charge", "trial", "usage_started_at", "abuse"}
CHANNELS = ["dashboard", "email", "chat", "phone", "payment_method_revoked", "other"]
REASONS = ["trial_conversion", "renewal", "upgrade", "other"]

PROPERTY_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --------------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------------

moments = st.integers(min_value=0, max_value=6).map(lambda k: T0 + k * MINUTE)


@st.composite
def time_input_factory(draw: st.DrawFn, ms: int) -> int | str:
    """The same instant in either of the contract's input forms."""
    if draw(st.booleans()):
        return ms
    return rfc3339(ms, offset_minutes=draw(st.sampled_from([0, 60, -330])), zulu=False)


@st.composite
def billing_event_factory(draw: st.DrawFn, index: int, charge_ids: list[str]) -> AccountEvent:
    kind = draw(
        st.sampled_from(
            ["trial_started", "subscription_started", "charged", "charged", "cancellation", "cancellation", "refund", "plan"]
        )
    )
    common = {"event_id": f"ev-{index}", "account_id": ACCOUNT, "occurred_at": draw(time_input_factory(draw(moments)))}
    if kind == "trial_started":
        # trial_started (no identity) in the form the account's processor receives it
        return ACCOUNT_EVENT.validate_python({"type": "trial_started", **common})
    if kind == "subscription_started":
        return SubscriptionStarted(type="subscription_started", **common)
    if kind == "plan":
        return PlanChanged(type="plan_changed", **common)
    if kind == "charged":
        return Charged(
            type="charged",
            charge_id=draw(st.sampled_from(charge_ids)) if charge_ids else f"ch-{index}",
            amount_cents=draw(st.sampled_from([0, 990, 4_900])),
            currency=draw(st.sampled_from(["USD", "EUR"])),
            reason=draw(st.sampled_from(REASONS)),
            **common,
        )
    if kind == "cancellation":
        return CancellationRequested(
            type="cancellation_requested",
            channel=draw(st.sampled_from(CHANNELS)),
            requested_by=draw(st.sampled_from(["owner", "owner", "other"])),
            **common,
        )
    refundable = charge_ids or [f"ch-{i}" for i in range(10)]
    return RefundIssued(type="refund_issued", charge_id=draw(st.sampled_from(refundable)), **common)


usage_events = st.builds(
    lambda source, evidence_id, received_at: UsageObserved(
        account_id=ACCOUNT, evidence={"source": source, "id": evidence_id, "received_at": received_at}
    ),
    st.sampled_from(["tracking_tag", "conversion_api"]),
    st.sampled_from(["e1", "e2", "e3"]),
    moments,
)


def verdict_after_change(kind: str, seq: int) -> AccountEvent:
    """The verdict on one of the account's signals after the signal's `seq`-th change.

    What a verdict says is a function of (signal, seq), as it is for the real signal processor:
    odd changes name an earlier account, even ones name none.
    """
    earlier = [f"acct-before-{kind}-{seq}"] if seq % 2 else []
    return make_abuse_verdict(earlier_accounts=earlier, kind=kind, seq=seq)


abuse_verdicts = st.builds(verdict_after_change, st.sampled_from(["card_fingerprint", "email"]), st.integers(1, 4))


@st.composite
def history_factory(draw: st.DrawFn, shared_charge_ids: bool = True, verdicts: bool = True) -> list[AccountEvent]:
    """Billing events with distinct event_ids, usage evidence and abuse verdicts, in one arrival order.

    With `shared_charge_ids` several `charged` events may reuse a charge_id; without it every
    charge has its own id (refunds then point at charges that may or may not exist).
    """
    charge_ids = ["ch_a", "ch_b", "ch_c"] if shared_charge_ids else []
    count = draw(st.integers(min_value=0, max_value=8))
    billing = [draw(billing_event_factory(i, charge_ids)) for i in range(count)]
    usage = draw(st.lists(usage_events, max_size=4))
    events = [*billing, *usage, *(draw(st.lists(abuse_verdicts, max_size=3)) if verdicts else [])]
    if not events:
        events = [draw(usage_events)]
    return draw(st.permutations(events))


# --------------------------------------------------------------------------------------------
# Running and reading
# --------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    steps: list[Steps]
    usage: UsageState | None  # highest version held by a reader
    eligibility: RefundEligibility | None

    def decision(self) -> dict[str, object]:
        assert self.eligibility is not None
        return self.eligibility.model_dump(mode="json", include=DECISION_FIELDS)

    def usage_start(self) -> dict[str, object] | None:
        if self.usage is None:
            return None
        return self.usage.model_dump(mode="json", include={"usage_started_at", "first_evidence", "used"})


def run_history(events: list[AccountEvent], window: DuplicateWindow = DEFAULT_DUPLICATE_WINDOW) -> Outcome:
    state = None
    steps: list[Steps] = []
    held: dict[type, UsageState | RefundEligibility] = {}
    for i, event in enumerate(events):
        step = detector_step(state, event, now=NOW + i, window=window)
        # The shell saves the state and counts transitions on this flag alone.
        assert step.changed == (step.state != (state or AccountState(account_id=event.account_id)))
        state = step.state
        steps.append(step)
        for record in step.records:
            current = held.get(type(record))
            if current is None or record.version > current.version:
                held[type(record)] = record
    return Outcome(steps, held.get(UsageState), held.get(RefundEligibility))  # type: ignore[arg-type]


def contract_decision(events: list[AccountEvent]) -> tuple[str, tuple[str, ...], str | None]:
    """CONTRACT.md's rules 1 and 3-7, written out plainly, for histories with distinct charge ids."""
    billing = {e.event_id: e for e in events if not isinstance(e, UsageObserved)}.values()
    charges = [e for e in billing if isinstance(e, Charged)]
    used = any(isinstance(e, UsageObserved) for e in events)

    def order(c: Charged) -> tuple[int, str]:
        return (c.occurred_at, c.charge_id)

    latest = max(charges, key=order, default=None)
    if latest is not None and latest.charge_id in {e.charge_id for e in billing if isinstance(e, RefundIssued)}:
        return "refunded", ("charge_refunded",), latest.charge_id
    if latest is None:
        return "no_charge", (), None
    previous = max((c for c in charges if order(c) < order(latest)), key=order, default=None)
    cancellations = [e for e in billing if isinstance(e, CancellationRequested)]
    by_owner_in_dashboard = [c for c in cancellations if c.channel == "dashboard" and c.requested_by == "owner"]
    others = [c for c in cancellations if c not in by_owner_in_dashboard]
    if any(
        c.occurred_at < latest.occurred_at and (previous is None or c.occurred_at > previous.occurred_at)
        for c in by_owner_in_dashboard
    ):
        return "eligible", ("charged_after_dashboard_cancellation",), latest.charge_id
    if latest.reason == "trial_conversion":
        if used:
            return "discretionary", ("trial_charge_used",), latest.charge_id
        return "eligible", ("trial_charge_unused",), latest.charge_id
    if any(c.occurred_at < latest.occurred_at for c in others):
        return "ineligible", ("cancellation_not_via_dashboard",), latest.charge_id
    return "ineligible", ("no_refund_for_unused_time",), latest.charge_id


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(history=history_factory(), data=st.data())
def test_final_records_do_not_depend_on_arrival_order(history: list[AccountEvent], data: st.DataObject) -> None:
    reordered = data.draw(st.permutations(history), label="reordered")
    first, second = run_history(history), run_history(reordered)
    assert second.decision() == first.decision()
    assert second.usage_start() == first.usage_start()


@PROPERTY_SETTINGS
@given(history=history_factory(shared_charge_ids=False, verdicts=False))
def test_final_decision_follows_the_contract_rules(history: list[AccountEvent]) -> None:
    outcome = run_history(history)
    state, reasons, charge_id = contract_decision(history)
    record = outcome.eligibility
    assert record is not None
    assert (record.state, tuple(record.reasons)) == (state, reasons)
    assert (record.charge.charge_id if record.charge else None) == charge_id
    assert record.trial == any(e.type == "trial_started" for e in history)
    received = [e.evidence.received_at for e in history if isinstance(e, UsageObserved)]
    assert record.usage_started_at == (min(received) if received else None)
    assert record.abuse.suspected is False


@PROPERTY_SETTINGS
@given(history=history_factory(), data=st.data())
def test_applying_an_event_twice_changes_nothing(history: list[AccountEvent], data: st.DataObject) -> None:
    index = data.draw(st.integers(min_value=0, max_value=len(history) - 1), label="duplicated")
    insert_at = data.draw(st.integers(min_value=index + 1, max_value=len(history)), label="redelivered at")
    with_duplicate = [*history[:insert_at], history[index], *history[insert_at:]]

    once, twice = run_history(history), run_history(with_duplicate)

    assert twice.decision() == once.decision()
    assert twice.usage_start() == once.usage_start()
    assert twice.eligibility.version == once.eligibility.version
    assert (twice.usage.version if twice.usage else None) == (once.usage.version if once.usage else None)
    # The redelivery itself publishes nothing new: only the records current at that moment.
    redelivery = twice.steps[insert_at]
    assert redelivery.state == twice.steps[insert_at - 1].state and not redelivery.changed
    highest: dict[type, UsageState | RefundEligibility] = {}
    for step in twice.steps[:insert_at]:
        for record in step.records:
            if type(record) not in highest or record.version > highest[type(record)].version:
                highest[type(record)] = record
    # Each stage publishes its own record again: the usage stage for evidence, the account's for the rest.
    own = UsageState if isinstance(history[index], UsageObserved) else RefundEligibility
    assert own in {type(r) for r in redelivery.records}
    for record in redelivery.records:
        assert record == highest[type(record)]


@PROPERTY_SETTINGS
@given(history=history_factory())
def test_versions_strictly_increase_per_topic(history: list[AccountEvent]) -> None:
    outcome = run_history(history)
    for kind in (UsageState, RefundEligibility):
        by_version: dict[int, UsageState | RefundEligibility] = {}
        highest = 0
        for step in outcome.steps:
            for record in step.records:
                if not isinstance(record, kind):
                    continue
                assert record.account_id == ACCOUNT
                if record.version in by_version:
                    assert record == by_version[record.version], "two different records with one version"
                else:
                    assert record.version > highest, "a new record with a version not above the last"
                    by_version[record.version] = record
                    highest = record.version
        # The last record published on the topic is the one a reader keeping the highest version holds.
        published = [r for s in outcome.steps for r in s.records if isinstance(r, kind)]
        held = outcome.usage if kind is UsageState else outcome.eligibility
        assert (published[-1] if published else None) == held


# --------------------------------------------------------------------------------------------
# Deduplication within a bounded window
# --------------------------------------------------------------------------------------------

# Small windows, so that histories of a few events within minutes overflow them both ways.
duplicate_windows = st.builds(
    DuplicateWindow, events=st.integers(1, 4), max_age_ms=st.sampled_from([0, MINUTE, 3 * MINUTE, 60 * MINUTE])
)


def facts(state: AccountState, *without: str) -> AccountState:
    """What the account knows, without the records it published (their versions count changes)."""
    return state.model_copy(update=dict.fromkeys(("usage", "eligibility")) | dict.fromkeys(without, ()))


@PROPERTY_SETTINGS
@given(history=history_factory(), window=duplicate_windows, data=st.data())
def test_a_duplicate_inside_the_window_has_no_effect_and_one_outside_changes_no_decision(
    history: list[AccountEvent], window: DuplicateWindow, data: st.DataObject
) -> None:
    billing = [i for i, e in enumerate(history) if hasattr(e, "event_id")]
    if not billing:
        return
    index = data.draw(st.sampled_from(billing), label="duplicated")
    at = data.draw(st.integers(min_value=index + 1, max_value=len(history)), label="redelivered after")
    before = run_history(history[:at], window)
    state = before.steps[-1].state
    redelivery = detector_step(state, history[index], now=NOW + 10_000, window=window)
    if any(event_id == history[index].event_id for _, event_id in state.recent_billing_events):
        assert redelivery.state == state
        assert redelivery.records == (state.eligibility,)
    else:  # forgotten: folded again, to the same facts, so to the same decision and no new record
        assert facts(redelivery.state, "recent_billing_events") == facts(state, "recent_billing_events")
        assert redelivery.state.eligibility == state.eligibility and redelivery.state.usage == state.usage
    assert len(redelivery.state.recent_billing_events) <= window.events


@PROPERTY_SETTINGS
@given(history=history_factory(), window=duplicate_windows, data=st.data())
def test_the_remembered_ids_do_not_depend_on_arrival_order_or_redeliveries(
    history: list[AccountEvent], window: DuplicateWindow, data: st.DataObject
) -> None:
    redelivered = data.draw(st.lists(st.sampled_from(history), max_size=4), label="redelivered")
    reordered = data.draw(st.permutations([*history, *redelivered]), label="reordered")
    first, second = run_history(history, window), run_history(reordered, window)
    assert facts(second.steps[-1].state) == facts(first.steps[-1].state)
    assert second.decision() == first.decision()


def test_an_account_remembers_a_bounded_number_of_billing_events() -> None:
    state = None
    for n in range(1_000):  # one plan change an hour for six weeks, ids as long as a UUID
        event = PlanChanged(type="plan_changed", event_id=f"evt-{n:032d}", account_id=ACCOUNT, occurred_at=T0 + n * 60 * MINUTE)
        state = detector_step(state, event, now=NOW, window=DEFAULT_DUPLICATE_WINDOW).state
    assert len(state.recent_billing_events) == DEFAULT_DUPLICATE_WINDOW.events == 64
    assert state.recent_billing_events[-1] == (T0 + 999 * 60 * MINUTE, f"evt-{999:032d}")
    assert len(encode(state)) < 4_200  # README, "Deduplication": 4,098 bytes (every id: 39,580)
    ten_hours = DuplicateWindow(events=64, max_age_ms=10 * 60 * MINUTE)
    last = PlanChanged(type="plan_changed", event_id="last", account_id=ACCOUNT, occurred_at=T0 + 1_000 * 60 * MINUTE)
    recent = detector_step(state, last, now=NOW, window=ten_hours).state.recent_billing_events
    assert [at for at, _ in recent] == [T0 + n * 60 * MINUTE for n in range(990, 1_001)]


def test_states_saved_before_the_window_are_read_and_keep_their_facts() -> None:
    old = {"account_id": ACCOUNT, "trial": True, "seen_billing_event_ids": ["e1", "e2"], "dashboard_cancellations_at": [5]}
    state = AccountState.model_validate(old)
    assert (state.trial, state.recent_billing_events, state.dashboard_cancellations_at) == (True, (), (5,))


def test_the_event_id_decides_what_is_a_duplicate_while_it_is_remembered() -> None:
    """A producer reusing an id for another event: dropped while the id is in the window, applied
    once it has left it (by count here)."""
    window = DuplicateWindow(events=2, max_age_ms=60 * MINUTE)

    def cancellation(event_id: str, minute: int) -> CancellationRequested:
        return CancellationRequested(
            type="cancellation_requested", event_id=event_id, account_id=ACCOUNT, occurred_at=T0 + minute * MINUTE,
            channel="email", requested_by="owner",
        )

    state = detector_step(None, cancellation("reused", 1), now=NOW, window=window).state
    assert detector_step(state, cancellation("reused", 2), now=NOW, window=window).state == state
    for n in (3, 4):
        state = detector_step(state, cancellation(f"later-{n}", n), now=NOW, window=window).state
    state = detector_step(state, cancellation("reused", 5), now=NOW, window=window).state
    assert state.other_cancellation_claims_at == tuple(T0 + m * MINUTE for m in (1, 3, 4, 5))
