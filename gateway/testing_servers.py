"""Gateway handles for tests: `GatewayServer` (a real gateway served by hypercorn in a thread of
this process) and `GatewayProcess` (the `gateway` command in a process of its own), both with
the gateway's URL, master key and `openai` clients. testing.py's `gateway_server` fixture starts
them; scripts and benchmarks may use them directly.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from gateway.fake_upstream import LoopThread

MASTER_KEY = "sk-1234"


class GatewayFixtureError(RuntimeError):
    """A gateway fixture cannot do what was asked; the message says what to do instead."""


#: In-process gateways now serving. The gateway's database layer keeps one global context per
#: process, so a second in-process gateway cannot start while one serves.
_IN_PROCESS: list["GatewayServer"] = []


def _orm_busy() -> bool:
    """True when this process already holds the database layer's global context (a gateway, or
    a test that connected a `Database` itself and did not close it)."""
    try:
        from tortoise.context import get_current_context
    except ImportError:  # pragma: no cover - another ORM version: only our own registry counts
        return False
    return get_current_context() is not None


def in_process_gateway_running() -> bool:
    """True when a gateway already serves in this test process (the next one must run apart)."""
    return bool(_IN_PROCESS) or _orm_busy()


class _Handle:
    """What every gateway handle offers: its URL, its master key and `openai` clients."""

    port: int
    master_key: str | None

    def __init__(self, config_path: Path, master_key: str | None) -> None:
        self.config_path = config_path
        self.master_key = master_key
        self.port = 0
        self._clients: list[Any] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, api_key: str | None = None, **kwargs: Any) -> Any:
        """An official `openai.OpenAI` client pointed at this gateway (`max_retries=0`)."""
        import openai

        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("timeout", 30)
        client = openai.OpenAI(api_key=api_key or self.master_key or "sk-none", base_url=self.url + "/v1", **kwargs)
        self._clients.append(client)  # closed by stop(), so no socket outlives the test
        return client

    def async_client(self, api_key: str | None = None, **kwargs: Any) -> Any:
        """An official `openai.AsyncOpenAI` client pointed at this gateway (close it yourself)."""
        import openai

        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("timeout", 30)
        return openai.AsyncOpenAI(api_key=api_key or self.master_key or "sk-none", base_url=self.url + "/v1", **kwargs)

    def spend_logs(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """`GET /spend/logs` (as the master key) once it holds at least `count` rows, or after
        `timeout` seconds with what it holds: spend rows are written in the background."""
        import httpx

        headers = {"Authorization": f"Bearer {self.master_key}"} if self.master_key else {}
        deadline = time.monotonic() + timeout
        while True:
            rows = httpx.get(self.url + "/spend/logs", headers=headers, timeout=10).json()
            if len(rows) >= count or time.monotonic() >= deadline:
                return rows
            time.sleep(0.05)

    def _close_clients(self) -> None:
        for client in self._clients:
            client.close()
        self._clients.clear()


class GatewayServer(_Handle):
    """A real gateway served by hypercorn in a background thread of this process, on a free
    loopback port. One at a time per process: `gateway_server` starts any further gateway as a
    `GatewayProcess`."""

    in_process = True

    def __init__(self, config_path: Path, master_key: str | None = MASTER_KEY) -> None:
        super().__init__(config_path, master_key)
        self.app: Any = None

    @property
    def gateway(self) -> Any:
        """The running `Gateway` object (settings, router, dispatcher) for white-box checks."""
        if self.app is None:
            raise GatewayFixtureError("this gateway is not running (not started yet, or stopped): "
                                      "its `.gateway` object exists only while it serves")
        return self.app.gateway

    def start(self) -> "GatewayServer":
        if in_process_gateway_running():
            running = (f"another gateway already runs in this test process ({', '.join(s.url for s in _IN_PROCESS)})"
                       if _IN_PROCESS else "this test process already holds a gateway database connection (a "
                       "gateway started outside these fixtures, or a `Database` the test connected and did not close)")
            raise GatewayFixtureError(
                f"{running}, and only one gateway can "
                "run in-process at a time. Start further gateways with the `gateway_server` fixture, which "
                "runs each one after the first in a process of its own (or ask for that with "
                "`gateway_server(config, process=True)`), or stop the running one first.")
        from hypercorn.asyncio.run import worker_serve
        from hypercorn.config import Config
        from hypercorn.utils import wrap_app

        from gateway.core.app import create_app, load

        self.app = create_app(load(str(self.config_path)))
        config = Config()
        config.bind = ["127.0.0.1:0"]
        config.accesslog = None
        config.graceful_timeout = 5
        sockets = config.create_sockets()
        self.port = sockets.insecure_sockets[0].getsockname()[1]
        self._thread = LoopThread("gateway-server")
        self._stop = asyncio.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None

        async def run() -> None:
            try:
                await worker_serve(wrap_app(self.app, config.wsgi_max_body_size, None), config,
                                   sockets=sockets, shutdown_trigger=self._stop.wait)
            except BaseException as exc:  # surfaced by start()/stop()
                self._error = exc
                self._ready.set()

        self._future = asyncio.run_coroutine_threadsafe(run(), self._thread.loop)
        _IN_PROCESS.append(self)
        try:
            self._wait_ready()
        except BaseException:
            self._abandon(sockets)
            raise
        return self

    def _abandon(self, sockets: Any) -> None:
        """A server that failed to start: stop its loop and close its sockets, leaking nothing."""
        self._thread.loop.call_soon_threadsafe(self._stop.set)
        try:
            self._future.result(10)
        except BaseException:
            pass
        self._thread.close()
        for sock in sockets.insecure_sockets:
            sock.close()
        self.app = None
        if self in _IN_PROCESS:
            _IN_PROCESS.remove(self)

    def _wait_ready(self) -> None:
        import urllib.request

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._error is not None:
                message = str(self._error)
                if "global context" in message.lower():  # the ORM's words: say it in ours
                    raise GatewayFixtureError(
                        "gateway failed to start: this test process already holds a gateway's database "
                        "connection (an in-process gateway, or a `Database` the test connected and did not "
                        "close). Only one gateway runs in-process at a time: use `gateway_server(config, "
                        "process=True)` to run this one in a process of its own.") from None
                raise RuntimeError(f"gateway failed to start: {message}") from self._error
            try:
                with urllib.request.urlopen(self.url + "/health/liveliness", timeout=1):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("gateway did not become ready within 20 s")

    def stop(self) -> None:
        self._close_clients()
        if self.app is None:
            return
        self._thread.loop.call_soon_threadsafe(self._stop.set)
        try:
            self._future.result(30)
        finally:
            self._thread.close()
            self.app = None
            if self in _IN_PROCESS:
                _IN_PROCESS.remove(self)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gateway_command() -> list[str]:
    """The `gateway` command of this environment (the script next to this Python, else the module)."""
    script = Path(sys.executable).parent / ("gateway.exe" if os.name == "nt" else "gateway")
    return [str(script)] if script.exists() else [sys.executable, "-m", "gateway.core.cli"]


class GatewayProcess(_Handle):
    """A real gateway run by the `gateway` command in a process of its own (its own session), on a
    free loopback port: what an operator runs. Same handle as `GatewayServer` (`url`, `client()`,
    `async_client()`, `master_key`), plus `log` (its output) and `pid`; there is no `.gateway`
    object to look into, since the gateway lives in another process.
    """

    in_process = False

    def __init__(self, config_path: Path, master_key: str | None = MASTER_KEY, env: dict[str, str] | None = None,
                 log_path: Path | None = None, startup_timeout: float = 60) -> None:
        super().__init__(config_path, master_key)
        self.env = dict(os.environ if env is None else env)
        self.log_path = log_path or config_path.with_suffix(".log")
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def gateway(self) -> Any:
        raise GatewayFixtureError(
            f"this gateway ({self.url}) runs in a process of its own, so there is no in-process `.gateway` "
            "object to look into: check it through HTTP (`.client()`, `.url`) and `.log`. Only the first "
            "gateway of a test runs in-process; start the one you need to inspect first.")

    @property
    def app(self) -> Any:
        return self.gateway

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def log(self) -> str:
        """Everything the gateway process printed so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self) -> "GatewayProcess":
        for _attempt in range(3):  # a free port can be taken between choosing it and binding it
            self.port = _free_port()
            env = {k: v for k, v in self.env.items() if k not in ("PORT", "GATEWAY_CONFIG")}
            env.setdefault("PYTHONUNBUFFERED", "1")
            with self.log_path.open("wb") as log:
                self.proc = subprocess.Popen(
                    [*gateway_command(), "--config", str(self.config_path), "--host", "127.0.0.1",
                     "--port", str(self.port), "--server", "hypercorn"],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                    start_new_session=True)
            if self._wait_ready():
                return self
            if "address already in use" not in self.log.lower():
                break
        code = self.proc.returncode if self.proc else None
        tail = "\n".join(self.log.strip().splitlines()[-20:])
        raise GatewayFixtureError(f"gateway failed to start in its own process (exit status {code}); "
                                  f"its output:\n{tail}")

    def _wait_ready(self) -> bool:
        """True once it answers; False when the process ended; raises past the start-up timeout."""
        import urllib.request

        assert self.proc is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(self.url + "/health/liveliness", timeout=1):
                    return True
            except OSError:
                time.sleep(0.05)
        self._kill()
        raise GatewayFixtureError(f"gateway in its own process did not answer within {self.startup_timeout:g} s; "
                                  f"its output:\n{self.log[-4000:]}")

    def _kill(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait(10)

    def stop(self, timeout: float = 30) -> None:
        """A graceful stop (SIGTERM: shutdown hooks run, queues are flushed), then anything left is killed."""
        self._close_clients()
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        self._kill()
