"""Keys, teams, users and end users cached in memory, so that steady state reads no database.

A change anywhere (this worker, another worker, another instance) evicts the changed record
everywhere before the next request is checked: identity_invalidator.py's `Invalidator` carries it
(an invalidation file between workers, Redis between machines). The look-ups that fill the cache
are identity_directory.py's `Directory`. The cache itself is here.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable

from gateway.core.identity_directory import Directory, EndUserRecord, TeamMemberRecord
from gateway.core.identity_invalidator import Invalidator

#: The cache, and what app.py, tests and docs import from here.
__all__ = ["Directory", "EndUserRecord", "IdentityCache", "Invalidator", "TeamMemberRecord"]


class IdentityCache:
    """A TTL cache of records by (kind, id); `None` results are cached too, briefly.

    Concurrent misses of one record share one load (after another worker's spend evicts a key, the
    32 calls in flight would otherwise each read it again). An eviction of that record (or a
    `clear()`) that lands while its load is in flight wins: the loaded value may predate the change
    (a block, say), so it is returned to the callers that were already waiting but not kept, and a
    caller arriving after it loads anew. Evictions of other records do not touch the load.
    """

    def __init__(self, ttl: float = 60.0, negative_ttl: float = 5.0) -> None:
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self._entries: dict[tuple[str, str], tuple[float, Any]] = {}
        self._clears = 0  # bumped by every clear(): loads in flight then are not kept
        self._loading: dict[tuple[str, str], asyncio.Task[Any]] = {}

    async def get(self, kind: str, ident: str, load: Callable[[], Awaitable[Any]]) -> Any:
        hit = self._entries.get((kind, ident))
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        task = self._loading.get((kind, ident))
        if task is None:
            # A task of its own: a caller that is cancelled (its client left) does not cancel the others' load.
            task = asyncio.ensure_future(self._load((kind, ident), load))
            task.add_done_callback(_retrieve)
            self._loading[(kind, ident)] = task
        return await asyncio.shield(task)

    async def _load(self, slot: tuple[str, str], load: Callable[[], Awaitable[Any]]) -> Any:
        now, clears, me = time.monotonic(), self._clears, asyncio.current_task()
        try:
            value = await load()
        finally:
            current = self._loading.get(slot) is me  # evict() of this record unregisters the load
            if current:
                del self._loading[slot]
        if current and clears == self._clears:
            self._entries[slot] = (now + (self.ttl if value is not None else self.negative_ttl), value)
        return value

    def peek(self, kind: str, ident: str) -> Any:
        hit = self._entries.get((kind, ident))
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    def evict(self, kind: str, ident: str) -> None:
        self._entries.pop((kind, ident), None)
        self._loading.pop((kind, ident), None)

    def clear(self) -> None:
        self._clears += 1
        self._entries.clear()
        self._loading.clear()


def _retrieve(task: asyncio.Task[Any]) -> None:
    """A load's error reaches its callers; one whose callers all left is not reported as lost."""
    if not task.cancelled():
        task.exception()
