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
from models.internal import AccountEvent, UsageObserved, UsageRecorded
from models.state import AccountState
from policy.abuse import judge
from policy.account import DEFAULT_DUPLICATE_WINDOW, DuplicateWindow, apply
from policy.usage import observe

Message = AccountEvent | UsageObserved | SignalClaim


@dataclass
class Outcome:
    accounts: dict[str, AccountState] = field(default_factory=dict)
    signals: dict[str, SignalState] = field(default_factory=dict)
    usage: dict[str, UsageRecorded] = field(default_factory=dict)


class _Queues:
    """Messages queued per destination (kind, key), and the next queue to serve: one the `rng`
    picks, else the oldest. Each pick is O(1): with a million keys, a pick that listed them all
    made a chaos run's oracle take hours."""

    def __init__(self, rng: random.Random | None) -> None:
        self.rng = rng
        self.queues: dict[tuple[str, str], deque[Message]] = {}
        self.order: list[tuple[str, str]] = []  # the rng picks an index; else served from the front
        self.index: dict[tuple[str, str], int] = {}
        self.served = 0  # without an rng: how many of `order` were emptied

    def put(self, kind: str, key: str, message: Message) -> None:
        destination = (kind, key)
        if destination not in self.queues:
            self.queues[destination] = deque()
            self.index[destination] = len(self.order)
            self.order.append(destination)
        self.queues[destination].append(message)

    def take(self) -> tuple[tuple[str, str], Message] | None:
        if not self.queues:
            return None
        if self.rng is None:
            destination = self.order[self.served]
        else:
            destination = self.order[self.rng.randrange(len(self.order))]
        queue = self.queues[destination]
        message = queue.popleft()
        if not queue:
            del self.queues[destination]
            if self.rng is None:
                self.served += 1
            else:  # the last destination takes the emptied one's place
                last, index = self.order.pop(), self.index.pop(destination)
                if last != destination:
                    self.order[index], self.index[last] = last, index
        return destination, message


def run(
    events: Iterable[AccountEvent | UsageObserved],
    rng: random.Random | None = None,
    now: int = 0,
    window: DuplicateWindow = DEFAULT_DUPLICATE_WINDOW,
) -> Outcome:
    outcome = Outcome()
    queues = _Queues(rng)
    for event in events:
        queues.put("usage" if isinstance(event, UsageObserved) else "account", event.account_id, event)
    while (taken := queues.take()) is not None:
        (_, key), message = taken
        if isinstance(message, UsageObserved):
            usage = observe(outcome.usage.get(key), message, now)
            outcome.usage[key] = usage.recorded
            if usage.send_on:
                queues.put("account", key, usage.recorded)
        elif isinstance(message, SignalClaim):
            judgement = judge(outcome.signals.get(key), message)
            outcome.signals[key] = judgement.state
            for verdict in judgement.verdicts:
                queues.put("account", verdict.account_id, verdict)
        else:
            step = apply(outcome.accounts.get(key), message, now, window)
            outcome.accounts[key] = step.state
            for claim in step.claims:
                queues.put("signal", claim.signal.digest, claim)
    return outcome
