"""An aiohttp handler served on loopback from an event loop in a thread of its own: how the fake
provider peers (Anthropic, Azure, Gemini, Vertex) run beside the test that calls them."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Awaitable, Callable

from aiohttp import web


class ServedInThread:
    """`start()` serves `handle` for every method and path on a free port (`.port`); `stop()`
    closes every connection and the loop, and leaves no transport for the garbage collector."""

    def __init__(self, name: str, handle: Callable[[web.Request], Awaitable[web.StreamResponse]],
                 max_body: int = 64 * 1024 * 1024) -> None:
        self.name, self.handle, self.max_body = name, handle, max_body
        self.port = 0
        self._loop: Any = None
        self._runner: Any = None

    def start(self) -> int:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=self.name, daemon=True)
        self._thread.start()
        app = web.Application(client_max_size=self.max_body)
        app.router.add_route("*", "/{tail:.*}", self.handle)

        async def boot() -> int:
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", 0).start()
            return self._runner.addresses[0][1]

        self.port = asyncio.run_coroutine_threadsafe(boot(), self._loop).result(10)
        return self.port

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        # A closed transport lets go of its socket a loop turn later: let those turns run before the
        # loop stops, or the transports are collected unclosed (a ResourceWarning in whichever test).
        asyncio.run_coroutine_threadsafe(asyncio.sleep(0.05), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
