"""What the detector remembers per account (the `accounts` table, backed by its changelog)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from models.outputs import AbuseSummary, ChargeSummary, Evidence, RefundEligibility, UsageState


class AccountState(BaseModel):
    """Facts folded from the account's events, and the last record published for each output.

    Every fact is kept so that the same set of events gives the same facts in any order.
    """

    model_config = ConfigDict(frozen=True)

    account_id: str
    first_evidence: Evidence | None = None
    trial: bool = False
    charges: tuple[ChargeSummary, ...] = ()
    refunded_charge_ids: frozenset[str] = frozenset()
    dashboard_cancellations_at: tuple[int, ...] = ()  # by the owner, in the dashboard
    other_cancellation_claims_at: tuple[int, ...] = ()  # any other channel or requester
    seen_billing_event_ids: frozenset[str] = frozenset()
    abuse: AbuseSummary = AbuseSummary()
    usage: UsageState | None = None
    eligibility: RefundEligibility | None = None
