"""Which buffered account event process-accounts takes next, and which events it may then ack.

Kafka orders a partition; an account needs only its own events in order. A storm (a thousand
trials on one placeholder device, then their verdicts) fills every partition of
`<app>-account-events` at once, and a usage start of an unrelated account written after it would
wait for all of it: seconds, while the refund service must see a usage start at once. So the
events buffered are taken per account, in each account's order, a usage observation first:

- `AccountQueue` holds them. `take` returns the next event of the account whose next event came
  first, except that an account whose next event is a usage observation goes ahead of the others,
  up to `URGENT_STREAK` in a row, so that a flood of usage never starves billing events.
- Each account's events are processed in the order they came, so its state, records and versions
  are those of processing the partition in order: reprocessing after a crash rebuilds the very
  same records (what "never conflicting" rests on, README "Delivery"), whatever else is buffered.
- `InOrderAcks` releases an event for acknowledgement only when every earlier event of its
  partition has been processed: Faust commits a partition up to its first unacknowledged offset
  only when acks come in order (`Consumer._new_offset`: committed 31, acked 32 and 33, it commits
  34, past the unacknowledged 31; with nothing committed yet it commits past any gap), and a
  commit past an unprocessed event would lose it in a crash.

Pure: no Faust, no I/O (streams.stages.accounts is the shell).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

E = TypeVar("E")

URGENT_STREAK = 16
"""Usage observations taken in a row while another account's older event waits."""


@dataclass
class _Pending(Generic[E]):
    event: E
    done: bool = False


class AccountQueue(Generic[E]):
    """Buffered events by account, in arrival order per account; usage observations first."""

    def __init__(self) -> None:
        self._accounts: dict[Hashable, deque[tuple[int, E, bool]]] = {}  # (arrival, event, urgent)
        self._urgent: list[tuple[int, Hashable]] = []  # accounts whose next event is urgent, by its arrival
        self._other: list[tuple[int, Hashable]] = []  # the other accounts, by their next event's arrival
        self._arrivals = 0
        self._size = 0
        self._streak = 0

    def __len__(self) -> int:
        return self._size

    def put(self, account: Hashable, event: E, urgent: bool) -> None:
        arrival, self._arrivals = self._arrivals, self._arrivals + 1
        queued = self._accounts.get(account)
        if queued is None:
            queued = self._accounts[account] = deque()
            heapq.heappush(self._urgent if urgent else self._other, (arrival, account))
        queued.append((arrival, event, urgent))
        self._size += 1

    def take(self) -> E:
        """The next event to process (the queue must not be empty)."""
        urgent, other = self._urgent, self._other
        if urgent and (not other or self._streak < URGENT_STREAK or urgent[0] < other[0]):
            self._streak = self._streak + 1 if other and other[0] < urgent[0] else 0
            _, account = heapq.heappop(urgent)
        else:
            self._streak = 0
            _, account = heapq.heappop(other)
        queued = self._accounts[account]
        _, event, _ = queued.popleft()
        self._size -= 1
        if queued:
            arrival, _, next_urgent = queued[0]
            heapq.heappush(urgent if next_urgent else other, (arrival, account))
        else:
            del self._accounts[account]
        return event


class InOrderAcks(Generic[E]):
    """Events of each partition in offset order; an event is released for acknowledgement once it
    and every earlier event of its partition are done."""

    def __init__(self) -> None:
        self._partitions: dict[Hashable, deque[_Pending[E]]] = {}
        self._entries: dict[int, tuple[Hashable, _Pending[E]]] = {}  # by id(event): events held here are alive

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, partition: Hashable, event: E) -> None:
        entry = _Pending(event)
        self._partitions.setdefault(partition, deque()).append(entry)
        self._entries[id(event)] = (partition, entry)

    def done(self, event: E) -> list[E]:
        """Mark `event` done; the events now released, in offset order."""
        partition, entry = self._entries[id(event)]
        entry.done = True
        waiting = self._partitions[partition]
        released: list[E] = []
        while waiting and waiting[0].done:
            head = waiting.popleft()
            released.append(head.event)
            del self._entries[id(head.event)]
        if not waiting:
            del self._partitions[partition]
        return released
