"""The background batch writer: spend rows and spend counters, off the request path.

A bounded in-memory queue, flushed when it holds `batch_size` rows, every `interval` seconds, and
at shutdown. One flush is one transaction: the rows, the per-day tag roll-up, and the key, team,
user and end-user counters. A database outage is retried with backoff while the queue keeps
accepting rows up to `max_queued`; anything beyond is counted and logged, never dropped silently.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict, deque
from typing import Any

from tortoise import connections
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from gateway.core.spend.record import SpendRow

log = logging.getLogger("gateway.spend")

TAG_UPSERT = {
    "postgres": ("INSERT INTO spend_tag_daily (day, tag, log_count, total_spend) VALUES ($1, $2, $3, $4) "
                 "ON CONFLICT (day, tag) DO UPDATE SET log_count = spend_tag_daily.log_count + EXCLUDED.log_count, "
                 "total_spend = spend_tag_daily.total_spend + EXCLUDED.total_spend"),
    "sqlite": ("INSERT INTO spend_tag_daily (day, tag, log_count, total_spend) VALUES (?, ?, ?, ?) "
               "ON CONFLICT (day, tag) DO UPDATE SET log_count = log_count + excluded.log_count, "
               "total_spend = total_spend + excluded.total_spend"),
}


class SpendWriter:
    def __init__(self, directory: Any, *, write_logs: bool = True, batch_size: int = 500,
                 interval: float = 1.0, max_queued: int = 200_000) -> None:
        self.directory = directory
        self.write_logs = write_logs
        self.batch_size = batch_size
        self.interval = interval
        self.max_queued = max_queued
        self.queue: deque[SpendRow] = deque()
        self.written = 0
        self.lost = 0
        self.failures = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._last_loss_log = 0.0

    def submit(self, row: SpendRow) -> None:
        if len(self.queue) >= self.max_queued:
            self.lost += 1
            now = time.monotonic()
            if now - self._last_loss_log > 10:
                self._last_loss_log = now
                log.error("spend queue full (%d rows waiting for the database): %d spend row(s) lost so far",
                          len(self.queue), self.lost)
            return
        self.queue.append(row)
        if len(self.queue) >= self.batch_size:
            self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        backoff = 0.5
        while not self._closing:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval)
            except TimeoutError:
                pass
            self._wake.clear()
            while self.queue and not self._closing:
                if await self.flush_once():
                    backoff = 0.5
                    if len(self.queue) < self.batch_size:
                        break
                else:
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 30.0)

    async def flush_once(self) -> bool:
        """Write one batch; on failure the batch goes back to the front of the queue."""
        batch = [self.queue.popleft() for _ in range(min(self.batch_size, len(self.queue)))]
        if not batch:
            return True
        try:
            await self._write(batch)
        except Exception as exc:
            self.queue.extendleft(reversed(batch))
            self.failures += 1
            log.warning("spend write failed (%s: %s); %d row(s) waiting, will retry", type(exc).__name__, exc,
                        len(self.queue))
            return False
        self.written += len(batch)
        await self._announce(batch)
        return True

    async def _write(self, batch: list[SpendRow]) -> None:
        from gateway.core.db.models import EndUser, Key, SpendLog, Team, User

        counters: dict[tuple[Any, str, str], float] = defaultdict(float)
        tags: dict[tuple[Any, str], list[float]] = defaultdict(lambda: [0, 0.0])
        for row in batch:
            if row.spend:
                for model, field, value in ((Key, "token", row.api_key), (Team, "team_id", row.team_id),
                                            (User, "user_id", row.user), (EndUser, "user_id", row.end_user)):
                    if value:
                        counters[(model, field, value)] += row.spend
            if self.write_logs:
                day = row.start_time.date()
                for tag in row.request_tags:
                    acc = tags[(day, tag)]
                    acc[0] += 1
                    acc[1] += row.spend
        dialect = connections.get("default").capabilities.dialect
        async with in_transaction() as conn:
            if self.write_logs:
                await SpendLog.bulk_create([SpendLog(**_columns(r)) for r in batch], using_db=conn)
                sql = TAG_UPSERT["postgres" if dialect == "postgres" else "sqlite"]
                for (day, tag), (count, spend) in tags.items():
                    await conn.execute_query(sql, [day, tag, count, spend])
            for (model, field, value), spend in counters.items():
                await model.filter(**{field: value}).using_db(conn).update(spend=F("spend") + spend)

    async def _announce(self, batch: list[SpendRow]) -> None:
        """Other workers and instances reload the counters that changed."""
        seen: set[tuple[str, str]] = set()
        for row in batch:
            if not row.spend:
                continue
            for kind, value in (("key", row.api_key), ("team", row.team_id), ("user", row.user),
                                ("end_user", row.end_user)):
                if value and (kind, value) not in seen:
                    seen.add((kind, value))
                    await self.directory.changed(kind, value)

    async def close(self, deadline_s: float = 30.0) -> None:
        """Flush everything (graceful shutdown); what cannot be written by the deadline is reported."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        end = time.monotonic() + deadline_s
        backoff = 0.2
        while self.queue and time.monotonic() < end:
            if not await self.flush_once():
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
        if self.queue:
            self.lost += len(self.queue)
            log.error("shutdown: %d spend row(s) could not be written and are lost", len(self.queue))
            self.queue.clear()
        log.info("spend writer closed: %d row(s) written, %d lost", self.written, self.lost)


def _columns(r: SpendRow) -> dict[str, Any]:
    return {
        "request_id": r.request_id, "call_type": r.call_type, "api_key": r.api_key, "spend": r.spend,
        "prompt_tokens": r.prompt_tokens, "completion_tokens": r.completion_tokens,
        "total_tokens": r.total_tokens, "start_time": r.start_time, "end_time": r.end_time, "model": r.model,
        "model_group": r.model_group, "api_base": r.api_base, "user": r.user, "end_user": r.end_user,
        "team_id": r.team_id, "request_tags": r.request_tags, "metadata": r.metadata, "status": r.status,
        "http_status": r.http_status, "blocked_by": r.blocked_by, "usage_estimated": r.usage_estimated,
    }
