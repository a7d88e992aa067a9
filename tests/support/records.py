"""Input records as the upstream teams publish them (plain dicts, both timestamp forms)."""

from __future__ import annotations

import itertools
from typing import Any

_ids = itertools.count(1)


def _next(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}"


def hit(account_id: str, received_at: str | int, **extra: Any) -> dict[str, Any]:
    return {"hit_id": _next("hit"), "account_id": account_id, "received_at": received_at, **extra}


def capi(account_id: str, received_at: str | int, **extra: Any) -> dict[str, Any]:
    return {"event_id": _next("capi"), "account_id": account_id, "received_at": received_at, **extra}


def billing(account_id: str, type_: str, occurred_at: str | int, **fields: Any) -> dict[str, Any]:
    return {"event_id": _next("bill"), "account_id": account_id, "type": type_, "occurred_at": occurred_at, **fields}


def trial(account_id: str, at: str | int, **identity: Any) -> dict[str, Any]:
    return billing(account_id, "trial_started", at, identity=identity or None)


def charge(account_id: str, at: str | int, charge_id: str, reason: str = "trial_conversion", amount_cents: int = 4900) -> dict[str, Any]:
    return billing(account_id, "charged", at, charge_id=charge_id, amount_cents=amount_cents, currency="USD", reason=reason)


def cancellation(account_id: str, at: str | int, channel: str = "dashboard", requested_by: str = "owner") -> dict[str, Any]:
    return billing(account_id, "cancellation_requested", at, channel=channel, requested_by=requested_by)


def refund(account_id: str, at: str | int, charge_id: str) -> dict[str, Any]:
    return billing(account_id, "refund_issued", at, charge_id=charge_id)
