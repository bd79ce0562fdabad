"""`Limits`: counters in Redis when `REDIS_URL` is set, else (and while Redis is unavailable) here.

Redis is reached through the process's `RedisGuard` (the client cache invalidation uses too): every
call is bounded by its timeout, and an outage opens its breaker, with one WARNING for the outage and
a count of the calls skipped. Meanwhile counters live in this process, and `redis_fallbacks` counts
the acquires made here (or, for a caller that asked for `strict`, refuses: `LimitsUnavailable`).
One round trip per `acquire`, on the request path; releases and window additions (`add`) leave
it: they are sent in batches, and those that could not be sent wait for Redis to answer again
(a hold's ttl frees it in any case; additions older than their window no longer matter).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from collections import deque
from typing import Any, Sequence

from gateway.core.limits.claims import Claim, Hold, LimitReached, LimitsUnavailable
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
        self.redis_refusals = 0  # strict acquires refused because Redis was unavailable (fail closed)
        self._error_logged = -ERROR_LOG_INTERVAL_S
        self._pending: deque[Hold] = deque(maxlen=MAX_PENDING_RELEASES)
        self._pending_adds: deque[tuple[str, float, float, float]] = deque(maxlen=MAX_PENDING_RELEASES)
        self._releaser: asyncio.Task[None] | None = None
        self._prefix = secrets.token_hex(6) + "-"  # hold ids unique across processes
        self._seq = itertools.count(1)

    async def acquire(self, claims: Sequence[Claim], *, strict: bool = False, what: str = "budget reservation") -> Hold:
        """Take every claim or none: raises `LimitReached` for the first that does not fit. With
        `strict`, Redis being unavailable raises `LimitsUnavailable` instead of counting here.
        `what` names the call in the Redis guard's outage report."""
        hold_id = f"{self._prefix}{next(self._seq):x}"
        counters = tuple(c.counter for c in claims if c.window <= 0)
        if self.shared is not None:
            from redis.exceptions import RedisError

            from gateway.core.redis_guard import RedisUnavailable

            try:
                got = await self.redis.call(what, lambda: self.shared.acquire(hold_id, claims))
            except (RedisUnavailable, RedisError) as exc:
                if not isinstance(exc, RedisUnavailable):
                    self._error(exc)
                if strict:
                    self.redis_refusals += 1
                    raise LimitsUnavailable(str(exc)) from None
                self.redis_fallbacks += 1
            else:
                if isinstance(got, LimitReached):
                    raise got
                if self._pending or self._pending_adds:
                    self._kick()  # Redis answers again: send what waited
                return Hold(hold_id, counters, shared=True, owner=self, levels=tuple(got[0]), resets=tuple(got[1]))
        levels, resets = self.local.acquire(hold_id, claims)
        return Hold(hold_id, counters, shared=False, owner=self, levels=tuple(levels), resets=tuple(resets))

    async def try_window(self, name: str, amount: float, limit: float, window_s: float) -> tuple[bool, float, float]:
        """Count `amount` against `limit` in the window counter `name` (`window_s` long), if it fits:
        (admitted, what is left in the window, seconds until it resets). For deployment rpm/tpm."""
        claim = Claim(name, amount, limit, window=window_s)
        try:
            hold = await self.acquire((claim,), what="window limit")
        except LimitReached as refused:
            return False, max(0.0, limit - refused.held), refused.reset_s
        return True, max(0.0, limit - hold.levels[0]), hold.resets[0]

    def add(self, name: str, amount: float, window_s: float, shared: bool | None = None) -> None:
        """Count `amount` more in the window counter `name` (e.g. a finished call's tokens), off the
        request path. `shared`: where the call's claims were counted (None: where counters live now)."""
        if amount <= 0:
            return
        if self.shared is None or shared is False or (shared is None and not self.redis.up):
            self.local.add(name, amount, window_s)
            return
        self._pending_adds.append((name, float(amount), float(window_s), time.monotonic()))
        self._kick()

    def release(self, hold: Hold) -> None:
        """Give a hold back (a second release of the same hold does nothing)."""
        if not hold.shared:
            self.local.release(hold.id)
            return
        if not hold.counters:
            return  # window claims only: nothing is held
        self._pending.append(hold)
        self._kick()

    def _kick(self) -> None:
        if self._releaser is None and (self._pending or self._pending_adds) and self.redis.ready():
            self._releaser = asyncio.get_running_loop().create_task(self._send_releases())

    async def _send_releases(self) -> None:
        from redis.exceptions import RedisError

        from gateway.core.redis_guard import RedisUnavailable

        try:
            while (self._pending or self._pending_adds) and self.redis.ready():
                now = time.monotonic()
                adds = [self._pending_adds.popleft() for _ in range(min(len(self._pending_adds), RELEASE_BATCH))]
                live = [(name, amount, window) for name, amount, window, at in adds if now - at < window]
                batch = [self._pending.popleft() for _ in range(min(len(self._pending), RELEASE_BATCH))]
                try:
                    await self.redis.call("budget release", lambda: self.shared.finish(live, batch),
                                          count=len(batch) + len(live))
                except RedisUnavailable:
                    self._pending.extendleft(reversed(batch))
                    self._pending_adds.extendleft(reversed(adds))
                    return
                except RedisError as exc:  # not retried: holds are left to their ttl, amounts lost
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
                "redis_refusals": self.redis_refusals, "pending_releases": len(self._pending),
                "pending_window_counts": len(self._pending_adds), "expired_holds": self.local.expired}

    async def close(self) -> None:
        """Send what is still to release (one bounded try). The client belongs to the guard."""
        if self._releaser is not None:
            await asyncio.gather(self._releaser, return_exceptions=True)
        if (self._pending or self._pending_adds) and self.redis is not None and self.redis.ready():
            await self._send_releases()
