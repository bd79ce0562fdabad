"""Where the Responses API's state lives: stored replies in the gateway's database.

A reply created with `store` not false is kept (table `stored_responses`) so that a later request can
continue from it (`previous_response_id`) and so that it can be retrieved, deleted and its input
items listed. Each row holds the whole conversation to continue from, so a chain of turns never
needs more than one read.

Rows belong to the virtual key that made them (its sha256, as everywhere else): another key gets
404 for them, as if they did not exist; an admin (the master key) sees every row. Rows are kept
`general_settings.responses_store_days` days (default 30, OpenAI's retention; 0 keeps them for ever):
older rows are not served, and are deleted in the background at most once an hour per process
(once per retention period, when that is shorter).

Every wait on the database is bounded (`Database.bounded`); a database that does not answer is a
503 `service_unavailable`, never a hang or a 500.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, TypeVar
from weakref import WeakKeyDictionary

from gateway.context import Principal

log = logging.getLogger("gateway.responses")
T = TypeVar("T")

DEFAULT_DAYS = 30.0
PURGE_INTERVAL_S = 3600.0
#: A continuation that misses looks again after these pauses: a streamed reply is written just
#: after its last event left, maybe by another gateway instance.
MISS_RETRIES_S = (0.05, 0.1, 0.2, 0.4)
#: How long a reply announced by `expect` may stay unwritten before nobody waits for it.
PENDING_S = 60.0


@dataclass
class Stored:
    """One stored reply, as the adapter and the routes read it."""

    id: str
    api_key: str | None
    model: str
    created_at: datetime
    status: str
    input_items: list[dict[str, Any]]
    conversation: list[dict[str, Any]]
    response: dict[str, Any]


def owner_of(principal: Principal | None) -> str | None:
    """The owner recorded on a row: the caller's key hash (None for an admin or no key)."""
    return principal.api_key if principal is not None else None


def may_see(principal: Principal | None, api_key: str | None) -> bool:
    if principal is None:
        return False
    if principal.is_admin:
        return True
    return principal.api_key is not None and principal.api_key == api_key


class ResponseStore:
    """The stored replies of one gateway (its database and its retention)."""

    def __init__(self, db: Any, days: float = DEFAULT_DAYS) -> None:
        self.db = db
        self.days = days
        self._last_purge = float("-inf")
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pending: dict[str, tuple[asyncio.Event, float]] = {}

    def expect(self, response_id: str) -> None:
        """A streamed reply's last event is leaving and its row will be written next: a `get` of
        it in this process waits for the write instead of missing it."""
        now = time.monotonic()
        for stale in [k for k, (_, at) in self._pending.items() if now - at > PENDING_S]:
            self.settle(stale)
        self._pending[response_id] = (asyncio.Event(), now)

    def settle(self, response_id: str) -> None:
        """The announced reply was written (or will not be)."""
        pending = self._pending.pop(response_id, None)
        if pending is not None:
            pending[0].set()

    async def _run(self, operation: Awaitable[T]) -> T:
        try:
            return await self.db.bounded(operation)
        except Exception as exc:
            error = self.db.unavailable(exc, from_db=isinstance(exc, TimeoutError))
            if error is None:
                raise
            raise error from exc

    def _cutoff(self) -> datetime | None:
        if not self.days:
            return None
        return datetime.now(timezone.utc) - timedelta(days=self.days)

    async def get(self, response_id: str, principal: Principal | None, retry: bool = False) -> Stored | None:
        """The reply `response_id` if it exists, is not past retention and the caller may see it.
        `retry`: a miss looks again for a moment (a continuation may follow its stream closely)."""
        from gateway.core.db.models import StoredResponse

        if not isinstance(response_id, str) or not response_id or len(response_id) > 64:
            return None
        pending = self._pending.get(response_id)
        if pending is not None:
            try:
                await asyncio.wait_for(pending[0].wait(), self.db.deadline_s)
            except TimeoutError:
                pass
        row = await self._run(StoredResponse.get_or_none(id=response_id))
        for pause in MISS_RETRIES_S if retry else ():
            if row is not None:
                break
            await asyncio.sleep(pause)
            row = await self._run(StoredResponse.get_or_none(id=response_id))
        if row is None or not may_see(principal, row.api_key):
            return None
        cutoff = self._cutoff()
        if cutoff is not None and row.created_at < cutoff:
            return None
        return Stored(row.id, row.api_key, row.model, row.created_at, row.status, list(row.input_items or []),
                      list(row.conversation or []), dict(row.response or {}))

    async def put(self, stored: Stored) -> None:
        from gateway.core.db.models import StoredResponse

        try:
            await self._run(StoredResponse.create(
                id=stored.id, api_key=stored.api_key, model=stored.model[:255], created_at=stored.created_at,
                status=stored.status[:16], input_items=stored.input_items, conversation=stored.conversation,
                response=stored.response))
        finally:
            self.settle(stored.id)
        self._maybe_purge()

    async def delete(self, response_id: str, principal: Principal | None) -> bool:
        """Delete the reply if the caller may see it; False when there is none to delete."""
        from gateway.core.db.models import StoredResponse

        if await self.get(response_id, principal) is None:
            return False
        return bool(await self._run(StoredResponse.filter(id=response_id).delete()))

    def _maybe_purge(self) -> None:
        """Delete rows past retention, off the request, at most once an hour (or once per
        retention period, when that is shorter)."""
        cutoff = self._cutoff()
        now = time.monotonic()
        if cutoff is None or now - self._last_purge < min(PURGE_INTERVAL_S, self.days * 86400):
            return
        self._last_purge = now
        task = asyncio.get_running_loop().create_task(self._purge(cutoff))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _purge(self, cutoff: datetime) -> None:
        from gateway.core.db.models import StoredResponse

        try:
            gone = await self._run(StoredResponse.filter(created_at__lt=cutoff).delete())
        except Exception:  # noqa: BLE001 - a purge is retried on a later write
            log.warning("stored responses: purging rows older than %s failed", cutoff.isoformat(), exc_info=True)
            self._last_purge = float("-inf")
            return
        if gone:
            log.info("stored responses: purged %d row(s) older than %s", gone, cutoff.isoformat())


_stores: "WeakKeyDictionary[Any, ResponseStore]" = WeakKeyDictionary()


def days_of(general: dict[str, Any]) -> float:
    value = general.get("responses_store_days")
    if value is None:
        return DEFAULT_DAYS
    try:
        days = float(value)
    except (TypeError, ValueError):
        days = -1.0
    if isinstance(value, bool) or not 0 <= days < float("inf"):
        raise ValueError(f"general_settings.responses_store_days: expected a number >= 0, got {value!r}")
    return days


def store_of(gw: Any) -> ResponseStore:
    """The store of a running gateway (one per gateway object)."""
    store = _stores.get(gw)
    if store is None:
        try:
            days = days_of(gw.settings.file.general_settings)
        except ValueError as exc:
            log.error("%s; keeping stored responses %g days", exc, DEFAULT_DAYS)
            days = DEFAULT_DAYS
        store = _stores[gw] = ResponseStore(gw.db, days)
    return store
