"""Records on the detector's internal topics.

`<app>-account-events`, keyed by account, is what each account's processor sees: billing events
as published (but a trial's identity reduced to hashed signals), hits and Conversion API events
reduced to the evidence of usage they carry, and abuse verdicts routed back from the signals.
`<app>-signal-claims`, keyed by signal digest, carries `models.abuse.SignalClaim`.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from models.abuse import AbuseVerdict, Signal
from models.inputs import CancellationRequested, Charged, PlanChanged, RefundIssued, SubscriptionStarted
from models.outputs import Evidence
from models.timestamps import Timestamp


class UsageObserved(BaseModel):
    model_config = ConfigDict(frozen=True)

    type: Literal["usage_observed"] = "usage_observed"
    account_id: str
    evidence: Evidence
    page_signal: Signal | None = None  # the hashed host of the evidence's page_url


class TrialBegan(BaseModel):
    """`trial_started` with its identity replaced by the signals it carries (no raw values)."""

    model_config = ConfigDict(frozen=True)

    type: Literal["trial_started"] = "trial_started"
    event_id: str
    account_id: str
    occurred_at: Timestamp
    signals: tuple[Signal, ...] = ()


AccountEvent = Annotated[
    Union[
        TrialBegan,
        SubscriptionStarted,
        Charged,
        CancellationRequested,
        RefundIssued,
        PlanChanged,
        UsageObserved,
        AbuseVerdict,
    ],
    Field(discriminator="type"),
]
