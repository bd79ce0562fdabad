"""Migration 0007 on a database that already holds spend: the per-key tag totals a non-admin key's
`/spend/tags` reads are filled from the logs already written (SQLite, and PostgreSQL when
configured: the suite runs again there with GATEWAY_TEST_DATABASE_URL set)."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timezone

import pytest

pytestmark = pytest.mark.db


def test_migration_0007_fills_per_key_tag_totals_from_the_logs(tmp_path, postgres_databases):
    from tortoise import connections
    from tortoise.migrations.executor import MigrationExecutor, MigrationTarget

    from gateway.core.db import Database

    url = postgres_databases.create() if postgres_databases is not None else f"sqlite://{tmp_path / 'old.sqlite3'}"

    async def run() -> None:
        db = Database(url)
        await db.connect()
        try:
            conn = connections.get("default")
            await MigrationExecutor(conn, db.apps).migrate([MigrationTarget("gateway", "0006_budgets")])
            from gateway.core.db.models import SpendKeyTagDaily, SpendLog

            def row(key: str | None, tags: list[str], spend: float, day: int) -> SpendLog:
                at = datetime(2026, 11, day, 23, 30, tzinfo=timezone.utc)
                return SpendLog(request_id=f"r{key}{day}{spend}", call_type="acompletion", api_key=key, spend=spend,
                                start_time=at, end_time=at, model="m", request_tags=tags, status="success")

            await SpendLog.bulk_create([row("k1", ["a", "b"], 1.0, 1), row("k1", ["a"], 2.0, 1),
                                        row("k1", ["a"], 4.0, 2), row("k2", ["a"], 8.0, 1), row(None, ["a"], 16.0, 1)])
            assert (await db.migrate())[0] == "gateway.0007_management"
            got = sorted((r.day, r.api_key, r.tag, r.log_count, r.total_spend) for r in await SpendKeyTagDaily.all())
            assert got == [(date(2026, 11, 1), "k1", "a", 2, 3.0), (date(2026, 11, 1), "k1", "b", 1, 1.0),
                           (date(2026, 11, 1), "k2", "a", 1, 8.0), (date(2026, 11, 2), "k1", "a", 1, 4.0)]
        finally:
            await db.close()

    asyncio.run(run())
