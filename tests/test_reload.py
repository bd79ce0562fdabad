"""Hot reload as an operator does it: edit the file, then `kill -HUP` the gateway or `POST
/config/reload`. The new config is served by new workers, or refused (every problem said) while
the old one serves on; calls under load never fail across a reload.

Everything goes through the real `gateway` CLI in a subprocess (tests/test_processes.py's helper).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.test_processes import MASTER_KEY, Gateway, free_port

ADMIN = {"Authorization": f"Bearer {MASTER_KEY}"}


def config(upstream_url: str, *models: str, **sections: Any) -> dict[str, Any]:
    general = {"master_key": MASTER_KEY, **sections.pop("general", {})}
    return {"model_list": [{"model_name": m, "litellm_params": {"model": "openai/upstream-model", "api_base": upstream_url}}
                           for m in models],
            "general_settings": general, **sections}


def rewrite(tmp_path: Path, data: dict[str, Any]) -> None:
    """Edit the file the running gateway was started with (`Gateway` writes `gw.yaml`)."""
    (tmp_path / "gw.yaml").write_text(yaml.safe_dump(data))


def chat(url: str, model: str, client: httpx.Client | None = None) -> httpx.Response:
    post = (client or httpx).post
    return post(url + "/v1/chat/completions", headers=ADMIN, timeout=30,
                json={"model": model, "messages": [{"role": "user", "content": "hi"}]})


def models(url: str) -> list[str]:
    return sorted(m["id"] for m in httpx.get(url + "/v1/models", headers=ADMIN, timeout=10).json()["data"])


def wait_for_log(gw: Gateway, text: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while text not in gw.log:
        assert gw.proc.poll() is None, f"gateway exited:\n{gw.log}"
        assert time.monotonic() < deadline, f"{text!r} not logged:\n{gw.log}"
        time.sleep(0.1)


@pytest.fixture
def started(tmp_path, fake_upstream):
    made: list[Gateway] = []

    def start(workers: int = 2, server: str = "uvicorn") -> Gateway:
        gw = Gateway(tmp_path, fake_upstream.url, free_port(), workers, server)
        made.append(gw)
        gw.wait_ready()
        return gw

    yield start
    for gw in made:
        gw.cleanup()


def test_sighup_under_load_swaps_every_worker_and_no_call_fails(tmp_path, fake_upstream, started):
    gw = started(workers=2)
    old_workers = set(gw.worker_pids())
    failures: list[str] = []
    answered = [0]
    stop = threading.Event()

    def load() -> None:
        with httpx.Client() as client:  # keep-alive connections, as SDK clients hold them
            while not stop.is_set():
                try:
                    r = chat(gw.url, "gpt-test", client)
                    if r.status_code != 200:
                        failures.append(f"{r.status_code} {r.text[:200]}")
                    else:
                        answered[0] += 1
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        rewrite(tmp_path, config(fake_upstream.url, "gpt-test", "gpt-new"))
        gw.proc.send_signal(signal.SIGHUP)
        wait_for_log(gw, "config reload 1: done; 2 worker(s) serve the new config")
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert failures == [], failures[:5]
    assert answered[0] > 20
    assert models(gw.url) == ["gpt-new", "gpt-test"]
    assert chat(gw.url, "gpt-new").status_code == 200
    new_workers = set(gw.worker_pids()) - old_workers
    assert len(new_workers) == 2
    assert "config reload 1: validating" in gw.log and "starting 2 new worker(s)" in gw.log


def test_post_reload_says_what_changed_and_audits_it(tmp_path, fake_upstream, started):
    gw = started(workers=1)
    audited = {"litellm_settings": {"store_audit_logs": True}}
    rewrite(tmp_path, config(fake_upstream.url, "gpt-test", **audited))
    r = httpx.post(gw.url + "/config/reload", headers=ADMIN, timeout=200)
    assert r.status_code == 200, r.text
    first = r.json()
    assert (first["id"], first["state"], first["workers"]) == (1, "reloaded", 1)
    assert first["sha256"] != first["previous_sha256"]
    # The workers now keep an audit log: the next reload is in it, with which file replaced which.
    rewrite(tmp_path, config(fake_upstream.url, "gpt-test", "gpt-new", **audited))
    second = httpx.post(gw.url + "/config/reload", headers=ADMIN, timeout=200).json()
    assert (second["id"], second["state"], second["previous_sha256"]) == (2, "reloaded", first["sha256"])
    assert models(gw.url) == ["gpt-new", "gpt-test"]
    assert httpx.get(gw.url + "/config/reload", headers=ADMIN, timeout=10).json() == second
    deadline = time.monotonic() + 20
    while True:
        rows = httpx.get(gw.url + "/audit", headers=ADMIN, params={"table_name": "LiteLLM_Config"}, timeout=10)
        if rows.status_code == 200 and rows.json()["audit_logs"]:
            break
        assert time.monotonic() < deadline, rows.text
        time.sleep(0.2)
    (row,) = rows.json()["audit_logs"]
    assert row["action"] == "updated" and row["object_id"] == str(tmp_path / "gw.yaml")
    assert row["before_value"] == {"sha256": first["sha256"]}
    assert row["updated_values"] == {"sha256": second["sha256"], "workers": 1}
    assert MASTER_KEY not in rows.text


def listening_socket_holders(port: int) -> set[int]:
    """The pids holding the listening socket of `port` open (Linux /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":  # 0A: LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    holders = set()
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        try:
            if os.readlink(fd) in inodes:
                holders.add(int(fd.parts[2]))
        except OSError:
            pass
    return holders


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads the listening socket's holders from Linux /proc")
def test_once_a_reload_says_reloaded_every_new_connection_gets_the_new_config(tmp_path, fake_upstream, started):
    # It once said "reloaded" right after sending the old workers their SIGTERM: a worker notices it
    # on its next 0.1 s tick, and a new connection in between was an old worker's (old model list).
    gw = started(workers=2)
    old = set(gw.worker_pids())
    assert old <= listening_socket_holders(gw.port)
    for attempt in range(3):
        rewrite(tmp_path, config(fake_upstream.url, "gpt-test", f"gpt-new-{attempt}"))
        r = httpx.post(gw.url + "/config/reload", headers=ADMIN, timeout=200)
        assert r.status_code == 200, r.text
        assert not (old & listening_socket_holders(gw.port)), "an old worker still takes connections"
        for _ in range(10):  # each a new connection
            assert models(gw.url) == [f"gpt-new-{attempt}", "gpt-test"]
        old = set(gw.worker_pids())


def test_a_worker_that_dies_is_replaced_and_its_replacement_reloads_like_the_others(tmp_path, fake_upstream, started):
    gw = started(workers=2)
    victim, survivor = gw.worker_pids()
    os.kill(victim, signal.SIGKILL)
    wait_for_log(gw, f"worker {victim} died (exit status -9); starting another")
    deadline = time.monotonic() + 40
    while len(gw.worker_pids()) < 3:
        assert time.monotonic() < deadline, gw.log
        time.sleep(0.1)
    replacement = gw.worker_pids()[-1]
    wait_for_log(gw, "gateway ready", timeout=40)
    rewrite(tmp_path, config(fake_upstream.url, "gpt-test", "gpt-new"))
    r = httpx.post(gw.url + "/config/reload", headers=ADMIN, timeout=200)
    assert r.status_code == 200, r.text
    if Path("/proc/net/tcp").exists():
        assert not ({replacement, survivor} & listening_socket_holders(gw.port))
    assert models(gw.url) == ["gpt-new", "gpt-test"]


def test_an_old_worker_still_draining_holds_up_neither_the_next_reload_nor_its_own_call(tmp_path, fake_upstream, started):
    # The supervisor once waited for the old workers to exit before it took the next SIGHUP: a
    # `POST /config/reload` accepted by an old worker a moment before it stopped listening then
    # waited for a reload that could not begin, until the 30 s graceful stop cut it off (a 500).
    gw = started(workers=1)
    fake_upstream.delay = 25.0  # under the 30 s the old worker is given to finish its calls
    slow: list[httpx.Response] = []
    caller = threading.Thread(target=lambda: slow.append(httpx.post(
        gw.url + "/v1/chat/completions", headers=ADMIN, timeout=60,
        json={"model": "gpt-test", "messages": [{"role": "user", "content": "slow"}]})))
    caller.start()
    deadline = time.monotonic() + 10
    while not fake_upstream.requests:  # the call is in flight on the first worker
        assert time.monotonic() < deadline
        time.sleep(0.05)
    fake_upstream.delay = 0.0
    rewrite(tmp_path, config(fake_upstream.url, "gpt-test", "gpt-new"))
    gw.proc.send_signal(signal.SIGHUP)
    wait_for_log(gw, "config reload 1: done; 1 worker(s) serve the new config", timeout=60)
    assert caller.is_alive(), "the reload waited for the old worker's call to finish"
    # The next reload, asked for while the old worker still drains, goes through at once.
    rewrite(tmp_path, config(fake_upstream.url, "gpt-test", "gpt-newer"))
    r = httpx.post(gw.url + "/config/reload", headers=ADMIN, timeout=200)
    assert r.status_code == 200 and r.json()["id"] == 2, r.text
    assert models(gw.url) == ["gpt-newer", "gpt-test"]
    caller.join(60)
    assert [r.status_code for r in slow] == [200]  # the old worker's call was not cut off
    wait_for_log(gw, "config reload: old worker")
    assert chat(gw.url, "gpt-newer").status_code == 200


def test_a_config_with_problems_is_refused_with_all_of_them_and_the_old_one_serves(tmp_path, fake_upstream, started):
    gw = started(workers=2)
    before = set(gw.worker_pids())
    bad = config(fake_upstream.url, "gpt-test", "gpt-new")
    bad["general_settings"]["max_request_size_md"] = 3
    bad["model_list"][1]["litellm_params"]["model"] = "zhipu/glm"
    rewrite(tmp_path, bad)
    r = httpx.post(gw.url + "/config/reload", headers=ADMIN, timeout=200)
    assert r.status_code == 400, r.text
    message = r.json()["error"]["message"]
    assert message.startswith("config reload refused, still serving the previous config: 2 problem(s): "), message
    assert "max_request_size_md: unknown key; did you mean max_request_size_mb?" in message
    assert "provider 'zhipu' is not supported" in message
    assert models(gw.url) == ["gpt-test"] and chat(gw.url, "gpt-test").status_code == 200
    assert set(gw.worker_pids()) == before  # no worker was started
    assert "config reload 1 refused, still serving the previous config: 2 problem(s)" in gw.log
    status = httpx.get(gw.url + "/config/reload", headers=ADMIN, timeout=10).json()
    assert status["state"] == "refused" and len(status["problems"]) == 2


def test_a_new_worker_that_cannot_start_aborts_the_reload(tmp_path, fake_upstream, started):
    gw = started(workers=1)
    before = set(gw.worker_pids())
    rewrite(tmp_path, config(fake_upstream.url, "gpt-test", "gpt-new",
                                 litellm_settings={"callbacks": ["probe_startup_fails"]}))
    r = httpx.post(gw.url + "/config/reload", headers=ADMIN, timeout=200)
    assert r.status_code == 500, r.text
    assert r.json()["error"]["message"] == ("config reload aborted, still serving the previous config: a new "
                                            "worker exited with status 3 while starting (its error is above)")
    assert "plugin 'probe_startup_fails' failed to start" in gw.log
    assert models(gw.url) == ["gpt-test"] and chat(gw.url, "gpt-test").status_code == 200
    assert before <= set(gw.worker_pids())
    # A fixed file then goes through.
    rewrite(tmp_path, config(fake_upstream.url, "gpt-test", "gpt-new"))
    r = httpx.post(gw.url + "/config/reload", headers=ADMIN, timeout=200)
    assert r.status_code == 200 and r.json()["id"] == 2, r.text
    assert models(gw.url) == ["gpt-new", "gpt-test"]


def test_only_an_admin_may_reload(fake_upstream, started):
    gw = started(workers=1)
    key = httpx.post(gw.url + "/key/generate", headers=ADMIN, json={}, timeout=10).json()["key"]
    for method in ("GET", "POST"):
        r = httpx.request(method, gw.url + "/config/reload", headers={"Authorization": f"Bearer {key}"}, timeout=10)
        assert r.status_code == 403, r.text
        assert r.json()["error"]["message"] == "Only proxy admin can access this route. Route=/config/reload"


def test_hypercorn_says_it_does_not_reload_and_serves_on(tmp_path, fake_upstream, started):
    gw = started(workers=1, server="hypercorn")
    gw.proc.send_signal(signal.SIGHUP)
    wait_for_log(gw, "SIGHUP: the config is reloaded only under uvicorn")
    assert chat(gw.url, "gpt-test").status_code == 200
    r = httpx.post(gw.url + "/config/reload", headers=ADMIN, timeout=10)
    assert r.status_code == 400
    assert r.json()["error"]["message"].startswith("this gateway cannot reload its config: it runs without")


def test_an_in_process_server_cannot_reload(gateway_server, fake_upstream):
    server = gateway_server(config(fake_upstream.url, "gpt-test"))
    r = httpx.post(server.url + "/config/reload", headers=ADMIN, timeout=10)
    assert r.status_code == 400
    assert "restart it to load a new config" in r.json()["error"]["message"]
