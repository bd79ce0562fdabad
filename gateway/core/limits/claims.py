"""What a call asks of a limit, and the rules that admit it (the Lua script repeats them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Slack for float sums: a claim that fits to within a trillionth of a dollar (or token) fits.
EPSILON = 1e-12


@dataclass(frozen=True, slots=True)
class Claim:
    """A call's claim on one counter: `amount` more against `limit`.

    A hold (`window` 0): on top of `base`, which is counted elsewhere (for a budget, the spend
    already recorded); held until released, or for `ttl` seconds at most, so that a worker that
    dies cannot hold it for ever. A window claim (`window` > 0, in seconds): added to the count of
    the counter's current window and never released; the window starts with the first amount
    counted after the previous one ended, and lasts `window` seconds (`ttl` and `base` unused)."""

    counter: str
    amount: float
    limit: float
    base: float = 0.0
    ttl: float = 600.0
    window: float = 0.0


def admits(claim: Claim, held: float) -> bool:
    """Admitted when everything fits (`base + held + amount <= limit`), or when nothing else is
    held and `base` is still below `limit`: a lone call always goes through while there is
    headroom, as it did before reservations, so that a pessimistic estimate never locks a budget.
    A window claim fits while its window's count is below the limit and `count + amount` is not
    above it: an rpm claim (amount 1) takes the last request, a tpm claim (amount 0, the tokens
    are added when the call ends) is refused once the window's tokens reached the limit."""
    if claim.window > 0:
        return held < claim.limit - EPSILON and held + claim.amount <= claim.limit + EPSILON
    if claim.base + held + claim.amount <= claim.limit + EPSILON:
        return True
    return held <= EPSILON and claim.base < claim.limit


@dataclass(slots=True)
class Hold:
    """What `Limits.acquire` took: give it back with `Limits.release` when the call ends.

    `counters` are the held ones (window claims are never released). `levels[i]` is claim i's
    count once taken (held amount, or the window's count), `resets[i]` the seconds until claim i's
    window ends (0 for a hold)."""

    id: str
    counters: tuple[str, ...]
    shared: bool  # held in Redis (else in this process)
    owner: Any = None  # the Limits that holds it
    levels: tuple[float, ...] = ()
    resets: tuple[float, ...] = ()


class LimitReached(Exception):
    """A claim did not fit: `held` is what other calls hold on its counter right now (for a window
    claim, its window's count), `reset_s` the seconds until its window ends (0 for a hold)."""

    def __init__(self, claim: Claim, held: float, reset_s: float = 0.0) -> None:
        super().__init__(f"{claim.counter}: {claim.base} + {held} held + {claim.amount} > {claim.limit}")
        self.claim = claim
        self.held = held
        self.reset_s = reset_s


class LimitsUnavailable(Exception):
    """Redis could not be asked and the caller wanted no per-process fallback (fail closed)."""
