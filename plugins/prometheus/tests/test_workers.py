"""`gateway --num_workers 2`: each worker counts the calls it serves, and any scrape shows all of
them, pooled through prometheus_client's multiprocess files.

The real `gateway` command in a process group of its own; calls on fresh connections, several at a
time, until both workers have counted some (each worker's files carry its pid); then every scrape,
whichever worker answers it, shows exactly the calls made. Two ways to pool: a directory the plugin
makes for the run (and removes at a graceful stop), and the operator's `PROMETHEUS_MULTIPROC_DIR`;
under each of the two servers the command offers.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import yaml

from gateway.testing import gateway_command

if "prometheus_test_helpers" not in sys.modules:  # importlib mode: load the helpers by path, once
    _spec = importlib.util.spec_from_file_location("prometheus_test_helpers",
                                                   Path(__file__).with_name("prometheus_test_helpers.py"))
    sys.modules["prometheus_test_helpers"] = _module = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_module)
from prometheus_test_helpers import scrape  # noqa: E402

MASTER = "sk-1234"
USAGE = {"prompt_tokens": 3, "completion_tokens": 2}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TwoWorkers:
    """`gateway --num_workers 2` serving the fake upstream, in its own session."""

    def __init__(self, tmp: Path, upstream_url: str, server: str, env_extra: dict[str, str]) -> None:
        config = tmp / "gateway.yaml"
        config.write_text(yaml.safe_dump({
            "model_list": [{"model_name": "gpt-test",
                            "litellm_params": {"model": "openai/upstream-model", "api_base": upstream_url,
                                               "api_key": "sk-upstream"}}],
            "litellm_settings": {"callbacks": ["prometheus"]},
            "general_settings": {"master_key": MASTER}}))
        env = {k: v for k, v in os.environ.items()
               if k not in ("GATEWAY_MASTER_KEY", "LITELLM_MASTER_KEY", "GATEWAY_CONFIG", "PORT",
                            "PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir")}
        env.update(DATABASE_URL=f"sqlite://{tmp / 'gateway.db'}", TMPDIR=str(tmp), PYTHONUNBUFFERED="1", **env_extra)
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log_path = tmp / "gateway.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [*gateway_command(), "--config", str(config), "--host", "127.0.0.1",
                 "--port", self.url.rsplit(":", 1)[1], "--num_workers", "2", "--server", server],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while self.log.count("gateway ready") < 2:
            assert self.proc.poll() is None, f"gateway exited:\n{self.log}"
            assert time.monotonic() < deadline, f"gateway not ready:\n{self.log}"
            time.sleep(0.1)
        # Hypercorn's workers listen only after their startup ran (and said "gateway ready").
        while not self._answers():
            assert self.proc.poll() is None, f"gateway exited:\n{self.log}"
            assert time.monotonic() < deadline, f"gateway not listening:\n{self.log}"
            time.sleep(0.1)

    def _answers(self) -> bool:
        try:
            return httpx.get(self.url + "/health/liveliness", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        """A graceful stop (SIGTERM), then whatever is left is killed."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait(10)


def call(url: str) -> int:
    """One chat call on a connection of its own (so the kernel may hand it to either worker)."""
    resp = httpx.post(url + "/v1/chat/completions", headers={"Authorization": f"Bearer {MASTER}"},
                      json={"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}, timeout=30)
    return resp.status_code


def pids_with_counters(directory: str) -> set[int]:
    return {int(m.group(1)) for f in glob.glob(os.path.join(directory, "counter_*.db"))
            if (m := re.search(r"counter_(\d+)\.db$", f))}


@pytest.mark.parametrize(("storage", "server"),
                         [("run_directory", "uvicorn"), ("PROMETHEUS_MULTIPROC_DIR", "hypercorn")])
def test_two_workers_count_every_call_once(tmp_path, fake_upstream, storage, server):
    fake_upstream.usage = dict(USAGE)
    fake_upstream.delay = 0.2  # calls overlap, so both workers get some
    given = tmp_path / "multiproc"
    env = {"PROMETHEUS_MULTIPROC_DIR": str(given)} if storage == "PROMETHEUS_MULTIPROC_DIR" else {}
    gateway = TwoWorkers(tmp_path, fake_upstream.url, server, env)
    try:
        gateway.wait_ready()
        if env:
            directory = str(given)
        else:
            (directory,) = glob.glob(str(tmp_path / f"gateway-prometheus-{gateway.proc.pid}-*"))
        made = 0
        with ThreadPoolExecutor(8) as pool:
            for _ in range(10):
                assert set(pool.map(call, [gateway.url] * 8)) == {200}
                made += 8
                if len(pids_with_counters(directory)) == 2:
                    break
        workers = pids_with_counters(directory)
        assert len(workers) == 2, f"one worker served all {made} calls:\n{gateway.log}"

        deadline = time.monotonic() + 10
        while scrape(gateway.url).value("gateway_requests_total") < made and time.monotonic() < deadline:
            time.sleep(0.05)
        for _ in range(6):  # fresh connections: either worker answers, and both tell the same
            m = scrape(gateway.url)
            assert m.value("gateway_requests_total", model_group="gpt-test", status="success") == made
            assert m.value("litellm_proxy_total_requests_metric_total") == made
            assert m.value("gateway_tokens_total", type="prompt") == 3 * made
            assert m.value("gateway_request_latency_seconds_count") == made
            assert m.value("gateway_deployment_calls_total", result="success") == made
            assert m.one("gateway_deployment_state")[1] == 0
        assert not [n for n in m.types if n.startswith("process_")]  # per-process numbers are not pooled
    finally:
        gateway.stop()
    assert gateway.proc.returncode is not None
    if env:
        assert pids_with_counters(str(given)) == workers  # the operator's directory: left as it is
    else:
        assert not os.path.exists(directory), os.listdir(directory)  # ours: each worker took its files away
