"""An account's decision in words, from its state: the rule that applied and the facts behind it."""

from __future__ import annotations

from dataclasses import dataclass

from models.abuse import SignalKind
from models.state import AccountState
from models.timestamps import format_timestamp
from policy.refund import charge_before, latest_charge

RULES = {
    "charge_refunded": "rule 1: the latest charge was refunded",
    "repeated_trial_abuse": "rule 2: repeated-trial abuse is suspected",
    "charged_after_dashboard_cancellation": "rule 4: the owner cancelled in the dashboard before the charge",
    "trial_charge_unused": "rule 5: the trial's conversion charge, and the account never used the product",
    "trial_charge_used": "rule 5: the trial's conversion charge, but the account shows usage (refund at discretion)",
    "cancellation_not_via_dashboard": "rule 6: a cancellation was claimed outside the dashboard or by someone else",
    "no_refund_for_unused_time": "rule 7: no refunds for unused or partial time",
}


def explain(account: AccountState) -> list[str]:
    record = account.eligibility
    if record is None:
        return [f"{account.account_id}: nothing decided yet"]
    lines = [f"{account.account_id}: {record.state} (version {record.version}, decided {format_timestamp(record.decided_at)})"]
    lines += [f"  because {RULES[reason]}" for reason in record.reasons] or ["  because rule 3: there is no charge yet"]
    evidence = account.first_evidence
    if evidence is None:
        lines.append("usage: none seen")
    else:
        where = evidence.page_url if evidence.source == "tracking_tag" else evidence.integration
        lines.append(
            f"usage: started {format_timestamp(evidence.received_at)} by {evidence.source} {evidence.id}"
            + (f" ({where})" if where else "")
        )
    lines.append(f"trial: {'started ' + format_timestamp(account.trial_started_at) if account.trial_started_at is not None else 'none'}")
    charge = latest_charge(account.charges)
    if charge is None:
        lines.append("charges: none")
    else:
        for label, c in (("latest charge", charge), ("charge before it", charge_before(account.charges, charge))):
            if c is not None:
                refunded = " (refunded)" if c.charge_id in account.refunded_charge_ids else ""
                lines.append(
                    f"{label}: {c.charge_id} {c.reason} {c.amount_cents / 100:.2f} {c.currency} at {format_timestamp(c.charged_at)}{refunded}"
                )
    for at in account.dashboard_cancellations_at:
        lines.append(f"cancellation in the dashboard by the owner at {format_timestamp(at)}")
    for at in account.other_cancellation_claims_at:
        lines.append(f"cancellation claimed outside the dashboard or by someone else at {format_timestamp(at)}")
    abuse = record.abuse
    if abuse.suspected:
        unlisted = abuse.linked_count - len(abuse.linked_accounts)
        more = f" and {unlisted} more" if unlisted > 0 else ""
        lines.append(f"abuse: trials of {', '.join(abuse.linked_accounts)}{more} came earlier with the same {', '.join(abuse.signals)}")
    return lines


@dataclass(frozen=True)
class BillingEntry:
    """One line of an account's billing timeline: when (None: not recorded), what, and its details."""

    at: int | None
    what: str
    details: str


def billing_timeline(account: AccountState) -> list[BillingEntry]:
    """The trial, charges, refunds and cancellations the account's decision rests on, in time order.

    Refunds and cancellations folded by a worker of the version before the details were kept
    have no details (nor, for refunds, a time): shown as such, never guessed."""
    entries = [BillingEntry(account.trial_started_at, "trial started", "")] if account.trial_started_at is not None else []
    for c in account.charges:
        entries.append(BillingEntry(c.charged_at, "charged", f"{c.charge_id}: {c.reason}, {c.amount_cents / 100:.2f} {c.currency}"))
    for refund in account.refunds:
        entries.append(BillingEntry(refund.refunded_at, "refund issued", f"for charge {refund.charge_id}"))
    for charge_id in sorted(account.refunded_charge_ids - {r.charge_id for r in account.refunds}):
        entries.append(BillingEntry(None, "refund issued", f"for charge {charge_id} (time not recorded)"))
    claims = {(c.at, c.channel == "dashboard" and c.requested_by == "owner") for c in account.cancellation_claims}
    for claim in account.cancellation_claims:
        entries.append(BillingEntry(claim.at, "cancellation requested", f"through {claim.channel.replace('_', ' ')}, by {_requester(claim.requested_by)}"))
    for at in account.dashboard_cancellations_at:
        if (at, True) not in claims:
            entries.append(BillingEntry(at, "cancellation requested", "in the dashboard, by the owner"))
    for at in account.other_cancellation_claims_at:
        if (at, False) not in claims:
            entries.append(BillingEntry(at, "cancellation requested", "outside the dashboard or by someone else (details not recorded)"))
    return sorted(entries, key=lambda e: (e.at is None, e.at or 0, e.what, e.details))


def _requester(requested_by: str) -> str:
    return "the owner" if requested_by == "owner" else "someone other than the owner"


def linked_accounts(account: AccountState) -> dict[str, tuple[SignalKind, ...]]:
    """Each earlier account the abuse verdicts name, with the kinds of signal it shares, in trial order."""
    kinds: dict[str, set[SignalKind]] = {}
    started: dict[str, int] = {}
    for verdict in account.abuse_verdicts.values():
        for trial in verdict.earliest:
            kinds.setdefault(trial.account_id, set()).add(verdict.signal.kind)
            started[trial.account_id] = trial.trial_started_at
    return {a: tuple(sorted(kinds[a])) for a in sorted(kinds, key=lambda a: (started[a], a))}
