"""Pass-through endpoints (`general_settings.pass_through_endpoints`), end to end.

A real gateway forwards to a real target on loopback (an aiohttp app in its own loop thread) that
records what it received and can stream, stall, fail or break off. Start-up errors are checked
on the app factory and once through the real `gateway` CLI.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gateway.core.keys import hash_key
from gateway.fake_upstream import LoopThread

MASTER = "sk-1234"
SECRET = "target-secret-0123456789abcdef"  # the provider key an entry adds: must never leak
SECRET_ENV = "PT_TEST_TARGET_KEY"
ADMIN = {"Authorization": f"Bearer {MASTER}"}


@dataclass
class Received:
    method: str
    path: str
    query: str
    body: bytes
    headers: dict[str, str]  # lower-case names


class Target:
    """An HTTP server on loopback standing in for a third-party API.

    `/sse` and `/ndjson` send a first chunk, then wait until the test says it saw that chunk
    (`release`), then send the rest: `released_in_time` tells whether the client got the first
    chunk while the target was still sending. `/status/<n>` answers n with a body echoing the
    Authorization it got (an API echoing a key in its error), gzipped under `/gzip-status/<n>`;
    `/slow` answers after 3 s; `/break` sends a chunk and drops the connection. Any other path
    echoes what it received.
    """

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.release = threading.Event()
        self.released_in_time: bool | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Target":
        from aiohttp import web

        self._thread = LoopThread("pass-through-target")
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)

        async def boot() -> int:
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", 0).start()
            return self._runner.addresses[0][1]

        self.port = self._thread.run(boot())
        return self

    def stop(self) -> None:
        self._thread.run(self._runner.cleanup())
        self._thread.close()

    async def _handle(self, request: Any) -> Any:
        from aiohttp import web

        body = await request.read()
        self.received.append(Received(request.method, request.raw_path.split("?", 1)[0],
                                      request.rel_url.raw_query_string, body,
                                      {k.lower(): v for k, v in request.headers.items()}))
        tail = request.path.rsplit("/", 1)[-1]
        if tail in ("sse", "ndjson"):
            return await self._stream(request, tail)
        if request.path.startswith(("/base/status/", "/base/gzip-status/")):
            echoed = {"error": {"message": f"bad key: {request.headers.get('Authorization')}"}}
            if "/gzip-" not in request.path:
                return web.json_response(echoed, status=int(tail))
            return web.Response(body=gzip.compress(json.dumps(echoed).encode()), status=int(tail),
                                headers={"content-type": "application/json", "content-encoding": "gzip"})
        if tail == "slow":
            await asyncio.sleep(3)
            return web.json_response({"late": True})
        if tail == "break":
            resp = web.StreamResponse(headers={"content-type": "application/octet-stream"})
            await resp.prepare(request)
            await resp.write(b"first part")
            request.transport.close()
            return resp
        return web.json_response({"echo": request.path}, status=201,
                                 headers={"x-target": "yes", "x-request-id": "target-rid"})

    async def _stream(self, request: Any, kind: str) -> Any:
        from aiohttp import web

        sse = kind == "sse"
        resp = web.StreamResponse(headers={"content-type": "text/event-stream" if sse else "application/x-ndjson"})
        await resp.prepare(request)
        pieces = [b"data: one\n\n", b"data: two\n\n", b"data: [DONE]\n\n"] if sse else \
            [b'{"n": 1}\n', b'{"n": 2}\n', b'{"n": 3}\n']
        await resp.write(pieces[0])
        loop = asyncio.get_running_loop()
        self.released_in_time = await loop.run_in_executor(None, self.release.wait, 5.0)
        for piece in pieces[1:]:
            await asyncio.sleep(0.05)
            await resp.write(piece)
        await resp.write_eof()
        return resp


@pytest.fixture
def target():
    server = Target().start()
    yield server
    server.stop()


@pytest.fixture
def secret_env(monkeypatch):
    monkeypatch.setenv(SECRET_ENV, SECRET)


def config(*entries: dict[str, Any], **general: Any) -> dict[str, Any]:
    return {"general_settings": {"pass_through_endpoints": list(entries), **general}}


def post(gw: Any, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = httpx.post(gw.url + path, json=body, headers=ADMIN, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def key(gw: Any, **body: Any) -> str:
    return post(gw, "/key/generate", body)["key"]


def bearer(k: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {k}"}


def no_secret(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text
        assert SECRET[:12] not in text


# -- forwarding ------------------------------------------------------------------------------------


def test_request_is_forwarded_with_subpath_query_body_and_entry_headers(gateway_server, target, secret_env):
    gw = gateway_server(config({
        "path": "/svc", "target": target.url + "/base", "include_subpath": True,
        "headers": {"X-Target-Key": f"Bearer os.environ/{SECRET_ENV}", "x-static": "static-value"},
    }))
    body = b'{"prompt": "a book", "n": 2}'
    r = httpx.post(gw.url + "/svc/v1/images/gen?x=1&y=two%20words", content=body, timeout=30,
                   headers={"content-type": "application/json", "x-client": "c", "x-request-id": "rid-1",
                            "Authorization": f"Bearer {MASTER}"})
    assert r.status_code == 201
    assert r.json() == {"echo": "/base/v1/images/gen"}
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers["x-target"] == "yes"
    assert r.headers["x-request-id"] == "rid-1"  # the gateway's, never the target's
    assert float(r.headers["x-gateway-overhead-ms"]) >= 0
    (got,) = target.received
    assert (got.method, got.path, got.query, got.body) == ("POST", "/base/v1/images/gen", "x=1&y=two%20words", body)
    assert got.headers["content-type"] == "application/json"
    assert got.headers["x-target-key"] == f"Bearer {SECRET}"
    assert got.headers["x-static"] == "static-value"
    assert got.headers["accept-encoding"] == r.request.headers["accept-encoding"]  # what the client can read
    assert "x-client" not in got.headers  # forward_headers is off
    assert "authorization" not in got.headers  # never the gateway's key
    assert MASTER not in json.dumps(got.headers)

    for method in ("GET", "PUT", "PATCH", "DELETE"):
        r = httpx.request(method, gw.url + "/svc", timeout=30)
        assert r.status_code == 201, (method, r.text)
        assert (target.received[-1].method, target.received[-1].path) == (method, "/base")
    r = httpx.head(gw.url + "/svc/h", timeout=30)
    assert (r.status_code, r.content, target.received[-1].method) == (201, b"", "HEAD")
    r = httpx.get(gw.url + "/svc/", timeout=30)
    assert r.status_code == 201 and target.received[-1].path == "/base/"
    doc = httpx.get(gw.url + "/openapi.json", timeout=30).json()
    assert {"/svc", "/svc/{subpath}"} <= set(doc["paths"])
    r = httpx.get(gw.url + "/svc/a/%2E%2E/b", timeout=30)  # no way out of the target's path
    assert r.status_code == 400
    assert target.received[-1].path == "/base/"


def test_exact_path_serves_only_itself_and_target_query_is_kept(gateway_server, target):
    gw = gateway_server(config({"path": "/exact/", "target": target.url + "/base/exact?api-version=2"}))
    r = httpx.get(gw.url + "/exact?q=1", timeout=30)
    assert r.status_code == 201
    assert (target.received[-1].path, target.received[-1].query) == ("/base/exact", "api-version=2&q=1")
    with socket.create_connection(("127.0.0.1", gw.port), timeout=30) as sock:  # a client asking no encoding
        sock.sendall(b"GET /exact HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
        assert sock.recv(12) == b"HTTP/1.1 201"
    assert target.received[-1].headers["accept-encoding"] == "identity"  # never the transport's gzip default
    r = httpx.get(gw.url + "/exact/more", timeout=30)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "404"
    assert len(target.received) == 2


def test_forward_headers_sends_the_clients_headers_but_never_its_gateway_key(gateway_server, target, secret_env):
    gw = gateway_server(config({
        "path": "/fwd", "target": target.url + "/base", "forward_headers": True, "auth": True,
        "headers": {"Authorization": f"os.environ/{SECRET_ENV}"},
    }, {"path": "/fwd-own", "target": target.url + "/own", "forward_headers": True, "auth": True}))
    vk = key(gw)
    r = httpx.post(gw.url + "/fwd", json={"a": 1}, timeout=30,
                   headers={**bearer(vk), "x-client": "c", "x-api-key": "client-own-target-key", "cookie": "k=v"})
    assert r.status_code == 201, r.text
    got = target.received[-1]
    assert got.headers["x-client"] == "c"
    assert got.headers["cookie"] == "k=v"
    assert got.headers["x-api-key"] == "client-own-target-key"  # not the gateway key: the client's own
    assert got.headers["authorization"] == SECRET  # the entry's header wins over the client's
    assert got.headers["host"] == f"127.0.0.1:{target.port}"
    assert vk not in json.dumps(got.headers)

    # The key may come in any header the gateway reads: none of them reaches the target.
    for name in ("Authorization", "api-key", "x-api-key"):
        value = f"Bearer {vk}" if name == "Authorization" else vk
        r = httpx.post(gw.url + "/fwd-own", json={}, headers={name: value}, timeout=30)
        assert r.status_code == 201, r.text
        assert vk not in json.dumps(target.received[-1].headers)


# -- auth and route rules ----------------------------------------------------------------------------


def test_auth_is_off_by_default_and_required_with_auth_true(gateway_server, target):
    gw = gateway_server(config(
        {"path": "/open", "target": target.url + "/base"},
        {"path": "/keyed", "target": target.url + "/base", "auth": "true"},
    ))
    assert httpx.get(gw.url + "/open", timeout=30).status_code == 201
    r = httpx.get(gw.url + "/keyed", timeout=30)
    assert r.status_code == 401
    assert r.json()["error"]["message"] == "Authentication Error, No api key passed in."
    r = httpx.get(gw.url + "/keyed", headers=bearer("sk-not-a-key-0000000000000"), timeout=30)
    assert r.status_code == 401
    assert r.json()["error"]["message"] == "Authentication Error, Invalid proxy server token passed"
    assert len(target.received) == 1

    vk = key(gw)  # a non-admin key reaches it, as it reaches the LLM routes
    assert httpx.get(gw.url + "/keyed", headers=bearer(vk), timeout=30).status_code == 201
    assert httpx.get(gw.url + "/keyed", headers=ADMIN, timeout=30).status_code == 201

    post(gw, "/key/block", {"key": vk})
    r = httpx.get(gw.url + "/keyed", headers=bearer(vk), timeout=30)
    assert r.status_code == 401
    assert r.json()["error"]["message"] == "Authentication Error, Key is blocked."
    assert len(target.received) == 3


def test_allowed_and_admin_only_routes_apply(gateway_server, target):
    gw = gateway_server(config(
        {"path": "/open", "target": target.url + "/base"},
        {"path": "/hidden", "target": target.url + "/base"},
        {"path": "/keyed", "target": target.url + "/base", "auth": True, "include_subpath": True},
        {"path": "/admin-pt", "target": target.url + "/base", "auth": True},
        allowed_routes=["LiteLLMRoutes.public_routes", "/open", "/keyed", "/keyed/<path:rest>", "/admin-pt",
                        "/key/generate"],
        admin_only_routes=["/admin-pt"],
    ))
    vk = key(gw)
    assert httpx.get(gw.url + "/open", timeout=30).status_code == 201
    r = httpx.get(gw.url + "/hidden", timeout=30)
    assert r.status_code == 403
    assert r.json()["error"]["message"] == "Access forbidden: Route /hidden not allowed"
    assert httpx.get(gw.url + "/keyed/deeper", headers=bearer(vk), timeout=30).status_code == 201
    r = httpx.get(gw.url + "/admin-pt", headers=bearer(vk), timeout=30)
    assert r.status_code == 403
    assert r.json()["error"]["message"] == ("user not allowed to access this route. "
                                            "Route=/admin-pt is an admin only route")
    assert httpx.get(gw.url + "/admin-pt", headers=ADMIN, timeout=30).status_code == 201
    assert [r.path for r in target.received] == ["/base", "/base/deeper", "/base"]


# -- spend and budgets -------------------------------------------------------------------------------


def test_each_keyed_call_writes_a_spend_row_at_cost_per_request(gateway_server, target, secret_env):
    gw = gateway_server(config(
        {"path": "/paid", "target": target.url + "/base", "auth": True, "include_subpath": True,
         "cost_per_request": 0.25, "headers": {"Authorization": f"Bearer os.environ/{SECRET_ENV}"}},
        {"path": "/free", "target": target.url + "/base", "auth": True},
        {"path": "/public", "target": target.url + "/base"},
    ))
    team = post(gw, "/team/new", {"team_alias": "pt-team"})["team_id"]
    vk = key(gw, team_id=team, user_id="pt-user", key_alias="pt-key")
    assert httpx.post(gw.url + "/paid/x", json={}, headers=bearer(vk), timeout=30).status_code == 201
    r = httpx.post(gw.url + "/paid/status/500", json={}, headers=bearer(vk), timeout=30)
    assert r.status_code == 500
    no_secret(r.text)  # the target echoed the entry's key in its error: masked on the way back
    assert r.json()["error"]["message"].startswith("bad key: Bearer targ")
    r = httpx.post(gw.url + "/paid/gzip-status/401", json={}, headers=bearer(vk), timeout=30)
    assert r.status_code == 401
    assert "content-encoding" not in r.headers  # decoded to be masked
    no_secret(r.text)
    assert httpx.get(gw.url + "/free", headers=bearer(vk), timeout=30).status_code == 201
    assert httpx.get(gw.url + "/public", timeout=30).status_code == 201  # no key: no spend row

    rows = gw.spend_logs(5, timeout=1.5)  # four keyed calls; the public one writes none
    assert len(rows) == 4, rows
    free, failed, failed_gzip, paid = sorted(rows, key=lambda row: (row["model"], row["status"], row["spend"]))
    for row in rows:
        assert row["call_type"] == "pass_through_endpoint"
        assert row["api_key"] == hash_key(vk)
        assert row["team_id"] == team
        assert row["user"] == "pt-user"
        assert row["metadata"]["user_api_key_alias"] == "pt-key"
        assert row["total_tokens"] == 0
        assert "usage_estimated" not in row["metadata"]
    assert (paid["model"], paid["status"], paid["spend"]) == ("/paid", "success", 0.25)
    assert (failed["model"], failed["status"], failed["spend"]) == ("/paid", "failure", 0.0)
    assert {failed["metadata"]["error"]["message"], failed_gzip["metadata"]["error"]["message"]} == {
        "Pass-through endpoint /paid: the target answered 500", "Pass-through endpoint /paid: the target answered 401"}
    assert (free["model"], free["status"], free["spend"]) == ("/free", "success", 0.0)
    no_secret(json.dumps(rows))
    info = httpx.get(gw.url + "/key/info", params={"key": vk}, headers=ADMIN, timeout=30).json()
    assert info["info"]["spend"] == pytest.approx(0.25)


def test_exceeded_budget_is_refused_as_on_llm_routes(gateway_server, target):
    gw = gateway_server(config({"path": "/paid", "target": target.url + "/base", "auth": True,
                                "cost_per_request": 1.0}))
    vk = key(gw, max_budget=1.0)
    assert httpx.get(gw.url + "/paid", headers=bearer(vk), timeout=30).status_code == 201
    assert len(gw.spend_logs(1)) == 1
    deadline = time.monotonic() + 10
    while True:  # the spend reaches the cached key off the request path
        r = httpx.get(gw.url + "/paid", headers=bearer(vk), timeout=30)
        if r.status_code != 201 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert r.status_code == 429, r.text
    assert r.json()["error"] == {"message": "Budget has been exceeded! Current cost: 1.0, Max budget: 1.0",
                                 "type": "budget_exceeded", "param": None, "code": "429"}


# -- streaming --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sse", "ndjson"])
def test_streamed_replies_are_relayed_as_they_come(gateway_server, target, kind):
    gw = gateway_server(config({"path": "/stream", "target": target.url + "/base", "include_subpath": True,
                                "auth": True}))
    lines: list[str] = []
    with httpx.stream("POST", gw.url + f"/stream/{kind}", json={"stream": True}, headers=ADMIN, timeout=30) as r:
        assert r.status_code == 200
        assert r.headers["content-type"] == ("text/event-stream" if kind == "sse" else "application/x-ndjson")
        for line in r.iter_lines():
            if line:
                lines.append(line)
                target.release.set()  # the first chunk is here while the target still holds the rest
    assert target.released_in_time is True, "the gateway held the reply until the target finished"
    expected = ["data: one", "data: two", "data: [DONE]"] if kind == "sse" else ['{"n": 1}', '{"n": 2}', '{"n": 3}']
    assert lines == expected
    (row,) = gw.spend_logs(1)
    assert (row["model"], row["status"]) == ("/stream", "success")


def test_target_breaking_off_breaks_off_the_clients_reply(gateway_server, target):
    gw = gateway_server(config({"path": "/b", "target": target.url + "/base", "include_subpath": True,
                                "auth": True}))
    with pytest.raises(httpx.HTTPError):
        with httpx.stream("GET", gw.url + "/b/break", headers=ADMIN, timeout=30) as r:
            assert r.status_code == 200
            b"".join(r.iter_raw())
    (row,) = gw.spend_logs(1)
    assert row["status"] == "failure"
    assert row["metadata"]["error"]["message"].startswith("Pass-through endpoint /b: the target (http://127.0.0.1:")
    assert ") broke off its reply: " in row["metadata"]["error"]["message"]


# -- failures ---------------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_or_slow_target_is_502_or_504_without_secrets(gateway_server, target, secret_env, caplog):
    gw = gateway_server(config(
        {"path": "/down", "target": f"http://127.0.0.1:{_closed_port()}/v1", "auth": True,
         "headers": {"Authorization": f"Bearer os.environ/{SECRET_ENV}"}},
        {"path": "/slow", "target": target.url + "/base/slow", "timeout": 0.5,
         "headers": {"x-key": f"os.environ/{SECRET_ENV}"}},
    ))
    caplog.set_level("DEBUG")
    r = httpx.post(gw.url + "/down", json={"a": 1}, headers=ADMIN, timeout=30)
    assert r.status_code == 502
    error = r.json()["error"]
    assert error["type"] == "api_connection_error" and error["code"] == "502"
    assert error["message"].startswith("Pass-through endpoint /down: the target (http://127.0.0.1:")
    assert ") could not be reached: " in error["message"]
    assert r.headers["x-request-id"]
    r2 = httpx.get(gw.url + "/slow", timeout=30)
    assert r2.status_code == 504
    assert r2.json()["error"]["message"] == ("Pass-through endpoint /slow: the target (http://127.0.0.1:"
                                             f"{target.port}) did not answer within 0.5 s")
    (row,) = gw.spend_logs(1)
    assert (row["status"], row["model"], row["spend"]) == ("failure", "/down", 0.0)
    assert row["metadata"]["error"]["type"] == "api_connection_error"
    no_secret(r.text, r2.text, json.dumps(row), caplog.text)


# -- start-up errors ---------------------------------------------------------------------------------


def _build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entries: list[Any], **general: Any) -> None:
    from gateway.core.app import create_app, load

    monkeypatch.setenv("DATABASE_URL", f"sqlite://{tmp_path / 'db.sqlite3'}")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"general_settings": {"master_key": MASTER, "pass_through_endpoints": entries,
                                                         **general}}))
    create_app(load(str(path)))


GOOD = {"path": "/fine", "target": "http://127.0.0.1:9/x"}


@pytest.mark.parametrize("entry, expected", [
    ({"target": "http://127.0.0.1:9"}, "[1].path: is required"),
    ({"path": "bria", "target": "http://127.0.0.1:9"}, "[1].path: must start with '/' (got 'bria')"),
    ({"path": "/a/{x}", "target": "http://127.0.0.1:9"}, "[1].path: must be a plain URL path"),
    ({"path": "/v1/chat/completions", "target": "http://127.0.0.1:9"},
     "[1].path: /v1/chat/completions collides with the gateway route /v1/chat/completions"),
    ({"path": "/v1/rerank", "target": "http://127.0.0.1:9"}, "[1].path: /v1/rerank collides with the gateway route"),
    ({"path": "/key/generate", "target": "http://127.0.0.1:9"}, "[1].path: /key/generate collides"),
    ({"path": "/metrics", "target": "http://127.0.0.1:9"}, "[1].path: /metrics collides"),
    ({"path": "/openai", "target": "http://127.0.0.1:9", "include_subpath": True},
     "[1].path: /openai collides with the gateway route /openai/deployments/"),
    ({"path": "/fine", "target": "http://127.0.0.1:9"}, "[1].path: /fine is already served by entry [0]"),
    ({"path": "/b", "target": "ftp://files.example/x"}, "[1].target: must be an http:// or https:// URL"),
    ({"path": "/b", "target": "custom_callbacks.anthropic_adapter"}, "[1].target: must be an http:// or https:// URL"),
    ({"path": "/b"}, "[1].target: is required"),
    ({"path": "/b", "target": "http://h", "headers": {"Authorization": "Bearer os.environ/PT_SURELY_UNSET_4711"}},
     "[1].headers.Authorization: environment variable PT_SURELY_UNSET_4711 is not set"),
    ({"path": "/b", "target": "http://h", "headers": ["x"]}, "[1].headers: must be a mapping"),
    ({"path": "/b", "target": "http://h", "auth": "yes"}, "[1].auth: must be true or false"),
    ({"path": "/b", "target": "http://h", "cost_per_request": -1}, "[1].cost_per_request: must be a non-negative"),
    ({"path": "/b", "target": "http://h", "include_subpaths": True}, "[1].include_subpaths: unknown key"),
    ({"path": "/b", "target": "http://h", "guardrails": {"g": None}}, "[1].guardrails: is not supported"),
    ("/b", "[1]: must be a mapping"),
])
def test_invalid_entries_stop_start_up_naming_index_and_key(tmp_path, monkeypatch, entry, expected):
    with pytest.raises(ValueError) as err:
        _build(tmp_path, monkeypatch, [GOOD, entry])
    message = str(err.value)
    assert message.startswith("general_settings.pass_through_endpoints[1]"), message
    assert expected in message
    assert "\n" not in message


def test_header_values_never_appear_in_start_up_errors(tmp_path, monkeypatch):
    with pytest.raises(ValueError) as err:
        _build(tmp_path, monkeypatch, [{"path": "/b", "target": "http://h", "headers": {"x-key": SECRET + "\nx"}}])
    assert "[0].headers.x-key: must be one line" in str(err.value)
    no_secret(str(err.value))
    with pytest.raises(ValueError) as err:
        _build(tmp_path, monkeypatch, [{"path": "/b", "target": f"http://user:{SECRET}@h", "auth": "maybe"}])
    no_secret(str(err.value))


def test_cli_start_up_error_is_one_line(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"general_settings": {"master_key": MASTER, "pass_through_endpoints": [
        {"path": "/v1/models", "target": "http://127.0.0.1:9"}]}}))
    env = {k: v for k, v in os.environ.items()
           if k not in ("GATEWAY_MASTER_KEY", "LITELLM_MASTER_KEY", "GATEWAY_CONFIG", "CONFIG_FILE_PATH", "PORT")}
    env["DATABASE_URL"] = f"sqlite://{tmp_path / 'cli.db'}"
    proc = subprocess.run([str(Path(sys.executable).parent / "gateway"), "--config", str(path), "--host", "127.0.0.1",
                           "--port", str(_closed_port())], capture_output=True, text=True, timeout=30, env=env,
                          cwd=tmp_path)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("gateway: error: ")]
    assert lines == ["gateway: error: general_settings.pass_through_endpoints[0].path: /v1/models collides with "
                     "the gateway route /v1/models; choose another path"], proc.stderr


def test_langfuse_keys_and_target_userinfo_become_basic_auth(monkeypatch):
    from gateway.core.pass_through_config import parse

    monkeypatch.setenv("PT_LANGFUSE_SECRET", "sk-lf-secret")
    (langfuse, userinfo, timed) = parse({"pass_through_request_timeout": 30, "pass_through_endpoints": [
        {"path": "/langfuse", "target": "https://cloud.langfuse.example",
         "headers": {"LANGFUSE_PUBLIC_KEY": "pk-lf-1", "LANGFUSE_SECRET_KEY": "os.environ/PT_LANGFUSE_SECRET"}},
        {"path": "/behind-proxy", "target": "https://user:p%40ss@proxy.example/api?key=abc"},
        {"path": "/timed", "target": "http://h", "timeout": 2},
    ]})
    assert langfuse.headers == {"Authorization": "Basic cGstbGYtMTpzay1sZi1zZWNyZXQ="}  # pk-lf-1:sk-lf-secret
    assert userinfo.target == "https://proxy.example/api?key=abc"
    assert userinfo.headers == {"Authorization": "Basic dXNlcjpwQHNz"}  # user:p@ss
    assert userinfo.display_target == "https://proxy.example/api?key=***"
    assert (langfuse.timeout, timed.timeout) == (30.0, 2.0)
    assert "sk-lf-secret" not in repr(langfuse)
