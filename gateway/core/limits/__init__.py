"""Limits counted across calls: today reservations against budgets (`budgets`); the same counters
are meant for parallel-request, rpm and tpm limits.

A call `acquire`s a `Claim` on each counter it must respect, all or nothing, in one step (one Redis
round trip), and `release`s its `Hold` when it ends; a hold never released (its worker died)
expires after its claim's `ttl`. Counters live in this process, or in Redis when `REDIS_URL` is set
so that every worker and instance sees the same ones (see `store`). A parallel-request limit is a
claim of 1 against `max_parallel_requests`; window limits (rpm, tpm) will need claims that are not
released with their hold but expire by their ttl, and per-ttl expiry in `LocalCounters`.
"""

from gateway.core.limits.claims import Claim, Hold, LimitReached, admits
from gateway.core.limits.store import Limits

__all__ = ["Claim", "Hold", "LimitReached", "Limits", "admits"]
