"""Carries "this record changed" to every worker and instance, so that identity.py's cache evicts
the changed record everywhere before the next request is checked:
- between workers of one machine, through an append-only file each request reads from where the
  last one left off, when it grew (invalidation_file.py);
- between machines, through Redis pub/sub when `REDIS_URL` is set. A management change waits until
  every subscribed worker has confirmed it applied the eviction (Redis says how many received it),
  so that the next request anywhere, even one sent the moment the change returned, sees it.
The TTL bounds how stale an entry can get if a message were ever missed.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import secrets
import tempfile
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from gateway.core.invalidation_file import InvalidationFile
from gateway.core.redis_guard import RedisGuard, RedisUnavailable

if TYPE_CHECKING:
    from gateway.core.identity import IdentityCache

log = logging.getLogger("gateway.identity")

CHANNEL = "gateway:invalidate"
CONFIRMATIONS = "gateway:invalidate:confirm:"  # + the publishing worker's origin: "applied" replies
KINDS = ("key", "team", "user", "end_user", "organization", "team_member", "ui_session")
MAX_BATCH = 500  # invalidations per Redis round trip
MAX_QUEUED = 10_000  # invalidations waiting for Redis before they collapse into one "drop everything"


class Invalidator:
    """Carries 'this record changed' to every worker and instance.

    Every Redis call goes through the `RedisGuard` (timeouts, breaker). A management change is
    published before its call returns while Redis answers; the spend writer's changes, and any
    change while Redis is down, go to a background sender (batched, never waited for). A waited
    change goes out as `!origin/n kind:ident`: every worker that receives it evicts, then publishes
    `origin/n` on the publisher's confirmation channel; the publisher returns once as many workers
    confirmed as Redis delivered to, or after the Redis timeout with a warning. What is
    skipped while Redis is down is made good when it answers again: the sender asks every instance
    to drop its whole cache (`*`), and a subscriber that lost its subscription drops its own cache
    when it subscribes again (either may have missed evictions meanwhile)."""

    def __init__(self, cache: IdentityCache, database_url: str, redis: RedisGuard | None) -> None:
        self.cache = cache
        digest = hashlib.sha256(database_url.encode()).hexdigest()[:16]
        if database_url.startswith("sqlite://") and ":memory:" not in database_url:
            db_path = Path(database_url.split("://", 1)[1]).expanduser().resolve()
            self.path = db_path.with_name(db_path.name + ".invalidations")
        else:
            self.path = Path(tempfile.gettempdir()) / f"gateway-{digest}.invalidations"
        self.file = InvalidationFile(self.path)
        self.redis = redis
        self._outbox: deque[str] = deque()
        self._wake = asyncio.Event()
        self._resync = False  # lines were skipped: every instance must drop its cache once Redis answers
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        #: Who wrote a line meant for everyone else (`publish_elsewhere`): this worker skips its own.
        self.origin = f"{os.getpid()}.{secrets.token_hex(4)}"
        #: Other news carried the same way, by kind (`cooldown`: a deployment cooled down elsewhere).
        self.listeners: dict[str, Callable[[str], None]] = {}
        self.confirmations = CONFIRMATIONS + self.origin
        self._sent = 0  # waited changes published: numbers their confirmations
        self._unconfirmed: dict[str, _Confirmations] = {}
        self._confirming: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.file.open()
        if self.redis is not None:
            pubsub = await self._subscribe(first=True)  # bounded by the guard's timeout
            loop = asyncio.get_running_loop()
            self._tasks = [loop.create_task(self._listen(pubsub)), loop.create_task(self._send())]

    async def _subscribe(self, first: bool = False) -> Any:
        """A pub/sub subscription to the channel, or None while Redis is unavailable."""
        assert self.redis is not None
        pubsub = self.redis.client.pubsub(ignore_subscribe_messages=True)
        try:
            await self.redis.call("subscription to cache invalidations", lambda: pubsub.subscribe(CHANNEL, self.confirmations))
        except RedisUnavailable:
            await _quietly(pubsub.aclose())
            return None
        if not first:
            self.cache.clear()  # evictions published while we were not subscribed are lost: drop everything
        return pubsub

    async def _listen(self, pubsub: Any) -> None:
        assert self.redis is not None
        outages = self.redis.outages
        while not self._closing:
            if pubsub is None:
                await asyncio.sleep(1.0 if self.redis.ready() else self.redis.retry_s)
                if self.redis.ready():
                    pubsub = await self._subscribe()
                    outages = self.redis.outages
                continue
            try:
                message = await pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                await _quietly(pubsub.aclose())
                raise
            except Exception as exc:
                self.redis.failed("subscription to cache invalidations", exc)
                message = None
                outages = -1
            if outages != self.redis.outages:  # an outage since we subscribed: messages may be lost
                await _quietly(pubsub.aclose())
                pubsub = None
                continue
            if message and message.get("type") == "message":
                if message["channel"] == self.confirmations.encode():
                    self._confirmed(message["data"].decode())
                else:
                    self._apply(message["data"].decode())

    async def _send(self) -> None:
        """Publish what `publish` queued, in order, one round trip per batch; never raises."""
        assert self.redis is not None
        while not self._closing:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.redis.retry_s if self._resync else None)
            except TimeoutError:
                pass
            self._wake.clear()
            await self._flush()

    async def _flush(self) -> None:
        redis = self.redis
        assert redis is not None
        while self._outbox or self._resync:
            if not redis.ready():
                redis.skip("cache invalidation", len(self._outbox))
                self._outbox.clear()
                self._resync = True
                return
            changes = [self._outbox.popleft() for _ in range(min(len(self._outbox), MAX_BATCH))]
            lines = ["*:", *changes] if self._resync else changes

            async def send() -> None:
                async with redis.client.pipeline(transaction=False) as pipe:
                    for line in lines:
                        pipe.publish(CHANNEL, line)
                    await pipe.execute()

            try:
                await redis.call("cache invalidation", send, count=len(changes))
            except RedisUnavailable:
                self._resync = True
                return
            except Exception as exc:  # Redis answered with an error: nothing to retry
                log.error("could not publish %d cache invalidation(s) to Redis (%s)", len(lines), type(exc).__name__)
            self._resync = False

    def _apply(self, line: str) -> None:
        if line.startswith("!"):  # `!origin/n kind:ident`: its publisher waits for our confirmation
            token, _, line = line[1:].partition(" ")
            origin = token.rpartition("/")[0]
            if origin == self.origin:  # our own: applied when published
                self._confirmed(token)
                return
            self._apply(line)
            self._confirm(origin, token)
            return
        if line.startswith("@"):  # `@origin kind:ident`: for every worker but the one that wrote it
            origin, _, line = line[1:].partition(" ")
            if origin == self.origin:
                return
        kind, _, ident = line.partition(":")
        if kind == "*":
            self.cache.clear()
        elif kind in KINDS:
            self.cache.evict(kind, ident)
        elif kind in self.listeners:
            self.listeners[kind](ident)

    def poll(self) -> None:
        """Apply what this machine's other workers wrote since the last call (see invalidation_file.py)."""
        lines = self.file.read_new()
        if lines is InvalidationFile.REPLACED:
            self.cache.clear()
            return
        for line in lines:
            self._apply(line)

    async def publish(self, kind: str, ident: str, wait: bool = True) -> None:
        """Evict here, tell this machine's other workers, then the other instances: before returning
        while Redis answers (`wait`, so that a management change is everywhere when its call returns),
        else through the background sender (never waits)."""
        line = f"{kind}:{ident}"
        self._apply(line)
        self.file.append((line + "\n").encode())  # our own line comes back through poll(): harmless
        if self.redis is None:
            return
        redis = self.redis
        if wait and redis.ready():
            await self._publish_confirmed(kind, line)
        else:
            self._queue(line)

    async def _publish_confirmed(self, kind: str, line: str) -> None:
        """Publish, then wait until every worker Redis delivered it to has applied it (bounded by
        the Redis timeout: a worker that does not confirm in time is reported, not waited for)."""
        redis = self.redis
        assert redis is not None
        self._sent += 1
        token = f"{self.origin}/{self._sent}"
        pending = self._unconfirmed[token] = _Confirmations()
        try:
            receivers = await redis.call("cache invalidation", lambda: redis.client.publish(CHANNEL, f"!{token} {line}"))
            pending.expect(int(receivers))
            try:
                async with asyncio.timeout(redis.timeout_s):
                    await pending.done.wait()
            except TimeoutError:
                log.warning("cache invalidation: %d of %d worker(s) did not confirm a %s change within %.1f s; "
                            "they apply it when it reaches them", pending.expected - pending.received,
                            pending.expected, kind, redis.timeout_s)
        except RedisUnavailable:
            self._resync = True  # the sender asks everyone to drop their cache once Redis is back
            self._wake.set()
        except Exception as exc:  # Redis answered with an error: nothing to retry
            log.error("could not publish a cache invalidation to Redis (%s)", type(exc).__name__)
        finally:
            del self._unconfirmed[token]

    def _confirmed(self, token: str) -> None:
        pending = self._unconfirmed.get(token)
        if pending is not None:
            pending.add()

    def _confirm(self, origin: str, token: str) -> None:
        """Tell the publisher of a waited change that this worker applied it (in the background)."""
        redis = self.redis
        if redis is None or self._closing:
            return

        async def send() -> None:
            try:
                await redis.call("cache invalidation confirmation",
                                 lambda: redis.client.publish(CONFIRMATIONS + origin, token))
            except Exception:  # Redis away: the publisher stops waiting at its timeout and says so
                pass

        task = asyncio.get_running_loop().create_task(send())
        self._confirming.add(task)
        task.add_done_callback(self._confirming.discard)

    def publish_elsewhere(self, changes: list[tuple[str, str]]) -> None:
        """Tell the other workers and instances that these records changed, but not this worker:
        the spend writer's news, whose amounts this worker's cached records already hold
        (`spend_logs` adds each call's cost to them when it ends); evicting them here would reload
        every active key after every flush. One write to the file; Redis through the background
        sender (never waits)."""
        lines = [f"@{self.origin} {kind}:{ident}" for kind, ident in changes]
        if not lines:
            return
        self.file.append(("\n".join(lines) + "\n").encode())
        if self.redis is not None:
            for line in lines:
                self._queue(line)

    def _queue(self, line: str) -> None:
        """For the background sender (Redis)."""
        assert self.redis is not None
        if len(self._outbox) >= MAX_QUEUED:  # the sender is far behind: one "drop everything" instead
            self.redis.skip("cache invalidation", len(self._outbox))
            self._outbox.clear()
            self._resync = True
        self._outbox.append(line)
        self._wake.set()

    async def close(self) -> None:
        """Stop listening; send what is still queued (one bounded try), then close the client."""
        # Cancel, and cancel again: on Python 3.11 a cancellation that lands as a Redis call's own
        # timeout fires is taken for that timeout, and a loop would go on; `_closing` ends them too.
        self._closing = True
        self._wake.set()
        pending = set(self._tasks) | self._confirming
        for _ in range(5):
            for task in pending:
                task.cancel()
            if not pending:
                break
            _, pending = await asyncio.wait(pending, timeout=1.0)
        if pending:
            log.warning("cache invalidation: %d task(s) did not stop within 5 s", len(pending))
        if self.redis is not None:
            if self._outbox:
                await _quietly(self._flush())
            await _quietly(self.redis.close())
        self.file.close()


class _Confirmations:
    """How many workers confirmed a waited change, against how many Redis delivered it to."""

    __slots__ = ("expected", "received", "done")

    def __init__(self) -> None:
        self.expected = -1  # unknown until PUBLISH answers (a confirmation may arrive first)
        self.received = 0
        self.done = asyncio.Event()

    def expect(self, receivers: int) -> None:
        self.expected = receivers
        self._check()

    def add(self) -> None:
        self.received += 1
        self._check()

    def _check(self) -> None:
        if 0 <= self.expected <= self.received:
            self.done.set()


async def _quietly(awaitable: Awaitable[Any], timeout_s: float = 5.0) -> None:
    """Clean-up that must neither raise nor hang (closing a connection to a Redis that is away)."""
    try:
        async with asyncio.timeout(timeout_s):
            await awaitable
    except Exception:
        pass
