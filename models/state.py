"""What the detector remembers per account (the `accounts` table, backed by its changelog)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from models.abuse import AbuseVerdict, Signal
from models.outputs import ChargeSummary, Evidence, RefundEligibility, UsageState


class AccountState(BaseModel):
    """Facts folded from the account's events, and the last record published for each output.

    Every fact is kept so that the same set of events gives the same facts in any order.
    """

    model_config = ConfigDict(frozen=True)

    account_id: str
    first_evidence: Evidence | None = None
    page_signal: Signal | None = None  # of the first evidence's page
    trial: bool = False
    trial_started_at: int | None = None  # the earliest trial_started
    trial_signals: frozenset[Signal] = frozenset()
    charges: tuple[ChargeSummary, ...] = ()
    refunded_charge_ids: frozenset[str] = frozenset()
    dashboard_cancellations_at: tuple[int, ...] = ()  # by the owner, in the dashboard
    other_cancellation_claims_at: tuple[int, ...] = ()  # any other channel or requester
    # (occurred_at, event_id) of the billing events remembered to drop duplicates, oldest first,
    # bounded by policy.account.DuplicateWindow. States saved before the bound kept
    # `seen_billing_event_ids`, every id: ignored when read (facts fold idempotently).
    recent_billing_events: tuple[tuple[int, str], ...] = ()
    abuse_verdicts: dict[str, AbuseVerdict] = {}  # by signal digest, the highest `seq` of each
    usage: UsageState | None = None
    eligibility: RefundEligibility | None = None
