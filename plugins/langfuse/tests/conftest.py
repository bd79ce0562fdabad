"""A Langfuse-like ingestion server on loopback (aiohttp, in a thread of its own), for the tests.

It speaks what Langfuse's public ingestion API speaks: `POST /api/public/ingestion` with Basic
auth (public key : secret key), a body `{"batch": [event, ...]}` of envelopes `{id, timestamp,
type, body}`, answered `207` with `{"successes": [{id, status: 201}], "errors": [{id, status,
message}]}`; a wrong key is `401`. Like Langfuse it deduplicates events by their envelope id.
It can fail the next N requests (500, 429 with Retry-After), or the next N events inside a 207.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass

import pytest
from aiohttp import web

PUBLIC_KEY = "pk-lf-test-1234"
SECRET_KEY = "sk-lf-SECRET-5678"
EVENT_TYPES = {"trace-create", "generation-create", "span-create", "event-create", "score-create",
               "generation-update", "span-update", "sdk-log"}


@dataclass
class Request:
    path: str
    authorization: str | None
    body: dict | None
    status: int


class LangfuseServer:
    public_key = PUBLIC_KEY
    secret_key = SECRET_KEY

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.events: dict[str, dict] = {}  # accepted, by envelope id (Langfuse's deduplication)
        self.failures: deque[tuple[int, dict[str, str]]] = deque()
        self.event_failures: deque[int] = deque()
        self._cond = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="langfuse", daemon=True)
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    async def _start(self) -> int:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    @property
    def host(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fail(self, status: int = 500, times: int = 1, retry_after: str | None = None) -> None:
        for _ in range(times):
            self.failures.append((status, {"Retry-After": retry_after} if retry_after is not None else {}))

    def fail_events(self, status: int = 500, times: int = 1) -> None:
        """The next `times` events get this status in the 207 reply (and are not stored)."""
        self.event_failures.extend([status] * times)

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        auth = request.headers.get("Authorization")
        expected = "Basic " + base64.b64encode(f"{PUBLIC_KEY}:{SECRET_KEY}".encode()).decode()
        reply: web.Response
        if request.path != "/api/public/ingestion":
            reply = web.json_response({"message": "not found"}, status=404)
        elif self.failures:
            status, headers = self.failures.popleft()
            reply = web.json_response({"message": "ingestion unavailable"}, status=status, headers=headers)
        elif auth != expected:
            reply = web.json_response({"message": "Invalid credentials. Confirm that you've configured the "
                                                  "correct host."}, status=401)
        elif not isinstance(body, dict) or not isinstance(body.get("batch"), list):
            reply = web.json_response({"message": "Invalid request data"}, status=400)
        else:
            successes, errors = [], []
            for event in body["batch"]:
                ok = (isinstance(event, dict) and isinstance(event.get("id"), str) and event.get("type") in EVENT_TYPES
                      and isinstance(event.get("timestamp"), str) and isinstance(event.get("body"), dict))
                ident = event.get("id") if isinstance(event, dict) else None
                if not ok:
                    errors.append({"id": ident or "", "status": 400, "message": "Invalid request data"})
                elif self.event_failures:
                    errors.append({"id": ident, "status": self.event_failures.popleft(), "message": "ingestion error"})
                else:
                    with self._cond:
                        self.events.setdefault(ident, event)
                    successes.append({"id": ident, "status": 201})
            reply = web.json_response({"successes": successes, "errors": errors}, status=207)
        with self._cond:
            self.requests.append(Request(request.path, auth, body, reply.status))
            self._cond.notify_all()
        return reply

    def of_type(self, kind: str) -> list[dict]:
        with self._cond:
            return [e for e in self.events.values() if e["type"] == kind]

    def wait_for(self, kind: str, count: int, timeout: float = 10.0) -> list[dict]:
        """Wait until `count` events of `kind` were accepted; returns their bodies, in arrival order."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while sum(e["type"] == kind for e in self.events.values()) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
        return [e["body"] for e in self.of_type(kind)]

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture
def langfuse():
    server = LangfuseServer()
    yield server
    server.stop()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on: connections to it are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
