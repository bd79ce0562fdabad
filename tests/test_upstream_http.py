"""The request path's own HTTP/1.1 client (gateway/core/upstream_http.py) against a real HTTP
server on loopback whose replies each test writes byte by byte: keep-alive reuse, the connection
limit, streams as they arrive, gzip, bodies ended by the connection, upstreams that stall, close
early or never speak TLS, and what a half-read reply does to its connection."""

from __future__ import annotations

import asyncio
import gzip
import re
import time
from typing import Any, Awaitable, Callable

import pytest

from gateway.core import upstream_http
from gateway.core.providers import openai_compatible
from gateway.core.upstream_http import ConnectTimeout, UpstreamDisconnected, UpstreamPool, UpstreamProtocolError
from gateway.errors import UpstreamConnectionError, UpstreamTimeoutError

Respond = Callable[[asyncio.StreamWriter, bytes, bytes], Awaitable[Any]]


_pools: list[UpstreamPool] = []


def new_pool(**kw: Any) -> UpstreamPool:
    _pools.append(UpstreamPool(**kw))
    return _pools[-1]


@pytest.fixture(autouse=True)
async def close_pools() -> Any:
    yield
    while _pools:
        await _pools.pop().close()
    await asyncio.sleep(0.01)  # closed transports finish closing


