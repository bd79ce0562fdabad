"""`--num_workers N`: workers that stop with their supervisor, and a supervisor that stops taking
connections as soon as it is told to stop.

The supervisor binds the socket and hands a copy to each spawned worker.
- Killed with SIGKILL, it used to leave its workers serving and holding the port ("Address already
  in use" on restart). Each worker now asks the kernel for a SIGTERM when its parent dies (Linux
  `prctl(PR_SET_PDEATHSIG)`), and a thread also checks the parent pid once a second (any OS, and the
  moment between spawn and prctl). SIGTERM is the worker's graceful stop: calls in flight finish and
  queued spend rows are written.
- On SIGTERM, uvicorn's supervisor kept its copy of the listening socket open while the workers
  drained: the kernel went on accepting connections that no worker would serve, and reset them when
  the supervisor exited. Ours closes its copy first, so new connections are refused once the workers
  have closed theirs, and every connection accepted is served.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time
from typing import Any

SUPERVISOR_ENV = "GATEWAY_SUPERVISOR_PID"  # set by the CLI for its workers; absent with one process
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
WATCH_INTERVAL_S = 1.0
log = logging.getLogger("uvicorn.error")  # where uvicorn's supervisor says the same things


def run_uvicorn_workers(app: str, workers: int, **options: Any) -> int:
    """`uvicorn.run(app, workers=workers, **options)`, with a supervisor that closes its socket
    first and reloads the config on SIGHUP (`reload.py`). Returns 3 when a worker failed to start
    (the supervisor then stops, as uvicorn's does), else 0."""
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    from gateway.core.reload import ReloadStatus, reap_drained, reload_workers
    from gateway.core.uvicorn_worker import Worker

    status = ReloadStatus.create()  # before the workers are spawned: they inherit its path

    class Supervisor(Multiprocess):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.draining: list[Worker] = []  # old workers of a reload, finishing their calls in flight

        def new_worker(self) -> Worker:
            return Worker(self.config, self.sockets)

        def init_processes(self) -> None:
            self.processes = [self.new_worker() for _ in range(self.processes_num)]
            for process in self.processes:
                process.start()

        def terminate_all(self) -> None:  # called once, when the supervisor stops
            for sock in self.sockets:
                sock.close()
            super().terminate_all()

        def join_all(self) -> None:
            super().join_all()
            for process in self.draining:
                process.join()

        def keep_subprocess_alive(self) -> None:
            """Replace a worker that died or hangs (as uvicorn's does, with our kind of worker); stop
            when one failed to start (it would fail again on every restart)."""
            reap_drained(self.draining)
            if self.should_exit.is_set():
                return
            for index, process in enumerate(self.processes):
                if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                    continue
                process.kill()
                process.join()
                if process.exitcode == STARTUP_FAILURE:
                    log.error("worker %s failed to start; stopping the gateway", process.pid)
                    self.should_exit.set()
                    return
                log.info("worker %s died (exit status %s); starting another", process.pid, process.exitcode)
                self.processes[index] = self.new_worker()
                self.processes[index].start()

        def handle_hup(self) -> None:  # uvicorn's restarts workers one by one, on the old config
            reload_workers(self, self.new_worker, status)

    os.environ[SUPERVISOR_ENV] = str(os.getpid())  # spawned workers inherit it
    config = uvicorn.Config(app, workers=workers, **options)
    sock = config.bind_socket()
    supervisor = Supervisor(config, sockets=[sock])
    try:
        supervisor.run()
    finally:
        status.remove()
    failed = any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes)
    return STARTUP_FAILURE if failed else 0


def run_hypercorn_workers(config: Any, workers: int) -> int:
    """hypercorn's workers under a supervisor of ours. hypercorn's own kept its sockets while the
    workers drained, and sent SIGTERM (no handler there: an abrupt kill) to a worker still draining
    once another had finished. Returns 0, or the first non-zero exit code of a worker."""
    import multiprocessing
    from multiprocessing.connection import wait

    ctx = multiprocessing.get_context("spawn")
    sockets = config.create_sockets()
    os.environ[SUPERVISOR_ENV] = str(os.getpid())
    stops = [ctx.Event() for _ in range(workers)]  # one each: a worker can be stopped alone
    procs = [ctx.Process(target=_hypercorn_worker, args=(config, sockets, stop)) for stop in stops]

    def stop_all(*_: Any) -> None:
        for sock in (*sockets.secure_sockets, *sockets.insecure_sockets):
            sock.close()  # new connections are refused once the workers close their copies too
        for stop in stops:
            stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop_all)
    refuse_reload_on_sighup()
    for proc in procs:
        proc.start()
    running = list(procs)
    while running:
        for sentinel in wait([p.sentinel for p in running]):
            proc = next(p for p in running if p.sentinel == sentinel)
            proc.join()
            running.remove(proc)
            if not stops[procs.index(proc)].is_set():  # a worker ended on its own: stop the others
                stop_all()
    return next((p.exitcode for p in procs if p.exitcode), 0)


def refuse_reload_on_sighup() -> None:
    """Under hypercorn, SIGHUP says that it does not reload (instead of killing the server, the
    signal's default)."""
    import logging

    def refuse(*_: Any) -> None:
        logging.getLogger("gateway.reload").error(
            "SIGHUP: the config is reloaded only under uvicorn (the default server; this one runs "
            "hypercorn): restart the gateway to load the new config")

    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, refuse)


def _hypercorn_worker(config: Any, sockets: Any, stop: Any) -> None:
    """One hypercorn worker: SIGTERM is a graceful stop (drain, then the app's shutdown); SIGINT is
    the supervisor's to handle (a terminal's Ctrl-C reaches every process of the group)."""
    from hypercorn.asyncio.run import asyncio_worker

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    asyncio_worker(config, sockets, shutdown_event=stop)


def die_with_supervisor() -> None:
    """In a worker the CLI started: SIGTERM ourselves (the graceful stop) when the supervisor dies."""
    raw = os.environ.get(SUPERVISOR_ENV, "")
    if not raw.isdigit() or int(raw) == os.getpid():
        return
    if sys.platform.startswith("linux"):
        set_parent_death_signal(signal.SIGTERM)
    watch_parent(int(raw))


def set_parent_death_signal(sig: int) -> bool:
    """Linux: the kernel sends `sig` to this process when the thread that forked it exits."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def watch_parent(parent: int, interval: float = WATCH_INTERVAL_S) -> threading.Thread:
    """A daemon thread that sends SIGTERM to this process once its parent is no longer `parent`
    (an orphan is adopted by init or a subreaper, so its parent pid changes)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=watch, name="gateway-parent-watch", daemon=True)
    thread.start()
    return thread
