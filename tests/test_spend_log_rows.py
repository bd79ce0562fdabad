"""The spend writer's values for a spend_logs row are exactly what tortoise's own per-field
conversion gives, for ordinary rows and odd ones alike (a wrong type, a text too long for its
column, a missing value): the writer skips that conversion where it would change nothing."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any

import pytest

from gateway.core.db import Database
from gateway.core.spend import log_rows
from gateway.core.spend.record import SpendRow

pytestmark = pytest.mark.db

NOW = datetime(2026, 12, 4, 12, 30, tzinfo=timezone.utc)
BASE: dict[str, Any] = dict(
    request_id="req-1", call_type="acompletion", api_key="a" * 64, spend=1e-5, prompt_tokens=1, completion_tokens=2,
    total_tokens=3, start_time=NOW, end_time=NOW, model="m", model_group="g", api_base=None, user="u",
    end_user=None, team_id=None, request_tags=["a"], metadata={"x": 1}, status="success", http_status=200)
ODD = [{}, {"spend": 0}, {"prompt_tokens": True}, {"http_status": 200.0}, {"user": "x" * 256},
       {"api_key": "k" * 65}, {"request_id": None}, {"status": None}, {"usage_estimated": 1},
       {"messages": [{"role": "user", "content": "hi"}], "response": {"id": "x"}}, {"model": "é" * 255},
       {"team_id": "t" * 255}, {"start_time": datetime(2026, 1, 1)}, {"blocked_by": 42}]


def converted(fn: Any) -> tuple[str, Any]:
    try:
        return "ok", fn()
    except Exception as exc:
        return type(exc).__name__, str(exc)


def test_values_are_what_tortoise_would_send(database_url):
    asyncio.run(compare(database_url()))  # the URL first: making a PostgreSQL database runs a loop of its own


async def compare(url: str) -> None:
    db = Database(url)
    await db.connect()
    try:
        await db.migrate()
        from tortoise import connections

        from gateway.core.db.models import SpendLog

        conn = connections.get("default")
        executor = conn.executor_class(model=SpendLog, db=conn)
        fields = [SpendLog._meta.fields_map[name] for name in executor.regular_columns]
        plan = log_rows.row_values(conn, SpendLog)
        assert plan.insert_query == executor.insert_query
        for odd in ODD:
            row = SpendRow(**{**BASE, **odd})
            cols = log_rows.columns(row)
            theirs = converted(lambda: [f.to_db_value(cols[f.model_field_name], SpendLog) for f in fields])
            assert converted(lambda: plan.values(cols)) == theirs, odd
    finally:
        await db.close()


@pytest.mark.parametrize("count", [1, 99, 100, 437])
def test_every_row_of_a_batch_lands_as_given(database_url, count):
    """However many rows a flush holds (SQLite takes them as multi-row INSERTs of a few sizes,
    PostgreSQL as one executemany), each lands once, in order, with its own values."""
    asyncio.run(write_and_read(database_url(), count))


async def write_and_read(url: str, count: int) -> None:
    db = Database(url)
    await db.connect()
    try:
        await db.migrate()
        from tortoise.transactions import in_transaction

        from gateway.core.db.models import SpendLog

        rows = [SpendRow(**{**BASE, "request_id": f"req-{n}", "prompt_tokens": n, "metadata": {"n": n},
                            "request_tags": [f"t{n}"]}) for n in range(count)]
        async with in_transaction() as conn:
            await log_rows.insert_logs(conn, rows)
        stored = await SpendLog.all().order_by("id").values_list("request_id", "prompt_tokens", "metadata",
                                                                  "request_tags", "start_time")
        assert stored == [(f"req-{n}", n, {"n": n}, [f"t{n}"], NOW) for n in range(count)]
    finally:
        await db.close()


def test_sqlite_statements_come_in_few_sizes():
    assert log_rows._statement_sizes(437, 100) == [100, 100, 100, 100, 32, 4, 1]
    sizes = {s for n in range(1, 1001) for s in log_rows._statement_sizes(n, 100)}
    assert sizes == {100, 64, 32, 16, 8, 4, 2, 1}
