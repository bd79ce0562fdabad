"""The audit log's hash chain: its canonical form, appending rows to it, and checking it.

The core owns the chain, not the `audit_store` builtin that writes it: `GET /audit` shows rows as
their hash covers them (`row_dict`) and `gateway audit verify` walks the chain (`verify_chain`),
whether or not the audit store is on in this process.

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

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from tortoise.transactions import in_transaction

from gateway.core.db.models import AuditLog
from gateway.core.management.common import iso

GENESIS = "0" * 64
#: Key of the PostgreSQL advisory lock that serialises appends (first 8 bytes of
#: sha256("gateway.audit_logs"), as a signed 64-bit integer).
ADVISORY_LOCK = 7346759511592482100
ROW_FIELDS = ("id", "updated_at", "changed_by", "changed_by_api_key", "action", "table_name", "object_id",
              "before_value", "updated_values")
HASHED_FIELDS = (*ROW_FIELDS, "prev_hash")


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


#: How `updated_at` is written in a row and its hash: always with the fraction (a fixed form).
TIMESPEC = "microseconds"


def row_dict(r: Any) -> dict[str, Any]:
    """A stored row as `GET /audit` shows it and as its hash covers it."""
    return {"id": r.id, "updated_at": iso(r.updated_at, TIMESPEC), "changed_by": r.changed_by,
            "changed_by_api_key": r.changed_by_api_key, "action": r.action, "table_name": r.table_name,
            "object_id": r.object_id, "before_value": r.before_value, "updated_values": r.updated_values,
            "prev_hash": r.prev_hash, "hash": r.hash}


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
