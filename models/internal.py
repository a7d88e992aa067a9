"""Records on the detector's internal topics.

`<app>-usage-evidence`, keyed by account, is what the usage stage sees: hits and Conversion API
events reduced to the evidence of usage they carry (`UsageObserved`). `<app>-account-events`, keyed
by account, is what each account's processor sees: billing events as published (but a trial's
identity reduced to hashed signals), the usage stage's record of the account's usage
(`UsageRecorded`), and abuse verdicts routed back from the signals.
`<app>-signal-claims`, keyed by signal digest, carries `models.abuse.SignalClaim`, and the judge's
`VerdictsDue` to itself.

Every record of these topics and of the tables' changelogs (`models.state.AccountState`,
`models.abuse.SignalState`) is written with a `schema_version` first, and read only when this
worker knows that version: during a rolling upgrade, workers of two versions share them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter, ValidationError

from models.abuse import AbuseVerdict, Signal, SignalClaim, SignalState, VerdictsDue
from models.codec import encode
from models.errors import InvalidRecord
from models.inputs import CancellationRequested, Charged, PlanChanged, RefundIssued, SubscriptionStarted
from models.outputs import Evidence, UsageState
from models.state import AccountState
from models.timestamps import Timestamp


class UsageObserved(BaseModel):
    model_config = ConfigDict(frozen=True)

    type: Literal["usage_observed"] = "usage_observed"
    account_id: str
    evidence: Evidence
    page_signal: Signal | None = None  # the hashed host of the evidence's page_url


class UsageRecorded(BaseModel):
    """The usage stage's record of an account: its `usage.state` record as published, and the hashed
    host of its first evidence's page. The value of the `usage` table, and what the stage sends on to
    the account's processor, where the decision reads it."""

    model_config = ConfigDict(frozen=True)

    type: Literal["usage_recorded"] = "usage_recorded"
    account_id: str
    usage: UsageState
    page_signal: Signal | None = None


class TrialBegan(BaseModel):
    """`trial_started` with its identity replaced by the signals it carries (no raw values)."""

    model_config = ConfigDict(frozen=True)

    type: Literal["trial_started"] = "trial_started"
    event_id: str
    account_id: str
    occurred_at: Timestamp
    signals: tuple[Signal, ...] = ()


AccountEvent = Annotated[
    TrialBegan
    | SubscriptionStarted
    | Charged
    | CancellationRequested
    | RefundIssued
    | PlanChanged
    | UsageRecorded
    | AbuseVerdict,
    Field(discriminator="type"),
]


def _signal_record_type(record: Any) -> str:
    """Claims carry no `type` (they were the topic's only record before `VerdictsDue`)."""
    kind = record.get("type") if isinstance(record, dict) else getattr(record, "type", None)
    return "verdicts_due" if kind == "verdicts_due" else "signal_claim"


SignalRecord = Annotated[
    Annotated[SignalClaim, Tag("signal_claim")] | Annotated[VerdictsDue, Tag("verdicts_due")],
    Discriminator(_signal_record_type),
]

# What `decode_internal` reads: the internal topics' records and the three tables' values.
ACCOUNT_EVENT: TypeAdapter[AccountEvent] = TypeAdapter(AccountEvent)
USAGE_OBSERVED = TypeAdapter(UsageObserved)
USAGE_RECORDED = TypeAdapter(UsageRecorded)
SIGNAL_RECORD: TypeAdapter[SignalRecord] = TypeAdapter(SignalRecord)
ACCOUNT_STATE = TypeAdapter(AccountState)
SIGNAL_STATE = TypeAdapter(SignalState)

SCHEMA_VERSION = 1
"""The version of the internal records. Raise it when a worker of the previous version would
misread the new records; a version that reads older records too accepts them in `decode_internal`.
Records written before versions existed have none, and are version 1."""

_VERSION_FIRST = b'{"schema_version":%d,' % SCHEMA_VERSION

T = TypeVar("T")


def encode_internal(record: BaseModel) -> bytes:
    """`codec.encode` with the schema version as the first field (every internal record has fields)."""
    return _VERSION_FIRST + encode(record)[1:]


def internal_object(value: bytes | None, what: str) -> dict[str, Any]:
    """The JSON object of an internal record of this worker's schema version (the version removed),
    or an `InvalidRecord` saying why it cannot be read."""
    try:
        obj = orjson.loads(value)  # type: ignore[arg-type]  # None is a TypeError, caught below
    except (TypeError, orjson.JSONDecodeError) as exc:
        raise InvalidRecord("unreadable_internal", f"{what}: {exc}") from None
    if not isinstance(obj, dict):
        raise InvalidRecord("unreadable_internal", f"{what}: JSON {type(obj).__name__}, not an object")
    version = obj.pop("schema_version", 1)
    if type(version) is not int or version != SCHEMA_VERSION:
        raise InvalidRecord(
            "unsupported_schema_version", f"{what}: schema_version {version!r}, this worker reads {SCHEMA_VERSION}"
        )
    return obj


def decode_internal(adapter: TypeAdapter[T], value: bytes | None, what: str) -> T:
    """The record of `what` (named in the error), or an `InvalidRecord` saying why it cannot be read."""
    obj = internal_object(value, what)
    try:
        return adapter.validate_python(obj)
    except ValidationError as exc:
        raise InvalidRecord("unreadable_internal", f"{what}: {exc}") from None
