"""The audit-log store: a built-in plugin on the `audit` hook, on with `store_audit_logs: true`.

Each `AuditEvent` becomes one row of `audit_logs`. The management call that caused it never waits
for the database: the hook only cleans the event into a row and appends it to a bounded in-memory
queue; one writer task per process writes batches, retries a failing database with backoff, and
drains the queue at shutdown.

Rows are hash-chained: `hash` is the sha256 of the canonical JSON (below) of the row's fields and
`prev_hash` (the previous row's `hash`; the first row's is 64 zeros), and `seq` numbers the rows
1, 2, 3... Appends are serialised in the database (PostgreSQL: an advisory transaction lock;
SQLite: the write lock, taken before the last row is read), so workers and instances sharing a
database extend one chain. `verify_chain` walks it; `gateway audit verify` reports the first row
that was edited or removed. (Removing the newest rows leaves a shorter valid chain: a chain
alone cannot tell a truncated tail from fewer changes.)

Canonical JSON: keys sorted, no whitespace, strings ASCII-escaped, and every number written as its
exact decimal value with trailing zeros moved into an exponent (`2.0` -> `2`, `1e16` -> `1e16`,
`0.25` -> `25e-2`), because PostgreSQL's `jsonb` keeps a number's value but not its spelling.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import os
import re
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from tortoise.transactions import in_transaction

from gateway import Plugin, hookimpl
from gateway.core.db.models import AuditLog
from gateway.core.dead_letters import data_fault, describe
from gateway.core.storable import clean_text, storable

log = logging.getLogger("gateway.audit")

GENESIS = "0" * 64
#: Key of the PostgreSQL advisory lock that serialises appends (first 8 bytes of
#: sha256("gateway.audit_logs"), as a signed 64-bit integer).
ADVISORY_LOCK = 7346759511592482100
MAX_QUEUED = 100_000
BATCH = 500
SHUTDOWN_GRACE_S = 30.0
ROW_FIELDS = ("id", "updated_at", "changed_by", "changed_by_api_key", "action", "table_name", "object_id",
              "before_value", "updated_values")
HASHED_FIELDS = (*ROW_FIELDS, "prev_hash")
MAX_LEN = {"id": 36, "changed_by": 255, "changed_by_api_key": 64, "action": 16, "table_name": 64,
           "object_id": 255}
HASH_RE = re.compile(r"^[0-9a-f]{64}$")
TRUTHY = ("true", "1", "yes", "on")


# -- canonical form and hashing ---------------------------------------------------------------

def _number(value: int | float) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return "null"
    sign, digits, exponent = (Decimal(value) if isinstance(value, int) else Decimal(repr(value))).as_tuple()
    text = "".join(map(str, digits)).lstrip("0")
    if not text:
        return "0"
    stripped = text.rstrip("0")
    exponent = int(exponent) + len(text) - len(stripped)
    text = ("-" if sign else "") + stripped
    return text if exponent == 0 else f"{text}e{exponent}"


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, ASCII strings, numbers by value (see the module docstring)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        return _number(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: str(kv[0]))
        return "{" + ",".join(json.dumps(str(k)) + ":" + canonical_json(v) for k, v in items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(canonical_json(v) for v in value) + "]"
    raise TypeError(f"not JSON: {type(value).__name__}")


def row_hash(row: dict[str, Any]) -> str:
    """sha256 hex of the canonical JSON of a row's hashed fields (`updated_at` as ISO text)."""
    return hashlib.sha256(canonical_json({f: row[f] for f in HASHED_FIELDS}).encode()).hexdigest()


def iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).isoformat(timespec="microseconds")


