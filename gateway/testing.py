"""pytest plugin for plugin authors (and the core's own tests): real servers on loopback.

Fixtures:
- `fake_upstream`: an HTTP server speaking the OpenAI wire format (JSON and SSE), programmable to
  fail, stall or break a stream, recording every request it receives.
- `gateway_server`: a factory that starts a real gateway (hypercorn, in a thread) from a config
  dict and returns a handle with its URL and an `openai` client.

Loaded through the `pytest11` entry point, so installing `gateway` is enough.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from gateway.fake_upstream import FakeUpstream, LoopThread, RecordedRequest

__all__ = ["MASTER_KEY", "FakeUpstream", "GatewayServer", "PostgresDatabases", "RecordedRequest",
           "migrate_database"]

MASTER_KEY = "sk-1234"


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


class GatewayServer:
    """A real gateway served by hypercorn in a background thread, on a free loopback port."""

    def __init__(self, config_path: Path, master_key: str | None = MASTER_KEY) -> None:
        self.config_path = config_path
        self.master_key = master_key
        self.port = 0
        self.app: Any = None
        self._clients: list[Any] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def gateway(self) -> Any:
        """The running `Gateway` object (settings, router, dispatcher) for white-box checks."""
        return self.app.gateway

    def client(self, api_key: str | None = None, **kwargs: Any) -> Any:
        """An official `openai.OpenAI` client pointed at this gateway."""
        import openai

        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("timeout", 30)
        client = openai.OpenAI(api_key=api_key or self.master_key or "sk-none", base_url=self.url + "/v1", **kwargs)
        self._clients.append(client)  # closed by stop(), so no socket outlives the test
        return client

    def async_client(self, api_key: str | None = None, **kwargs: Any) -> Any:
        import openai

        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("timeout", 30)
        return openai.AsyncOpenAI(api_key=api_key or self.master_key or "sk-none", base_url=self.url + "/v1", **kwargs)

    def start(self) -> "GatewayServer":
        from hypercorn.asyncio.run import worker_serve
        from hypercorn.config import Config
        from hypercorn.utils import wrap_app

        from gateway.core.app import create_app, load

        self.app = create_app(load(str(self.config_path)))
        config = Config()
        config.bind = ["127.0.0.1:0"]
        config.accesslog = None
        config.graceful_timeout = 5
        sockets = config.create_sockets()
        self.port = sockets.insecure_sockets[0].getsockname()[1]
        self._thread = LoopThread("gateway-server")
        self._stop = asyncio.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None

        async def run() -> None:
            try:
                await worker_serve(wrap_app(self.app, config.wsgi_max_body_size, None), config,
                                   sockets=sockets, shutdown_trigger=self._stop.wait)
            except BaseException as exc:  # surfaced by start()/stop()
                self._error = exc
                self._ready.set()

        self._future = asyncio.run_coroutine_threadsafe(run(), self._thread.loop)
        try:
            self._wait_ready()
        except BaseException:
            self._abandon(sockets)
            raise
        return self

    def _abandon(self, sockets: Any) -> None:
        """A server that failed to start: stop its loop and close its sockets, leaking nothing."""
        self._thread.loop.call_soon_threadsafe(self._stop.set)
        try:
            self._future.result(10)
        except BaseException:
            pass
        self._thread.close()
        for sock in sockets.insecure_sockets:
            sock.close()
        self.app = None

    def _wait_ready(self) -> None:
        import urllib.request

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._error is not None:
                raise RuntimeError(f"gateway failed to start: {self._error}") from self._error
            try:
                with urllib.request.urlopen(self.url + "/health/liveliness", timeout=1):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("gateway did not become ready within 20 s")

    def stop(self) -> None:
        for client in self._clients:
            client.close()
        self._clients.clear()
        if self.app is None:
            return
        self._thread.loop.call_soon_threadsafe(self._stop.set)
        try:
            self._future.result(30)
        finally:
            self._thread.close()
            self.app = None


@pytest.fixture
def fake_upstream():
    """A running OpenAI-compatible upstream; see `FakeUpstream`."""
    upstream = FakeUpstream().start()
    yield upstream
    upstream.stop()


@pytest.fixture(scope="session")
def postgres_databases():
    """Fresh PostgreSQL databases when `GATEWAY_TEST_DATABASE_URL` is set; None otherwise.

    An unreachable server skips the database tests with the reason, unless
    `GATEWAY_TEST_REQUIRE_DATABASE=1`, which makes it a failure (CI sets it).
    """
    import os

    url = os.environ.get("GATEWAY_TEST_DATABASE_URL")
    if not url:
        yield None
        return
    pg = PostgresDatabases(url)
    try:
        asyncio.run(pg._admin_check())
    except Exception as exc:
        message = f"PostgreSQL at {url} is not reachable: {type(exc).__name__}: {exc}"
        if os.environ.get("GATEWAY_TEST_REQUIRE_DATABASE") == "1":
            pytest.fail(message)
        pytest.skip(message)
    yield pg
    pg.drop_all()


@pytest.fixture
def database_url(tmp_path: Path, postgres_databases: Any) -> Callable[[], str]:
    """Factory: a new, migrated database URL (PostgreSQL when configured, else an SQLite file)."""
    count = [0]

    def make() -> str:
        count[0] += 1
        if postgres_databases is None:
            return f"sqlite://{tmp_path / f'db-{count[0]}.sqlite3'}"
        url = postgres_databases.create()
        migrate_database(url)
        return url

    return make


@pytest.fixture
def gateway_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: Callable[[], str]) -> Callable[..., GatewayServer]:
    """Factory: `gateway_server(config_dict, env={...})` starts a gateway and returns its handle.

    `general_settings.master_key` defaults to `sk-1234` unless the config sets one (None: dev mode).
    Servers are stopped at the end of the test (a graceful shutdown, so shutdown hooks run).
    """
    import yaml

    started: list[GatewayServer] = []

    def start(config: dict[str, Any], env: dict[str, str] | None = None) -> GatewayServer:
        config = dict(config)
        general = dict(config.get("general_settings") or {})
        general.setdefault("master_key", MASTER_KEY)
        if general["master_key"] is None:
            del general["master_key"]
        config["general_settings"] = general
        env = dict(env or {})
        if "database_url" not in general and "DATABASE_URL" not in env:  # a fresh database per server
            env["DATABASE_URL"] = database_url()
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        path = tmp_path / f"gateway-{len(started)}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        server = GatewayServer(path, general.get("master_key"))
        server.start()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()
