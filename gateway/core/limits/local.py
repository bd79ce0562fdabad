"""Counters in this process: without Redis, and while Redis is unreachable."""

from __future__ import annotations

import time
from typing import Sequence

from gateway.core.limits.claims import Claim, LimitReached, admits

#: Past this many window counters, those whose window ended are dropped (at most once a second).
MAX_WINDOWS = 10_000


class LocalCounters:
    """Per held counter, the total held and the number of holds; per hold, what it took; per
    window counter, its window's start, count and length.

    A hold that is never released (a bug elsewhere) expires after the longest `ttl` of its claims.
    Holds are looked at in the order they were taken, which costs nothing per call; with mixed
    ttls a leaked hold may outlive its own ttl until the ones taken before it are gone."""

    def __init__(self) -> None:
        self._totals: dict[str, list[float]] = {}  # counter -> [amount held, number of holds]
        self._holds: dict[str, tuple[float, dict[str, float]]] = {}  # hold id -> (deadline, {counter: amount})
        self._windows: dict[str, list[float]] = {}  # counter -> [start (monotonic), count, length]
        self.expired = 0  # holds dropped by their ttl, never released
        self._pruned_at = -1.0

    def held(self, counter: str) -> float:
        total = self._totals.get(counter)
        return total[0] if total is not None else 0.0

    def window(self, counter: str, length: float, now: float) -> tuple[float, float]:
        """(count, seconds until the window ends) of a window counter; a new window if it ended."""
        found = self._windows.get(counter)
        if found is None or now - found[0] >= found[2]:
            return 0.0, length
        return found[1], found[0] + found[2] - now

    def acquire(self, hold_id: str, claims: Sequence[Claim]) -> tuple[list[float], list[float]]:
        """Take every claim, or none (raises LimitReached for the first that does not fit).
        Returns each claim's level once taken and the seconds until its window ends."""
        now = time.monotonic()
        self._expire(now)
        levels, resets = [], []
        for claim in claims:
            if claim.window > 0:
                count, reset = self.window(claim.counter, claim.window, now)
            else:
                count, reset = self.held(claim.counter), 0.0
            if not admits(claim, count):
                raise LimitReached(claim, count, reset)
            levels.append(count + claim.amount)
            resets.append(reset)
        taken: dict[str, float] = {}
        for claim in claims:
            if claim.window > 0:
                self.add(claim.counter, claim.amount, claim.window, now)
                continue
            total = self._totals.setdefault(claim.counter, [0.0, 0])
            total[0] += claim.amount
            total[1] += 1
            taken[claim.counter] = claim.amount
        if taken:
            self._holds[hold_id] = (now + max(c.ttl for c in claims if c.window <= 0), taken)
        return levels, resets

    def add(self, counter: str, amount: float, length: float, now: float | None = None) -> None:
        """Count `amount` in the counter's current window (starting one if it ended)."""
        if amount <= 0:
            return
        now = time.monotonic() if now is None else now
        found = self._windows.get(counter)
        if found is None or now - found[0] >= found[2]:
            if found is None and len(self._windows) >= MAX_WINDOWS and now - self._pruned_at >= 1.0:
                self._pruned_at = now
                self._windows = {k: w for k, w in self._windows.items() if now - w[0] < w[2]}
            self._windows[counter] = [now, amount, length]
        else:
            found[1] += amount

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
