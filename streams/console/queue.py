"""The decisions the billing team acts on: every account whose latest decision is `eligible` (a
refund to process) or `discretionary` (to review), read from the eligibility topic by the
project's reader (`reader.EligibilityReader`), as the refund service reads it.

Every worker reads the whole topic, so any worker answers the queue on its own; it starts reading
when the queue is first asked for, so a worker whose console nobody opens reads nothing.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

from kafka.errors import KafkaError
from mode import Service

from models.outputs import EligibilityState, RefundEligibility
from reader import EligibilityReader

log = logging.getLogger(__name__)
QUEUED: tuple[EligibilityState, ...] = ("eligible", "discretionary")
RETRY_S = 5.0


class DecisionQueue:
    """The latest decision of each queued account; `revision` grows with every change of the queue."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queued: dict[str, RefundEligibility] = {}
        self.revision = 0
        self.caught_up = False  # everything on the topic when the reader started has been read

    def accept(self, record: RefundEligibility) -> None:
        """An account's newer decision (the reader passes only those): in the queue or out of it."""
        with self._lock:
            was = self._queued.pop(record.account_id, None)
            if record.state in QUEUED:
                self._queued[record.account_id] = record
            if was is not None or record.state in QUEUED:
                self.revision += 1

    def entries(self, states: tuple[EligibilityState, ...] = QUEUED, text: str = "") -> list[RefundEligibility]:
        """Newest decision first; only `states`, and accounts whose id contains `text` (any case)."""
        needle = text.strip().lower()
        with self._lock:
            chosen = [r for r in self._queued.values() if r.state in states and needle in r.account_id.lower()]
        return sorted(chosen, key=lambda r: (r.decided_at, r.account_id), reverse=True)


class QueueFeed(Service):
    """Runs the reader that fills `queue`, from the first time the queue is wanted to the worker's stop."""

    def __init__(self, queue: DecisionQueue, new_reader: Callable[[Callable[[RefundEligibility], None]], EligibilityReader], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._queue = queue
        self._new_reader = new_reader
        self._reader: EligibilityReader | None = None
        self._wanted = asyncio.Event()

    def want(self) -> None:
        """The queue is asked for: start reading, if not yet."""
        self._wanted.set()

    @Service.task
    async def _read(self) -> None:
        await self._wanted.wait()
        loop = asyncio.get_running_loop()
        # The reader's client connects and lists partitions synchronously: off the event loop, and
        # again until the broker answers (it may be away: streams/health.py).
        while not self.should_stop and self._reader is None:
            try:
                self._reader = (await loop.run_in_executor(None, self._new_reader, self._queue.accept)).start()
            except (KafkaError, LookupError, OSError) as error:
                log.warning("console queue: cannot read the eligibility topic yet (%r); trying again in %.0fs", error, RETRY_S)
                await self.sleep(RETRY_S)
        while not self.should_stop and self._reader is not None and not self._queue.caught_up:
            self._queue.caught_up = await loop.run_in_executor(None, self._reader.wait_until_caught_up, 1.0)

    async def on_stop(self) -> None:
        if self._reader is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._reader.close)
