"""The hot path's short cut: drop a hit that cannot move an account's usage start earlier.

Each worker remembers, per account, the earliest `received_at` it has already forwarded. A
strictly later hit is dominated by it (usage start is a minimum), so it needs no send and no
table write.
Forgetting is always safe: the next hit is simply forwarded again. A forwarded record whose
send was lost is reprocessed, since its source offset is committed only after the send.

The filter is saved in the worker's state folder now and then and when the worker stops, and
loaded when it starts: a restarted worker drops the hits of the accounts it knew at once,
instead of forwarding each account's next hit again (a million accounts: a million events).
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import faust
import orjson

log = logging.getLogger(__name__)


class EarliestForwarded:
    """Per account, the earliest `received_at` already forwarded (an int: ~70 bytes an account
    besides its id string).

    Only a strictly later hit is dominated. A tie is forwarded: its source and id may sort it
    first, and process-accounts settles that. The same rule makes a restart safe: the previous run
    may have died before its last sends were flushed; those records are read again (their offsets
    were not committed) and, being no later than what was saved, are forwarded again.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._earliest: dict[str, int] = {}

    def admit(self, account_id: str, received_at: int) -> bool:
        """Whether evidence received at `received_at` (epoch ms) must be forwarded."""
        known = self._earliest.get(account_id)
        if known is not None:
            if known < received_at:
                return False
            self._earliest[account_id] = received_at
            return True
        if len(self._earliest) >= self._capacity:
            if self._capacity == 0:
                return True
            # Forget the oldest half: insertion order approximates least recently started.
            for stale in list(self._earliest)[: max(1, self._capacity // 2)]:
                del self._earliest[stale]
        self._earliest[account_id] = received_at
        return True

    def dominates(self, account_id: str, received_at: int) -> bool:
        """Whether evidence received at `received_at` would not be admitted (nothing is learnt).

        Only an account admitted before can dominate, so its account_id was in form then.
        """
        known = self._earliest.get(account_id)
        return known is not None and known < received_at

    def __len__(self) -> int:
        return len(self._earliest)

    def snapshot(self) -> dict[str, int]:
        """A copy, cheap enough to take on the event loop; `save` it from another thread."""
        return dict(self._earliest)

    def restore(self, entries: dict[str, int]) -> None:
        """Learn what an earlier run of this worker had forwarded (`save`d, then `load`ed)."""
        for account_id, received_at in list(entries.items())[-self._capacity :] if self._capacity else []:
            known = self._earliest.get(account_id)
            if known is None or received_at < known:
                self._earliest[account_id] = received_at


def save(path: Path, snapshot: dict[str, int]) -> None:
    """Write atomically: a worker killed while saving leaves the previous file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_bytes(orjson.dumps(snapshot))
    os.replace(partial, path)


def load(path: Path) -> dict[str, int]:
    """The saved entries; none when there is no file or it cannot be read (forgetting is safe)."""
    try:
        entries = orjson.loads(path.read_bytes())
        if type(entries) is not dict or not all(type(r) is int for r in entries.values()):
            raise ValueError("not an object of account_id: received_at")
        return entries
    except FileNotFoundError:
        return {}
    except (OSError, orjson.JSONDecodeError, ValueError) as exc:
        log.warning("ignoring the saved usage filter %s (%s); it fills again from the hits", path, exc)
        return {}


def keep(app: faust.App, forwarded: EarliestForwarded, path: Path, every_s: float) -> None:
    """Load the filter a previous run saved; save it every `every_s` and when the worker stops."""
    restored = load(path)
    forwarded.restore(restored)
    if restored:
        log.info("usage filter: %d accounts restored from %s", len(forwarded), path)

    @app.timer(every_s, name="save-usage-filter")
    async def save_usage_filter() -> None:
        await asyncio.to_thread(save, path, forwarded.snapshot())

    # mode's SignalHandlerT rejects every handler, even one with exactly its own signature.
    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def save_on_stop(app: faust.App, **kwargs: object) -> None:
        save(path, forwarded.snapshot())
        log.info("usage filter: %d accounts saved to %s", len(forwarded), path)
