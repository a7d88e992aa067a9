"""Records on the input topics, as their producers publish them (see README, "Topics")."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from models.timestamps import Timestamp

AccountId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:\-]{1,64}$")]
RecordId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Text = Annotated[str, StringConstraints(max_length=8192)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{3}$", to_upper=True)]


class InputRecord(BaseModel):
    """Strict types (no "12" for 12), unknown extra fields ignored, as the contract says."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class TrackingHit(InputRecord):
    """One Tracking Tag hit from the collectors (`tracking.hits`)."""

    hit_id: RecordId
    account_id: AccountId
    received_at: Timestamp = Field(description="collector's clock: the trusted one")
    property_id: Text | None = None
    event_name: Text | None = None
    page_url: Text | None = None
    occurred_at: Timestamp | None = Field(None, description="browser's clock: never used for usage start")
    click_id: Text | None = None
    user_agent: Text | None = None
    ip: Text | None = None


class ConversionApiEvent(InputRecord):
    """One event sent by the account's servers through the Conversion API (`capi.events`)."""

    event_id: RecordId
    account_id: AccountId
    received_at: Timestamp = Field(description="when the API received it")
    integration: Text | None = None
    event_name: Text | None = None
    occurred_at: Timestamp | None = None
    transaction_id: Text | None = None
    click_id: Text | None = None
    value: float | None = None
    currency: Text | None = None


class BillingEventBase(InputRecord):
    event_id: RecordId
    account_id: AccountId
    occurred_at: Timestamp


class TrialIdentity(InputRecord):
    email: Text | None = None
    card_fingerprint: Text | None = None
    device_id: Text | None = None
    website: Text | None = None
    signup_ip: Text | None = None


class TrialStarted(BillingEventBase):
    type: Literal["trial_started"]
    trial_ends_at: Timestamp | None = None
    identity: TrialIdentity | None = None


class SubscriptionStarted(BillingEventBase):
    type: Literal["subscription_started"]


class Charged(BillingEventBase):
    type: Literal["charged"]
    charge_id: RecordId
    amount_cents: int = Field(ge=0)
    currency: Currency
    reason: Literal["trial_conversion", "renewal", "upgrade", "other"]


class CancellationRequested(BillingEventBase):
    type: Literal["cancellation_requested"]
    channel: Literal["dashboard", "email", "chat", "phone", "payment_method_revoked", "other"]
    requested_by: Literal["owner", "other"]


class RefundIssued(BillingEventBase):
    type: Literal["refund_issued"]
    charge_id: RecordId


class PlanChanged(BillingEventBase):
    """Free form: recorded, no effect on eligibility."""

    type: Literal["plan_changed"]


BillingEvent = Annotated[
    TrialStarted | SubscriptionStarted | Charged | CancellationRequested | RefundIssued | PlanChanged,
    Field(discriminator="type"),
]
