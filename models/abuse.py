"""Records of repeated-trial abuse detection: hashed signals, claims on them, verdicts.

No raw identity ever appears here: a signal is an HMAC-SHA256 of its normalised value, made at
the edge with the configured secret.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SignalKind = Literal["card_fingerprint", "device_id", "email", "website"]


class Signal(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: SignalKind
    digest: str  # hex HMAC-SHA256 of "kind:normalised value"


class SignalClaim(BaseModel):
    """An account's claim on a signal: its earliest trial start, or None to withdraw the claim.

    `lower_digests` are the account's other claimed signals whose digests sort before this one.
    Two accounts sharing several signals are counted as linked on the first shared one only, so
    an account's linked total is the sum over its signals, each signal judged on its own.
    """

    model_config = ConfigDict(frozen=True)

    signal: Signal
    account_id: str
    trial_started_at: int | None
    lower_digests: frozenset[str] = frozenset()


class EarlierTrial(BaseModel):
    model_config = ConfigDict(frozen=True)

    account_id: str
    trial_started_at: int


class AbuseVerdict(BaseModel):
    """For one account and one signal: whether an earlier trial shares it, and which ones count.

    `linked`: some other account's trial on this signal came earlier. `counted`: how many earlier
    accounts are counted on this signal (those sharing no lower signal with this account), and
    `earliest` the earliest of them (a capped number, see `policy.abuse`), in trial order.
    `seq` counts the changes of the signal's claimants; the highest `seq` is the current verdict.
    """

    model_config = ConfigDict(frozen=True)

    type: Literal["abuse_verdict"] = "abuse_verdict"
    account_id: str
    signal: Signal
    seq: int
    linked: bool = False
    counted: int = 0
    earliest: tuple[EarlierTrial, ...] = ()


class Claimant(BaseModel):
    model_config = ConfigDict(frozen=True)

    trial_started_at: int
    lower_digests: frozenset[str] = frozenset()


class VerdictsDue(BaseModel):
    """On `<app>-signal-claims`, sent by the judge to itself: a busy signal's held verdicts are due
    if the signal is still at `seq` (no claim changed it since), or held too long (`policy.abuse`)."""

    model_config = ConfigDict(frozen=True)

    type: Literal["verdicts_due"] = "verdicts_due"
    signal: Signal
    seq: int


class SignalState(BaseModel):
    """The `signals` table: every account claiming one signal, with its earliest trial start.

    `held`: accounts whose standing changed while the signal was busy, to be told once it is quiet
    (`held_since`: since when, epoch ms of the judge's clock). Left out of the stored JSON while
    empty, as for nearly every signal."""

    model_config = ConfigDict(frozen=True)

    signal: Signal
    claimants: dict[str, Claimant] = {}
    seq: int = 0
    held: frozenset[str] = Field(frozenset(), exclude_if=lambda held: not held)
    held_since: int | None = Field(None, exclude_if=lambda since: since is None)
