"""The request path's HTTP/1.1 client for upstream calls: keep-alive connections per origin, each
an asyncio protocol on httptools' response parser (the parser uvicorn serves requests with).

Why not aiohttp's client: on the benchmark it cost ~78 us of CPU per call, a quarter of the
gateway's whole time per request, where this client costs ~26 us (bench/upstream_client.py,
bench/README.md "The upstream client"). It does what upstream calls need and no more: POST with a body in memory, the status and
headers, the body whole or as it arrives (gzip/deflate decoded), TLS, a connection limit per origin
with FIFO waiters, and deadlines without a task per call (one timer per call, re-armed lazily while
a stream flows). No cookies, redirects or proxies (the aiohttp sessions had none either).
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
import zlib
from typing import Any, AsyncIterator
from urllib.parse import urlsplit

from multidict import CIMultiDict

from gateway.core.upstream_connection import (IDLE_S, ConnectTimeout, Connection, Origin, UpstreamDisconnected,
                                              UpstreamProtocolError, give, hand_over)

__all__ = ["ConnectTimeout", "Reply", "UpstreamDisconnected", "UpstreamPool", "UpstreamProtocolError", "tls_context"]

class Reply:
    """An upstream reply: status and headers in; the body to read whole or as it comes."""

    __slots__ = ("conn", "status", "headers", "_decoder", "_open")

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._open = True  # until this reply hands its connection back (once: it may then serve another call)
        self.status = conn.status
        self.headers = CIMultiDict((n.decode("latin-1"), v.decode("latin-1")) for n, v in conn.raw_headers)
        coding = self.headers.get("content-encoding", "").strip().lower()
        self._decoder = None
        if coding in ("gzip", "x-gzip", "deflate"):
            self._decoder = zlib.decompressobj(zlib.MAX_WBITS | (16 if "gzip" in coding else 0))
        elif coding not in ("", "identity"):
            self._end()
            raise UpstreamProtocolError(f"the upstream's reply is encoded as {coding!r}, which the gateway cannot decode")

    async def read(self) -> bytes:
        try:
            data = await self.conn.read_all()
            return data if self._decoder is None else self._decoder.decompress(data) + self._decoder.flush()
        finally:
            self._end()

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.conn.iter_chunks():
                if self._decoder is not None:
                    chunk = self._decoder.decompress(chunk)
                    if not chunk:
                        continue
                yield chunk
        finally:
            self._end()

    def _end(self) -> None:
        if self._open:
            self._open = False
            self.conn.finish()

    async def close(self) -> None:
        self._end()

    def __del__(self) -> None:
        """A reply dropped unread (a bug elsewhere) must not hold its connection, and its place
        under the origin's limit, for ever."""
        if self._open:
            try:
                self._end()
            except RuntimeError:  # its loop is closed: the socket goes with the process
                pass


@functools.lru_cache(maxsize=1024)
def _target(url: str) -> tuple[str, str, int, bool, bytes, str]:
    """(origin key, host, port, https, request target, Host header) of an upstream URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {parts.scheme}://{parts.hostname or ''}")
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    host = parts.hostname
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == (443 if https else 80) else f"{shown}:{port}"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return f"{parts.scheme}://{host}:{port}", host, port, https, target.encode("latin-1"), host_header


#: Headers the client writes itself; a caller's copy of them is left out.
OWN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


def _header_bytes(headers: dict[str, str]) -> bytes:
    """The caller's header lines, and `Accept-Encoding: gzip, deflate` unless it sent its own."""
    lines, encoding = [], True
    for name, value in headers.items():
        if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
            raise ValueError(f"header {name!r} holds a line break")
        lower = name.lower()
        if lower in OWN_HEADERS:
            continue
        if lower == "accept-encoding":
            encoding = False
        lines.append(f"{name}: {value}\r\n")
    if encoding:
        lines.append("Accept-Encoding: gzip, deflate\r\n")
    return "".join(lines).encode("utf-8")


_default_tls: ssl.SSLContext | None = None
_insecure_tls: ssl.SSLContext | None = None


