"""`Limits`: counters in Redis when `REDIS_URL` is set, else (and while Redis is unavailable) here.

Redis is reached through the process's `RedisGuard` (the client cache invalidation uses too): every
call is bounded by its timeout, and an outage opens its breaker, with one WARNING for the outage and
a count of the calls skipped. Meanwhile counters live in this process, and `redis_fallbacks` counts
the acquires made here. One round trip per `acquire`, on the request path; releases leave it: they
are sent in batches, and those that could not be sent wait for Redis to answer again (their ttl
frees them in any case).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from collections import deque
from typing import Any, Sequence

from gateway.core.limits.claims import Claim, Hold, LimitReached
from gateway.core.limits.local import LocalCounters

log = logging.getLogger("gateway.limits")

#: Releases kept while Redis is unavailable; past this the oldest are left to their ttl.
MAX_PENDING_RELEASES = 100_000
RELEASE_BATCH = 500
#: An error Redis answers with (out of memory, read-only replica) is logged at most this often.
ERROR_LOG_INTERVAL_S = 60.0


class Limits:
    def __init__(self, redis: Any = None) -> None:
        """`redis`: a `RedisGuard`, or None to count in this process only."""
        self.local = LocalCounters()
        self.redis = redis
        self.shared: Any = None
        if redis is not None:
            from gateway.core.limits.shared import SharedCounters

            self.shared = SharedCounters(redis.client)
        self.redis_fallbacks = 0  # acquires counted in this process because Redis was unavailable
        self.redis_errors = 0  # calls Redis answered with an error (counted here as well)
        self._error_logged = -ERROR_LOG_INTERVAL_S
        self._pending: deque[Hold] = deque(maxlen=MAX_PENDING_RELEASES)
        self._releaser: asyncio.Task[None] | None = None
        self._prefix = secrets.token_hex(6) + "-"  # hold ids unique across processes
        self._seq = itertools.count(1)

    async def acquire(self, claims: Sequence[Claim]) -> Hold:
        """Take every claim or none: raises `LimitReached` for the first that does not fit."""
        hold_id = f"{self._prefix}{next(self._seq):x}"
        counters = tuple(c.counter for c in claims)
        if self.shared is not None:
            from redis.exceptions import RedisError

            from gateway.core.redis_guard import RedisUnavailable

            try:
                refused = await self.redis.call("budget reservation", lambda: self.shared.acquire(hold_id, claims))
            except RedisUnavailable:
                self.redis_fallbacks += 1
            except RedisError as exc:
                self._error(exc)
                self.redis_fallbacks += 1
            else:
                if refused is not None:
                    raise refused
                if self._pending:
                    self._kick()  # Redis answers again: send what waited
                return Hold(hold_id, counters, shared=True, owner=self)
        self.local.acquire(hold_id, claims)
        return Hold(hold_id, counters, shared=False, owner=self)

    def release(self, hold: Hold) -> None:
        """Give a hold back (a second release of the same hold does nothing)."""
        if not hold.shared:
            self.local.release(hold.id)
            return
        self._pending.append(hold)
        self._kick()

    def _kick(self) -> None:
        if self._releaser is None and self._pending and self.redis.ready():
            self._releaser = asyncio.get_running_loop().create_task(self._send_releases())

    async def _send_releases(self) -> None:
        from redis.exceptions import RedisError

        from gateway.core.redis_guard import RedisUnavailable

        try:
            while self._pending and self.redis.ready():
                batch = [self._pending.popleft() for _ in range(min(len(self._pending), RELEASE_BATCH))]
                try:
                    await self.redis.call("budget release", lambda: self.shared.release(batch), count=len(batch))
                except RedisUnavailable:
                    self._pending.extendleft(reversed(batch))
                    return
                except RedisError as exc:  # not retried: these holds are left to their ttl
                    self._error(exc)
        finally:
            self._releaser = None

    def _error(self, exc: BaseException) -> None:
        """Redis answered with an error: count it, log it now and then; the caller counts here."""
        self.redis_errors += 1
        now = time.monotonic()
        if now - self._error_logged >= ERROR_LOG_INTERVAL_S:
            self._error_logged = now
            log.error("Redis refused a limits call (%s: %s); counting in this process instead (%d such "
                      "error(s) so far)", type(exc).__name__, str(exc)[:200], self.redis_errors)

    def counters(self) -> dict[str, Any]:
        """For operators (`GET /plugins`): where limits are counted now, and how often Redis was missed."""
        if self.redis is None:
            where = "process"
        else:
            where = "redis" if self.redis.up else "process (Redis unavailable)"
        return {"counted_in": where, "redis_fallbacks": self.redis_fallbacks, "redis_errors": self.redis_errors,
                "pending_releases": len(self._pending), "expired_holds": self.local.expired}

    async def close(self) -> None:
        """Send what is still to release (one bounded try). The client belongs to the guard."""
        if self._releaser is not None:
            await asyncio.gather(self._releaser, return_exceptions=True)
        if self._pending and self.redis is not None and self.redis.ready():
            await self._send_releases()
