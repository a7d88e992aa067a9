"""The worker's start and stop without Faust's and mode's fixed sleeps (streams/prompt_start.py, streams/worker.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from faust.tables.manager import TableManager
from mode.worker import Worker as ModeWorker

from streams.app import create_app
from streams.prompt_start import PromptTableManager
from streams.settings import Settings
from streams.worker import Worker
from tests.support.upstream import Pins, assert_unchanged

# What the overrides were written against: a release that changes one fails here.
UPSTREAM: Pins = {
    # sleeps 1 s, then registers the changelogs and starts recovery: PromptTableManager.on_start does the last two
    "TableManager.on_start": (TableManager.on_start, "365dd25fbc0e"),
    # runs `_sentinel_task` to its end before it closes the loop
    "mode.Worker._shutdown_loop": (ModeWorker._shutdown_loop, "6ad3b1129015"),
    "mode.Worker._sentinel_task": (ModeWorker._sentinel_task, "6e66058cf3e1"),
}


@pytest.mark.parametrize("name", sorted(UPSTREAM))
def test_the_upstream_code_the_overrides_replace_is_unchanged(name: str) -> None:
    assert_unchanged(UPSTREAM, name, "streams/prompt_start.py and streams/worker.py")


def test_the_app_registers_its_tables_without_sleeping(tmp_path: Path) -> None:
    detector = create_app(Settings(state_dir=tmp_path), "127.0.0.1:1")  # built, never started
    tables = detector.app.tables
    assert isinstance(tables, PromptTableManager) and set(tables) == {"accounts", "signals"}
    done: list[str] = []

    async def refuse_to_sleep(*args: Any) -> None:
        raise AssertionError("the table manager slept at start")

    async def registered() -> None:
        done.append("registered")

    async def recovery_started() -> None:
        done.append("recovery started")

    tables.sleep = refuse_to_sleep  # type: ignore[method-assign]
    tables._update_channels = registered  # type: ignore[method-assign]
    tables.recovery.start = recovery_started  # type: ignore[method-assign]
    asyncio.run(tables.on_start())
    assert done == ["registered", "recovery started"]


def test_the_worker_closes_its_loop_after_a_few_turns_not_a_second() -> None:
    async def sentinel_sleeps() -> list[float]:
        slept: list[float] = []
        real_sleep = asyncio.sleep

        async def recording_sleep(seconds: float) -> None:
            slept.append(seconds)
            await real_sleep(0)

        asyncio.sleep = recording_sleep  # type: ignore[assignment]
        try:
            await Worker._sentinel_task(None)  # type: ignore[arg-type]
        finally:
            asyncio.sleep = real_sleep
        return slept

    assert asyncio.run(sentinel_sleeps()) == [0.05]
