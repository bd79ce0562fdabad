"""Limits counted across calls: reservations against budgets (`budgets`) and rate limits
(`rates`: rpm, tpm and parallel requests of keys, teams, users and end users).

A call `acquire`s a `Claim` on each counter it must respect, all or nothing, in one step (one Redis
round trip). Two kinds of claims:

- a hold (`Claim.window` 0): taken at admission and `release`d with its `Hold` when the call ends;
  a hold never released (its worker died) expires after its claim's `ttl`. Budget reservations and
  `max_parallel_requests` are holds.
- a window claim (`Claim.window` > 0 seconds): counted in the counter's current window and never
  released. A window starts with the first amount counted after the previous one ended and lasts
  `window` seconds (LiteLLM's rate limiter does the same). rpm is a claim of 1 request; tpm a claim
  of 0 at admission (refused once the window's tokens reached the limit), the call's real tokens
  being added with `Limits.add` when it ends.

Counters live in this process, or in Redis when `REDIS_URL` is set so that every worker and
instance sees the same ones (see `store`).

For other counters (the router's deployment-level rpm/tpm), the same store offers:

- `await limits.try_window(name, amount, limit, window_s) -> (ok, remaining, reset_s)`: count
  `amount` in window counter `name` if it fits (`ok`), what is left, and when the window resets;
- `limits.add(name, amount, window_s)`: count `amount` more (tokens used), off the request path.

Names are free-form; prefix them with their owner (e.g. `deployment:<id>:rpm`).
"""

from gateway.core.limits.claims import Claim, Hold, LimitReached, LimitsUnavailable, admits
from gateway.core.limits.store import Limits

__all__ = ["Claim", "Hold", "LimitReached", "Limits", "LimitsUnavailable", "admits"]
