"""Events for one account, as its processor receives them (`models.internal.AccountEvent`).

Shared by the policy tests (test_refund_rules, test_account_steps, test_policy_properties).
Billing events are as published, except `trial_started`, whose identity is reduced to signals on
the way in; usage evidence is a hit or a Conversion API event; rule 2 is reached the way the
processor learns of abuse, by an abuse verdict (`make_abuse_verdict`, the one place that knows its
form).

Every factory takes keyword defaults; a test passes whatever matters to it. Times are epoch
milliseconds or RFC 3339 text (`rfc3339`), placed around C, the (latest) charge.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone

from pydantic import TypeAdapter

from models.inputs import CancellationRequested, Charged, PlanChanged, RefundIssued, SubscriptionStarted
from models.internal import AccountEvent, UsageObserved

ACCOUNT = "acct-test-1"
MS = 1
SECOND = 1_000 * MS
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
C = 1_772_359_200_000  # 2026-03-01T10:00:00.000Z: the (latest) charge

ACCOUNT_EVENT: TypeAdapter[AccountEvent] = TypeAdapter(AccountEvent)

_event_ids = itertools.count(1)


def _event_id(prefix: str) -> str:
    return f"{prefix}-{next(_event_ids)}"


def make_trial(at: int | str = C - 14 * DAY) -> AccountEvent:
    """`trial_started` (no identity) in the form the account's processor receives it."""
    record = {"type": "trial_started", "event_id": _event_id("trial"), "account_id": ACCOUNT, "occurred_at": at}
    return ACCOUNT_EVENT.validate_python(record)


def make_abuse_verdict(
    earlier_accounts: Sequence[str] = ("acct-earlier",), kind: str = "card_fingerprint", seq: int = 1
) -> AccountEvent:
    """The verdict on one of the account's trial signals: the accounts whose trials came earlier
    (counted on this signal), their trials a minute apart in the order given."""
    record = {
        "type": "abuse_verdict",
        "account_id": ACCOUNT,
        "signal": {"kind": kind, "digest": f"digest-of-{kind}"},
        "seq": seq,
        "linked": bool(earlier_accounts),
        "counted": len(earlier_accounts),
        "earliest": [{"account_id": a, "trial_started_at": C - DAY + i * MINUTE} for i, a in enumerate(earlier_accounts)],
    }
    return ACCOUNT_EVENT.validate_python(record)


def make_subscription(at: int | str = C - 30 * DAY) -> SubscriptionStarted:
    return SubscriptionStarted(type="subscription_started", event_id=_event_id("sub"), account_id=ACCOUNT, occurred_at=at)


def make_plan_change(at: int | str = C - DAY) -> PlanChanged:
    # plan_changed is free form: extra fields are accepted and ignored.
    return PlanChanged(
        type="plan_changed", event_id=_event_id("plan"), account_id=ACCOUNT, occurred_at=at, plan="pro", seats=5
    )


def make_charge(
    charge_id: str = "ch_1",
    at: int | str = C,
    reason: str = "renewal",
    amount_cents: int = 4_900,
    currency: str = "USD",
) -> Charged:
    return Charged(
        type="charged",
        event_id=_event_id("charge"),
        account_id=ACCOUNT,
        occurred_at=at,
        charge_id=charge_id,
        amount_cents=amount_cents,
        currency=currency,
        reason=reason,
    )


def make_trial_charge(charge_id: str = "ch_1", at: int | str = C) -> Charged:
    return make_charge(charge_id=charge_id, at=at, reason="trial_conversion")


def make_cancellation(at: int | str, channel: str = "dashboard", requested_by: str = "owner") -> CancellationRequested:
    return CancellationRequested(
        type="cancellation_requested",
        event_id=_event_id("cancel"),
        account_id=ACCOUNT,
        occurred_at=at,
        channel=channel,
        requested_by=requested_by,
    )


def make_dashboard_cancellation(at: int | str) -> CancellationRequested:
    return make_cancellation(at, channel="dashboard", requested_by="owner")


def make_email_claim(at: int | str) -> CancellationRequested:
    return make_cancellation(at, channel="email", requested_by="owner")


def make_refund(charge_id: str = "ch_1", at: int | str = C + DAY) -> RefundIssued:
    return RefundIssued(type="refund_issued", event_id=_event_id("refund"), account_id=ACCOUNT, occurred_at=at, charge_id=charge_id)


def make_hit(
    received_at: int | str, hit_id: str = "h1", occurred_at: int | str | None = None, **fields: object
) -> UsageObserved:
    """Usage evidence from a Tracking Tag hit."""
    evidence: dict[str, object] = {"source": "tracking_tag", "id": hit_id, "received_at": received_at, **fields}
    if occurred_at is not None:
        evidence["occurred_at"] = occurred_at  # the browser's clock, passed along by a careless producer
    return UsageObserved(account_id=ACCOUNT, evidence=evidence)


def make_capi(received_at: int | str, event_id: str = "capi-1", **fields: object) -> UsageObserved:
    """Usage evidence from a Conversion API event."""
    evidence = {"source": "conversion_api", "id": event_id, "received_at": received_at, **fields}
    return UsageObserved(account_id=ACCOUNT, evidence=evidence)


def rfc3339(ms: int, offset_minutes: int = 0, zulu: bool = True, separator: str = "T", lower: bool = False) -> str:
    """`ms` written as RFC 3339, in the given zone; written here, not by the code under test."""
    zone = timezone(timedelta(minutes=offset_minutes))
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    local = moment.astimezone(zone)
    text = local.strftime("%Y-%m-%d") + separator + local.strftime("%H:%M:%S") + f".{ms % 1000:03d}"
    if zulu and offset_minutes == 0:
        text += "Z"
    else:
        sign = "+" if offset_minutes >= 0 else "-"
        hours, minutes = divmod(abs(offset_minutes), 60)
        text += f"{sign}{hours:02d}:{minutes:02d}"
    return text.lower() if lower else text
