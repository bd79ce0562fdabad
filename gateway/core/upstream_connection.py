"""One keep-alive HTTP/1.1 connection to an upstream (`Connection`, an asyncio protocol on httptools'
response parser) and the origin it belongs to (`Origin`: its idle connections and the calls waiting
for one). `gateway.core.upstream_http` opens, lends and takes them back.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any, AsyncIterator

import httptools

#: Buffered, unread stream bytes past which the socket stops being read until the reader catches up.
HIGH_WATER = 256 * 1024
IDLE_S = 60.0  # a pooled connection unused this long is closed rather than reused


class ConnectTimeout(ConnectionError):
    """No connection within the connect timeout: a connection error (another deployment may
    answer), never an upstream timeout."""


class UpstreamDisconnected(ConnectionError):
    """The upstream closed the connection before its reply was complete."""


class UpstreamProtocolError(ConnectionError):
    """The upstream's reply was not HTTP/1.1 this client can read."""


class Origin:
    """Where calls go (scheme, host, port, TLS) and its connections: idle ones, most recent last."""

    __slots__ = ("host", "port", "ssl", "server_hostname", "host_header", "idle", "open", "limit", "waiters",
                 "conns")

    def __init__(self, host: str, port: int, tls: Any, host_header: str, limit: int) -> None:
        self.host, self.port, self.ssl = host, port, tls
        self.host_header = host_header.encode("ascii" if host_header.isascii() else "idna")
        self.server_hostname = host if tls else None
        self.idle: list[Connection] = []
        self.conns: set[Connection] = set()  # every open one, idle or not: closing the pool closes them
        self.open = 0
        self.limit = limit
        self.waiters: deque[asyncio.Future[Connection]] = deque()


class Connection(asyncio.Protocol):
    """One keep-alive connection and the exchange on it (one at a time)."""

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.loop = asyncio.get_running_loop()
        self.transport: Any = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.busy = False  # an exchange is on the connection: finish() ends it once
        self.idle_since = 0.0
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.head: asyncio.Future[None] | None = None
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.complete = False
        self.keep_alive = False
        self.until_eof = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.idle_timeout: float | None = None
        self.last_data = 0.0
        self.paused = False

    # --- the protocol ----------------------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.origin.conns.add(self)

    def data_received(self, data: bytes) -> None:
        if not self.busy:  # bytes nobody asked for (a server's parting 408): the connection is spent
            self.transport.abort()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamProtocolError(f"unreadable reply: {exc}"))
            self.transport.abort()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self.closed or self.transport is None:  # never made (a failed handshake): the opener counts it
            return
        self.closed = True
        self.origin.open -= 1
        self.origin.conns.discard(self)
        if self.head is not None and not self.complete:
            if self.until_eof and self.status:  # a body without a length ends where the connection does
                self.complete = True
                self._wake()
            else:
                self._fail(UpstreamDisconnected("the upstream closed the connection before its reply was complete"))
        hand_over(self.origin)

    # --- httptools callbacks ---------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self.raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # an interim reply (100 Continue, 103 Early Hints): the real one follows
            self.raw_headers = []
            return
        self.status = status
        names = {n.lower() for n, _ in self.raw_headers}
        self.until_eof = b"content-length" not in names and b"transfer-encoding" not in names
        if self.head is not None and not self.head.done():
            self.head.set_result(None)

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        self.last_data = self.loop.time()
        if self.buffered > HIGH_WATER and self.idle_timeout is not None and not self.paused:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.status:  # not an interim reply's end
            self.keep_alive = self.parser.should_keep_alive()  # read now: the parser resets after this
            self.complete = True
            self._wake()

    # --- the exchange ----------------------------------------------------------------------------
    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        for future in (self.head, self.waiter):
            if future is not None and not future.done():
                future.set_exception(exc)

    def _expire(self) -> None:
        """The call's deadline (or a stream's wait for its next bytes) is up, unless data came since."""
        self.timer = None
        if self.idle_timeout is not None and self.status:
            # Waiting on our own reader (reading paused) is not the upstream's silence.
            due = (self.loop.time() if self.paused else self.last_data) + self.idle_timeout
            if self.loop.time() < due:
                self.timer = self.loop.call_at(due, self._expire)
                return
        self._fail(TimeoutError("the upstream did not answer in time"))
        self.transport.abort()

    def send(self, head: bytes, body: bytes, deadline: float) -> asyncio.Future[None]:
        self.busy = True
        self.head = self.loop.create_future()
        self.timer = self.loop.call_at(deadline, self._expire)
        self.transport.writelines((head, body)) if body else self.transport.write(head)
        return self.head

    def stream_idle(self, timeout: float) -> None:
        """From now on the call waits at most `timeout` for each next bytes, not to a deadline."""
        self.idle_timeout = timeout
        self.last_data = self.loop.time()

    async def _more(self) -> None:
        if self.error is not None:
            raise self.error
        self.waiter = self.loop.create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None

    async def read_all(self) -> bytes:
        while not self.complete:
            await self._more()
        data = b"".join(self.chunks)
        self.chunks.clear()
        return data

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        while True:
            while self.chunks:
                chunk = self.chunks.popleft()
                self.buffered -= len(chunk)
                if self.paused and self.buffered <= HIGH_WATER // 4:
                    self.paused = False
                    self.transport.resume_reading()
                yield chunk
            if self.complete:
                return
            await self._more()

    def finish(self) -> None:
        """The caller is done with the reply: the connection goes back to its origin if the reply
        was read to its end and both sides keep it alive; otherwise it is closed."""
        if not self.busy:
            return
        self.busy = False
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.closed:
            return
        if not (self.complete and self.keep_alive and self.error is None and not self.until_eof):
            self.transport.abort()
            return
        self._reset()
        give(self.origin, self)


def give(origin: Origin, conn: Connection | None) -> None:
    """Hand `conn` (or, None, the right to open one) to the first waiter still waiting."""
    while origin.waiters:
        waiter = origin.waiters.popleft()
        if not waiter.done():
            waiter.set_result(conn)  # type: ignore[arg-type]
            return
    if conn is not None:
        conn.idle_since = time.monotonic()
        origin.idle.append(conn)


def hand_over(origin: Origin) -> None:
    """A connection closed: a waiter, if any, may now open one."""
    if origin.waiters and origin.open < origin.limit:
        origin.open += 1  # reserved for the waiter
        give(origin, None)
