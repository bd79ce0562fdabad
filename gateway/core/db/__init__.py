"""The database: tortoise-orm on SQLite (default, a file, nothing to install) or PostgreSQL.

Schema changes go through migrations (`gateway migrate`). The default SQLite database is migrated
on start; a PostgreSQL database whose schema is older than the code is refused, naming the fix.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tortoise import Tortoise, connections
from tortoise.migrations.executor import MigrationExecutor

log = logging.getLogger("gateway.db")

APP = "gateway"
DEFAULT_SQLITE = "sqlite://gateway.db"


class SchemaOutdatedError(RuntimeError):
    """The database schema is older than the code; `gateway migrate` fixes it."""


def normalise_url(url: str | None) -> str:
    """tortoise's scheme names: `postgresql://` -> `postgres://`; none -> the SQLite default."""
    if not url:
        return DEFAULT_SQLITE
    for alias in ("postgresql+asyncpg://", "postgresql://", "postgres+asyncpg://"):
        if url.startswith(alias):
            return "postgres://" + url[len(alias):]
    if url.startswith("sqlite:///") or url.startswith("sqlite://"):
        return url
    if url.startswith("postgres://"):
        return url
    raise ValueError(f"database_url: unsupported scheme in {redact_url(url)!r} (use sqlite:// or postgresql://)")


def redact_url(url: str) -> str:
    """The URL without its password, for logs and errors."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


class Database:
    """One database connection for the process, with its migrations."""

    def __init__(self, url: str | None) -> None:
        self.url = normalise_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        self.apps = {APP: {"models": ["gateway.core.db.models"], "migrations": "gateway.core.db.migrations",
                           "default_connection": "default"}}
        self.config: dict[str, Any] = {"connections": {"default": self.url}, "apps": self.apps,
                                       "use_tz": True, "timezone": "UTC"}
        self.connected = False

    @property
    def display_url(self) -> str:
        return redact_url(self.url)

    async def connect(self) -> None:
        if self.is_sqlite:
            path = self.url.split("://", 1)[1]
            if path and path != ":memory:":
                Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        await Tortoise.init(config=self.config, _enable_global_fallback=True)
        self.connected = True

    async def pending_migrations(self) -> list[str]:
        executor = MigrationExecutor(connections.get("default"), self.apps)
        await executor.recorder.ensure_schema(executor._schema_editor(atomic=False))
        return [f"{s.migration.app_label}.{s.migration.name}" for s in await executor.plan() if not s.backward]

    async def migrate(self) -> list[str]:
        """Apply every pending migration; returns their names."""
        pending = await self.pending_migrations()
        if pending:
            executor = MigrationExecutor(connections.get("default"), self.apps)
            await executor.migrate()
            log.info("database %s migrated: %s", self.display_url, ", ".join(pending))
        return pending

    async def ensure_current(self) -> None:
        """Serve only on a schema as new as the code (SQLite: migrate it now)."""
        if self.is_sqlite:
            await self.migrate()
            return
        pending = await self.pending_migrations()
        if pending:
            raise SchemaOutdatedError(
                f"the database schema at {self.display_url} is older than the code "
                f"(pending migrations: {', '.join(pending)}); run: gateway migrate"
            )

    async def ping(self) -> None:
        await connections.get("default").execute_query("SELECT 1")

    async def close(self) -> None:
        if self.connected:
            await Tortoise.close_connections()
            self.connected = False
