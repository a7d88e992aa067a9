"""One account's state machine: (state, event) -> (new state, records to publish, signal claims)."""

from __future__ import annotations

from dataclasses import dataclass

from models.abuse import AbuseVerdict, SignalClaim
from models.inputs import CancellationRequested, Charged, RefundIssued
from models.internal import AccountEvent, TrialBegan, UsageRecorded
from models.outputs import ChargeSummary, Decision, RefundEligibility
from models.state import AccountState, CancellationClaim, Refund
from policy.refund import charge_order, decide


@dataclass(frozen=True)
class DuplicateWindow:
    """Which billing event ids an account remembers, to give a duplicate the effect of none: the
    `events` newest by `occurred_at`, and of those only the ones at most `max_age_ms` older than
    the account's newest. Duplicates come from producer retries and redelivery after crashes and
    rebalances (seconds to minutes), or a producer replaying its outbox after an outage (hours,
    days); the defaults cover a whole monthly billing cycle and more events than an account has
    in one. Facts are folded idempotently, so a duplicate from outside the window changes no
    decision either: it is only remembered again."""

    events: int
    max_age_ms: int


DEFAULT_DUPLICATE_WINDOW = DuplicateWindow(events=64, max_age_ms=35 * 24 * 3_600_000)


@dataclass(frozen=True)
class Step:
    state: AccountState
    records: tuple[RefundEligibility, ...]  # for the eligibility topic: none, or the account's record
    claims: tuple[SignalClaim, ...]  # for the signals this account's trials touch
    changed: bool  # whether `state` differs from the state the event was applied to


def fold(state: AccountState, event: AccountEvent, window: DuplicateWindow = DEFAULT_DUPLICATE_WINDOW) -> AccountState:
    """The account's facts after `event`. Pure, and the same for any order of the same events."""
    if isinstance(event, UsageRecorded):
        # The usage stage's versions rise as its evidence gets earlier (`policy.usage`): the highest is the earliest.
        if state.usage is not None and state.usage.version >= event.usage.version:
            return state
        return state.model_copy(update={"usage": event.usage, "page_signal": event.page_signal})
    if isinstance(event, AbuseVerdict):
        known = state.abuse_verdicts.get(event.signal.digest)
        if known is not None and known.seq >= event.seq:
            return state
        return state.model_copy(update={"abuse_verdicts": {**state.abuse_verdicts, event.signal.digest: event}})
    if any(event_id == event.event_id for _, event_id in state.recent_billing_events):
        return state  # the same event delivered twice has the effect of one
    remembered = _remembered(state.recent_billing_events, (event.occurred_at, event.event_id), window)
    update: dict[str, object] = {"recent_billing_events": remembered}
    if isinstance(event, TrialBegan):
        update["trial"] = True
        earliest = state.trial_started_at
        update["trial_started_at"] = event.occurred_at if earliest is None else min(earliest, event.occurred_at)
        update["trial_signals"] = state.trial_signals | set(event.signals)
    elif isinstance(event, Charged):
        update["charges"] = _with_charge(state.charges, event)
    elif isinstance(event, CancellationRequested):
        # Kept as sets of times (the rules ask only whether one falls in a span), so that a
        # duplicate from outside the window folds to the same facts.
        if event.channel == "dashboard" and event.requested_by == "owner":
            update["dashboard_cancellations_at"] = tuple(sorted({*state.dashboard_cancellations_at, event.occurred_at}))
        else:
            update["other_cancellation_claims_at"] = tuple(sorted({*state.other_cancellation_claims_at, event.occurred_at}))
        claim = CancellationClaim(at=event.occurred_at, channel=event.channel, requested_by=event.requested_by)
        update["cancellation_claims"] = tuple(sorted({*state.cancellation_claims, claim}, key=_claim_order))
    elif isinstance(event, RefundIssued):
        update["refunded_charge_ids"] = state.refunded_charge_ids | {event.charge_id}
        refund = Refund(charge_id=event.charge_id, refunded_at=event.occurred_at)
        update["refunds"] = tuple(sorted({*state.refunds, refund}, key=lambda r: (r.refunded_at, r.charge_id)))
    # subscription_started and plan_changed are recorded (as seen) and change nothing else.
    return state.model_copy(update=update)


