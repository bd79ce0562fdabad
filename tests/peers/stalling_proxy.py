"""A TCP proxy in front of a real server that can stall, cut or slow every connection: how the
tests make a database or a Redis hang, fail or lag, with the real server behind it."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest


class StallingProxy:
    """A TCP proxy on 127.0.0.1 in its own thread, in front of a real server.

    `stall()`: connections are still accepted, but nothing more is relayed either way (a server
    that hangs, or a network that black-holes); `resume()` relays again. `cut()`: every connection
    is reset and new ones are refused at once; `restore()` undoes it."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="stalling-proxy", daemon=True)
        self.thread.start()
        self.relaying = self._call(self._event())
        self.refusing = False
        self.delay_s = 0.0
        self.writers: set[asyncio.StreamWriter] = set()
        self.server = self._call(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]

    @staticmethod
    async def _event() -> asyncio.Event:
        event = asyncio.Event()
        event.set()
        return event

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self.relaying.wait()
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.transport.abort()
            return
        self.writers.add(writer)
        await self.relaying.wait()
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.writers.add(up_writer)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    def stall(self) -> None:
        self.loop.call_soon_threadsafe(self.relaying.clear)

    def resume(self) -> None:
        self.loop.call_soon_threadsafe(self.relaying.set)

    def cut(self) -> None:
        async def cut() -> None:
            self.refusing = True
            for w in list(self.writers):
                w.transport.abort()
            self.writers.clear()

        self._call(cut())

    def restore(self) -> None:
        self.refusing = False

    def close(self) -> None:
        async def close() -> None:
            self.server.close()
            for w in list(self.writers):
                w.transport.abort()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self._call(close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def proxy_to():
    """Factory of `StallingProxy`s, closed at the end (ask for it before `gateway_server`, so that
    gateways stop while their database is still reachable)."""
    proxies: list[StallingProxy] = []

    def make(host: str, port: int) -> StallingProxy:
        proxies.append(StallingProxy(host, port))
        return proxies[-1]

    yield make
    for p in proxies:
        p.close()
