"""Hot reload: `SIGHUP` to the gateway (or `POST /config/reload`) re-reads the config, validates it,
and swaps every worker for one on the new config, or keeps the old ones and says why.

Why whole workers, not objects inside one: a worker's config reaches everywhere (plugins and their
background tasks, the router, the database layer's one global context), and a half-swapped worker
would serve with a mix of both files. So the supervisor (the `gateway` process itself) does it:

1. validate the file as `gateway check` does, in a process of its own (plugins' start-up code
   never runs inside the supervisor); any problem refuses the reload, every problem is logged;
2. start a new worker for each running one, on the same listening socket, and wait until every new
   one has started (plugins' `startup` hooks included);
3. only then stop the old workers gracefully (calls in flight finish), and say "reloaded" once
   every old worker has closed its listener (`uvicorn_worker.py`): from then on every new
   connection is a new worker's. If any new worker fails to start, the new ones are stopped and the
   old ones go on serving.

The supervisor does not wait for the old workers to finish draining: they are reaped when they
exit (`reap_drained`). A `POST /config/reload` that an old worker accepted a moment before it
stopped listening waits for a reload that the supervisor could not begin while it waited for that
very worker: the two waited on each other until the 30 s graceful stop cut the call off.

Every connection is served by an old worker or a new one, never refused. Each reload's outcome is
written to a small JSON file (`GATEWAY_RELOAD_STATUS`) that `GET /config/reload` reads.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

STATUS_ENV = "GATEWAY_RELOAD_STATUS"
#: How long new workers may take to start (importing, plugins' `startup`, the database) before
#: the reload is given up: `GATEWAY_RELOAD_TIMEOUT_S`, default 120.
TIMEOUT_ENV = "GATEWAY_RELOAD_TIMEOUT_S"
#: How long an old worker may take to close its listener after its SIGTERM (uvicorn checks every
#: 0.1 s; only a worker whose event loop is blocked takes longer).
STOP_LISTENING_TIMEOUT_S = 10.0
CHECK_TIMEOUT_S = 120.0
log = logging.getLogger("gateway.reload")


def reload_timeout() -> float:
    try:
        return max(1.0, float(os.environ.get(TIMEOUT_ENV, "120")))
    except ValueError:
        return 120.0


class ReloadStatus:
    """The reloads so far, in a JSON file the workers can read: `{"id", "state", "config",
    "started_at", "finished_at", "problems", "workers"}`. `id` counts reloads since start;
    `state` is `validating`, `starting`, `reloaded`, `refused` or `aborted`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @classmethod
    def create(cls) -> "ReloadStatus":
        """A fresh file for this supervisor, its path exported to the workers it spawns."""
        folder = tempfile.mkdtemp(prefix="gateway-reload-")
        status = cls(Path(folder) / "status.json")
        status.write({"id": 0, "state": "none", "config": os.environ.get("GATEWAY_CONFIG"), "sha256": config_sha256()})
        os.environ[STATUS_ENV] = str(status.path)
        return status

    @classmethod
    def from_env(cls) -> "ReloadStatus | None":
        path = os.environ.get(STATUS_ENV)
        return cls(path) if path else None

    def read(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {"id": 0, "state": "none"}

    def write(self, data: dict[str, Any]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.path)  # readers see the old file or the new one, never half of one

    def update(self, **fields: Any) -> dict[str, Any]:
        data = {**self.read(), **fields}
        self.write(data)
        return data

    def remove(self) -> None:
        for p in (self.path, self.path.with_suffix(".tmp"), self.path.parent):
            try:
                p.rmdir() if p.is_dir() else p.unlink()
            except OSError:
                pass


def config_sha256() -> str | None:
    """The config file's digest: which file the workers serve (the status, the audit row)."""
    path = os.environ.get("GATEWAY_CONFIG")
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest() if path else None
    except OSError:
        return None


def validate_config() -> list[str]:
    """Every problem of the config file (`$GATEWAY_CONFIG`) as `gateway check` reports them; [] when
    it is valid. Run in a process of its own: plugins' start-up code never runs in the supervisor."""
    command = [sys.executable, "-m", "gateway.core.cli", "check"]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=CHECK_TIMEOUT_S, env=os.environ.copy())
    except subprocess.TimeoutExpired:
        return [f"validating the config took more than {CHECK_TIMEOUT_S:.0f} s"]
    except OSError as exc:
        return [f"could not run `gateway check`: {exc}"]
    problems = [line[len("error: "):] for line in proc.stdout.splitlines() if line.startswith("error: ")]
    if proc.returncode != 0 and not problems:
        last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        problems = [f"`gateway check` failed: {last}"]
    return problems


