"""Records on the detector's internal topic, keyed by account: what each account's processor sees.

Billing events pass through as published; hits and Conversion API events are reduced to the
evidence of usage they carry, since nothing else of them matters to the policy.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from models.inputs import BILLING_EVENT_MODELS
from models.outputs import Evidence


class UsageObserved(BaseModel):
    model_config = ConfigDict(frozen=True)

    type: Literal["usage_observed"] = "usage_observed"
    account_id: str
    evidence: Evidence


AccountEvent = Annotated[Union[(*BILLING_EVENT_MODELS, UsageObserved)], Field(discriminator="type")]
