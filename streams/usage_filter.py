"""The hot path's short cut: drop a hit that cannot move an account's usage start earlier.

Each worker remembers, per account, the earliest evidence it has already forwarded. A later
hit is dominated by it (usage start is a minimum), so it needs no send and no table write.
Forgetting is always safe: the next hit is simply forwarded again. A forwarded record whose
send was lost is reprocessed, since its source offset is committed only after the send.

The filter is saved in the worker's state folder now and then and when the worker stops, and
loaded when it starts: a restarted worker drops the hits of the accounts it knew at once,
instead of forwarding each account's next hit again (a million accounts: a million events).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import orjson

log = logging.getLogger(__name__)
RESTORED = 1


class EarliestForwarded:
    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        # (received_at, source, id), or (received_at, source, id, RESTORED): see `restore`.
        self._earliest: dict[str, tuple[int, str, str] | tuple[int, str, str, int]] = {}

    def admit(self, account_id: str, order: tuple[int, str, str]) -> bool:
        """Whether evidence of this `order` (received_at, source, id) must be forwarded."""
        known = self._earliest.get(account_id)
        if known is not None and known <= order:
            return False
        if known is None and len(self._earliest) >= self._capacity:
            if self._capacity == 0:
                return True
            # Forget the oldest half: insertion order approximates least recently started.
            for stale in list(self._earliest)[: max(1, self._capacity // 2)]:
                del self._earliest[stale]
        self._earliest[account_id] = order
        return True

    def dominates(self, account_id: str, order: tuple[int, str, str]) -> bool:
        """Whether evidence of this `order` would not be admitted (read-only; nothing is learnt).

        Only an account admitted before can dominate, so its account_id was in form then.
        """
        known = self._earliest.get(account_id)
        return known is not None and known <= order

    def __len__(self) -> int:
        return len(self._earliest)

    def snapshot(self) -> dict[str, tuple[int, str, str] | tuple[int, str, str, int]]:
        """A copy, cheap enough to take on the event loop; `save` it from another thread."""
        return dict(self._earliest)

    def restore(self, entries: list[tuple[str, int, str, str]]) -> None:
        """Learn what an earlier run of this worker had forwarded (`saved`, then `load`).

        That run may have stopped before its last sends were flushed; their records are then
        read again (their offsets were not committed), and must be forwarded again, not found
        "already forwarded". So a restored entry dominates only strictly later evidence: a fourth
        element sorts it right after the very same record (a tuple sorts after its prefix).
        """
        for account_id, received_at, source, evidence_id in entries[-self._capacity :] if self._capacity else []:
            order = (received_at, source, evidence_id, RESTORED)
            known = self._earliest.get(account_id)
            if known is None or order < known:
                self._earliest[account_id] = order


def save(path: Path, snapshot: dict[str, tuple[int, str, str] | tuple[int, str, str, int]]) -> None:
    """Write atomically: a worker killed while saving leaves the previous file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_bytes(orjson.dumps([(account_id, *order[:3]) for account_id, order in snapshot.items()]))
    os.replace(partial, path)


def load(path: Path) -> list[tuple[str, int, str, str]]:
    """The saved entries; none when there is no file or it cannot be read (forgetting is safe)."""
    try:
        entries = [(a, int(r), s, i) for a, r, s, i in orjson.loads(path.read_bytes())]
        if not all(type(a) is str and type(s) is str and type(i) is str for a, _, s, i in entries):
            raise ValueError("an entry is not [account_id, received_at, source, id]")
        return entries
    except FileNotFoundError:
        return []
    except (OSError, orjson.JSONDecodeError, TypeError, ValueError) as exc:
        log.warning("ignoring the saved usage filter %s (%s); it fills again from the hits", path, exc)
        return []
