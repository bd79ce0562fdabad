"""A uvicorn worker that tells its supervisor the moment it stops taking new connections.

Why: a reload is "done" only once no old worker can accept a connection any more. The workers share
one listening socket, so any of them may accept the next connection; uvicorn's worker notices a
SIGTERM on its next 0.1 s tick and only then closes its listener. A reload that said "done" as soon
as it had sent the SIGTERMs let a client's next new connection land on an old worker, answered with
the old config (`GET /v1/models` without the model just added). The supervisor now waits for this
event (a fraction of a second; never for the calls in flight, which the old worker finishes after).
"""

from __future__ import annotations

import multiprocessing
import socket
import time
from typing import Any

from uvicorn.server import Server
from uvicorn.supervisors.multiprocess import Process

spawn = multiprocessing.get_context("spawn")  # uvicorn's workers are spawned; so is this event


class ListeningServer(Server):
    """uvicorn's server; its shutdown sets `stopped_listening` once the listeners are closed."""

    def __init__(self, config: Any, stopped_listening: Any) -> None:
        super().__init__(config=config)
        self.stopped_listening = stopped_listening

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:  # uvicorn's shutdown begins so too; doing it twice is harmless
            server.close()
        for sock in sockets or []:
            sock.close()
        self.stopped_listening.set()
        await super().shutdown(sockets)


class Worker(Process):
    """uvicorn's worker process with a `stopped_listening` event shared with the supervisor."""

    def __init__(self, config: Any, sockets: list[socket.socket]) -> None:
        self.stopped_listening = spawn.Event()
        super().__init__(config, sockets)

    @property
    def server(self) -> Server:
        if self._server is None:
            self._server = ListeningServer(self.config, self.stopped_listening)
        return self._server

    def wait_stopped_listening(self, timeout: float) -> bool:
        """True once the worker has closed its listeners (or has exited); False after `timeout`."""
        deadline = time.monotonic() + timeout
        while not self.stopped_listening.wait(0.05):
            if not self.process.is_alive():
                return True
            if time.monotonic() >= deadline:
                return False
        return True
