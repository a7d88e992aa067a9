"""What the detector remembers per account (the `accounts` table, backed by its changelog)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from models.abuse import AbuseVerdict, Signal
from models.outputs import ChargeSummary, Evidence, RefundEligibility, UsageState


class CancellationClaim(BaseModel):
    """A cancellation request as it came: when, through which channel, asked by whom."""

    model_config = ConfigDict(frozen=True)

    at: int
    channel: Literal["dashboard", "email", "chat", "phone", "payment_method_revoked", "other"]
    requested_by: Literal["owner", "other"]


class Refund(BaseModel):
    model_config = ConfigDict(frozen=True)

    charge_id: str
    refunded_at: int


class AccountState(BaseModel):
    """Facts folded from the account's events, and the last record published for each output.

    Every fact is kept so that the same set of events gives the same facts in any order.
    """

    model_config = ConfigDict(frozen=True)

    account_id: str
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
    # The details people look at (the console's timeline); the decision reads the facts above.
    # Written beside them, not instead: a worker of the previous version, which drops fields it
    # does not know when it saves an account, still decides right during a rolling upgrade; only
    # the details of what it folded are missing then (the console says "not recorded"). Left out
    # of the stored JSON while empty, as for most accounts: 38 bytes each otherwise.
    cancellation_claims: tuple[CancellationClaim, ...] = Field((), exclude_if=lambda claims: not claims)  # in time order
    refunds: tuple[Refund, ...] = Field((), exclude_if=lambda refunds: not refunds)  # in time order
    # The usage stage's record (its highest version), which holds the evidence usage began with.
    # States written before the usage stage also kept `first_evidence` apart: ignored when read.
    usage: UsageState | None = None
    eligibility: RefundEligibility | None = None

    @property
    def first_evidence(self) -> Evidence | None:
        return self.usage.first_evidence if self.usage is not None else None