def _claim_order(claim: CancellationClaim) -> tuple[int, str, str]:
    return (claim.at, claim.channel, claim.requested_by)


def _remembered(
    recent: tuple[tuple[int, str], ...], event: tuple[int, str], window: DuplicateWindow
) -> tuple[tuple[int, str], ...]:
    """The window after `event` (occurred_at, event_id): what it keeps depends only on the set of
    events seen, not on their order (an event dropped from it would be dropped whenever it came)."""
    events = sorted({*recent, event})
    newest = events[-1][0]
    return tuple(e for e in events if e[0] >= newest - window.max_age_ms)[-window.events :]


def _with_charge(charges: tuple[ChargeSummary, ...], event: Charged) -> tuple[ChargeSummary, ...]:
    charge = ChargeSummary(
        charge_id=event.charge_id,
        reason=event.reason,
        amount_cents=event.amount_cents,
        currency=event.currency,
        charged_at=event.occurred_at,
    )
    same_id = [c for c in charges if c.charge_id == charge.charge_id]
    # A charge id published twice with different details: keep one, chosen by content, not arrival.
    if same_id and same_id[0].model_dump_json() <= charge.model_dump_json():
        return charges
    others = [c for c in charges if c.charge_id != charge.charge_id]
    return tuple(sorted((*others, charge), key=charge_order))


def claims_of(account: AccountState) -> dict[str, SignalClaim]:
    """The account's claims by signal digest: its trial's signals and its first page's host."""
    if account.trial_started_at is None:
        return {}
    signals = set(account.trial_signals) | ({account.page_signal} if account.page_signal else set())
    digests = frozenset(s.digest for s in signals)
    return {
        s.digest: SignalClaim(
            signal=s,
            account_id=account.account_id,
            trial_started_at=account.trial_started_at,
            lower_digests=frozenset(d for d in digests if d < s.digest),
        )
        for s in sorted(signals, key=lambda s: s.digest)
    }


def _changed_claims(before: AccountState, after: AccountState) -> tuple[SignalClaim, ...]:
    old, new = claims_of(before), claims_of(after)
    withdrawn = (c.model_copy(update={"trial_started_at": None}) for d, c in old.items() if d not in new)
    return (*(c for d, c in new.items() if old.get(d) != c), *withdrawn)


def apply(
    state: AccountState | None, event: AccountEvent, now: int, window: DuplicateWindow = DEFAULT_DUPLICATE_WINDOW
) -> Step:
    """Fold `event` into the account and say what to publish, stamped at `now`; billing event ids
    are remembered within `window`.

    The eligibility record is published when its content changes, with the next `version`. An
    event that changes nothing publishes the current record (and, if it could have caused them,
    the account's signal claims) again, unchanged: if a crash lost the publication of a change
    whose state was already saved, reprocessing its input repairs it. (Usage records are the
    usage stage's: `policy.usage`.)
    """
    before = state or AccountState(account_id=event.account_id)
    after = fold(before, event, window)
    eligibility = _eligibility_record(after, now)
    after = after.model_copy(update={"eligibility": eligibility})
    if after != before:
        changed = (eligibility,) if eligibility is not before.eligibility else ()
        return Step(state=after, records=changed, claims=_changed_claims(before, after), changed=True)
    republished = (before.eligibility,) if before.eligibility is not None else ()
    reclaimed = tuple(claims_of(before).values()) if _may_have_claimed(before, event) else ()
    return Step(state=before, records=republished, claims=reclaimed, changed=False)


def _may_have_claimed(account: AccountState, event: AccountEvent) -> bool:
    """Whether this event, processed before, could have sent the account's claims: its trial, or
    the usage record it holds. Older usage records and verdicts never did, so they claim nothing
    again (a verdict re-claiming would ping-pong with its signal)."""
    if isinstance(event, TrialBegan):
        return True
    return isinstance(event, UsageRecorded) and event.usage == account.usage


def _eligibility_record(account: AccountState, now: int) -> RefundEligibility:
    current = account.eligibility
    decision = decide(account)
    if current is not None and decision == _decision_of(current):
        return current
    return RefundEligibility(
        account_id=account.account_id,
        version=current.version + 1 if current else 1,
        decided_at=now,
        **dict(decision),
    )


def _decision_of(record: RefundEligibility) -> Decision:
    return Decision(**{name: getattr(record, name) for name in Decision.model_fields})
