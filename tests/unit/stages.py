"""Both stages of a worker for one account's event, as the policy tests feed them.

Evidence of usage goes through the usage stage's core (`policy.usage.observe`) and, when that sends
it on, its record on to the account's (`policy.apply`), as `process-usage` does; any other event
goes straight to `apply`. The usage record the usage stage holds is the one the account holds (both are the
latest the stage sent), so one `AccountState` carries both.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.abuse import SignalClaim
from models.internal import AccountEvent, UsageObserved, UsageRecorded
from models.outputs import RefundEligibility, UsageState
from models.state import AccountState
from policy import apply
from policy.account import DEFAULT_DUPLICATE_WINDOW, DuplicateWindow
from policy.usage import observe

Record = UsageState | RefundEligibility


@dataclass(frozen=True)
class Steps:
    state: AccountState
    records: tuple[Record, ...]  # the usage record (evidence only), then what `apply` published
    claims: tuple[SignalClaim, ...]
    changed: bool  # whether the account's state changed


def recorded_usage(state: AccountState | None) -> UsageRecorded | None:
    if state is None or state.usage is None:
        return None
    return UsageRecorded(account_id=state.account_id, usage=state.usage, page_signal=state.page_signal)


def detector_step(
    state: AccountState | None,
    event: AccountEvent | UsageObserved,
    now: int,
    window: DuplicateWindow = DEFAULT_DUPLICATE_WINDOW,
) -> Steps:
    if not isinstance(event, UsageObserved):
        step = apply(state, event, now=now, window=window)
        return Steps(step.state, step.records, step.claims, step.changed)
    usage = observe(recorded_usage(state), event, now=now)
    if not usage.send_on:
        return Steps(state or AccountState(account_id=event.account_id), (usage.recorded.usage,), (), False)
    step = apply(state, usage.recorded, now=now, window=window)
    return Steps(step.state, (usage.recorded.usage, *step.records), step.claims, step.changed)
