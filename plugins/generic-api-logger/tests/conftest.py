"""A real HTTP log receiver on loopback (aiohttp, in a thread of its own), for the tests.

It records every POST (headers, raw body, parsed records, the status it answered), can fail the
next N requests (500, 429 with Retry-After) to show retries, and can be slow.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass

import pytest
from aiohttp import web


@dataclass
class Post:
    path: str
    query: str
    headers: dict[str, str]
    raw: bytes
    status: int

    @property
    def records(self) -> list[dict]:
        """The records of an accepted POST, whatever its format (array, ndjson, single object)."""
        text = self.raw.decode()
        try:
            data = json.loads(text)
        except ValueError:
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        return data if isinstance(data, list) else [data]


class LogReceiver:
    def __init__(self) -> None:
        self.posts: list[Post] = []
        self.failures: deque[tuple[int, dict[str, str]]] = deque()
        self.delay = 0.0
        self._cond = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="log-receiver", daemon=True)
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    async def _start(self) -> int:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ingest/logs?token=QUERY-SECRET"

    def fail(self, status: int = 500, times: int = 1, retry_after: str | None = None) -> None:
        for _ in range(times):
            self.failures.append((status, {"Retry-After": retry_after} if retry_after is not None else {}))

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if self.delay:
            await asyncio.sleep(self.delay)
        status, answer = self.failures.popleft() if self.failures else (200, {})
        with self._cond:
            headers = {k.lower(): v for k, v in request.headers.items()}  # names in lower case
            self.posts.append(Post(request.path, request.query_string, headers, raw, status))
            self._cond.notify_all()
        return web.Response(status=status, text="ok" if status == 200 else "receiver says no", headers=answer)

    @property
    def accepted(self) -> list[Post]:
        with self._cond:
            return [p for p in self.posts if p.status == 200]

    @property
    def records(self) -> list[dict]:
        return [r for p in self.accepted for r in p.records]

    def wait_for_records(self, count: int, timeout: float = 10.0) -> list[dict]:
        """Wait until accepted POSTs hold `count` records; returns them all."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while sum(len(p.records) for p in self.posts if p.status == 200) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
        return self.records

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture
def receiver():
    server = LogReceiver()
    yield server
    server.stop()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on: connections to it are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
