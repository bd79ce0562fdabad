"""`gateway --num_workers 2` as an operator runs it: workers die with their supervisor, and a SIGTERM
answers every call already accepted and refuses the rest cleanly.

Everything goes through the real `gateway` CLI in a subprocess (its own session, so that a test can
always clean up every process it started, whatever the gateway does).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

GATEWAY_BIN = str(Path(sys.executable).parent / "gateway")
MASTER_KEY = "sk-1234"
SERVERS = ["uvicorn", "hypercorn"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting for its new parent to reap it counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def refuses(port: int) -> bool:
    """True when nothing listens on 127.0.0.1:`port` any more."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    return False


def chat(url: str, timeout: float = 30) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", headers={"Authorization": f"Bearer {MASTER_KEY}"},
                      json={"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}, timeout=timeout)


class Gateway:
    """The real `gateway` CLI serving a fake upstream on `port`, in its own session."""

    def __init__(self, tmp_path: Path, upstream_url: str, port: int, workers: int, server: str,
                 name: str = "gw") -> None:
        config = tmp_path / f"{name}.yaml"
        config.write_text(yaml.safe_dump({
            "model_list": [{"model_name": "gpt-test",
                            "litellm_params": {"model": "openai/upstream-model", "api_base": upstream_url}}],
            "general_settings": {"master_key": MASTER_KEY}}))
        env = {k: v for k, v in os.environ.items()
               if k not in ("GATEWAY_MASTER_KEY", "LITELLM_MASTER_KEY", "GATEWAY_CONFIG", "PORT")}
        env["DATABASE_URL"] = f"sqlite://{tmp_path / 'gateway.db'}"
        self.workers = workers
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = tmp_path / f"{name}.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen([GATEWAY_BIN, "--config", str(config), "--host", "127.0.0.1", "--port",
                                          str(port), "--num_workers", str(workers), "--server", server],
                                         stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
                                         start_new_session=True)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def worker_pids(self) -> list[int]:
        """As each worker logs it: uvicorn "Started server process [pid]", hypercorn "[pid] [INFO] Running on"."""
        found = re.findall(r"Started server process \[(\d+)\]|\[(\d+)\] \[INFO\] Running on", self.log)
        return [int(a or b) for a, b in found]

    def wait_ready(self) -> None:
        """Until every worker has started and answers."""
        deadline = time.monotonic() + 40
        while self.log.count("gateway ready") < self.workers or len(self.worker_pids()) < self.workers:
            assert self.proc.poll() is None, f"gateway exited:\n{self.log}"
            assert time.monotonic() < deadline, f"gateway not ready:\n{self.log}"
            time.sleep(0.1)
        while True:
            try:
                if httpx.get(self.url + "/health/liveliness", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"gateway not answering:\n{self.log}"
            time.sleep(0.05)

    def cleanup(self) -> None:
        """Kill whatever is left of the process group (the supervisor and any worker)."""
        pids = [self.proc.pid, *self.worker_pids()]
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for pid in pids:
            if pid != self.proc.pid and alive(pid):
                os.kill(pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait(10)


# -- SIGKILL of the supervisor -----------------------------------------------------------------------


@pytest.mark.parametrize("server", SERVERS)
def test_workers_stop_when_the_supervisor_is_killed(tmp_path, fake_upstream, server):
    port = free_port()
    old = Gateway(tmp_path, fake_upstream.url, port, workers=2, server=server, name="old")
    try:
        old.wait_ready()
        assert chat(old.url).status_code == 200
        workers = old.worker_pids()
        assert len(workers) == 2 and old.proc.pid not in workers

        old.proc.kill()  # SIGKILL: the supervisor gets no chance to stop anything
        old.proc.wait(10)
        deadline = time.monotonic() + 5
        while any(alive(pid) for pid in workers) or not refuses(port):
            assert time.monotonic() < deadline, (
                f"5 s after SIGKILL of the supervisor: workers alive {[p for p in workers if alive(p)]}, "
                f"port {port} {'free' if refuses(port) else 'still accepting'}\n{old.log}")
            time.sleep(0.1)
        # They stopped the graceful way (SIGTERM): the spend queue of each was written.
        assert old.log.count("spend writer closed") == 2, old.log
    finally:
        old.cleanup()

    new = Gateway(tmp_path, fake_upstream.url, port, workers=1, server=server, name="new")
    try:
        new.wait_ready()
        assert chat(new.url).status_code == 200
        assert "Address already in use" not in new.log
    finally:
        new.cleanup()


ORPHAN = textwrap.dedent("""
    import os, sys, time
    from gateway.core.supervisor import watch_parent
    watch_parent(os.getppid(), interval=0.1)
    print("watching", flush=True)
    time.sleep(30)
""")
PARENT = textwrap.dedent("""
    import subprocess, sys
    child = subprocess.Popen([sys.executable, "-c", sys.argv[1]])
    print(child.pid, flush=True)
    child.wait()
""")


def test_the_portable_parent_watch_stops_an_orphan():
    """Where prctl(PR_SET_PDEATHSIG) does not exist, the parent-pid watch alone stops a worker."""
    parent = subprocess.Popen([sys.executable, "-c", PARENT, ORPHAN], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        child = int(parent.stdout.readline())
        assert parent.stdout.readline().strip() == "watching"
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 3
        while alive(child):
            assert time.monotonic() < deadline, "the orphan outlived its parent by 3 s"
            time.sleep(0.05)
    finally:
        try:
            os.killpg(parent.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        parent.stdout.close()


# -- SIGTERM with calls in flight ------------------------------------------------------------------


def outcome(call: Any) -> str:
    try:
        return str(call().status_code)
    except httpx.ConnectError:
        return "refused"
    except httpx.HTTPError as exc:
        return type(exc).__name__  # ReadError, RemoteProtocolError: accepted, then dropped


@pytest.mark.parametrize("server", SERVERS)
def test_sigterm_with_two_workers_answers_every_call_in_flight(tmp_path, fake_upstream, server):
    # Calls of 2 s: still running when the workers stop accepting (the supervisor looks every 0.5 s).
    fake_upstream.delay = 2.0
    gw = Gateway(tmp_path, fake_upstream.url, free_port(), workers=2, server=server)
    try:
        gw.wait_ready()
        in_flight: list[str] = []
        callers = [threading.Thread(target=lambda: in_flight.append(outcome(lambda: chat(gw.url))))
                   for _ in range(40)]
        for t in callers:
            t.start()
        deadline = time.monotonic() + 20
        while len(fake_upstream.requests) < 40:
            assert time.monotonic() < deadline, f"{len(fake_upstream.requests)} calls reached the upstream"
            time.sleep(0.01)

        started = time.monotonic()
        gw.proc.send_signal(signal.SIGTERM)
        # New connections are refused while those calls are still being answered (before the fix the
        # supervisor kept the socket: the kernel accepted them, and they were reset when it exited).
        while not refuses(gw.port):
            assert gw.proc.poll() is None and time.monotonic() < started + 10, (
                f"new connections were accepted until the gateway exited ({len(in_flight)} calls answered)")
            time.sleep(0.02)
        refused_after = time.monotonic() - started
        answered_by_then = len(in_flight)
        late = [outcome(lambda: chat(gw.url, timeout=10)) for _ in range(5)]

        code = gw.proc.wait(35)  # the graceful timeout is 30 s
        took = time.monotonic() - started
        for t in callers:
            t.join(15)
    finally:
        gw.cleanup()
    assert answered_by_then < 40, ("new connections were accepted while the workers drained, and refused only "
                                   f"once all 40 calls were answered ({refused_after:.2f} s after SIGTERM)")
    assert late == ["refused"] * 5, late
    assert in_flight == ["200"] * 40, in_flight
    assert code == 0, gw.log
    assert took < 10, f"exit took {took:.1f} s"
    print(f"{server}: SIGTERM with 40 calls of 2 s in flight: new connections refused after {refused_after:.2f} s, "
          f"40 x 200, exit 0 after {took:.2f} s")
