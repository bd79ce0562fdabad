"""The gateway's uvicorn protocol on the asyncio loop (Windows, or wherever uvloop is missing),
served from a shared listening socket as the supervisor serves it: kept-alive connections must not
wait for the client's delayed ACK between a response's headers and its body."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import httpx
import uvicorn

from gateway.core.http_protocol import EnvelopeHttpToolsProtocol


async def app(scope, receive, send):  # headers and body in two messages, as Quart and the fast path send them
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


def test_kept_alive_requests_do_not_wait_for_delayed_acks():
    config = uvicorn.Config(app, host="127.0.0.1", port=0, loop="asyncio", http=EnvelopeHttpToolsProtocol,
                            lifespan="off", log_level="warning")
    sock = config.bind_socket()  # proto 0, as the supervisor's: asyncio does not set TCP_NODELAY on it
    assert sock.proto != socket.IPPROTO_TCP
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    try:
        with httpx.Client(timeout=5) as client:
            deadline = time.monotonic() + 10
            while not server.started and time.monotonic() < deadline:
                time.sleep(0.02)
            assert client.get(url).text == "ok"
            started = time.monotonic()
            for _ in range(20):
                assert client.get(url).text == "ok"
            took = time.monotonic() - started
        # With Nagle's algorithm on, each response waits ~40 ms for the client's delayed ACK: 0.8 s.
        assert took < 0.4, f"20 kept-alive requests took {took:.2f} s"
    finally:
        server.should_exit = True
        thread.join(10)


class Recorded:
    """The connection's transport, every write kept (the protocol under test writes through it)."""

    writes: list[bytes] = []

    def __init__(self, transport):
        self._transport = transport

    def write(self, data):
        Recorded.writes.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name):
        return getattr(self._transport, name)


class RecordingProtocol(EnvelopeHttpToolsProtocol):
    def connection_made(self, transport):
        super().connection_made(transport)
        self.transport = Recorded(transport)


async def replies(scope, receive, send):
    """/length: a JSON reply with its length; /stream: a head, then (once the test has seen the
    head written) two pieces with no length; /empty: a 204 with content-length 0."""
    if scope["type"] != "http":
        return
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        Recorded.writes.append(b"<app: head sent>")
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b"data: 2\n\n"})
        return
    body = b"" if scope["path"] == "/empty" else b'{"ok":true}'
    await send({"type": "http.response.start", "status": 204 if not body else 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def test_a_reply_with_a_length_goes_out_in_one_write_and_a_stream_sends_its_head_first():
    config = uvicorn.Config(replies, host="127.0.0.1", port=0, loop="asyncio", http=RecordingProtocol,
                            lifespan="off", log_level="warning")
    sock = config.bind_socket()
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        with httpx.Client(timeout=5) as client:
            Recorded.writes.clear()
            r = client.get(url + "/length")
            assert r.json() == {"ok": True} and r.headers["content-length"] == "11"
            (one,) = Recorded.writes  # the head and the body together
            assert one.startswith(b"HTTP/1.1 200 OK\r\n") and one.endswith(b'\r\n\r\n{"ok":true}')

            Recorded.writes.clear()
            assert client.head(url + "/length").status_code == 200  # HEAD: no body is written, the head is
            assert len(Recorded.writes) == 1 and Recorded.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")

            Recorded.writes.clear()
            r = client.get(url + "/empty")
            assert r.status_code == 204 and r.content == b""
            assert len([w for w in Recorded.writes if w]) == 1 and Recorded.writes[0].startswith(b"HTTP/1.1 204")

            Recorded.writes.clear()
            r = client.get(url + "/stream")
            assert r.text == "data: 1\n\ndata: 2\n\n"
            head, marker, *pieces = Recorded.writes
            assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"transfer-encoding: chunked" in head
            assert marker == b"<app: head sent>" and len(pieces) == 2
    finally:
        server.should_exit = True
        thread.join(10)
