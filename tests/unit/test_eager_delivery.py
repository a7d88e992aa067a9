"""The eager delivery keeps Faust's race semantics: only the task-per-record cost goes.

That Faust's real fetch loop reaches the override is tested against the broker
(tests/integration/test_eager_delivery.py); its call site, `Consumer._drain_messages`, is pinned
by digest in tests/unit/test_rebalance.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import faust
import pytest
from mode import Service

from streams import eager_delivery
from streams.app import create_app
from streams.eager_delivery import EagerDeliveryConsumer, resume
from streams.settings import Settings
from tests.support.upstream import Pins, assert_unchanged

# The race the override takes over, and whose privates (`_stopped`, `_crashed`) it reads. A new
# mode that changes it fails here: check the override still keeps its semantics, then update.
UPSTREAM: Pins = {"Service.wait_first": (Service.wait_first, "feade6a31f8a")}


def test_the_upstream_race_the_override_stands_in_for_is_unchanged() -> None:
    assert_unchanged(UPSTREAM, "Service.wait_first", "streams/eager_delivery.py")


def test_the_workers_app_consumes_with_eager_delivery(tmp_path: Path) -> None:
    detector = create_app(Settings(state_dir=tmp_path), "127.0.0.1:1")  # built, never started
    assert isinstance(detector.app.consumer, EagerDeliveryConsumer)


def consumer() -> EagerDeliveryConsumer:
    app = faust.App("eager-delivery-test", broker="kafka://127.0.0.1:1", autodiscover=False)
    eager_delivery.install(app)
    made = app.consumer  # built, never started: no broker needed
    assert isinstance(made, EagerDeliveryConsumer)
    return made


class Flow:
    """Stands in for the consumer's suspend_flow event and the conductor's blocking points."""

    def __init__(self) -> None:
        self.suspended = asyncio.Event()
        self.unblocked = asyncio.Event()
        self.log: list[str] = []

    async def suspension(self) -> None:
        self.log.append("race started")
        await self.suspended.wait()

    async def deliver_at_once(self) -> str:
        self.log.append("delivered")
        return "queued"

    async def deliver_when_unblocked(self) -> str:
        self.log.append("delivery waits")
        try:
            await self.unblocked.wait()
        except asyncio.CancelledError:
            self.log.append("delivery cancelled")
            raise
        self.log.append("delivered")
        return "queued"


def test_a_delivery_that_does_not_wait_finishes_without_starting_the_race() -> None:
    async def scenario() -> None:
        flow = Flow()
        delivery = flow.deliver_at_once()
        results = await consumer().wait_first(delivery, flow.suspension())
        assert results.done == [delivery] and results.results == ["queued"] and not results.stopped
        assert flow.log == ["delivered"]

    asyncio.run(scenario())


def test_a_waiting_delivery_finishes_in_the_race_when_it_is_unblocked() -> None:
    async def scenario() -> None:
        flow = Flow()
        race = asyncio.ensure_future(consumer().wait_first(flow.deliver_when_unblocked(), flow.suspension()))
        for _ in range(3):
            await asyncio.sleep(0)
        assert not race.done() and flow.log == ["delivery waits", "race started"]
        flow.unblocked.set()
        results = await race
        assert results.results == ["queued"] and not results.stopped
        assert flow.log[-1] == "delivered"

    asyncio.run(scenario())


def test_a_waiting_delivery_is_cancelled_when_the_flow_is_suspended_first() -> None:
    async def scenario() -> None:
        flow = Flow()
        race = asyncio.ensure_future(consumer().wait_first(flow.deliver_when_unblocked(), flow.suspension()))
        await asyncio.sleep(0)
        flow.suspended.set()
        results = await race
        await asyncio.sleep(0)
        assert results.results == [None]  # the suspension won, as in Faust's own race
        assert "delivered" not in flow.log and flow.log[-1] == "delivery cancelled"

    asyncio.run(scenario())


def test_an_error_in_the_first_step_reaches_the_fetch_loop() -> None:
    async def broken() -> None:
        raise RuntimeError("conductor failed")

    async def scenario() -> None:
        with pytest.raises(RuntimeError, match="conductor failed"):
            await consumer().wait_first(broken(), Flow().suspension())

    asyncio.run(scenario())


def test_a_stopped_consumer_takes_faust_own_race() -> None:
    async def scenario() -> None:
        flow = Flow()
        stopped = consumer()
        stopped._stopped.set()
        results = await stopped.wait_first(flow.deliver_at_once(), flow.suspension())
        assert results.stopped and results.done == []

    asyncio.run(scenario())


def test_resume_drives_the_rest_of_a_coroutine_as_a_task_would() -> None:
    async def scenario() -> None:
        ready = asyncio.Event()

        async def two_waits() -> int:
            await ready.wait()
            await asyncio.sleep(0)
            return 42

        coro = two_waits()
        waiting_on = coro.send(None)
        rest = asyncio.ensure_future(resume(coro, waiting_on))
        await asyncio.sleep(0)
        assert not rest.done()
        ready.set()
        assert await rest == 42

    asyncio.run(scenario())


def test_resume_throws_a_cancellation_into_the_coroutine_which_may_go_on() -> None:
    async def scenario() -> None:
        async def shrugs_off_cancellation() -> str:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                pass
            await asyncio.sleep(0)
            return "went on"

        coro = shrugs_off_cancellation()
        rest = asyncio.ensure_future(resume(coro, coro.send(None)))
        await asyncio.sleep(0)
        rest.cancel()
        assert await rest == "went on"

    asyncio.run(scenario())
