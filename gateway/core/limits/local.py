"""Counters in this process: without Redis, and while Redis is unreachable."""

from __future__ import annotations

import time
from typing import Sequence

from gateway.core.limits.claims import Claim, LimitReached, admits


class LocalCounters:
    """Per counter, the total held and the number of holds; per hold, what it took.

    A hold that is never released (a bug elsewhere) expires after the longest `ttl` of its claims.
    Holds are looked at in the order they were taken, which costs nothing per call; with mixed
    ttls a leaked hold may outlive its own ttl until the ones taken before it are gone."""

    def __init__(self) -> None:
        self._totals: dict[str, list[float]] = {}  # counter -> [amount held, number of holds]
        self._holds: dict[str, tuple[float, dict[str, float]]] = {}  # hold id -> (deadline, {counter: amount})
        self.expired = 0  # holds dropped by their ttl, never released

    def held(self, counter: str) -> float:
        total = self._totals.get(counter)
        return total[0] if total is not None else 0.0

    def acquire(self, hold_id: str, claims: Sequence[Claim]) -> None:
        """Take every claim, or none (raises LimitReached for the first that does not fit)."""
        now = time.monotonic()
        self._expire(now)
        for claim in claims:
            held = self.held(claim.counter)
            if not admits(claim, held):
                raise LimitReached(claim, held)
        taken: dict[str, float] = {}
        for claim in claims:
            total = self._totals.setdefault(claim.counter, [0.0, 0])
            total[0] += claim.amount
            total[1] += 1
            taken[claim.counter] = claim.amount
        self._holds[hold_id] = (now + max(c.ttl for c in claims), taken)

    def release(self, hold_id: str) -> None:
        hold = self._holds.pop(hold_id, None)
        if hold is None:
            return
        for counter, amount in hold[1].items():
            total = self._totals[counter]
            total[1] -= 1
            if total[1] <= 0:
                del self._totals[counter]  # which also clears any float drift
            else:
                total[0] -= amount

    def _expire(self, now: float) -> None:
        while self._holds:
            hold_id = next(iter(self._holds))
            if self._holds[hold_id][0] > now:
                return
            self.release(hold_id)
            self.expired += 1
