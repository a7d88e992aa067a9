"""Faust's consumer, handing a fetched record to its conductor without four tasks per record.

Faust's fetch loop (`Consumer._drain_messages`) delivers each record with
`wait_first(deliver(record), suspend_flow.wait())`, so that a rebalance can interrupt a delivery
that blocks. `Service.wait_first` wraps each of those, plus the service's `stopped` and
`crashed` events, in a task, waits for the first, and cancels the other three: four tasks and
several event-loop turns for every record (without them, a steady hit cost the worker 68 µs of
CPU instead of 111 µs in a `usage-detector bench` scale run).

Delivery almost never blocks: it blocks only while flow control holds the streams (a
rebalance), the producer's buffer is full, or the channel's queue is. So this consumer takes the
delivery's first step right away. When that step finishes the delivery, nothing was there to
race and the record is in the agent's queue, as the race would have left it. When the delivery
would wait, the rest of it runs in Faust's own race, unchanged. Records still reach the
conductor one at a time and in order; agents ack them in order; commits, tables and changelogs
are Faust's. It builds on the consumer whose rebalance hand-over is repaired (streams.rebalance).

It relies on Faust's fetch loop calling `self.wait_first` for each record: a test runs that
loop against the broker and fails when a delivery becomes a task again
(tests/integration/test_eager_delivery.py), and `Service.wait_first`, whose privates this
reads, is pinned by digest (tests/unit/test_eager_delivery.py).
"""

from __future__ import annotations

import types
from collections.abc import Coroutine, Generator
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_kafka
from mode.services import WaitArgT, WaitResults
from mode.utils.times import Seconds

from streams.rebalance import CommittedPositionConsumer


async def resume(coro: Coroutine[Any, Any, Any], waiting_on: Any) -> Any:
    """The rest of `coro`, whose last step yielded `waiting_on`, as a Task would drive it."""
    return await _rest(coro, waiting_on)


@types.coroutine
def _rest(coro: Coroutine[Any, Any, Any], waiting_on: Any) -> Generator[Any, Any, Any]:
    # The task waits for `waiting_on` (yielded up unchanged), then `coro` goes on from where it
    # stopped; an exception thrown in meanwhile (a cancellation) is thrown into `coro`.
    try:
        yield waiting_on
    except BaseException as exc:  # noqa: BLE001 -- thrown into `coro`, which decides, as under a Task
        try:
            waiting_on = coro.throw(exc)
        except StopIteration as stop:
            return stop.value
        return (yield from _rest(coro, waiting_on))
    return (yield from coro)


class EagerDeliveryConsumer(CommittedPositionConsumer):
    # Faust's consumer calls `wait_first` only from its fetch loop; should it ever race another
    # coroutine this way, taking that coroutine's first step at once changes nothing either.
    async def wait_first(self, *coros: WaitArgT, timeout: Seconds | None = None) -> WaitResults:
        first, *others = coros
        if not isinstance(first, types.CoroutineType) or self._stopped.is_set() or self._crashed.is_set():
            return await super().wait_first(*coros, timeout=timeout)  # type: ignore[arg-type]  # mode takes None: its default
        try:
            waiting_on = first.send(None)
        except BaseException as ended:  # finished or failed in one step: nothing left to race
            for other in others:
                if isinstance(other, types.CoroutineType):
                    other.close()  # never started, so nothing to cancel
            if isinstance(ended, StopIteration):
                return WaitResults([first], [ended.value], False)
            raise
        return await super().wait_first(resume(first, waiting_on), *others, timeout=timeout)  # type: ignore[arg-type]  # as above


class EagerDeliveryTransport(faust_kafka.Transport):
    Consumer = EagerDeliveryConsumer


def install(app: faust.App) -> None:
    """Make the app's consumer an EagerDeliveryConsumer; before the worker starts."""
    app.transport = EagerDeliveryTransport(app.conf.broker_consumer, app)
