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
import hashlib
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

MASTER_KEY = "sk-1234"


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any


@dataclass
class Failure:
    status: int
    message: str
    type: str


class _LoopThread:
    """An event loop in a daemon thread, for servers that must outlive one test's loop."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclass
class FakeUpstream:
    """An OpenAI-compatible upstream on 127.0.0.1. Program it, then point a deployment at `url`.

    - `fail_next(status, times)`: the next calls answer with an OpenAI error body.
    - `delay`: seconds to wait before answering (for timeouts).
    - `break_stream_after`: close the connection after N streamed chunks.
    - `stream_usage`: False to never send usage in streams (like some vLLM builds).
    - `reply`: a fixed reply text (default: an echo of the last message).
    """

    delay: float = 0.0
    break_stream_after: int | None = None
    stream_usage: bool = True
    reply: str | None = None
    requests: list[RecordedRequest] = field(default_factory=list)
    failures: deque[Failure] = field(default_factory=deque)
    port: int = 0

    @property
    def url(self) -> str:
        """The base URL to use as a deployment's `api_base` (OpenAI style, with /v1)."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fail_next(self, status: int = 500, times: int = 1, message: str = "upstream exploded",
                  type: str = "server_error") -> None:
        for _ in range(times):
            self.failures.append(Failure(status, message, type))

    # -- the server --------------------------------------------------------------------------
    def start(self) -> "FakeUpstream":
        from aiohttp import web

        self._thread = _LoopThread("fake-upstream")
        app = web.Application()
        for prefix in ("/v1", "", "/openai/deployments/{deployment}"):
            app.router.add_post(f"{prefix}/chat/completions", self._handle)
            app.router.add_post(f"{prefix}/completions", self._handle)
            app.router.add_post(f"{prefix}/embeddings", self._handle)
        app.router.add_get("/v1/models", self._models)

        async def boot() -> int:
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            return self._runner.addresses[0][1]

        self.port = self._thread.run(boot())
        return self

    def stop(self) -> None:
        if hasattr(self, "_runner"):
            self._thread.run(self._runner.cleanup())
            self._thread.close()

    async def _models(self, request: Any) -> Any:
        from aiohttp import web

        return web.json_response({"object": "list", "data": [{"id": "upstream-model", "object": "model"}]})

    def _text_for(self, body: dict[str, Any]) -> str:
        if self.reply is not None:
            return self.reply
        last = ""
        for m in body.get("messages") or ():
            if isinstance(m.get("content"), str):
                last = m["content"]
        if isinstance(body.get("prompt"), str):
            last = body["prompt"]
        return f"upstream says: {last}"

    async def _handle(self, request: Any) -> Any:
        from aiohttp import web

        try:
            body = await request.json()
        except ValueError:
            body = None
        self.requests.append(RecordedRequest(request.method, request.path, dict(request.query),
                                             dict(request.headers), body))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.failures:
            f = self.failures.popleft()
            return web.json_response({"error": {"message": f.message, "type": f.type, "param": None,
                                                "code": None}}, status=f.status)
        if not isinstance(body, dict):
            return web.json_response({"error": {"message": "invalid JSON", "type": "invalid_request_error"}}, status=400)
        model = body.get("model", "unknown")
        path = request.path
        if path.endswith("/embeddings"):
            inputs = body.get("input")
            items = [inputs] if isinstance(inputs, str) else list(inputs or [])
            data = [{"object": "embedding", "index": i,
                     "embedding": [b / 255 for b in hashlib.sha256(str(t).encode()).digest()[:4]]}
                    for i, t in enumerate(items)]
            tokens = sum(len(str(t).split()) for t in items)
            return web.json_response({"object": "list", "data": data, "model": model,
                                      "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})
        chat = path.endswith("/chat/completions")
        text = self._text_for(body)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body.get("messages") or ()) or \
            len(str(body.get("prompt", "")).split())
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(text.split()),
                 "total_tokens": prompt_tokens + len(text.split())}
        ident = ("chatcmpl-" if chat else "cmpl-") + hashlib.sha256(repr(time.time_ns()).encode()).hexdigest()[:20]
        created = int(time.time())
        if not body.get("stream"):
            if chat:
                choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                out = {"id": ident, "object": "chat.completion", "created": created, "model": model,
                       "choices": [choice], "usage": usage}
            else:
                out = {"id": ident, "object": "text_completion", "created": created, "model": model,
                       "choices": [{"index": 0, "text": text, "finish_reason": "stop"}], "usage": usage}
            return web.json_response(out)
        return await self._stream(request, body, chat, ident, created, model, text, usage)

    async def _stream(self, request: Any, body: dict[str, Any], chat: bool, ident: str, created: int,
                      model: str, text: str, usage: dict[str, Any]) -> Any:
        import json

        from aiohttp import web

        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        obj = "chat.completion.chunk" if chat else "text_completion"
        words = text.split(" ")
        for i, word in enumerate(words):
            if self.break_stream_after is not None and i >= self.break_stream_after:
                request.transport.close()  # the upstream dies mid-stream
                return resp
            piece = word if i == 0 else " " + word
            choice = ({"index": 0, "delta": {"content": piece}, "finish_reason": None} if chat
                      else {"index": 0, "text": piece, "finish_reason": None})
            await resp.write(b"data: " + json.dumps({"id": ident, "object": obj, "created": created,
                                                     "model": model, "choices": [choice]}).encode() + b"\n\n")
        last = ({"index": 0, "delta": {}, "finish_reason": "stop"} if chat
                else {"index": 0, "text": "", "finish_reason": "stop"})
        await resp.write(b"data: " + json.dumps({"id": ident, "object": obj, "created": created, "model": model,
                                                 "choices": [last]}).encode() + b"\n\n")
        if self.stream_usage and (body.get("stream_options") or {}).get("include_usage"):
            await resp.write(b"data: " + json.dumps({"id": ident, "object": obj, "created": created,
                                                     "model": model, "choices": [], "usage": usage}).encode() + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp


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
        self._thread = _LoopThread("gateway-server")
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
