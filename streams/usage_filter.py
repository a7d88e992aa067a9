"""The hot path's short cut: drop a hit that cannot move an account's usage start earlier.

Each worker remembers, per account, the earliest evidence it has already forwarded. A later
hit is dominated by it (usage start is a minimum), so it needs no send and no table write.
Forgetting is always safe: the next hit is simply forwarded again. A forwarded record whose
send was lost is reprocessed, since its source offset is committed only after the send.
"""

from __future__ import annotations


class EarliestForwarded:
    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._earliest: dict[str, tuple[int, str, str]] = {}

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
