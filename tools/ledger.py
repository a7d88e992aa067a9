"""Accounting per input record for `usage-detector chaos`: its effect seen, or why it had none.

Comparing each account's final records with the oracle sees a lost record only when it changes
an account's outcome. The ledger goes record by record: every input that should leave a trace
in the outputs (the first evidence of an account's usage, a trial, the latest charge, the
refund of it, a cancellation the decision turns on, a dead letter) must show it; every other
input is counted under the reason it changes nothing. A run passes only with no input
unaccounted for.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from models.inputs import CancellationRequested, Charged, PlanChanged, RefundIssued
from models.internal import AccountEvent, TrialBegan, UsageObserved
from policy.usage import evidence_order
from tools.outputs import latest_by_account

CANCELLATION_REASONS = {"charged_after_dashboard_cancellation", "cancellation_not_via_dashboard"}


@dataclass
class Ledger:
    observed: Counter[str] = field(default_factory=Counter)  # by kind of input
    without_effect: Counter[str] = field(default_factory=Counter)  # by reason
    unaccounted: int = 0
    examples: list[str] = field(default_factory=list)

    def missing(self, what: str) -> None:
        self.unaccounted += 1
        if len(self.examples) < 10:
            self.examples.append(what)

    def as_report(self) -> dict[str, Any]:
        return {
            "records_observed": sum(self.observed.values()),
            "records_observed_by_kind": dict(sorted(self.observed.items())),
            "records_without_effect": dict(sorted(self.without_effect.items())),
            "records_unaccounted": self.unaccounted,
            "unaccounted_examples": self.examples,
        }


def account_for(
    decoded: Iterable[AccountEvent | UsageObserved | None],
    outputs: dict[str, list[dict[str, Any]]],
    expected: dict[str, dict[str, Any]],
    bad_offsets: set[tuple[str, int, int]],
) -> Ledger:
    """`decoded`: each valid input as the detector's edge translates it (None for the unusable
    ones, accounted through `bad_offsets` and the dead letters)."""
    ledger = Ledger()
    latest = {kind: latest_by_account(outputs[kind]) for kind in ("usage", "eligibility")}
    letters = {(d["topic"], d["partition"], d["offset"]) for d in outputs["dead_letter"]}
    for position in sorted(bad_offsets):
        if position in letters:
            ledger.observed["dead letter"] += 1
        else:
            ledger.missing(f"no dead letter for the unusable record at {position}")

    events = [event for event in decoded if event is not None]
    first_evidence: dict[str, UsageObserved] = {}
    for event in events:
        if isinstance(event, UsageObserved):
            known = first_evidence.get(event.account_id)
            if known is None or evidence_order(event.evidence) < evidence_order(known.evidence):
                first_evidence[event.account_id] = event

    seen_ids: set[tuple[str, str]] = set()
    for event in events:
        account = event.account_id
        usage, eligibility = latest["usage"].get(account), latest["eligibility"].get(account)
        want = expected.get(account, {}).get("eligibility") or {}
        if isinstance(event, UsageObserved):
            if first_evidence[account] is not event:
                ledger.without_effect["later evidence than the account's first"] += 1
            elif usage is not None and usage["first_evidence"]["id"] == event.evidence.id:
                ledger.observed[event.evidence.source] += 1
            else:
                ledger.missing(f"{event.evidence.source} {event.evidence.id} of {account}: not the first evidence in usage.state")
            continue
        event_id = getattr(event, "event_id", "")
        if (account, event_id) in seen_ids:
            ledger.without_effect["duplicate event_id"] += 1
            continue
        seen_ids.add((account, event_id))
        _account_billing(ledger, event, eligibility, want)
    return ledger


def _account_billing(ledger: Ledger, event: AccountEvent, got: dict[str, Any] | None, want: dict[str, Any]) -> None:
    account = event.account_id
    got = got or {}
    charge = (want.get("charge") or {}).get("charge_id")
    if isinstance(event, TrialBegan):
        if got.get("trial"):
            ledger.observed["trial_started"] += 1
        else:
            ledger.missing(f"trial_started {event.event_id} of {account}: eligibility says no trial")
    elif isinstance(event, Charged):
        if event.charge_id != charge:
            ledger.without_effect["not the account's latest charge"] += 1
        elif (got.get("charge") or {}).get("charge_id") == charge:
            ledger.observed["charged"] += 1
        else:
            ledger.missing(f"charged {event.charge_id} of {account}: not the charge in its eligibility")
    elif isinstance(event, RefundIssued):
        if not (want.get("state") == "refunded" and event.charge_id == charge):
            ledger.without_effect["refund of a charge other than the latest"] += 1
        elif got.get("state") == "refunded":
            ledger.observed["refund_issued"] += 1
        else:
            ledger.missing(f"refund_issued {event.event_id} of {account}: eligibility not refunded")
    elif isinstance(event, CancellationRequested):
        if not CANCELLATION_REASONS & set(want.get("reasons", [])):
            ledger.without_effect["a cancellation the decision does not turn on"] += 1
        elif got.get("reasons") == want.get("reasons"):
            ledger.observed["cancellation_requested"] += 1
        else:
            ledger.missing(f"cancellation_requested {event.event_id} of {account}: reasons {got.get('reasons')}")
    elif isinstance(event, PlanChanged):
        ledger.without_effect["plan_changed: no effect on eligibility"] += 1
    else:
        ledger.without_effect[f"{event.type}: no field of the outputs records it"] += 1
