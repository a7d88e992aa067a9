"""process-accounts' own order: each account's events in order, usage observations first, acks in
each partition's offset order (streams.stages.account_order)."""

from __future__ import annotations

from collections import defaultdict

from hypothesis import given
from hypothesis import strategies as st

from streams.stages.account_order import URGENT_STREAK, AccountQueue, InOrderAcks

# An action: put an event of (account, urgent), or take one.
actions = st.lists(st.one_of(st.tuples(st.integers(0, 5), st.booleans()), st.just("take")), max_size=200)


def drain(queue: AccountQueue[str]) -> list[str]:
    return [queue.take() for _ in range(len(queue))]


@given(actions)
def test_each_account_gets_its_events_in_order_and_every_event_exactly_once(steps: list[tuple[int, bool] | str]) -> None:
    queue: AccountQueue[tuple[int, int]] = AccountQueue()
    put: dict[int, list[tuple[int, int]]] = defaultdict(list)
    taken: list[tuple[int, int]] = []
    for n, action in enumerate(steps):
        if action == "take":
            if queue:
                taken.append(queue.take())
        else:
            account, urgent = action
            queue.put(account, (account, n), urgent)
            put[account].append((account, n))
    taken += [queue.take() for _ in range(len(queue))]
    assert sorted(taken) == sorted(e for events in put.values() for e in events)
    for account, events in put.items():
        assert [e for e in taken if e[0] == account] == events


def test_a_usage_observation_goes_ahead_of_other_accounts_backlog() -> None:
    queue: AccountQueue[str] = AccountQueue()
    for n in range(100):
        queue.put(f"storm-{n}", f"trial-{n}", urgent=False)
    queue.put("unrelated", "usage", urgent=True)
    assert queue.take() == "usage"
    assert drain(queue) == [f"trial-{n}" for n in range(100)], "the rest in arrival order"


def test_a_usage_observation_waits_for_its_own_accounts_earlier_events() -> None:
    queue: AccountQueue[str] = AccountQueue()
    queue.put("a", "a-trial", urgent=False)
    queue.put("b", "b-charge", urgent=False)
    queue.put("a", "a-usage", urgent=True)
    queue.put("c", "c-usage", urgent=True)
    assert drain(queue) == ["c-usage", "a-trial", "a-usage", "b-charge"]


def test_a_flood_of_usage_lets_an_older_event_through_after_a_streak() -> None:
    queue: AccountQueue[str] = AccountQueue()
    queue.put("billing", "charge", urgent=False)
    for n in range(3 * URGENT_STREAK):
        queue.put(f"user-{n}", f"usage-{n}", urgent=True)
    order = drain(queue)
    assert order.index("charge") == URGENT_STREAK


def test_events_are_released_for_acks_in_each_partitions_offset_order() -> None:
    acks: InOrderAcks[str] = InOrderAcks()
    for event in ("p0-0", "p0-1", "p0-2"):
        acks.add(0, event)
    acks.add(1, "p1-0")
    assert acks.done("p0-2") == []
    assert acks.done("p1-0") == ["p1-0"], "partitions are independent"
    assert acks.done("p0-1") == [], "offset 0 is not processed yet"
    assert acks.done("p0-0") == ["p0-0", "p0-1", "p0-2"]
    assert len(acks) == 0


@given(st.permutations(list(range(30))))
def test_acks_never_pass_an_unprocessed_event(order: list[int]) -> None:
    acks: InOrderAcks[int] = InOrderAcks()
    for offset in range(30):
        acks.add("p", offset)
    processed: set[int] = set()
    released: list[int] = []
    for offset in order:
        processed.add(offset)
        released += acks.done(offset)
        assert released == list(range(len(released))), "a prefix of the offsets"
        assert set(released) <= processed
    assert released == list(range(30))