def refresh_logging_settings() -> None:
    """New workers configure their logging from the environment: export the new file's settings."""
    from gateway.core.app import load
    from gateway.core.logsetup import export_logging_settings

    try:
        export_logging_settings(load())
    except Exception as exc:  # validated a moment ago: only a file edited again since can get here
        log.warning("config reload: the logging settings were not re-read (%s); new workers keep the previous ones", exc)


def reload_workers(supervisor: Any, process_factory: Any, status: ReloadStatus) -> bool:
    """One reload, run by the supervisor on SIGHUP. Returns True when the new workers serve."""
    previous = status.read()
    number = int(previous.get("id") or 0) + 1
    config = os.environ.get("GATEWAY_CONFIG")
    serving = previous.get("sha256") if previous.get("state") in ("none", "reloaded") else previous.get("previous_sha256")
    status.write({"id": number, "state": "validating", "config": config, "started_at": time.time(),
                  "previous_sha256": serving, "sha256": config_sha256()})
    log.info("config reload %d: validating %s", number, config or "the environment")
    problems = validate_config()
    if problems:
        log.error("config reload %d refused, still serving the previous config: %d problem(s): %s",
                  number, len(problems), "; ".join(problems))
        status.update(state="refused", problems=problems, finished_at=time.time())
        return False
    refresh_logging_settings()
    count = len(supervisor.processes)
    status.update(state="starting")
    log.info("config reload %d: the config is valid; starting %d new worker(s)", number, count)
    fresh = [process_factory() for _ in range(count)]
    for process in fresh:
        process.start()
    deadline = time.monotonic() + reload_timeout()
    ready = all(p.wait_until_ready(max(0.1, deadline - time.monotonic()), supervisor.should_exit) for p in fresh)
    if not ready:
        for process in fresh:
            if process.process.is_alive():
                process.kill()
            process.join()
        codes = sorted({p.exitcode for p in fresh if p.exitcode not in (None, 0)})
        why = (f"a new worker exited with status {', '.join(map(str, codes))} while starting (its error is above)"
               if codes else f"the new workers had not started after {reload_timeout():.0f} s ({TIMEOUT_ENV})")
        log.error("config reload %d aborted, still serving the previous config: %s", number, why)
        status.update(state="aborted", problems=[why], finished_at=time.time())
        return False
    old, supervisor.processes = supervisor.processes, fresh
    for process in old:
        process.terminate()  # graceful: their calls in flight finish, then `reap_drained` joins them
    supervisor.draining.extend(old)
    deadline = time.monotonic() + STOP_LISTENING_TIMEOUT_S
    for process in old:
        if not process.wait_stopped_listening(max(0.0, deadline - time.monotonic())):
            log.warning("config reload %d: old worker %s still takes connections %.0f s after its SIGTERM "
                        "(its event loop is blocked?); they get the previous config until it stops",
                        number, process.pid, STOP_LISTENING_TIMEOUT_S)
    status.update(state="reloaded", workers=count, finished_at=time.time())
    log.info("config reload %d: done; %d worker(s) serve the new config; %d old worker(s) finish their calls in flight",
             number, count, len(old))
    return True


def reap_drained(draining: list[Any]) -> None:
    """Join the old workers of past reloads that have exited (called from the supervisor's loop)."""
    for process in [p for p in draining if not p.process.is_alive()]:
        process.join()
        draining.remove(process)
        log.info("config reload: old worker %s stopped (exit status %s)", process.pid, process.exitcode)
