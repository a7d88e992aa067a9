"""The whole topology run in memory over the pure core: what the detector must end up with.

Messages are queued per destination key, as Kafka keeps order per partition, and the queues are
served in the order an `rng` picks (or first come, first served). Property tests use it to check
that the result does not depend on arrival order; the chaos harness uses it as the oracle.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from models.abuse import SignalClaim, SignalState
from models.internal import AccountEvent
from models.state import AccountState
from policy.abuse import judge
from policy.account import DEFAULT_DUPLICATE_WINDOW, DuplicateWindow, apply


@dataclass
class Outcome:
    accounts: dict[str, AccountState] = field(default_factory=dict)
    signals: dict[str, SignalState] = field(default_factory=dict)


def run(
    events: Iterable[AccountEvent],
    rng: random.Random | None = None,
    now: int = 0,
    window: DuplicateWindow = DEFAULT_DUPLICATE_WINDOW,
) -> Outcome:
    outcome = Outcome()
    queues: dict[tuple[str, str], deque[AccountEvent | SignalClaim]] = {}

    def enqueue(kind: str, key: str, message: AccountEvent | SignalClaim) -> None:
        queues.setdefault((kind, key), deque()).append(message)

    for event in events:
        enqueue("account", event.account_id, event)
    while queues:
        kind, key = rng.choice(list(queues)) if rng else next(iter(queues))
        queue = queues[(kind, key)]
        message = queue.popleft()
        if not queue:
            del queues[(kind, key)]
        if isinstance(message, SignalClaim):
            judgement = judge(outcome.signals.get(key), message)
            outcome.signals[key] = judgement.state
            for verdict in judgement.verdicts:
                enqueue("account", verdict.account_id, verdict)
        else:
            step = apply(outcome.accounts.get(key), message, now, window)
            outcome.accounts[key] = step.state
            for claim in step.claims:
                enqueue("signal", claim.signal.digest, claim)
    return outcome
