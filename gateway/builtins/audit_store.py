"""The audit-log store: a built-in plugin on the `audit` hook, on with `store_audit_logs: true`.

Each `AuditEvent` becomes one row of `audit_logs`. The management call that caused it never waits
for the database: the hook only cleans the event into a row and appends it to a bounded in-memory
queue; one writer task per process writes batches, retries a failing database with backoff, and
drains the queue at shutdown. Rows are appended to the core's hash chain
(`gateway.core.audit_chain`), which `gateway audit verify` checks.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections import deque
from datetime import datetime, timezone
from typing import Any, Mapping

from gateway import Plugin, PluginConfig, hookimpl
from gateway.core.audit_chain import TIMESPEC, append
from gateway.core.dead_letters import data_fault, describe
from gateway.core.keys import HASH_RE
from gateway.core.management.common import iso
from gateway.core.storable import clean_text, storable

log = logging.getLogger("gateway.audit")

MAX_QUEUED = 100_000
BATCH = 500
SHUTDOWN_GRACE_S = 30.0
MAX_LEN = {"id": 36, "changed_by": 255, "changed_by_api_key": 64, "action": 16, "table_name": 64,
           "object_id": 255}
TRUTHY = ("true", "1", "yes", "on")


# -- turning an event into a clean row ---------------------------------------------------------

def looks_like_raw_key(text: str) -> bool:
    """A virtual key as issued (`sk-` + 20 or more characters), not a `sk-...abcd` key name."""
    return text.startswith("sk-") and len(text) > 20 and not text.startswith("sk-...")


class _Cleaner:
    """Makes values storable (see `gateway.core.storable`) and masks raw keys."""

    def __init__(self) -> None:
        self.masked = 0

    def text(self, s: str) -> str:
        s = clean_text(s)
        if looks_like_raw_key(s):
            self.masked += 1
            s = "sk-..." + s[-4:]
        return s

    def value(self, v: Any) -> Any:
        return storable(v, self.text)

    def column(self, name: str, v: Any) -> str | None:
        if v is None:
            return None
        return self.text(str(v))[: MAX_LEN[name]]


def row_from_event(event: Any) -> dict[str, Any]:
    """The row for one `AuditEvent`, without `seq`, `prev_hash` and `hash` (set when appended)."""
    clean = _Cleaner()
    when = event.updated_at if event.updated_at is not None else time.time()
    api_key = event.changed_by_api_key
    if api_key is not None and not HASH_RE.match(str(api_key)):
        log.warning("audit event %s %s %s: changed_by_api_key was not a key hash; stored its sha256",
                    event.table_name, event.action, display(event.object_id))
        api_key = hashlib.sha256(str(api_key).encode()).hexdigest()
    row = {
        "id": str(uuid.uuid4()),
        "updated_at": iso(when if isinstance(when, datetime) else datetime.fromtimestamp(when, timezone.utc), TIMESPEC),
        "changed_by": clean.column("changed_by", event.changed_by),
        "changed_by_api_key": api_key,
        "action": clean.column("action", event.action),
        "table_name": clean.column("table_name", event.table_name),
        "object_id": clean.column("object_id", event.object_id) or "",
        "before_value": clean.value(event.before_value),
        "updated_values": clean.value(event.updated_values),
    }
    if clean.masked:
        log.warning("audit event %s %s %s carried %d raw-looking key(s); stored as key names (sk-...xxxx)",
                    row["table_name"], row["action"], row["object_id"], clean.masked)
    return row


def repaired(row: dict[str, Any]) -> dict[str, Any]:
    """A row made storable again, for a row that skipped `row_from_event` or outgrew its columns."""
    clean = _Cleaner()
    fixed = {name: clean.column(name, row.get(name)) for name in MAX_LEN}
    fixed["id"] = fixed["id"] if fixed["id"] and len(fixed["id"]) == 36 else str(uuid.uuid4())
    fixed["object_id"] = fixed["object_id"] or ""
    fixed["changed_by_api_key"] = row.get("changed_by_api_key") if HASH_RE.match(str(row.get("changed_by_api_key"))) else None
    when = row.get("updated_at")
    try:
        fixed["updated_at"] = iso(datetime.fromisoformat(when) if isinstance(when, str) else datetime.now(timezone.utc),
                                  TIMESPEC)
    except ValueError:
        fixed["updated_at"] = iso(datetime.now(timezone.utc), TIMESPEC)
    fixed["before_value"] = clean.value(row.get("before_value"))
    fixed["updated_values"] = clean.value(row.get("updated_values"))
    return fixed


def display(value: Any) -> str:
    s = str(value)
    return "sk-..." + s[-4:] if looks_like_raw_key(s) else s


# -- the plugin --------------------------------------------------------------------------------

def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() in TRUTHY)


class AuditStoreConfig(PluginConfig):
    """The audit store has no settings of its own: `litellm_settings.store_audit_logs: true` (or
    `GATEWAY_STORE_AUDIT_LOGS=true` in the environment) switches it on, as does a `plugins:` entry."""


class AuditStore(Plugin):
    """Writes every `AuditEvent` to `audit_logs`, hash-chained, off the management call's path."""

    name = "audit_store"
    priority = 10
    Config = AuditStoreConfig
    switched_on_by = ("store_audit_logs",)

    @classmethod
    def is_switched_on(cls, settings: Mapping[str, Any], environ: Mapping[str, str]) -> bool:
        """`store_audit_logs: true` (or the text true/1/yes/on), or env `GATEWAY_STORE_AUDIT_LOGS` so."""
        return _truthy(settings.get("store_audit_logs")) or _truthy(environ.get("GATEWAY_STORE_AUDIT_LOGS"))

    def __init__(self, config: Any, gateway: Any) -> None:
        super().__init__(config, gateway)
        self.queue: deque[dict[str, Any]] = deque()
        self.written = 0
        self.lost = 0
        self._last_loss_log = 0.0
        self._wake: asyncio.Event | None = None
        self._writer: asyncio.Task[None] | None = None
        self._open = False
        self._deadline: float | None = None
        self._inflight = 0

    @hookimpl
    async def startup(self, gateway: Any) -> None:
        self._wake = asyncio.Event()
        self._open = True
        self._writer = asyncio.get_running_loop().create_task(self._run(), name="audit-writer")

    @hookimpl
    async def audit(self, event: Any) -> None:
        if not self._open:
            self._lose(1, "the audit store is not running")
            return
        if len(self.queue) >= MAX_QUEUED:
            self._lose(1, f"the queue is full ({MAX_QUEUED} events waiting for the database)")
            return
        self.queue.append(row_from_event(event))
        assert self._wake is not None
        self._wake.set()

    @hookimpl
    async def shutdown(self, gateway: Any) -> None:
        """Write everything queued (retrying for up to SHUTDOWN_GRACE_S), then stop."""
        self._open = False
        if self._writer is None:
            return
        if self.queue or self._inflight:
            log.info("audit store stopping: %d event(s) still to write", len(self.queue) + self._inflight)
        self._deadline = time.monotonic() + SHUTDOWN_GRACE_S
        assert self._wake is not None
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._writer), SHUTDOWN_GRACE_S + 5)
        except TimeoutError:
            self._writer.cancel()
        if self.queue:
            self._lose(len(self.queue), "the database could not be reached before shutdown")
            self.queue.clear()
        log.info("audit store stopped: %d row(s) written, %d event(s) lost", self.written, self.lost)

    def _lose(self, n: int, why: str) -> None:
        self.lost += n
        now = time.monotonic()
        if now - self._last_loss_log >= 5 or self._deadline is not None:
            self._last_loss_log = now
            log.error("AUDIT EVENTS LOST: %d event(s) dropped because %s (%d lost since start)", n, why, self.lost)

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            if not self.queue:
                if not self._open:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = [self.queue.popleft() for _ in range(min(BATCH, len(self.queue)))]
            self._inflight = len(batch)
            try:
                await self._write(batch)
            except Exception:  # never let the writer die
                log.exception("audit writer: unexpected error; %d event(s) lost", len(batch))
                self.lost += len(batch)
            finally:
                self._inflight = 0

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() > self._deadline

    async def _write(self, batch: list[dict[str, Any]]) -> None:
        """Append a batch, retrying with backoff (logged) for as long as the database fails."""
        attempt = 0
        while True:
            try:
                await append(batch)
                self.written += len(batch)
                return
            except Exception as exc:
                attempt += 1
                row_fault = data_fault(exc)
                log.warning("audit writer: writing %d row(s) failed (attempt %d, %d more queued): %s",
                            len(batch), attempt, len(self.queue), describe(exc))
            if self._past_deadline():
                self._lose(len(batch), "the database could not be reached before shutdown")
                return
            if row_fault or (attempt % 3 == 0 and await self._database_answers()):
                batch = await self._isolate(batch)
                if not batch:
                    return
            await asyncio.sleep(min(5.0, 0.05 * 2 ** attempt))

    async def _isolate(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The database answers yet refuses the batch: write its rows one by one. A row refused
        for what it holds (`data_fault`), or refused while others go in, is written again made
        storable, else dropped; either way it goes to the dead letters, so that it cannot stall
        the log. When no row goes in for no reason a row could cause, the fault is the database's
        (a missing table, no permission): keep them all, to retry. Returns the rows still to write."""
        if len(batch) == 1 and self.queue:
            batch = [*batch, self.queue.popleft()]  # a second row tells a bad row from a bad database
            self._inflight = len(batch)
        failed: list[tuple[dict[str, Any], BaseException]] = []
        for row in batch:
            for attempt in range(2):
                try:
                    await append([row])
                    self.written += 1
                    break
                except Exception as exc:
                    if data_fault(exc) or attempt == 1:
                        failed.append((row, exc))
                        break
        if len(failed) == len(batch) and not any(data_fault(exc) for _, exc in failed):
            return [row for row, _ in failed]
        for row, exc in failed:
            await self._dead_letter(row, exc)
        return []

    async def _dead_letter(self, row: dict[str, Any], exc: BaseException) -> None:
        reason = describe(exc)
        ref = f"{row.get('id')} ({row.get('table_name')} {row.get('action')} {row.get('object_id')})"
        try:
            await append([repaired(row)])
        except Exception as again:
            self._lose(1, f"the database refuses row {ref}: {reason}")
            await self.gateway.dead_letters.record("audit", ref, "dropped",
                                                   f"{reason}; the repaired copy failed too: {describe(again)}", row)
            return
        self.written += 1
        await self.gateway.dead_letters.record("audit", ref, "repaired", reason, row)

    async def _database_answers(self) -> bool:
        try:
            await self.gateway.db.ping()
            return True
        except Exception:
            return False
