"""The background batch writer: spend rows and spend counters, off the request path.

A bounded in-memory queue, flushed when it holds `batch_size` rows, every `interval` seconds, and
at shutdown. One flush is one transaction: the rows, the per-day tag roll-up, and the key, team,
user and end-user counters (an end user is recorded from its first call). A database outage is
retried with backoff while the queue keeps accepting rows up to `max_queued`; anything beyond is
counted and logged, never dropped silently; a write whose connection died may have committed, so
its retry first looks for its first row (no row is written twice).

The writer is never stopped by its input. A batch that fails while the database answers is halved
until the rows it will not take stand alone; the others are written, and each refused row is
written again made storable (`repaired`) or, failing that, not at all (`dropped`); either way it
goes to the dead letters (`gateway.core.dead_letters`) with the reason. A database that answers
yet takes no row at all (a missing table, no permission) is treated as an outage: nothing dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict, deque
from typing import Any, Awaitable, Callable

from tortoise import connections
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from gateway.core.management.common import member_ident
from gateway.core.dead_letters import DeadLetters, data_fault, describe
from gateway.core.spend.log_rows import columns as _columns
from gateway.core.spend.log_rows import insert_logs as _insert_logs
from gateway.core.spend.log_rows import repaired
from gateway.core.spend.log_tags import write_log_tags
from gateway.core.spend.record import SpendRow

log = logging.getLogger("gateway.spend")

DAILY_UPSERT = {
    "postgres": ("INSERT INTO spend_daily (day, api_key, model, \"user\", log_count, total_spend) "
                 "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (day, api_key, model, \"user\") DO UPDATE SET "
                 "log_count = spend_daily.log_count + EXCLUDED.log_count, "
                 "total_spend = spend_daily.total_spend + EXCLUDED.total_spend"),
    "sqlite": ("INSERT INTO spend_daily (day, api_key, model, \"user\", log_count, total_spend) "
               "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (day, api_key, model, \"user\") DO UPDATE SET "
               "log_count = log_count + excluded.log_count, total_spend = total_spend + excluded.total_spend"),
}
TAG_UPSERT = {
    "postgres": ("INSERT INTO spend_tag_daily (day, tag, log_count, total_spend) VALUES ($1, $2, $3, $4) "
                 "ON CONFLICT (day, tag) DO UPDATE SET log_count = spend_tag_daily.log_count + EXCLUDED.log_count, "
                 "total_spend = spend_tag_daily.total_spend + EXCLUDED.total_spend"),
    "sqlite": ("INSERT INTO spend_tag_daily (day, tag, log_count, total_spend) VALUES (?, ?, ?, ?) "
               "ON CONFLICT (day, tag) DO UPDATE SET log_count = log_count + excluded.log_count, "
               "total_spend = total_spend + excluded.total_spend"),
}

KEY_TAG_UPSERT = {
    "postgres": ("INSERT INTO spend_key_tag_daily (day, api_key, tag, log_count, total_spend) VALUES ($1, $2, $3, $4, $5) "
                 "ON CONFLICT (day, api_key, tag) DO UPDATE SET "
                 "log_count = spend_key_tag_daily.log_count + EXCLUDED.log_count, "
                 "total_spend = spend_key_tag_daily.total_spend + EXCLUDED.total_spend"),
    "sqlite": ("INSERT INTO spend_key_tag_daily (day, api_key, tag, log_count, total_spend) VALUES (?, ?, ?, ?, ?) "
               "ON CONFLICT (day, api_key, tag) DO UPDATE SET log_count = log_count + excluded.log_count, "
               "total_spend = total_spend + excluded.total_spend"),
}


class SpendWriter:
    def __init__(self, directory: Any, *, ping: Callable[[], Awaitable[Any]], dead_letters: DeadLetters,
                 write_logs: bool = True, batch_size: int = 500, interval: float = 1.0,
                 max_queued: int = 200_000) -> None:
        self.directory = directory
        self.ping = ping
        self.dead_letters = dead_letters
        self.write_logs = write_logs
        self.batch_size = batch_size
        self.interval = interval
        self.max_queued = max_queued
        self.queue: deque[SpendRow] = deque()
        self.written = 0
        self.lost = 0
        self.failures = 0
        self.repaired = 0
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unsure: tuple[SpendRow, int] | None = None
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
                if await self._flush_guarded():
                    backoff = 0.5
                    if len(self.queue) < self.batch_size:
                        break
                else:
                    try:  # back off, but let close() cut the wait short
                        await asyncio.wait_for(self._stopping.wait(), timeout=backoff)
                    except TimeoutError:
                        pass
                    backoff = min(backoff * 2, 30.0)

    async def _flush_guarded(self) -> bool:
        """flush_once, but a bug in it is logged and backed off from, never the writer's end."""
        try:
            return await self.flush_once()
        except Exception:
            log.exception("spend writer: unexpected error; %d row(s) waiting, will retry", len(self.queue))
            return False

    async def flush_once(self) -> bool:
        """Write one batch; on failure the batch goes back to the front of the queue, unless the
        database answers, in which case the rows it will not take are isolated (`_isolate`)."""
        size = min(self.batch_size, len(self.queue))
        unsure = self._unsure is not None and bool(self.queue) and self.queue[0] is self._unsure[0]
        if unsure:
            size = self._unsure[1]  # exactly the rows of the write whose outcome is unknown
        batch = [self.queue.popleft() for _ in range(size)]
        if not batch:
            return True
        try:
            if unsure and await self._landed(batch[0]):
                log.warning("spend write of %d row(s) had committed before its connection failed", len(batch))
            else:
                await self._write(batch)
        except Exception as exc:
            if data_fault(exc):
                self._unsure = None
                return await self._isolate(batch)
            if not await self._answers():
                self._requeue(batch, exc, len(batch))
                return False
            self._unsure = None
            if not await self._landed(batch[0]):  # not a reply lost after the commit
                return await self._isolate(batch)
        self._unsure = None
        self.written += len(batch)
        await self._announce(batch)
        return True

    async def _isolate(self, batch: list[SpendRow]) -> bool:
        """The database answers but would not take the batch: halve it until the rows it refuses
        stand alone, write the rest, and make each refused row storable (`repaired`) or hand it
        to the dead letters (`dropped`). A row that fails for no reason a row could cause (a lock,
        a missing table) is kept to retry; it counts as refused only after `ISOLATIONS` tries
        during which the database took other rows. False when rows went back to the queue."""
        done: list[SpendRow] = []
        bad: list[tuple[SpendRow, BaseException]] = []
        retry: list[tuple[SpendRow, BaseException]] = []
        pending, gone = [batch], False
        while pending:
            rows = pending.pop()
            try:
                await self._write(rows)
                done.extend(rows)
                continue
            except Exception as exc:
                if len(rows) > 1:
                    half = len(rows) // 2
                    pending += [rows[half:], rows[:half]]  # the first half is written first
                    continue
                if data_fault(exc):
                    bad.append((rows[0], exc))
                elif not await self._answers():  # the database went away: the rest goes back
                    left = [r for chunk in reversed(pending) for r in chunk]
                    self._requeue([rows[0], *left, *(r for r, _ in retry)], exc, 1)
                    pending, retry, gone = [], [], True
                elif await self._landed(rows[0]):  # its reply was lost after the commit
                    done.append(rows[0])
                else:
                    retry.append((rows[0], exc))
        still: list[tuple[SpendRow, BaseException]] = []
        for row, exc in retry:  # a try counts only while the database takes other rows
            row.extra["isolations"] = row.extra.get("isolations", 0) + (1 if done else 0)
            (bad if row.extra["isolations"] >= ISOLATIONS else still).append((row, exc))
        retry = still
        self.written += len(done)
        await self._announce(done)
        for row, exc in bad:
            await self._dead_letter(row, exc)
        if retry:
            self.queue.extendleft(reversed([r for r, _ in retry]))
            self.failures += 1
            log.warning("spend write of %d row(s) failed while the database answers (%s); will retry",
                        len(retry), describe(retry[0][1]))
        return not retry and not gone

    async def _dead_letter(self, row: SpendRow, exc: BaseException) -> None:
        """One row the database refused: store a storable copy if it takes one, and record both."""
        reason = describe(exc)
        try:
            fixed = repaired(row)
            await self._write([fixed])
        except Exception as again:
            self.lost += 1
            await self.dead_letters.record("spend", row.request_id, "dropped",
                                           f"{reason}; the repaired copy failed too: {describe(again)}", _columns(row))
            return
        self.written += 1
        self.repaired += 1
        await self._announce([fixed])
        await self.dead_letters.record("spend", row.request_id, "repaired", reason, _columns(row))

    async def _answers(self) -> bool:
        """Whether the database answers at all (an outage is retried; a refusal is not)."""
        try:
            await asyncio.wait_for(self.ping(), timeout=5)
            return True
        except Exception:
            return False

    def _requeue(self, rows: list[SpendRow], exc: Exception, tried: int) -> None:
        """Back to the front of the queue. The first `tried` rows were one write that may yet have
        committed (the connection can die after the commit): the next attempt checks first."""
        self.queue.extendleft(reversed(rows))
        self._unsure = (rows[0], tried)
        self.failures += 1
        log.warning("spend write failed (%s); %d row(s) waiting, will retry", describe(exc), len(self.queue))

    async def _landed(self, row: SpendRow) -> bool:
        """Whether the write that began with `row` committed (without spend logs, it cannot be told)."""
        from gateway.core.db.models import SpendLog

        try:
            return self.write_logs and await SpendLog.filter(request_id=row.request_id,
                                                             start_time=row.start_time).exists()
        except Exception:  # a row too odd to look up was not written either
            return False

    async def _write(self, batch: list[SpendRow]) -> None:
        from gateway.core.db.models import EndUser, Key, Organization, Team, TeamMembership, User

        counters: dict[tuple[Any, str, str], float] = defaultdict(float)
        members: dict[tuple[str, str], float] = defaultdict(float)  # (team, user): spend inside the team
        tags: dict[tuple[Any, str], list[float]] = defaultdict(lambda: [0, 0.0])
        key_tags: dict[tuple[Any, str, str], list[float]] = defaultdict(lambda: [0, 0.0])
        daily: dict[tuple[Any, str, str, str], list[float]] = defaultdict(lambda: [0, 0.0])
        for row in batch:
            if row.spend:
                for model, field, value in ((Key, "token", row.api_key), (Team, "team_id", row.team_id),
                                            (User, "user_id", row.user), (EndUser, "user_id", row.end_user)):
                    if value:
                        counters[(model, field, value)] += row.spend
                org = (row.metadata or {}).get("user_api_key_org_id")
                if org:
                    counters[(Organization, "organization_id", org)] += row.spend
                if row.team_id and row.user:
                    members[(row.team_id, row.user)] += row.spend
            if self.write_logs:
                day = row.start_time.date()
                acc = daily[(day, row.api_key or "", row.model[:255], (row.user or "")[:255])]
                acc[0] += 1
                acc[1] += row.spend
                for tag in row.request_tags:
                    acc = tags[(day, tag)]
                    acc[0] += 1
                    acc[1] += row.spend
                    if row.api_key:
                        acc = key_tags[(day, row.api_key, tag)]
                        acc[0] += 1
                        acc[1] += row.spend
        dialect = connections.get("default").capabilities.dialect
        async with in_transaction() as conn:
            if self.write_logs:
                await _insert_logs(conn, batch)
                await write_log_tags(conn, batch)  # the logs page's tag filter
                sql = TAG_UPSERT["postgres" if dialect == "postgres" else "sqlite"]
                # Rows are locked in one order everywhere, so that instances never deadlock.
                for (day, tag), (count, spend) in sorted(tags.items()):
                    await conn.execute_query(sql, [day, tag, count, spend])
                sql = KEY_TAG_UPSERT["postgres" if dialect == "postgres" else "sqlite"]
                for (day, key, tag), (count, spend) in sorted(key_tags.items()):
                    await conn.execute_query(sql, [day, key, tag, count, spend])
                sql = DAILY_UPSERT["postgres" if dialect == "postgres" else "sqlite"]
                for (day, key, model, user), (count, spend) in sorted(daily.items()):
                    await conn.execute_query(sql, [day, key, model, user, count, spend])
            end_users = sorted(value for (model, _, value) in counters if model is EndUser)
            if end_users:  # an end user is recorded from its first call, as LiteLLM does
                await EndUser.bulk_create([EndUser(user_id=u) for u in end_users], ignore_conflicts=True, using_db=conn)
            for (model, field, value), spend in sorted(counters.items(), key=lambda c: (c[0][0].__name__, c[0][2])):
                await model.filter(**{field: value}).using_db(conn).update(spend=F("spend") + spend)
            for (team, user), spend in sorted(members.items()):  # members only: no row, no change
                await TeamMembership.filter(team_id=team, user_id=user).using_db(conn).update(spend=F("spend") + spend)

    async def _announce(self, batch: list[SpendRow]) -> None:
        """Other workers and instances reload the counters that changed. This worker keeps its
        cached records, which already hold these amounts (`spend_logs` adds them as calls end), except
        end users: their load starts a budget's next period and sends the soft-budget alert."""
        seen: dict[tuple[str, str], None] = {}
        end_users: dict[str, None] = {}
        for row in batch:
            if not row.spend:
                continue
            org = (row.metadata or {}).get("user_api_key_org_id")
            member = member_ident(row.team_id, row.user) if row.team_id and row.user else None
            for kind, value in (("key", row.api_key), ("team", row.team_id), ("user", row.user),
                                ("organization", org), ("team_member", member)):
                if value:
                    seen[(kind, value)] = None
            if row.end_user:
                end_users[row.end_user] = None
        self.directory.invalidator.publish_elsewhere(list(seen))
        for end_user in end_users:
            await self.directory.changed("end_user", end_user, wait=False)  # never waits on Redis

    async def close(self, deadline_s: float = 30.0) -> None:
        """Flush everything (graceful shutdown); what cannot be written by the deadline is reported."""
        self._closing = True
        self._wake.set()
        self._stopping.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        end = time.monotonic() + deadline_s
        backoff = 0.2
        while self.queue and time.monotonic() < end:
            if not await self._flush_guarded():
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
        if self.queue:
            self.lost += len(self.queue)
            log.error("shutdown: %d spend row(s) could not be written and are lost", len(self.queue))
            self.queue.clear()
        log.info("spend writer closed: %d row(s) written, %d lost", self.written, self.lost)


ISOLATIONS = 3  # tries before a row that fails for an unknown reason is taken as the row's fault
