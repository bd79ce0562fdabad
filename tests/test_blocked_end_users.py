"""Blocked end users are refused by the core, with no plugin: `/customer/block` takes effect on
the next call, on every LLM route, on every worker and on every instance (PostgreSQL + Redis).

The two-instance test also measures how long a block takes to reach the other instance.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import openai
import pytest
import yaml

from gateway.core.identity import IdentityCache

pytestmark = pytest.mark.db

ADMIN = {"Authorization": "Bearer sk-1234"}
HI = [{"role": "user", "content": "hi"}]
GATEWAY_BIN = str(Path(sys.executable).parent / "gateway")
FAKE_CONFIG = {"model_list": [{"model_name": "m", "litellm_params": {"model": "fake/m"}}]}


def blocked(user: str) -> dict[str, Any]:
    return {"error": {"message": f"User blocked from making LLM API Calls. User={user}",
                      "type": "bad_request_error", "param": "user", "code": "400"}}


def config(upstream: Any) -> dict[str, Any]:
    return {"model_list": [{"model_name": "gpt-3.5-turbo", "litellm_params": {
        "model": "openai/upstream-model", "api_base": upstream.url, "api_key": "sk-up"}}]}


def post(url: str, path: str, body: Any = None, key: str = "sk-1234") -> httpx.Response:
    with httpx.Client(base_url=url, timeout=10) as client:  # a new connection: any worker may answer
        return client.post(path, json=body, headers={"Authorization": f"Bearer {key}"})


def ok(resp: httpx.Response) -> Any:
    assert resp.status_code == 200, resp.text
    return resp.json()


# -- one server ------------------------------------------------------------------------------------


def test_the_seed_example_is_refused_after_customer_block_without_any_plugin(fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream))
    client = server.client()

    def ask() -> Any:
        return client.chat.completions.create(
            model="gpt-3.5-turbo", user="user_id_1",
            messages=[{"role": "user", "content": "this is a test request, write a short poem"}])

    assert ask().choices[0].message.content  # served, and the unknown end user is now cached as unknown
    assert ok(post(server.url, "/customer/block", {"user_ids": ["user_id_1"]})) == {"blocked_users": ["user_id_1"]}
    with pytest.raises(openai.BadRequestError) as err:
        ask()
    assert err.value.status_code == 400
    assert err.value.response.json() == blocked("user_id_1")
    assert len(fake_upstream.requests) == 1  # the refused call never left the gateway
    assert ok(post(server.url, "/user/unblock", {"user_ids": ["user_id_1"]})) == {"unblocked_users": ["user_id_1"]}
    assert ask().choices[0].message.content
    ok(post(server.url, "/end_user/block", {"user_ids": ["user_id_1"]}))
    with pytest.raises(openai.BadRequestError):
        ask()
    ok(post(server.url, "/customer/unblock", {"user_ids": ["user_id_1"]}))
    assert ask().choices[0].message.content
    deadline = time.monotonic() + 10
    while len(rows := httpx.get(server.url + "/spend/logs", headers=ADMIN).json()) < 5:  # written in the background
        assert time.monotonic() < deadline, rows
        time.sleep(0.05)
    assert [(r["end_user"], r["status"], r["metadata"].get("blocked_by")) for r in rows[::-1]] == [
        ("user_id_1", "success", None), ("user_id_1", "blocked", "virtual_keys"), ("user_id_1", "success", None),
        ("user_id_1", "blocked", "virtual_keys"), ("user_id_1", "success", None)]


def test_every_llm_route_refuses_a_blocked_end_user(fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream))
    raw = ok(post(server.url, "/key/generate", {}))["key"]
    ok(post(server.url, "/customer/block", {"user_ids": ["c-blocked"]}))
    chat = {"model": "gpt-3.5-turbo", "messages": HI}
    calls = [
        ("/chat/completions", chat), ("/v1/chat/completions", {**chat, "stream": True}),
        ("/completions", {"model": "gpt-3.5-turbo", "prompt": "hi"}),
        ("/v1/completions", {"model": "gpt-3.5-turbo", "prompt": "hi", "stream": True}),
        ("/embeddings", {"model": "gpt-3.5-turbo", "input": "hi"}),
        ("/v1/embeddings", {"model": "gpt-3.5-turbo", "input": ["hi"]}),
        ("/openai/deployments/gpt-3.5-turbo/chat/completions", {"messages": HI}),
        ("/engines/gpt-3.5-turbo/completions", {"prompt": "hi"}),
    ]
    for key in ("sk-1234", raw):  # the master key and a virtual key alike
        for path, body in calls:
            resp = post(server.url, path, {**body, "user": "c-blocked"}, key=key)
            assert resp.status_code == 400, (path, resp.text)
            assert resp.json() == blocked("c-blocked"), path
            assert resp.headers["x-request-id"]
    assert fake_upstream.requests == []
    # Others are served; an unknown end user is not blocked.
    for path, body in calls:
        assert post(server.url, path, {**body, "user": "someone-else"}, key=raw).status_code == 200, path


def test_the_blocked_check_comes_before_budgets_and_model_access(gateway_server):
    server = gateway_server({"model_list": [{"model_name": "m", "litellm_params": {"model": "fake/m"}},
                                            {"model_name": "other", "litellm_params": {"model": "fake/other"}}]})
    raw = ok(post(server.url, "/key/generate", {"models": ["m"]}))["key"]
    ok(post(server.url, "/customer/new", {"user_id": "broke", "max_budget": 1, "spend": 5}))
    ok(post(server.url, "/customer/block", {"user_ids": ["broke"]}))
    for model in ("m", "other"):
        resp = post(server.url, "/v1/chat/completions", {"model": model, "messages": HI, "user": "broke"}, key=raw)
        assert resp.json() == blocked("broke")
    ok(post(server.url, "/customer/unblock", {"user_ids": ["broke"]}))
    resp = post(server.url, "/v1/chat/completions", {"model": "m", "messages": HI, "user": "broke"}, key=raw)
    assert resp.status_code == 429 and resp.json()["error"]["type"] == "budget_exceeded"


def test_user_field_edge_cases(gateway_server):
    server = gateway_server(FAKE_CONFIG)
    ok(post(server.url, "/customer/block", {"user_ids": ["7", "Bob"]}))
    for user in (7, ["7"], {"id": "7"}, True):
        resp = post(server.url, "/v1/chat/completions", {"model": "m", "messages": HI, "user": user})
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"] == {"message": "user must be of type str", "type": "bad_request_error",
                                        "param": "user", "code": "400"}
    assert post(server.url, "/v1/chat/completions", {"model": "m", "messages": HI, "user": "7"}).json() == blocked("7")
    # Ids are exact: case and surrounding spaces count; an empty user is no one.
    for user in ("bob", " Bob", "Bob ", "", None):
        resp = post(server.url, "/v1/chat/completions", {"model": "m", "messages": HI, "user": user})
        assert resp.status_code == 200, (user, resp.text)


def test_end_user_ids_are_checked_and_never_a_500(gateway_server):
    server = gateway_server(FAKE_CONFIG)
    for path in ("/customer/block", "/customer/unblock", "/user/unblock", "/end_user/block"):
        for body in (None, {}, {"user_ids": []}, {"user_ids": "u1"}, {"user_ids": [1]}, {"user_ids": [""]},
                     {"user_ids": ["x" * 256]}, {"user_ids": ["a\x00b"]}, {"user_id": "u1"}):
            with httpx.Client(base_url=server.url, timeout=10) as client:
                resp = client.post(path, headers=ADMIN, **({} if body is None else {"json": body}))
            assert resp.status_code == 400, (path, body, resp.text)
            assert resp.json()["error"]["param"].startswith("user_ids"), (path, body, resp.text)
    resp = httpx.post(server.url + "/customer/block", headers=ADMIN, content=b'{"user_ids": [<user_id>, ...]}')
    assert resp.status_code == 400 and resp.json()["error"]["message"].startswith("Malformed JSON in request body")
    # No database stores a NUL in an id (PostgreSQL refuses it): a 400 on every end-user route.
    for path in ("/customer/new", "/customer/update"):
        resp = httpx.post(server.url + path, headers=ADMIN, json={"user_id": "a\x00b"})
        assert resp.json()["error"] == {"message": "Invalid value for user_id: must not contain NUL characters",
                                        "type": "bad_request_error", "param": "user_id", "code": "400"}
    resp = httpx.get(server.url + "/customer/info", headers=ADMIN, params={"end_user_id": "a\x00b"})
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "end_user_id"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_seeds_curl_as_written_gets_a_400_naming_user_ids(gateway_server, tmp_path):
    """The seed sends its body with `-D` (curl's --dump-header): the body arrives empty."""
    server = gateway_server(FAKE_CONFIG)
    for path in ("/customer/block", "/user/unblock"):
        proc = subprocess.run(
            ["curl", "-s", "-X", "POST", server.url + path, "-H", "Authorization: Bearer sk-1234",
             "-D", '{\n"user_ids": [<user_id>, ...]\n}'],
            cwd=tmp_path, capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout) == {"error": {
            "message": "Invalid value for user_ids: Field required", "type": "bad_request_error",
            "param": "user_ids", "code": "400"}}


# -- the cache -------------------------------------------------------------------------------------


async def test_an_eviction_during_a_load_is_not_undone_by_the_load():
    """A load that began before a change (a block) must not put the old record back in the cache."""
    cache = IdentityCache()
    loads = []

    async def stale_load() -> str:
        loads.append("stale")
        cache.evict("end_user", "u1")  # the change lands while the database read is in flight
        return "unblocked record"

    async def fresh_load() -> str:
        loads.append("fresh")
        return "blocked record"

    assert await cache.get("end_user", "u1", stale_load) == "unblocked record"
    assert await cache.get("end_user", "u1", fresh_load) == "blocked record"
    assert await cache.get("end_user", "u1", fresh_load) == "blocked record"  # now cached
    assert loads == ["stale", "fresh"]


# -- several processes -----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Instance:
    """`gateway` as a subprocess: what an operator runs on each machine."""

    def __init__(self, tmp_path: Path, name: str, env: dict[str, str], workers: int = 1) -> None:
        cfg = tmp_path / f"{name}.yaml"
        cfg.write_text(yaml.safe_dump({**FAKE_CONFIG, "general_settings": {"master_key": "sk-1234"}}))
        self.log_path = tmp_path / f"{name}.log"
        self.url = f"http://127.0.0.1:{_free_port()}"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [GATEWAY_BIN, "--config", str(cfg), "--num_workers", str(workers), "--host", "127.0.0.1",
             "--port", self.url.rsplit(":", 1)[1]],
            env={**os.environ, **env}, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            assert self.proc.poll() is None, self.log_path.read_text()
            try:
                if httpx.get(self.url + "/health/liveliness", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "gateway did not start: " + self.log_path.read_text()
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._log.close()


def _chat(url: str, user: str) -> httpx.Response:
    return post(url, "/v1/chat/completions", {"model": "m", "messages": HI, "user": user})


def test_blocks_apply_on_every_worker_at_once(tmp_path, database_url):
    server = Instance(tmp_path, "two-workers", {"DATABASE_URL": database_url()}, workers=2)
    try:
        server.wait_ready()
        for _ in range(20):  # both workers cache the end user (unknown at first, then its record)
            ok(_chat(server.url, "w-user"))
        for _ in range(3):
            ok(post(server.url, "/customer/block", {"user_ids": ["w-user"]}))
            for _ in range(10):
                assert _chat(server.url, "w-user").json() == blocked("w-user")
            ok(post(server.url, "/customer/unblock", {"user_ids": ["w-user"]}))
            for _ in range(10):
                ok(_chat(server.url, "w-user"))
    finally:
        server.stop()


@pytest.fixture
def two_instances(tmp_path, database_url, redis_url) -> Iterator[tuple[Instance, Instance]]:
    """Two instances sharing one PostgreSQL database and one Redis, and nothing else: each has its
    own temporary folder, so the invalidation file of one machine cannot carry the change."""
    url = database_url()
    if not url.startswith("postgres"):
        pytest.skip("two instances share a PostgreSQL database: set GATEWAY_TEST_DATABASE_URL")
    instances = []
    for name in ("a", "b"):
        tmp = tmp_path / f"tmp-{name}"
        tmp.mkdir()
        instances.append(Instance(tmp_path, name, {"DATABASE_URL": url, "REDIS_URL": redis_url, "TMPDIR": str(tmp)}))
    try:
        for instance in instances:
            instance.wait_ready()
        yield instances[0], instances[1]
    finally:
        for instance in instances:
            instance.stop()


def test_block_on_one_instance_refuses_on_the_other_at_once(two_instances, capsys):
    """Block on A, then ask B as soon as A has answered: B refuses on that very request, and serves
    again on the request after an unblock. Measured: from sending `/customer/block` to A until
    B's refusal has arrived (one kept-alive connection to each instance)."""
    a, b = two_instances
    rounds, to_refusal, to_service = 30, [], []
    with httpx.Client(base_url=a.url, headers=ADMIN, timeout=10) as on_a, \
            httpx.Client(base_url=b.url, headers=ADMIN, timeout=10) as on_b:

        def chat_b(user: str) -> httpx.Response:
            return on_b.post("/v1/chat/completions", json={"model": "m", "messages": HI, "user": user})

        for i in range(rounds):
            user = "x-user" if i % 2 else f"x-user-{i}"  # odd rounds: a known record; even: a new id
            ok(chat_b(user))  # B now holds the end user in its cache (as unknown, or unblocked)
            started = time.perf_counter()
            ok(on_a.post("/customer/block", json={"user_ids": [user]}))
            assert chat_b(user).json() == blocked(user), f"round {i}: B served a blocked end user"
            to_refusal.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            ok(on_a.post("/customer/unblock", json={"user_ids": [user]}))
            ok(chat_b(user))
            to_service.append((time.perf_counter() - started) * 1000)
    with capsys.disabled():
        print(f"\n/customer/block on A -> refusal on B: median {statistics.median(to_refusal):.1f} ms, "
              f"max {max(to_refusal):.1f} ms over {rounds} rounds; /customer/unblock on A -> served on B: "
              f"median {statistics.median(to_service):.1f} ms")
    assert max(to_refusal) < 1000


def test_a_change_returns_once_an_instance_with_a_slow_redis_link_applied_it(tmp_path, database_url, redis_url,
                                                                             proxy_to, caplog):
    """B hears Redis 50 ms late (every chunk, either way). `/customer/block` on A returns only once
    B has applied it, so B refuses the very request sent when A answered; before each instance
    confirmed what it applied, A answered first and B served the blocked end user."""
    url = database_url()
    if not url.startswith("postgres"):
        pytest.skip("two instances share a PostgreSQL database: set GATEWAY_TEST_DATABASE_URL")
    redis_db = redis_url.rsplit("/", 1)[1]
    slow = proxy_to("127.0.0.1", 6379)
    slow.delay_s = 0.05
    instances = []
    for name, redis in (("a", redis_url), ("b", f"redis://127.0.0.1:{slow.port}/{redis_db}")):
        tmp = tmp_path / f"tmp-{name}"
        tmp.mkdir()
        instances.append(Instance(tmp_path, name, {"DATABASE_URL": url, "REDIS_URL": redis, "TMPDIR": str(tmp)}))
    a, b = instances
    try:
        a.wait_ready()
        b.wait_ready()
        with httpx.Client(base_url=a.url, headers=ADMIN, timeout=10) as on_a, \
                httpx.Client(base_url=b.url, headers=ADMIN, timeout=10) as on_b:
            def chat_b(user: str) -> httpx.Response:
                return on_b.post("/v1/chat/completions", json={"model": "m", "messages": HI, "user": user})

            for user in ("slow-1", "slow-2"):
                ok(chat_b(user))  # cached on B as unknown
                started = time.perf_counter()
                ok(on_a.post("/customer/block", json={"user_ids": [user]}))
                waited = time.perf_counter() - started
                assert chat_b(user).json() == blocked(user)
                # B's confirmation took its time (and a new connection's handshake the first time), but
                # arrived before A's Redis timeout (1 s): A did not give up on it.
                assert 0.1 <= waited < 1.0, f"A answered after {waited:.2f} s"
                ok(on_a.post("/customer/unblock", json={"user_ids": [user]}))
                ok(chat_b(user))
    finally:
        for instance in instances:
            instance.stop()
    assert "did not confirm" not in a.log_path.read_text()
