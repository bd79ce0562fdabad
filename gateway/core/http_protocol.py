"""uvicorn's HTTP protocol, with requests it cannot parse answered in the error envelope.

A request whose HTTP framing is broken (a bad content-length, broken chunked encoding, control
characters in a header) never reaches the app: uvicorn answers it itself with a plain-text 400. This
subclass of its httptools protocol (the one the gateway serves with) writes the gateway's JSON error
envelope instead, with an `x-request-id`, and still closes the connection (its framing is lost).
Not covered: `--server hypercorn`, and uvicorn's h11 protocol, keep their own plain-text 400s.

On a graceful stop (SIGTERM, or the old workers of a config reload) uvicorn closes idle keep-alive
connections at once; a request the client had just sent on one was then reset (a failed call with
nothing wrong). Here an idle connection stays open `IDLE_GRACE_S` longer: a request that arrives is
served with `Connection: close`, and only a connection still idle then is closed.

A response with a `content-length` goes out in one write, its head with its body, instead of
uvicorn's two (one for the head, one for the body): on loopback and in a data centre each write is
a TCP segment whose cost the sender pays, and with TCP_NODELAY a client got two packets per reply.
Streamed responses (no length) keep their head sent at once: a client learns the call was accepted
before its first token.

Every connection gets TCP_NODELAY. uvloop sets it on its own; asyncio's loop sets it only on
sockets made with proto IPPROTO_TCP, and the listening socket the supervisor shares with its
workers is made with proto 0, so on the asyncio loop every response on a kept-alive connection
waited ~40 ms for the client's delayed ACK (Nagle's algorithm held the body behind the headers).
"""

from __future__ import annotations

import socket
from typing import Callable

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from gateway.core.request_id import new_request_id

MESSAGE = "Malformed HTTP request: the request's framing or headers could not be parsed"
IDLE_GRACE_S = 1.0


class EnvelopeHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol; its answer to an unparsable request, and its graceful stop of
    an idle connection, differ."""

    stopping = False

    def connection_made(self, transport) -> None:  # type: ignore[no-untyped-def, override]
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def shutdown(self) -> None:
        self.stopping = True
        if self.cycle is None or self.cycle.response_complete:
            self.loop.call_later(IDLE_GRACE_S, self._close_if_idle)
        else:
            self.cycle.keep_alive = False  # closed once this response is sent

    def _close_if_idle(self) -> None:
        if self.cycle is None or self.cycle.response_complete:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        cycle = self.cycle
        super().connection_lost(exc)
        if isinstance(cycle, OneWriteCycle) and cycle.disconnected and cycle.on_disconnect is not None:
            cycle.on_disconnect()  # the fast path's call for this request: cancelled (the client left)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self.cycle is not None:
            self.cycle.__class__ = OneWriteCycle  # made by uvicorn a moment ago; its task has not run yet
            if self.stopping:
                self.cycle.keep_alive = False  # a request that came during the grace: served, then closed

    def send_400_response(self, msg: str) -> None:
        body = orjson.dumps({"error": {"message": MESSAGE, "type": "bad_request_error", "param": None,
                                       "code": "400"}})
        request_id = new_request_id().encode()
        head = [b"HTTP/1.1 400 Bad Request\r\n"]
        for name, value in self.server_state.default_headers:
            head.append(name + b": " + value + b"\r\n")
        head += [b"content-type: application/json\r\n", b"content-length: " + str(len(body)).encode() + b"\r\n",
                 b"x-request-id: " + request_id + b"\r\n", b"connection: close\r\n", b"\r\n"]
        self.transport.write(b"".join(head) + body)
        self.transport.close()


class OneWriteCycle(RequestResponseCycle):
    """uvicorn's request/response cycle; a response head with a `content-length` is held and
    written with the body's first piece (uvicorn always writes the body of such a response, an
    empty one too, except for HEAD, which is not held). `on_disconnect`: see the protocol's
    `connection_lost`."""

    held: bytes | None = None
    #: Called if the client leaves before the response is complete: the fast path sets it to
    #: cancel its call, where otherwise a task per call would wait on `receive()` for the disconnect.
    on_disconnect: Callable[[], object] | None = None

    async def send(self, message) -> None:  # type: ignore[no-untyped-def, override]
        if self.held is not None:
            transport, self.transport = self.transport, _Prefixed(self.transport, self.held)
            self.held = None
            try:
                await super().send(message)
            finally:
                self.transport = transport
        elif (message["type"] == "http.response.start" and not self.response_started
              and self.scope["method"] != "HEAD" and _has_length(message)):
            transport, self.transport = self.transport, _Collected()
            try:
                await super().send(message)
                self.held = b"".join(self.transport.pieces)
            finally:
                self.transport = transport
        else:
            await super().send(message)


def _has_length(message) -> bool:  # type: ignore[no-untyped-def]
    return any(name.lower() == b"content-length" for name, _ in message.get("headers", ()))


class _Collected:
    """Stands in for the transport while uvicorn writes a response head."""

    def __init__(self) -> None:
        self.pieces: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.pieces.append(data)


class _Prefixed:
    """The transport, with the held head put before the first thing written."""

    def __init__(self, transport, head: bytes) -> None:  # type: ignore[no-untyped-def]
        self.transport, self.head = transport, head

    def write(self, data: bytes) -> None:
        head, self.head = self.head, b""
        self.transport.write(head + data if head else data)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.transport, name)
