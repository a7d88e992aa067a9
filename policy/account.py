"""One account's state machine: (state, event) -> (new state, records to publish)."""

from __future__ import annotations

from dataclasses import dataclass

from models.inputs import CancellationRequested, Charged, RefundIssued, TrialStarted
from models.internal import AccountEvent, UsageObserved
from models.outputs import ChargeSummary, Decision, Evidence, RefundEligibility, UsageState
from models.state import AccountState
from policy.refund import charge_order, decide

Record = UsageState | RefundEligibility


@dataclass(frozen=True)
class Step:
    state: AccountState
    records: tuple[Record, ...]


def evidence_order(evidence: Evidence) -> tuple[int, str, str]:
    """Earliest `received_at` first; source and id only make ties deterministic."""
    return (evidence.received_at, evidence.source, evidence.id)


def earliest(current: Evidence | None, candidate: Evidence) -> Evidence:
    if current is None or evidence_order(candidate) < evidence_order(current):
        return candidate
    return current


def fold(state: AccountState, event: AccountEvent) -> AccountState:
    """The account's facts after `event`. Pure, and the same for any order of the same events."""
    if isinstance(event, UsageObserved):
        first = earliest(state.first_evidence, event.evidence)
        return state if first is state.first_evidence else state.model_copy(update={"first_evidence": first})
    if event.event_id in state.seen_billing_event_ids:
        return state  # the same event delivered twice has the effect of one
    update: dict[str, object] = {"seen_billing_event_ids": state.seen_billing_event_ids | {event.event_id}}
    if isinstance(event, TrialStarted):
        update["trial"] = True
    elif isinstance(event, Charged):
        update["charges"] = _with_charge(state.charges, event)
    elif isinstance(event, CancellationRequested):
        if event.channel == "dashboard" and event.requested_by == "owner":
            update["dashboard_cancellations_at"] = tuple(sorted((*state.dashboard_cancellations_at, event.occurred_at)))
        else:
            update["other_cancellation_claims_at"] = tuple(sorted((*state.other_cancellation_claims_at, event.occurred_at)))
    elif isinstance(event, RefundIssued):
        update["refunded_charge_ids"] = state.refunded_charge_ids | {event.charge_id}
    # subscription_started and plan_changed are recorded (as seen) and change nothing else.
    return state.model_copy(update=update)


def _with_charge(charges: tuple[ChargeSummary, ...], event: Charged) -> tuple[ChargeSummary, ...]:
    charge = ChargeSummary(
        charge_id=event.charge_id,
        reason=event.reason,
        amount_cents=event.amount_cents,
        currency=event.currency,
        charged_at=event.occurred_at,
    )
    same_id = [c for c in charges if c.charge_id == charge.charge_id]
    # A charge id published twice with different details: keep one, chosen by content, not arrival.
    if same_id and same_id[0].model_dump_json() <= charge.model_dump_json():
        return charges
    others = [c for c in charges if c.charge_id != charge.charge_id]
    return tuple(sorted((*others, charge), key=charge_order))


def apply(state: AccountState | None, event: AccountEvent, now: int) -> Step:
    """Fold `event` into the account and return the records to publish, stamped at `now`.

    A record is published when its content changes, with the next `version`. An event that
    changes nothing publishes the current records again, unchanged: if a crash lost the
    publication of a change whose state was already saved, reprocessing its input repairs it.
    """
    before = state or AccountState(account_id=event.account_id)
    after = fold(before, event)
    usage = _usage_record(after, now)
    eligibility = _eligibility_record(after, now)
    after = after.model_copy(update={"usage": usage, "eligibility": eligibility})
    changed = tuple(r for r, prior in ((usage, before.usage), (eligibility, before.eligibility)) if r is not prior)
    republished = tuple(r for r in (before.usage, before.eligibility) if r is not None)
    return Step(state=after, records=changed or republished)


def _usage_record(account: AccountState, now: int) -> UsageState | None:
    current, evidence = account.usage, account.first_evidence
    if evidence is None or (current is not None and current.first_evidence == evidence):
        return current
    return UsageState(
        account_id=account.account_id,
        usage_started_at=evidence.received_at,
        first_evidence=evidence,
        detected_at=now,
        version=current.version + 1 if current else 1,
    )


def _eligibility_record(account: AccountState, now: int) -> RefundEligibility:
    current = account.eligibility
    decision = decide(account)
    if current is not None and decision == _decision_of(current):
        return current
    return RefundEligibility(
        account_id=account.account_id,
        version=current.version + 1 if current else 1,
        decided_at=now,
        **dict(decision),
    )


def _decision_of(record: RefundEligibility) -> Decision:
    return Decision(**{name: getattr(record, name) for name in Decision.model_fields})