def tls_context(verify: Any) -> ssl.SSLContext:
    """True: the system's trust store; False: no certificate check; or the caller's context."""
    global _default_tls, _insecure_tls
    if isinstance(verify, ssl.SSLContext):
        return verify
    if verify is False:
        if _insecure_tls is None:
            _insecure_tls = ssl.create_default_context()
            _insecure_tls.check_hostname = False
            _insecure_tls.verify_mode = ssl.CERT_NONE
            _insecure_tls.set_alpn_protocols(["http/1.1"])
        return _insecure_tls
    if _default_tls is None:
        _default_tls = ssl.create_default_context()
        _default_tls.set_alpn_protocols(["http/1.1"])
    return _default_tls


class UpstreamPool:
    """Keep-alive connections per origin (scheme, host, port and TLS check), at most
    `max_connections` open per origin; calls beyond wait their turn, in order."""

    def __init__(self, max_connections: int = 1000) -> None:
        self._origins: dict[tuple[str, int], Origin] = {}
        self._max = max_connections

    def _origin(self, url: str, verify: Any) -> tuple[Origin, bytes]:
        key, host, port, https, target, host_header = _target(url)
        slot = (key, id(verify) if https and verify is not True else 0)
        origin = self._origins.get(slot)  # type: ignore[call-overload]
        if origin is None:
            tls = tls_context(verify) if https else None
            origin = self._origins[slot] = Origin(host, port, tls, host_header, self._max)  # type: ignore[index]
        return origin, target

    async def _acquire(self, origin: Origin, connect_timeout: float, deadline: float) -> Connection:
        idle, now = origin.idle, time.monotonic()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < IDLE_S and not conn.transport.is_closing():
                return conn
            if not conn.closed:
                conn.transport.abort()
        if origin.open >= origin.limit:  # wait for a connection to come back, or for room to open one
            waiter: asyncio.Future[Connection | None] = asyncio.get_running_loop().create_future()
            origin.waiters.append(waiter)  # type: ignore[arg-type]
            try:
                async with asyncio.timeout_at(deadline):
                    given = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():  # given just as the wait ended: pass it on
                    if waiter.result() is None:
                        origin.open -= 1
                        hand_over(origin)
                    else:
                        give(origin, waiter.result())
                raise
            if given is not None:
                return given
        else:
            origin.open += 1
        connect_timeout = max(min(connect_timeout, deadline - asyncio.get_running_loop().time()), 0.001)
        try:
            async with asyncio.timeout(connect_timeout):
                _, conn = await asyncio.get_running_loop().create_connection(
                    lambda: Connection(origin), origin.host, origin.port, ssl=origin.ssl,
                    server_hostname=origin.server_hostname)
        except BaseException as exc:
            origin.open -= 1
            hand_over(origin)
            if isinstance(exc, TimeoutError):
                raise ConnectTimeout(f"no connection within {connect_timeout:g} s") from None
            raise
        return conn

    async def post(self, url: str, headers: dict[str, str], body: bytes, *, verify: Any = True,
                   connect_timeout: float = 10.0, deadline: float, stream_idle: float | None = None) -> Reply:
        """POST `body`; returns once the status and headers are in. Everything until then, the
        body too unless `stream_idle` is set, must be done by `deadline` (loop time); a stream
        then waits at most `stream_idle` seconds for each next bytes."""
        origin, target = self._origin(url, verify)
        head = b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n%s\r\n" % (
            target, origin.host_header, len(body), _header_bytes(headers))
        conn = await self._acquire(origin, connect_timeout, deadline)
        try:
            await conn.send(head, body, deadline)
        except BaseException:
            conn.finish()
            raise
        if stream_idle is not None:
            conn.stream_idle(stream_idle)
        return Reply(conn)

    async def close(self) -> None:
        """Close every connection, in use or not (at shutdown, after the calls have drained)."""
        origins, self._origins = list(self._origins.values()), {}
        for origin in origins:
            for conn in list(origin.conns):
                conn.transport.abort()
            origin.idle.clear()
        await asyncio.sleep(0)  # the transports close their sockets on the loop's next turn
