"""The database: tortoise-orm on SQLite (default, a file, nothing to install) or PostgreSQL.

Schema changes go through migrations (`gateway migrate`). The default SQLite database is migrated
on start; a PostgreSQL database whose schema is older than the code is refused, naming the fix.

Every wait on the database is bounded (`Timeouts`): a server that accepts connections and never
answers costs a request at most the query timeout, and the client gets a 503 `service_unavailable`
(`Database.unavailable` decides which errors mean that), never a 500 or a hang.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, TypeVar
from urllib.parse import urlsplit

from tortoise import Tortoise, connections
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.exceptions import DBConnectionError
from tortoise.migrations.executor import MigrationExecutor

from gateway.errors import ServiceUnavailableError

log = logging.getLogger("gateway.db")
T = TypeVar("T")

APP = "gateway"
DEFAULT_SQLITE = "sqlite://gateway.db"
#: Modules whose frames mark an error as the database's (see `Database.unavailable`).
DB_MODULES = ("tortoise.", "asyncpg", "aiosqlite", "sqlite3", "gateway.core.db")
#: SQLSTATE classes of a server that cannot serve: connection exception, insufficient resources,
#: operator intervention (shutting down, cannot connect now).
UNAVAILABLE_SQLSTATES = ("08", "53", "57")
OUTAGE_LOG_INTERVAL_S = 10.0
DEFAULT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Timeouts:
    """How long the gateway waits on its database. `query_s=None` (tools such as `gateway
    migrate`, whose statements may rightly run long) leaves statements unbounded."""

    connect_s: float = DEFAULT_TIMEOUT_S
    query_s: float | None = DEFAULT_TIMEOUT_S
    pool_limit: int = 10

    @classmethod
    def from_settings(cls, general: dict[str, Any]) -> "Timeouts":
        """From `general_settings`: `database_connection_timeout` (LiteLLM's name),
        `database_query_timeout_s`, `database_connection_pool_limit` (LiteLLM's name)."""

        def number(key: str, default: float, kind: type = float) -> Any:
            value = general.get(key)
            if value is None:
                return default
            try:
                parsed = kind(value)
            except (TypeError, ValueError, OverflowError):
                parsed = 0
            if isinstance(value, bool) or not 0 < parsed < float("inf"):  # NaN fails too
                raise ValueError(f"general_settings.{key}: expected a number > 0, got {value!r}")
            return parsed

        return cls(connect_s=number("database_connection_timeout", cls.connect_s),
                   query_s=number("database_query_timeout_s", DEFAULT_TIMEOUT_S),
                   pool_limit=number("database_connection_pool_limit", cls.pool_limit, int))


def _outage_reason(exc: BaseException, from_db: bool = False) -> str | None:
    """The name of the error in `exc`'s chain that says the database is away, if one does and it
    was raised by the database stack (so an upstream's timeout is never called the database's)."""
    reason = None
    seen: BaseException | None = exc
    for _ in range(16):
        if seen is None:
            break
        tb = seen.__traceback__
        while tb is not None and not from_db:
            from_db = tb.tb_frame.f_globals.get("__name__", "").startswith(DB_MODULES)
            tb = tb.tb_next
        state = getattr(seen, "sqlstate", None)
        if reason is None and (
            isinstance(seen, (TimeoutError, OSError, DBConnectionError))
            or (isinstance(state, str) and state[:2] in UNAVAILABLE_SQLSTATES)
            or (isinstance(seen, sqlite3.OperationalError) and "locked" in str(seen))
        ):
            reason = "TimeoutError" if isinstance(seen, TimeoutError) else type(seen).__name__
        seen = seen.__cause__ or seen.__context__
    return reason if from_db else None


def _retrieve(task: asyncio.Future[Any]) -> None:
    """An abandoned operation's outcome, read so that asyncio does not report it as lost."""
    if not task.cancelled():
        task.exception()


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


def _connection(url: str, timeouts: Timeouts) -> dict[str, Any]:
    """tortoise's connection config for `url`, with the waits bounded: asyncpg's connect timeout,
    `command_timeout` (per statement, and for the cancel of a statement that overran) and pool size;
    SQLite's busy timeout (how long a write waits for another process's lock)."""
    config = expand_db_url(url)
    credentials = config["credentials"]
    if url.startswith("sqlite"):
        if timeouts.query_s is not None:
            credentials["busy_timeout"] = int(timeouts.query_s * 1000)
    else:
        credentials["timeout"] = timeouts.connect_s
        credentials.setdefault("maxsize", timeouts.pool_limit)  # `?maxsize=` in the URL wins
        if timeouts.query_s is not None:
            credentials["command_timeout"] = timeouts.query_s
    return config


class Database:
    """One database connection for the process, with its migrations."""

    def __init__(self, url: str | None, timeouts: Timeouts | None = None) -> None:
        self.url = normalise_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        self.timeouts = timeouts or Timeouts(query_s=None)
        self.apps = {APP: {"models": ["gateway.core.db.models"], "migrations": "gateway.core.db.migrations",
                           "default_connection": "default"}}
        self.config: dict[str, Any] = {"connections": {"default": _connection(self.url, self.timeouts)},
                                       "apps": self.apps, "use_tz": True, "timezone": "UTC"}
        self.connected = False
        self._outage_logged = 0.0
        self._outage_count = 0

    @property
    def deadline_s(self) -> float:
        """The longest a request waits on the database in all (a connection, the query, its
        clean-up): the query timeout, or the connect timeout when statements are unbounded."""
        return self.timeouts.query_s or self.timeouts.connect_s

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
            # Said first: a migration that indexes a big spend log takes a while (0010: ~45 s at 1M rows on SQLite).
            log.info("database %s: applying %s", self.display_url, ", ".join(pending))
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
        await self.bounded(connections.get("default").execute_query("SELECT 1"))

    async def bounded(self, operation: Awaitable[T]) -> T:
        """Wait for a database operation at most `deadline_s`, then raise TimeoutError. Past the
        deadline the operation is cancelled but not waited for: a driver's clean-up after a timeout
        (asyncpg's cancel request) can itself wait on the unanswering server."""
        task = asyncio.ensure_future(operation)
        try:
            done, _ = await asyncio.wait((task,), timeout=self.deadline_s)
        except asyncio.CancelledError:
            task.cancel()
            task.add_done_callback(_retrieve)
            raise
        if not done:
            task.cancel()
            task.add_done_callback(_retrieve)
            raise TimeoutError(f"no answer from the database within {self.deadline_s:g} s")
        return task.result()

    def unavailable(self, exc: BaseException, from_db: bool = False) -> ServiceUnavailableError | None:
        """The 503 for an error that means the database did not answer (a timeout, a connection
        refused or lost, a server shutting down or out of connections, SQLite locked by another
        process); None for anything else (a bug, bad data). Logs one WARNING per 10 s at most.
        `from_db`: the caller awaited nothing but the database (else the traceback must show it)."""
        reason = _outage_reason(exc, from_db)
        if reason is None:
            return None
        now = time.monotonic()
        self._outage_count += 1
        if now - self._outage_logged >= OUTAGE_LOG_INTERVAL_S:
            log.warning("database unavailable (%s): %d request(s) answered 503 since the last report",
                        reason, self._outage_count)
            self._outage_logged, self._outage_count = now, 0
        if reason == "TimeoutError":
            reason = f"no answer within {self.deadline_s:g} s"
        return ServiceUnavailableError(f"Service unavailable: the database did not answer ({reason}). "
                                       "Try again later.")

    async def close(self) -> None:
        if self.connected:
            await Tortoise.close_connections()
            self.connected = False
