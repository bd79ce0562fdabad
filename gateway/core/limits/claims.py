"""What a call asks of a limit, and the one rule that admits it (the Lua script repeats it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Slack for float sums: a claim that fits to within a trillionth of a dollar (or token) fits.
EPSILON = 1e-12


@dataclass(frozen=True, slots=True)
class Claim:
    """A call's claim on one counter: `amount` more against `limit`, on top of `base`, which is
    counted elsewhere (for a budget, the spend already recorded). Held until released, or for
    `ttl` seconds at most, so that a worker that dies cannot hold it for ever."""

    counter: str
    amount: float
    limit: float
    base: float = 0.0
    ttl: float = 600.0


def admits(claim: Claim, held: float) -> bool:
    """Admitted when everything fits (`base + held + amount <= limit`), or when nothing else is
    held and `base` is still below `limit`: a lone call always goes through while there is
    headroom, as it did before reservations, so that a pessimistic estimate never locks a budget."""
    if claim.base + held + claim.amount <= claim.limit + EPSILON:
        return True
    return held <= EPSILON and claim.base < claim.limit


@dataclass(slots=True)
class Hold:
    """What `Limits.acquire` took: give it back with `Limits.release` when the call ends."""

    id: str
    counters: tuple[str, ...]
    shared: bool  # held in Redis (else in this process)
    owner: Any = None  # the Limits that holds it


class LimitReached(Exception):
    """A claim did not fit: `held` is what other calls hold on its counter right now."""

    def __init__(self, claim: Claim, held: float) -> None:
        super().__init__(f"{claim.counter}: {claim.base} + {held} held + {claim.amount} > {claim.limit}")
        self.claim = claim
        self.held = held
