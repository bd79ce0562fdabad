"""Databases for tests: fresh PostgreSQL databases on a server named by
`GATEWAY_TEST_DATABASE_URL` (testing.py's `database_url` fixture), and the migration a fresh one needs.
"""

from __future__ import annotations

import asyncio
from typing import Any


class PostgresDatabases:
    """Fresh PostgreSQL databases for tests, migrated, dropped at the end.

    Set `GATEWAY_TEST_DATABASE_URL=postgresql://user@host:port/db` to run database tests on
    PostgreSQL (the URL names the server; each server under test gets a database of its own).
    """

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.created: list[str] = []

    async def _admin(self) -> Any:
        import asyncpg

        return await asyncpg.connect(self.server_url.replace("postgres://", "postgresql://", 1), timeout=5)

    def create(self) -> str:
        import uuid
        from urllib.parse import urlsplit

        name = f"gateway_test_{uuid.uuid4().hex[:12]}"

        async def make() -> None:
            conn = await self._admin()
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
            finally:
                await conn.close()

        asyncio.run(make())
        self.created.append(name)
        parts = urlsplit(self.server_url)
        return parts._replace(path=f"/{name}").geturl()

    async def _admin_check(self) -> None:
        conn = await self._admin()
        await conn.close()

    def drop_all(self) -> None:
        async def drop() -> None:
            conn = await self._admin()
            try:
                for name in self.created:
                    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()

        if self.created:
            asyncio.run(drop())
            self.created.clear()


def migrate_database(url: str) -> None:
    """What `gateway migrate` does, in-process (a fresh PostgreSQL database needs it first)."""
    from gateway.core.db import Database

    async def run() -> None:
        db = Database(url)
        await db.connect()
        try:
            await db.migrate()
        finally:
            await db.close()

    asyncio.run(run())
