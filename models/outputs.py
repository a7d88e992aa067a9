"""Records the detector publishes (see README, "Topics")."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from models.timestamps import Timestamp

POLICY_VERSION = "2026-11-26"
"""Which edition of the decision rules produced a record; changes when the rules change."""


class OutputRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class TagEvidence(OutputRecord):
    source: Literal["tracking_tag"] = "tracking_tag"
    id: str
    property_id: str | None = None
    page_url: str | None = None
    received_at: Timestamp


class CapiEvidence(OutputRecord):
    source: Literal["conversion_api"] = "conversion_api"
    id: str
    property_id: str | None = None
    integration: str | None = None
    received_at: Timestamp


Evidence = Annotated[TagEvidence | CapiEvidence, Field(discriminator="source")]


class UsageState(OutputRecord):
    """`usage.state`: when the account's usage began, and the hit or event that showed it."""

    account_id: str
    used: Literal[True] = True
    usage_started_at: Timestamp
    first_evidence: Evidence
    detected_at: Timestamp
    version: int


class ChargeSummary(OutputRecord):
    charge_id: str
    reason: Literal["trial_conversion", "renewal", "upgrade", "other"]
    amount_cents: int
    currency: str
    charged_at: Timestamp


class AbuseSummary(OutputRecord):
    suspected: bool = False
    linked_accounts: tuple[str, ...] = Field(
        (), description="accounts whose trials shared a signal and came earlier: the earliest ones (at most 25), in trial order"
    )
    # Records written before linked_count existed lack it; they listed every linked account.
    linked_count: int = Field(0, ge=0, description="how many accounts are linked in all (linked_accounts lists at most 25)")
    signals: tuple[str, ...] = Field((), description="the signal kinds shared with an earlier trial")


EligibilityState = Literal["refunded", "ineligible", "no_charge", "eligible", "discretionary"]
ReasonCode = Literal[
    "charge_refunded",
    "repeated_trial_abuse",
    "charged_after_dashboard_cancellation",
    "trial_charge_unused",
    "trial_charge_used",
    "cancellation_not_via_dashboard",
    "no_refund_for_unused_time",
]


class Decision(OutputRecord):
    """What the rules decide: the part of an eligibility record that a change is judged on."""

    state: EligibilityState
    reasons: tuple[ReasonCode, ...]
    charge: ChargeSummary | None
    trial: bool
    usage_started_at: Timestamp | None
    abuse: AbuseSummary


class RefundEligibility(Decision):
    """`refund.eligibility`: the refund decision for the account's latest charge."""

    account_id: str
    version: int
    decided_at: Timestamp
    policy_version: str = POLICY_VERSION


class DeadLetterError(OutputRecord):
    code: str
    message: str


class DeadLetter(OutputRecord):
    """`usage.dead-letter`: an input record that could not be used, and why."""

    topic: str
    partition: int
    offset: int
    key: str | None
    error: DeadLetterError
    raw: str | None
    dead_lettered_at: Timestamp
