"""How a `SpendRow` becomes a `spend_logs` row: its columns, the values the database is sent (for
spend_log_tags too: `row_values`), and the storable copy of a row the database refused (`repaired`).

The values are what tortoise's own per-field conversion gives (`Field.to_db_value`), but that
conversion is only called where it does something: datetimes and JSON. A text, number or flag of
the right type goes as it is once its length is checked, and anything else (a wrong type, a text
too long for its column) falls back to the field's own conversion, with its errors. That halves
the spend writer's Python time per row (8 -> 4 us): the writer shares the worker's core.
"""

from __future__ import annotations

import functools
import sqlite3
from dataclasses import replace
from typing import Any

from tortoise import fields as tf

from gateway.core.spend.record import WIDTH, SpendRow
from gateway.core.storable import clean_text, storable

INT_MAX = 2**31 - 1
SLICE = 50  # rows converted between two chances for requests to run


def _short(value: str | None, width: int = WIDTH) -> str | None:
    return clean_text(value)[:width] if isinstance(value, str) else None


def repaired(r: SpendRow) -> SpendRow:
    """A copy of a row that any column takes: text cleaned and cut to its column, JSON made
    storable, counts clamped to the column's range."""
    return replace(
        r, request_id=_short(r.request_id) or "", call_type=_short(r.call_type, 32) or "", api_key=_short(r.api_key, 64),
        prompt_tokens=min(max(int(r.prompt_tokens), 0), INT_MAX),
        completion_tokens=min(max(int(r.completion_tokens), 0), INT_MAX),
        total_tokens=min(max(int(r.total_tokens), 0), INT_MAX),
        model=_short(r.model) or "", model_group=_short(r.model_group), api_base=_short(r.api_base, 512),
        user=_short(r.user), end_user=_short(r.end_user), team_id=_short(r.team_id),
        request_tags=[t for t in (_short(t) for t in r.request_tags) if t],
        metadata=storable(r.metadata) if isinstance(r.metadata, dict) else {}, status=_short(r.status, 16) or "",
        http_status=min(max(int(r.http_status), 0), INT_MAX), blocked_by=_short(r.blocked_by),
        messages=storable(r.messages), response=storable(r.response),
    )


def columns(r: SpendRow) -> dict[str, Any]:
    return {
        "request_id": r.request_id, "call_type": r.call_type, "api_key": r.api_key, "spend": r.spend,
        "prompt_tokens": r.prompt_tokens, "completion_tokens": r.completion_tokens,
        "total_tokens": r.total_tokens, "start_time": r.start_time, "end_time": r.end_time, "model": r.model,
        "model_group": r.model_group, "api_base": r.api_base, "user": r.user, "end_user": r.end_user,
        "team_id": r.team_id, "request_tags": r.request_tags, "metadata": r.metadata, "status": r.status,
        "http_status": r.http_status, "blocked_by": r.blocked_by, "usage_estimated": r.usage_estimated,
        "messages": r.messages, "response": r.response,
    }


#: Fields whose conversion is the plain one (Field.to_db_value: the type, then the validators).
PLAIN = (tf.CharField, tf.IntField, tf.BigIntField, tf.FloatField, tf.BooleanField)


class RowValues:
    """A model's INSERT and a converter per column, as tortoise sees the model (built once per
    connection type and model: `row_values`)."""

    def __init__(self, conn: Any, model: Any) -> None:
        executor = conn.executor_class(model=model, db=conn)
        self.model = model
        self.insert_query = executor.insert_query
        self.plan = []
        for name in executor.regular_columns:
            field = model._meta.fields_map[name]
            plain = type(field) in PLAIN and type(field).to_db_value is tf.Field.to_db_value
            limit = getattr(field, "max_length", None) if isinstance(field, tf.CharField) else None
            # A validator other than the length one (a CharField's) must still run: take the slow way.
            extra = [v for v in field.validators if limit is None or type(v).__name__ != "MaxLengthValidator"]
            self.plan.append((name, field, field.field_type if plain and not extra else None, limit, field.null))

    def values(self, cols: dict[str, Any]) -> list[Any]:
        """The row's values in the INSERT's order, from its columns by name."""
        values = []
        for name, field, kind, limit, nullable in self.plan:
            value = cols[name]
            if kind is not None and ((value is None and nullable) or
                                     (type(value) is kind and (limit is None or len(value) <= limit))):
                values.append(value)  # what the field's own conversion would return unchanged
            else:
                values.append(field.to_db_value(value, self.model))
        return values


_plans: dict[tuple[int, Any], RowValues] = {}


def row_values(conn: Any, model: Any) -> RowValues:
    key = (id(type(conn)), model)
    return _plans.get(key) or _plans.setdefault(key, RowValues(conn, model))


#: Rows per INSERT statement on SQLite, within its limit on bound values (32,766 since 3.32, 999 before).
SQLITE_ROWS = 100
SQLITE_VALUES = 32766 if sqlite3.sqlite_version_info >= (3, 32) else 999


def _statement_sizes(rows: int, most: int) -> list[int]:
    """Rows per statement: `most` while that many are left, then powers of two. So few statement
    texts exist (SQLite compiles and caches each one: a statement per leftover count would cache up
    to a hundred big ones, megabytes of the worker's memory)."""
    sizes = [most] * (rows // most)
    left, power = rows % most, 1 << (most.bit_length() - 1)
    while left:
        if power <= left:
            sizes.append(power)
            left -= power
        power >>= 1
    return sizes


@functools.lru_cache(maxsize=16)
def _multi_row(insert_query: str, rows: int) -> str:
    """`INSERT ... VALUES (?, ...)` for `rows` rows in one statement."""
    head, _, one = insert_query.rpartition("VALUES")
    return f"{head}VALUES {','.join([one.strip()] * rows)}"


async def insert_logs(conn: Any, batch: list[SpendRow]) -> None:
    """The spend_logs rows, as tortoise's bulk_create stores them (its INSERT and its conversion,
    see the module docstring) without building a model object per row. In slices of SLICE rows:
    requests run while the database takes each slice.

    On SQLite a slice is one multi-row INSERT, not an executemany: the sqlite3 module lets go of
    the GIL around each statement it steps, and under load the writer's thread then waits for the
    busy event loop to give it back once per row, which made the writer fall behind the calls
    (its queue, and the worker's memory, grew ~2 MiB a minute at ~3,400 calls/s)."""
    from gateway.core.db.models import SpendLog

    plan = row_values(conn, SpendLog)
    if conn.capabilities.dialect == "sqlite":
        start = 0
        for size in _statement_sizes(len(batch), max(1, min(SQLITE_ROWS, SQLITE_VALUES // len(plan.plan)))):
            part = batch[start:start + size]
            start += size
            values = [v for r in part for v in plan.values(columns(r))]
            await conn.execute_query(_multi_row(plan.insert_query, size), values)
        return
    for start in range(0, len(batch), SLICE):
        await conn.execute_many(plan.insert_query, [plan.values(columns(r)) for r in batch[start:start + SLICE]])
