"""Records of repeated-trial abuse detection: hashed signals, claims on them, verdicts.

No raw identity ever appears here: a signal is an HMAC-SHA256 of its normalised value, made at
the edge with the configured secret.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

SignalKind = Literal["card_fingerprint", "device_id", "email", "website"]


class Signal(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: SignalKind
    digest: str  # hex HMAC-SHA256 of "kind:normalised value"


class SignalClaim(BaseModel):
    """An account's claim on a signal: its earliest trial start, or None to withdraw the claim."""

    model_config = ConfigDict(frozen=True)

    signal: Signal
    account_id: str
    trial_started_at: int | None


class AbuseVerdict(BaseModel):
    """For one account and one signal: the accounts whose trials on that signal came earlier.

    `seq` counts the changes of the signal's claimants; the highest `seq` is the current verdict.
    """

    model_config = ConfigDict(frozen=True)

    type: Literal["abuse_verdict"] = "abuse_verdict"
    account_id: str
    signal: Signal
    seq: int
    earlier_accounts: tuple[str, ...]


class SignalState(BaseModel):
    """The `signals` table: every account claiming one signal, with its earliest trial start."""

    model_config = ConfigDict(frozen=True)

    signal: Signal
    claimants: dict[str, int] = {}
    seq: int = 0
