"""Redis behind timeouts and a circuit breaker: a Redis that stops answering never holds up the
gateway, and an outage is reported once, not once per call.

Every call is bounded by `timeout_s` (socket connect, socket reads and writes, and the whole call).
The first call that fails opens the breaker: one WARNING, and for `retry_s` seconds every call is
skipped at once (`RedisUnavailable`) and counted. Then one call at a time is let through as a probe;
when one succeeds, one WARNING says Redis is back, after how long, and what was skipped meanwhile.
Callers degrade on `RedisUnavailable` (to per-process state, or to the cache TTL): Redis is never
needed for a request to be answered or a spend row to be written.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Awaitable, Callable, TypeVar
from urllib.parse import urlsplit

log = logging.getLogger("gateway.redis")

T = TypeVar("T")
DEFAULT_TIMEOUT_S = 1.0
DEFAULT_RETRY_S = 5.0


class RedisUnavailable(Exception):
    """The call was not made (the breaker is open) or failed because Redis did not answer."""


def _where(url: str) -> str:
    """host:port/db of a Redis URL: never its password."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path or ''}"


class RedisGuard:
    """One Redis client for the process (`client`), with its breaker (see the module docstring)."""

    def __init__(self, url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S, retry_s: float = DEFAULT_RETRY_S) -> None:
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self.where = _where(url)
        self.timeout_s = timeout_s
        self.retry_s = retry_s
        # One quick retry lets a connection the server closed (a restart) reconnect; more would only
        # stretch a call that the breaker should cut short.
        self.client = aioredis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                        retry=Retry(NoBackoff(), 1))
        self.down_since: float | None = None
        self.outages = 0  # bumped when an outage starts: a subscriber knows it may have missed messages
        self.skipped: Counter[str] = Counter()
        self._retry_at = 0.0
        self._probing = False

    @property
    def up(self) -> bool:
        return self.down_since is None

    def ready(self) -> bool:
        """Whether a call would be made now: Redis is up, or its retry time has come and no probe is out."""
        return self.down_since is None or (not self._probing and time.monotonic() >= self._retry_at)

    def skip(self, what: str, count: int = 1) -> None:
        """Count work not done because Redis is down (reported when it comes back)."""
        self.skipped[what] += count

    async def call(self, what: str, fn: Callable[[], Awaitable[T]], count: int = 1) -> T:
        """`await fn()` within the timeout; `RedisUnavailable` when skipped or when Redis fails to
        answer (`count` units of `what` are then counted as skipped). Errors Redis answers with (a
        wrong type, a script error) are raised as they are."""
        if not self.ready():
            self.skip(what, count)
            raise RedisUnavailable(f"Redis at {self.where} is unavailable")
        probe = self.down_since is not None
        self._probing = probe
        try:
            async with asyncio.timeout(self.timeout_s):
                result = await fn()
        except Exception as exc:
            if not _outage(exc):
                raise
            self.failed(what, exc, count)
            raise RedisUnavailable(f"Redis at {self.where} is unavailable ({type(exc).__name__})") from exc
        finally:
            if probe:
                self._probing = False
        self.succeeded()
        return result

    def failed(self, what: str, exc: BaseException, count: int = 1) -> None:
        """Record a failed call: the first of an outage opens the breaker and logs the one WARNING."""
        now = time.monotonic()
        self._retry_at = now + self.retry_s
        self.skip(what, count)
        if self.down_since is None:
            self.down_since = now
            self.outages += 1
            log.warning("Redis at %s is unavailable (%s); calls to it are skipped while it is down, and retried "
                        "every %g s", self.where, type(exc).__name__, self.retry_s)

    def succeeded(self) -> None:
        if self.down_since is None:
            return
        skipped = ", ".join(f"{what} x{n}" for what, n in (+self.skipped).most_common()) or "nothing"
        log.warning("Redis at %s is back after %.1f s; skipped while it was down: %s",
                    self.where, time.monotonic() - self.down_since, skipped)
        self.down_since = None
        self.skipped.clear()

    async def close(self) -> None:
        await self.client.aclose()


def _outage(exc: BaseException) -> bool:
    """Whether an error means Redis did not answer (versus an error reply from a working Redis)."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return isinstance(exc, (TimeoutError, OSError, RedisConnectionError, RedisTimeoutError))

