"""A real Slack-style webhook receiver on loopback, for the tests.

It speaks what Slack's incoming webhooks speak: `POST {"text": ...}` answered `200 ok`, errors as
plain strings. It records every attempt, and can be told to fail (500, 429 with Retry-After, 404
`no_service`) or to be slow.
"""

from __future__ import annotations

import json
import secrets
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Attempt:
    path: str
    body: dict | None
    status: int
    at: float  # time.monotonic() when it arrived


class WebhookReceiver:
    def __init__(self) -> None:
        self.token = secrets.token_urlsafe(18)  # the secret part of the URL
        self.attempts: list[Attempt] = []
        self.failures: deque[tuple[int, str, dict[str, str]]] = deque()
        self.always_fail: int | None = None
        self.delay = 0.0
        self._cond = threading.Condition()
        self._closing = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = False  # joined at stop: no socket outlives the test
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook", daemon=True)
        self._thread.start()

    @property
    def path(self) -> str:
        return f"/services/T0TEST/B0TEST/{self.token}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.path}"

    def fail(self, status: int = 500, times: int = 1, body: str = "internal_error",
             retry_after: str | None = None) -> None:
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        for _ in range(times):
            self.failures.append((status, body, headers))

    @property
    def texts(self) -> list[str]:
        """The text of every post that was accepted (200 ok)."""
        with self._cond:
            return [a.body["text"] for a in self.attempts if a.status == 200]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[str]:
        """Wait until `count` posts were accepted; returns all accepted texts."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while sum(a.status == 200 for a in self.attempts) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
        return self.texts

    def wait_for_attempts(self, count: int, timeout: float = 10.0) -> list[Attempt]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.attempts) < count and time.monotonic() < deadline:
                self._cond.wait(max(0.0, deadline - time.monotonic()))
            return list(self.attempts)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _answer(self, status: int, body: str, headers: dict[str, str] | None = None) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("content-type", "text/html")
                self.send_header("content-length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                arrived = time.monotonic()
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                if receiver.delay:
                    receiver._closing.wait(receiver.delay)
                if self.path != receiver.path:
                    status, text, headers = 404, "no_service", {}
                elif receiver.failures:
                    status, text, headers = receiver.failures.popleft()
                elif receiver.always_fail is not None:
                    status, text, headers = receiver.always_fail, "internal_error", {}
                elif not isinstance(body, dict) or not isinstance(body.get("text"), str):
                    status, text, headers = 400, "invalid_payload", {}
                else:
                    status, text, headers = 200, "ok", {}
                try:
                    self._answer(status, text, headers)
                except OSError:
                    pass  # the client gave up (a timeout test)
                with receiver._cond:
                    receiver.attempts.append(Attempt(self.path, body, status, arrived))
                    receiver._cond.notify_all()

        return Handler

    def stop(self) -> None:
        self._closing.set()  # wake slow handlers
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


@pytest.fixture
def webhook():
    receiver = WebhookReceiver()
    yield receiver
    receiver.stop()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on: connections to it are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
