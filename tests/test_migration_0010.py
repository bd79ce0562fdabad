"""Migration 0010 on a database that already holds spend: each log's tags get their rows in
`spend_log_tags` (the request logs' tag filter reads them), with the log's id, time and key, and
the single-column indexes the new (column, time, id) ones make redundant are dropped
(SQLite, and PostgreSQL when configured: the suite runs again there with GATEWAY_TEST_DATABASE_URL set)."""

from __future__ import annotations

import asyncio
from importlib import import_module
from datetime import datetime, timezone

import pytest

pytestmark = pytest.mark.db


def test_migration_0010_fills_the_tag_rows_from_the_logs(tmp_path, postgres_databases):
    from tortoise import connections
    from tortoise.migrations.executor import MigrationExecutor, MigrationTarget

    from gateway.core.db import Database

    SUPERSEDED = import_module("gateway.core.db.migrations.0010_spend_log_lists").SUPERSEDED

    url = postgres_databases.create() if postgres_databases is not None else f"sqlite://{tmp_path / 'old.sqlite3'}"

    async def run() -> None:
        db = Database(url)
        await db.connect()
        try:
            conn = connections.get("default")
            await MigrationExecutor(conn, db.apps).migrate([MigrationTarget("gateway", "0009_ui_sessions")])
            from gateway.core.db.models import SpendLog, SpendLogTag

            def row(n: int, key: str | None, tags: list[str]) -> SpendLog:
                at = datetime(2026, 11, 1, 12, n, tzinfo=timezone.utc)
                return SpendLog(request_id=f"r{n}", call_type="acompletion", api_key=key, start_time=at, end_time=at,
                                model="m", request_tags=tags, status="success")

            await SpendLog.bulk_create([row(1, "k1", ["a", "b"]), row(2, None, ["a"]), row(3, "k2", [])])
            assert "gateway.0010_spend_log_lists" in await db.migrate()
            ids = {log.request_id: log.id for log in await SpendLog.all()}
            got = sorted((t.log_id, t.tag, t.start_time.minute, t.api_key) for t in await SpendLogTag.all())
            assert got == sorted([(ids["r1"], "a", 1, "k1"), (ids["r1"], "b", 1, "k1"), (ids["r2"], "a", 2, None)])
            # The single-column indexes the new ones make redundant are gone (each cost every write).
            if url.startswith("sqlite"):
                names = [r["name"] for r in await conn.execute_query_dict(
                    "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'spend_logs'")]
            else:
                names = [r["indexname"] for r in await conn.execute_query_dict(
                    "SELECT indexname FROM pg_indexes WHERE tablename = 'spend_logs'")]
            assert not set(SUPERSEDED.values()) & set(names), names
            assert len([n for n in names if n.startswith("idx_spend_logs_")]) == 9, names
        finally:
            await db.close()

    asyncio.run(run())
