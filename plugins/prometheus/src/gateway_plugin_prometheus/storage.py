"""Where the numbers live: in this process, or in files that every worker of the gateway shares.

One process (`gateway` with one worker, or the test fixtures): the plugin's own registry in memory.

Several workers (`--num_workers N`): each worker counts only the calls it serves, and a scrape
lands on any one of them, so the counts must be pooled. prometheus_client's multiprocess mode
does that: every worker writes its values to memory-mapped files in one directory, and a scrape
reads all of them. The directory is
- `PROMETHEUS_MULTIPROC_DIR` when it is set (LiteLLM's way; the operator owns it and clears it
  between runs, as prometheus_client asks; a single-worker gateway uses it too), else
- one the plugin makes for this run, when the gateway runs workers (the `gateway` command sets
  `GATEWAY_SUPERVISOR_PID` in its workers): `<tmp>/gateway-prometheus-<supervisor pid>-<its start
  time>`, the same name in every worker of the run and no other. Each worker removes its own files
  at a graceful stop, and the last one out removes the directory; directories left by runs whose
  supervisor is gone (killed) are removed by the next run that starts.

prometheus_client chooses between the two when it is imported (`values.ValueClass`): the choice
is made here, before any metric exists, and made again should the process change mode (tests
start several gateways in one process).
"""

from __future__ import annotations

import glob
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("gateway.plugins.prometheus")

ENV = "PROMETHEUS_MULTIPROC_DIR"
LEGACY_ENV = "prometheus_multiproc_dir"  # prometheus_client's old spelling
#: Set by the `gateway` command in the workers it starts (gateway/core/supervisor.py).
SUPERVISOR_ENV = "GATEWAY_SUPERVISOR_PID"
RUN_DIR_PREFIX = "gateway-prometheus-"
_RUN_DIR = re.compile(re.escape(RUN_DIR_PREFIX) + r"(\d+)-[0-9a-z]+$")


@dataclass(slots=True)
class Storage:
    """This process's storage: `directory` is None in memory; `owned` when this plugin made it."""

    directory: str | None = None
    owned: bool = False

    @property
    def multiprocess(self) -> bool:
        return self.directory is not None


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), to tell a pid reused later
    from the process itself; "0" where /proc cannot say."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "0"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def run_directory(supervisor: int, parent: str | None = None) -> str:
    return os.path.join(parent or tempfile.gettempdir(), f"{RUN_DIR_PREFIX}{supervisor}-{_start_time(supervisor)}")


def sweep_stale(parent: str, keep: str) -> None:
    """Remove run directories of supervisors that are no longer running (a killed gateway)."""
    for path in glob.glob(os.path.join(parent, RUN_DIR_PREFIX + "*")):
        match = _RUN_DIR.search(os.path.basename(path))
        if match is None or path == keep or _alive(int(match.group(1))):
            continue
        shutil.rmtree(path, ignore_errors=True)


def choose(environ: Any = os.environ) -> Storage:
    """This process's storage, from the environment (see the module's docstring)."""
    given = environ.get(ENV) or environ.get(LEGACY_ENV)
    if given:
        os.makedirs(given, exist_ok=True)
        environ[ENV] = given
        return Storage(given, owned=False)
    supervisor = environ.get(SUPERVISOR_ENV, "")
    if supervisor.isdigit() and int(supervisor) != os.getpid():
        path = run_directory(int(supervisor))
        sweep_stale(os.path.dirname(path), keep=path)
        os.makedirs(path, mode=0o700, exist_ok=True)
        environ[ENV] = path  # prometheus_client's file values read it
        return Storage(path, owned=True)
    return Storage()


def use_value_class(multiprocess: bool) -> None:
    """Make prometheus_client create values of the chosen kind (it picked one at import)."""
    from prometheus_client import values

    if bool(getattr(values.ValueClass, "_multiprocess", False)) != multiprocess:
        values.ValueClass = values.MultiProcessValue() if multiprocess else values.MutexValue


def release(storage: Storage, environ: Any = os.environ) -> None:
    """At a graceful stop: forget this worker's live gauges; in a directory of our own, remove this
    worker's files, and the directory once it is empty."""
    if storage.directory is None:
        return
    from prometheus_client import multiprocess, values

    pid = os.getpid()
    try:
        multiprocess.mark_process_dead(pid, storage.directory)
    except OSError as exc:
        log.warning("prometheus: could not mark worker %d dead in %s: %s", pid, storage.directory, exc)
    if not storage.owned:
        return
    close = getattr(values, "close_all_multiprocess_files", None)  # prometheus-client >= 0.22
    if close is not None:
        close()
    for path in glob.glob(os.path.join(storage.directory, f"*_{pid}.db")):
        try:
            os.remove(path)
        except OSError:
            pass
    try:
        os.rmdir(storage.directory)  # fails while another worker still has files there
    except OSError:
        pass
    if environ.get(ENV) == storage.directory:
        del environ[ENV]
