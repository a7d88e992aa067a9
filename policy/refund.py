"""The refund decision for an account's latest charge: the contract's rules, first match wins."""

from __future__ import annotations

from collections.abc import Iterable

from models.outputs import ChargeSummary, Decision, EligibilityState, ReasonCode
from models.state import AccountState
from policy.abuse import summarise


def charge_order(charge: ChargeSummary) -> tuple[int, str]:
    """Latest charge: latest `occurred_at`, ties broken by the greater `charge_id`."""
    return (charge.charged_at, charge.charge_id)


def latest_charge(charges: Iterable[ChargeSummary]) -> ChargeSummary | None:
    return max(charges, key=charge_order, default=None)


def charge_before(charges: Iterable[ChargeSummary], charge: ChargeSummary) -> ChargeSummary | None:
    return latest_charge(c for c in charges if charge_order(c) < charge_order(charge))


def decide(account: AccountState) -> Decision:
    charge = latest_charge(account.charges)
    used = account.first_evidence is not None
    abuse = summarise(account.abuse_verdicts)

    def decision(state: EligibilityState, *reasons: ReasonCode) -> Decision:
        return Decision(
            state=state,
            reasons=reasons,
            charge=charge,
            trial=account.trial,
            usage_started_at=account.first_evidence.received_at if account.first_evidence is not None else None,
            abuse=abuse,
        )

    # 1. The latest charge was refunded.
    if charge is not None and charge.charge_id in account.refunded_charge_ids:
        return decision("refunded", "charge_refunded")
    # 2. Repeated-trial abuse.
    if abuse.suspected:
        return decision("ineligible", "repeated_trial_abuse")
    # 3. No charge yet.
    if charge is None:
        return decision("no_charge")
    # 4. The owner cancelled in the dashboard before the charge, and after the charge before it.
    previous = charge_before(account.charges, charge)
    window_opens_at = previous.charged_at if previous is not None else -1
    if any(window_opens_at < at < charge.charged_at for at in account.dashboard_cancellations_at):
        return decision("eligible", "charged_after_dashboard_cancellation")
    # 5. The trial's conversion charge: refunded unless the account shows usage, at any time.
    if charge.reason == "trial_conversion":
        return decision("discretionary", "trial_charge_used") if used else decision("eligible", "trial_charge_unused")
    # 6. Cancellation claimed through another channel, or by someone else, before the charge.
    if any(at < charge.charged_at for at in account.other_cancellation_claims_at):
        return decision("ineligible", "cancellation_not_via_dashboard")
    # 7. No refunds for unused or partial time.
    return decision("ineligible", "no_refund_for_unused_time")
