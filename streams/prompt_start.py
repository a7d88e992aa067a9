"""Faust's table manager without its fixed second of sleep at start.

`TableManager.on_start` sleeps 1 s before it registers the tables' changelogs, so that tables
declared as the app starts are still taken in; the group waits that long to be joined, at every
worker start. The detector declares every table when it builds its topology, before the worker
starts (`build_topology`), and Faust refuses a table added after registration anyway.
"""

from __future__ import annotations

from faust.tables.manager import TableManager


class PromptTableManager(TableManager):
    async def on_start(self) -> None:
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()