def reply(body: bytes, *extra: str, status: str = "200 OK") -> bytes:
    lines = [f"HTTP/1.1 {status}", "Content-Type: application/json", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


class Peer:
    """An HTTP/1.1 server whose reply to each request is written by the test's `respond`
    (return False to close the connection after it). Counts connections, open and at once."""

    def __init__(self, respond: Respond) -> None:
        self.respond = respond
        self.connections = 0
        self.open = 0
        self.most_open = 0
        self.requests: list[tuple[bytes, bytes]] = []
        self.writers: set[asyncio.StreamWriter] = set()
        self.handlers: set[asyncio.Task[Any]] = set()

    async def __aenter__(self) -> "Peer":
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1/chat/completions?api-version=1"
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        for task in self.handlers:
            task.cancel()
        await asyncio.gather(*self.handlers, return_exceptions=True)
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.add(writer)
        self.handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(re.search(rb"(?i)\r\ncontent-length: (\d+)", head).group(1))  # type: ignore[union-attr]
                body = await reader.readexactly(length)
                self.requests.append((head, body))
                if await self.respond(writer, head, body) is False:
                    break
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open -= 1
            writer.close()


def ok(body: bytes = b'{"ok":true}') -> Respond:
    async def respond(writer: asyncio.StreamWriter, head: bytes, request_body: bytes) -> None:
        writer.write(reply(body))
    return respond


def soon(seconds: float = 5.0) -> float:
    return asyncio.get_running_loop().time() + seconds


async def post(pool: UpstreamPool, url: str, body: bytes = b"{}", **kw: Any) -> upstream_http.Reply:
    kw.setdefault("deadline", soon())
    return await pool.post(url, {"Content-Type": "application/json", "Authorization": "Bearer sk-up"}, body, **kw)


async def test_calls_in_turn_share_one_connection_and_send_what_was_asked():
    async with Peer(ok()) as peer:
        pool = new_pool()
        for n in range(5):
            got = await post(pool, peer.url, b'{"n":%d}' % n)
            assert got.status == 200 and got.headers.get("CONTENT-TYPE") == "application/json"
            assert await got.read() == b'{"ok":true}'
        assert peer.connections == 1
        head, body = peer.requests[-1]
        assert head.startswith(b"POST /v1/chat/completions?api-version=1 HTTP/1.1\r\n")
        assert b"\r\nHost: 127.0.0.1:%d\r\n" % peer.port in head and b"\r\nAuthorization: Bearer sk-up\r\n" in head
        assert body == b'{"n":4}'
        await pool.close()


async def test_concurrent_calls_never_open_more_connections_than_the_limit():
    async def slow(writer: asyncio.StreamWriter, head: bytes, body: bytes) -> None:
        await asyncio.sleep(0.02)
        writer.write(reply(body))

    async with Peer(slow) as peer:
        pool = new_pool(max_connections=2)

        async def one(n: int) -> bytes:
            return await (await post(pool, peer.url, b"%d" % n)).read()

        assert await asyncio.gather(*(one(n) for n in range(8))) == [b"%d" % n for n in range(8)]
        assert peer.connections == 2 and peer.most_open == 2


async def test_a_call_waiting_for_a_connection_gives_up_at_its_deadline_and_leaks_nothing():
    release = asyncio.Event()

    async def held(writer: asyncio.StreamWriter, head: bytes, body: bytes) -> None:
        if body == b"hold":
            await release.wait()
        writer.write(reply(body))

    async with Peer(held) as peer:
        pool = new_pool(max_connections=1)
        first = asyncio.ensure_future(post(pool, peer.url, b"hold"))
        await asyncio.sleep(0.05)
        with pytest.raises(TimeoutError):
            await post(pool, peer.url, b"late", deadline=soon(0.1))
        release.set()
        assert await (await first).read() == b"hold"
        assert await (await post(pool, peer.url, b"next")).read() == b"next"
        assert peer.connections == 1


async def test_a_stream_yields_each_chunk_as_it_arrives_then_frees_its_connection():
    more = asyncio.Event()

    async def stream(writer: asyncio.StreamWriter, head: bytes, body: bytes) -> None:
        writer.write(CHUNKED_HEAD + chunk(b"data: 1\n\n"))
        await writer.drain()
        await more.wait()  # the second chunk only once the client has seen the first
        writer.write(chunk(b"data: 2\n\n") + b"0\r\n\r\n")

    async with Peer(stream) as peer:
        pool = new_pool()
        got = await post(pool, peer.url, stream_idle=5.0)
        seen = []
        async for piece in got.iter_bytes():
            seen.append(piece)
            more.set()
        assert b"".join(seen) == b"data: 1\n\ndata: 2\n\n" and seen[0] == b"data: 1\n\n"
        await (await post(pool, peer.url, stream_idle=5.0)).read()
        assert peer.connections == 1


async def test_gzip_replies_are_decoded_read_whole_or_streamed():
    text = b'{"choices":[{"message":{"content":"' + b"hello " * 500 + b'"}}]}'
    packed = gzip.compress(text)

    async def zipped(writer: asyncio.StreamWriter, head: bytes, body: bytes) -> None:
        assert b"\r\nAccept-Encoding: gzip, deflate\r\n" in head
        if body == b"stream":
            writer.write(CHUNKED_HEAD.replace(b"\r\n\r\n", b"\r\nContent-Encoding: gzip\r\n\r\n"))
            for start in range(0, len(packed), 7):
                writer.write(chunk(packed[start:start + 7]))
            writer.write(b"0\r\n\r\n")
        else:
            writer.write(reply(packed, "Content-Encoding: gzip"))

    async with Peer(zipped) as peer:
        pool = new_pool()
        assert await (await post(pool, peer.url, b"whole")).read() == text
        streamed = await post(pool, peer.url, b"stream", stream_idle=5.0)
        assert b"".join([piece async for piece in streamed.iter_bytes()]) == text


async def test_an_encoding_the_gateway_cannot_decode_is_an_error_not_garbage():
    async def brotli(writer: asyncio.StreamWriter, head: bytes, body: bytes) -> None:
        writer.write(reply(b"\x0b\x02\x80", "Content-Encoding: br"))

    async with Peer(brotli) as peer:
        with pytest.raises(UpstreamProtocolError, match="encoded as 'br'"):
            await post(new_pool(), peer.url)


async def test_a_body_without_a_length_ends_where_the_connection_does():
    async def until_close(writer: asyncio.StreamWriter, head: bytes, body: bytes) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{\"a\":")
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(b"1}")
        return False

    async with Peer(until_close) as peer:
        pool = new_pool()
        assert await (await post(pool, peer.url)).read() == b'{"a":1}'
        assert await (await post(pool, peer.url)).read() == b'{"a":1}'  # on a new connection
        assert peer.connections == 2


async def test_an_upstream_closing_mid_reply_is_an_error_not_a_short_body():
    async def cut(writer: asyncio.StreamWriter, head: bytes, body: bytes) -> bool | None:
        if body == b"cut":
            writer.write(reply(b"x" * 100)[:-90])
            return False
        writer.write(reply(b"fine"))
        return None

    async with Peer(cut) as peer:
        pool = new_pool()
        got = await post(pool, peer.url, b"cut")
        with pytest.raises(UpstreamDisconnected):
            await got.read()
        assert await (await post(pool, peer.url, b"again")).read() == b"fine"
        # What a client of the gateway is told: a connection error naming the deployment, never a timeout.
        err = openai_compatible.map_transport_error(UpstreamDisconnected("gone"), _Named())  # type: ignore[arg-type]
        assert isinstance(err, UpstreamConnectionError) and "UpstreamDisconnected" in err.message


class _Named:
    model_name, provider, display_base, provider_display = "m", "openai", "http://127.0.0.1:9/v1", "OpenAI"


async def test_a_silent_upstream_times_out_at_the_deadline():
    async def silent(writer: asyncio.StreamWriter, head: bytes, body: bytes) -> None:
        await asyncio.sleep(10)

    async with Peer(silent) as peer:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await post(new_pool(), peer.url, deadline=soon(0.2))
        assert 0.15 < time.monotonic() - started < 2
        err = openai_compatible.map_transport_error(TimeoutError(), _Named())  # type: ignore[arg-type]
        assert isinstance(err, UpstreamTimeoutError)


async def test_a_stream_waits_for_each_next_bytes_not_for_its_whole_length():
    async def trickle(writer: asyncio.StreamWriter, head: bytes, body: bytes) -> None:
        writer.write(CHUNKED_HEAD)
        pause = 0.1 if body == b"steady" else 0.8
        for n in range(5):
            await writer.drain()
            await asyncio.sleep(pause)
            writer.write(chunk(b"data: %d\n\n" % n))
        writer.write(b"0\r\n\r\n")

    async with Peer(trickle) as peer:
        pool = new_pool()
        steady = await post(pool, peer.url, b"steady", deadline=soon(0.3), stream_idle=0.3)
        assert len([p async for p in steady.iter_bytes()]) == 5  # 0.5 s in all, never 0.3 s without bytes
        stalled = await post(pool, peer.url, b"stall", deadline=soon(0.3), stream_idle=0.3)
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            async for _ in stalled.iter_bytes():
                pass
        assert time.monotonic() - started < 0.7


async def test_an_upstream_that_never_completes_tls_is_a_connect_timeout_a_connection_error():
    async def mute(writer: asyncio.StreamWriter, head: bytes, body: bytes) -> None:
        raise AssertionError("a TLS handshake is not an HTTP request")

    async with Peer(mute) as peer:  # speaks plain HTTP: the TLS client hello gets no answer
        started = time.monotonic()
        with pytest.raises(ConnectTimeout):
            await post(new_pool(), f"https://127.0.0.1:{peer.port}/v1", connect_timeout=0.2)
        assert time.monotonic() - started < 2
        err = openai_compatible.map_transport_error(ConnectTimeout("x"), _Named())  # type: ignore[arg-type]
        assert isinstance(err, UpstreamConnectionError)  # another deployment may answer: retried, not a timeout


async def test_an_interim_100_continue_is_skipped():
    async def interim(writer: asyncio.StreamWriter, head: bytes, body: bytes) -> None:
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" + reply(b"real", status="201 Created"))

    async with Peer(interim) as peer:
        got = await post(new_pool(), peer.url)
        assert got.status == 201 and await got.read() == b"real"


async def test_a_header_holding_a_line_break_is_refused_before_anything_is_sent():
    async with Peer(ok()) as peer:
        with pytest.raises(ValueError, match="line break"):
            await new_pool().post(peer.url, {"X-Evil": "a\r\nX-Injected: 1"}, b"{}", deadline=soon())
        assert peer.requests == []


async def test_a_large_body_arrives_whole():
    async def echo_size(writer: asyncio.StreamWriter, head: bytes, body: bytes) -> None:
        writer.write(reply(b"%d" % len(body)))

    async with Peer(echo_size) as peer:
        big = bytes(range(256)) * 4096  # 1 MiB
        assert await (await post(new_pool(), peer.url, big)).read() == b"1048576"
        assert peer.requests[0][1] == big


async def test_a_connection_the_upstream_closed_while_idle_is_not_reused():
    async def once(writer: asyncio.StreamWriter, head: bytes, body: bytes) -> bool:
        writer.write(reply(b"one", "Connection: keep-alive"))
        return False  # then closes it anyway, as servers do when their idle timeout passes

    async with Peer(once) as peer:
        pool = new_pool()
        assert await (await post(pool, peer.url)).read() == b"one"
        await asyncio.sleep(0.05)
        assert await (await post(pool, peer.url)).read() == b"one"
        assert peer.connections == 2


async def test_a_reply_abandoned_halfway_closes_its_connection():
    async def long_stream(writer: asyncio.StreamWriter, head: bytes, body: bytes) -> None:
        writer.write(CHUNKED_HEAD + chunk(b"data: 1\n\n"))
        if body == b"short":
            writer.write(b"0\r\n\r\n")
            return
        await writer.drain()
        await asyncio.sleep(5)

    async with Peer(long_stream) as peer:
        pool = new_pool()
        got = await post(pool, peer.url, b"long", stream_idle=5.0)
        pieces = got.iter_bytes()
        assert await pieces.__anext__() == b"data: 1\n\n"
        await pieces.aclose()
        await got.close()
        done = await post(pool, peer.url, b"short", stream_idle=5.0)
        assert [p async for p in done.iter_bytes()] == [b"data: 1\n\n"]
        assert peer.connections == 2


async def test_a_stream_read_slower_than_it_comes_pauses_the_socket_and_loses_nothing():
    piece = bytes(range(256)) * 256  # 64 KiB

    async def flood(writer: asyncio.StreamWriter, head: bytes, body: bytes) -> None:
        writer.write(CHUNKED_HEAD + b"".join(chunk(piece) for _ in range(32)) + b"0\r\n\r\n")  # 2 MiB at once

    async with Peer(flood) as peer:
        got = await post(new_pool(), peer.url, stream_idle=0.5)
        received, paused_seen = [], False
        async for part in got.iter_bytes():
            received.append(part)
            paused_seen = paused_seen or got.conn.paused
            await asyncio.sleep(0.001)
        assert b"".join(received) == piece * 32
        assert paused_seen  # more than HIGH_WATER waited unread: the socket was not read meanwhile


async def test_a_reply_dropped_unread_gives_its_place_back():
    async with Peer(ok()) as peer:
        pool = new_pool(max_connections=1)
        await post(pool, peer.url)  # never read nor closed, then gone
        await asyncio.sleep(0.01)
        assert await (await post(pool, peer.url, deadline=soon(2))).read() == b'{"ok":true}'


async def test_a_reply_closed_again_after_its_connection_moved_on_leaves_the_next_call_alone():
    async def slow(writer: asyncio.StreamWriter, head: bytes, body: bytes) -> None:
        if body == b"second":
            await asyncio.sleep(0.05)
        writer.write(reply(body))

    async with Peer(slow) as peer:
        pool = new_pool()
        first = await post(pool, peer.url, b"first")
        assert await first.read() == b"first"
        second = asyncio.ensure_future(post(pool, peer.url, b"second"))  # on the same connection
        await asyncio.sleep(0.01)
        await first.close()  # late, and again: must not end the call now on that connection
        del first
        assert await (await second).read() == b"second"
        assert peer.connections == 1