def row_dict(r: Any) -> dict[str, Any]:
    """A stored row as `GET /audit` shows it and as its hash covers it."""
    return {"id": r.id, "updated_at": iso(r.updated_at), "changed_by": r.changed_by,
            "changed_by_api_key": r.changed_by_api_key, "action": r.action, "table_name": r.table_name,
            "object_id": r.object_id, "before_value": r.before_value, "updated_values": r.updated_values,
            "prev_hash": r.prev_hash, "hash": r.hash}


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
        "updated_at": iso(when if isinstance(when, datetime) else datetime.fromtimestamp(when, timezone.utc)),
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
        fixed["updated_at"] = iso(datetime.fromisoformat(when)) if isinstance(when, str) else iso(datetime.now(timezone.utc))
    except ValueError:
        fixed["updated_at"] = iso(datetime.now(timezone.utc))
    fixed["before_value"] = clean.value(row.get("before_value"))
    fixed["updated_values"] = clean.value(row.get("updated_values"))
    return fixed


def display(value: Any) -> str:
    s = str(value)
    return "sk-..." + s[-4:] if looks_like_raw_key(s) else s


# -- appending to the chain and checking it ----------------------------------------------------

async def append(rows: list[dict[str, Any]]) -> None:
    """Append rows to the chain in one transaction, serialised against every other writer."""
    async with in_transaction() as conn:
        if conn.capabilities.dialect == "postgres":
            await conn.execute_query(f"SELECT pg_advisory_xact_lock({ADVISORY_LOCK})")
        else:  # SQLite: a write first takes the write lock, so no one appends between read and insert
            await conn.execute_query("UPDATE audit_logs SET seq = seq WHERE 0")
        last = await AuditLog.all().using_db(conn).order_by("-seq").limit(1).values("seq", "hash")
        seq, prev = (last[0]["seq"], last[0]["hash"]) if last else (0, GENESIS)
        objects = []
        for row in rows:
            seq += 1
            full = {**row, "prev_hash": prev}
            full["hash"] = prev = row_hash(full)
            objects.append(AuditLog(seq=seq, **{**full, "updated_at": datetime.fromisoformat(full["updated_at"])}))
        await AuditLog.bulk_create(objects, using_db=conn)


@dataclass(slots=True)
class Verdict:
    ok: bool
    rows: int
    message: str


async def verify_chain(page: int = 1000) -> Verdict:
    """Walk the chain in `seq` order; the first edited or removed row, or how many rows are intact."""
    count, last_seq, prev_hash, prev = 0, 0, GENESIS, None
    while True:
        batch = await AuditLog.filter(seq__gt=last_seq).order_by("seq").limit(page)
        if not batch:
            return Verdict(True, count, f"audit log intact: {count} rows")
        for r in batch:
            row = row_dict(r)
            where = f"{r.id} (seq {r.seq})"
            if r.seq != last_seq + 1:
                return Verdict(False, count, f"a row before {where} was removed")
            if row_hash(row) != r.hash:
                return Verdict(False, count, f"row {where} was edited: its hash does not match its contents")
            if r.prev_hash != prev_hash and prev is None:
                return Verdict(False, count, f"row {where} does not start the chain: a row before it was removed")
            if r.prev_hash != prev_hash:
                return Verdict(False, count, f"row {where} does not link to the row before it: row {prev.id} "
                                             f"(seq {prev.seq}) was edited, or a row between them was removed")
            count, last_seq, prev_hash, prev = count + 1, r.seq, r.hash, r


# -- the plugin --------------------------------------------------------------------------------

class AuditStore(Plugin):
    """Writes every `AuditEvent` to `audit_logs`, hash-chained, off the management call's path."""

    name = "audit_store"
    priority = 10

    @staticmethod
    def wanted(settings: Any) -> bool:
        """`litellm_settings.store_audit_logs: true`, or env `GATEWAY_STORE_AUDIT_LOGS=true`."""
        for value in (settings.file.litellm_settings.get("store_audit_logs"),
                      os.environ.get("GATEWAY_STORE_AUDIT_LOGS")):
            if value is True or (isinstance(value, str) and value.strip().lower() in TRUTHY):
                return True
        return False

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
