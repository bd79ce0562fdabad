"""Keys, teams, users and end users cached in memory, so that steady state reads no database.

A change anywhere (this worker, another worker, another instance) evicts the changed record
everywhere before the next request is checked:
- between workers of one machine, through an append-only invalidation file whose size is checked
  with one `stat()` per request (about a microsecond);
- between machines, through Redis pub/sub when `REDIS_URL` is set.
The TTL bounds how stale an entry can get if a message were ever missed.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

log = logging.getLogger("gateway.identity")

CHANNEL = "gateway:invalidate"
KINDS = ("key", "team", "user", "end_user")


class IdentityCache:
    """A TTL cache of records by (kind, id); `None` results are cached too, briefly.

    An eviction that lands while a load is in flight wins: the loaded value may predate the
    change (a block, say), so it is returned to that one caller but not kept.
    """

    def __init__(self, ttl: float = 60.0, negative_ttl: float = 5.0) -> None:
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self._entries: dict[tuple[str, str], tuple[float, Any]] = {}
        self._evictions = 0  # bumped by every evict() and clear()

    async def get(self, kind: str, ident: str, load: Callable[[], Awaitable[Any]]) -> Any:
        now = time.monotonic()
        hit = self._entries.get((kind, ident))
        if hit is not None and hit[0] > now:
            return hit[1]
        evictions = self._evictions
        value = await load()
        if evictions == self._evictions:
            self._entries[(kind, ident)] = (now + (self.ttl if value is not None else self.negative_ttl), value)
        return value

    def peek(self, kind: str, ident: str) -> Any:
        hit = self._entries.get((kind, ident))
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    def evict(self, kind: str, ident: str) -> None:
        self._evictions += 1
        self._entries.pop((kind, ident), None)

    def clear(self) -> None:
        self._evictions += 1
        self._entries.clear()


class Invalidator:
    """Carries 'this record changed' to every worker and instance."""

    def __init__(self, cache: IdentityCache, database_url: str, redis_url: str | None) -> None:
        self.cache = cache
        digest = hashlib.sha256(database_url.encode()).hexdigest()[:16]
        if database_url.startswith("sqlite://") and ":memory:" not in database_url:
            db_path = Path(database_url.split("://", 1)[1]).expanduser().resolve()
            self.path = db_path.with_name(db_path.name + ".invalidations")
        else:
            self.path = Path(tempfile.gettempdir()) / f"gateway-{digest}.invalidations"
        self.redis_url = redis_url
        self._offset = 0
        self._redis: Any = None
        self._listener: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch(exist_ok=True)
        self._offset = self.path.stat().st_size
        if self.redis_url:
            await self._start_redis()

    async def _start_redis(self) -> None:
        import redis.asyncio as aioredis

        self._redis = aioredis.from_url(self.redis_url, socket_timeout=2, socket_connect_timeout=2)
        try:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            await pubsub.subscribe(CHANNEL)
        except Exception as exc:
            log.error("Redis unreachable for cache invalidation (%s); other instances will see changes "
                      "only after the cache TTL of %.0f s", type(exc).__name__, self.cache.ttl)
            return
        self._listener = asyncio.get_running_loop().create_task(self._listen(pubsub))

    async def _listen(self, pubsub: Any) -> None:
        while True:
            try:
                message = await pubsub.get_message(timeout=1.0)
                if message and message.get("type") == "message":
                    self._apply(message["data"].decode())
            except asyncio.CancelledError:
                await pubsub.aclose()
                raise
            except Exception as exc:
                log.warning("Redis invalidation listener error (%s); retrying", type(exc).__name__)
                await asyncio.sleep(1)

    def _apply(self, line: str) -> None:
        kind, _, ident = line.partition(":")
        if kind == "*":
            self.cache.clear()
        elif kind in KINDS:
            self.cache.evict(kind, ident)

    def poll(self) -> None:
        """Apply changes other workers wrote since the last call: one stat() when nothing changed."""
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            return
        if size == self._offset:
            return
        if size < self._offset:  # the file was rotated: drop everything
            self.cache.clear()
            self._offset = size
            return
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            data = f.read(size - self._offset)
        self._offset = size
        for line in data.decode(errors="replace").splitlines():
            self._apply(line)

    async def publish(self, kind: str, ident: str) -> None:
        """Evict here, tell this machine's other workers, then the other instances."""
        line = f"{kind}:{ident}"
        self._apply(line)
        with open(self.path, "ab") as f:  # our own line comes back through poll(): harmless
            f.write((line + "\n").encode())
        if self._redis is not None:
            try:
                await self._redis.publish(CHANNEL, line)
            except Exception as exc:
                log.error("could not publish a cache invalidation to Redis (%s)", type(exc).__name__)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            try:
                await self._listener
            except (asyncio.CancelledError, Exception):
                pass
        if self._redis is not None:
            await self._redis.aclose()


class Directory:
    """Cached look-ups of keys, teams, users and end users, and change notification."""

    def __init__(self, cache: IdentityCache, invalidator: Invalidator) -> None:
        self.cache = cache
        self.invalidator = invalidator

    async def key(self, token: str) -> Any:
        from gateway.core.db.models import Key

        return await self.cache.get("key", token, lambda: Key.get_or_none(token=token))

    async def team(self, team_id: str) -> Any:
        from gateway.core.db.models import Team

        return await self.cache.get("team", team_id, lambda: Team.get_or_none(team_id=team_id))

    async def user(self, user_id: str) -> Any:
        from gateway.core.db.models import User

        return await self.cache.get("user", user_id, lambda: User.get_or_none(user_id=user_id))

    async def end_user(self, user_id: str) -> Any:
        from gateway.core.db.models import EndUser

        return await self.cache.get("end_user", user_id, lambda: EndUser.get_or_none(user_id=user_id))

    async def changed(self, kind: str, ident: str) -> None:
        """Call after every write: evicts the record on every worker and instance."""
        await self.invalidator.publish(kind, ident)
