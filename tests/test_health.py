"""Health as operators and load balancers see it: `/health` probes each deployment (a models
listing unless a call is configured) against real peers on loopback and never shows a key;
readiness carries LiteLLM's `db` field; liveness answers while the database is down; readiness
details and `/health/services` for admins. Runs on SQLite, and on PostgreSQL when
`GATEWAY_TEST_DATABASE_URL` is set."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from gateway.fake_upstream import LoopThread

pytestmark = pytest.mark.db

ADMIN = {"Authorization": "Bearer sk-1234"}
UPSTREAM_KEY = "sk-upstream-secret-123456"


class Peer:
    """An OpenAI-compatible models endpoint (and a Slack-style webhook) on 127.0.0.1 that checks
    the bearer key, echoes a wrong one in its error as some upstreams do, and records requests."""

    def __init__(self, key: str | None = UPSTREAM_KEY, delay: float = 0.0) -> None:
        """`key`: the bearer key `/v1/models` wants (None: any credentials)."""
        from aiohttp import web

        self.key, self.delay = key, delay
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.thread = LoopThread("health-peer")
        app = web.Application()
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/hook", self._hook)
        app.router.add_get("/{tail:.*}", self._any)  # other providers' listings

        async def boot() -> int:
            self.runner = web.AppRunner(app, access_log=None)
            await self.runner.setup()
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            await site.start()
            return self.runner.addresses[0][1]

        self.port = self.thread.run(boot())
        self.url = f"http://127.0.0.1:{self.port}/v1"

    async def _record(self, request: Any) -> None:
        self.requests.append((request.method, request.path, dict(request.headers), await request.read()))

    async def _models(self, request: Any) -> Any:
        from aiohttp import web

        await self._record(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        sent = request.headers.get("Authorization", "")
        if self.key is not None and sent != f"Bearer {self.key}":
            return web.json_response({"error": {"message": f"Incorrect API key provided: {sent[7:]}",
                                                 "type": "invalid_request_error"}}, status=401)
        return web.json_response({"object": "list", "data": [{"id": "upstream-model", "object": "model"}]})

    async def _chat(self, request: Any) -> Any:
        from aiohttp import web

        await self._record(request)
        return web.json_response({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
                                  "choices": [{"index": 0, "message": {"role": "assistant", "content": "p"},
                                               "finish_reason": "length"}],
                                  "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

    async def _any(self, request: Any) -> Any:
        from aiohttp import web

        await self._record(request)
        return web.json_response({"models": []})

    async def _hook(self, request: Any) -> Any:
        from aiohttp import web

        await self._record(request)
        return web.Response(text="ok")

    def close(self) -> None:
        self.thread.run(self.runner.cleanup())
        self.thread.close()


@pytest.fixture
def peer():
    made: list[Peer] = []

    def make(**kw: Any) -> Peer:
        made.append(Peer(**kw))
        return made[-1]

    yield make
    for p in made:
        p.close()


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there any more
    return port


def dep(name: str, api_base: str, key: str = UPSTREAM_KEY, model: str = "openai/upstream-model",
        **info: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"model_name": name, "litellm_params": {"model": model, "api_base": api_base,
                                                                     "api_key": key}}
    if info:
        entry["model_info"] = info
    return entry


def get(gw: Any, path: str, headers: dict[str, str] = ADMIN, status: int = 200, **params: Any) -> Any:
    r = httpx.get(gw.url + path, params=params, headers=headers, timeout=30)
    assert r.status_code == status, r.text
    return r


# -- /health --------------------------------------------------------------------------------------


def test_health_lists_models_without_a_billed_call_and_never_shows_a_key(gateway_server, fake_upstream, peer):
    good = peer()
    down = closed_port()
    gw = gateway_server({"model_list": [
        dep("gpt-fake-upstream", fake_upstream.url),
        dep("gpt-checked", good.url),
        dep("gpt-wrong-key", good.url, key="sk-wrong-key-999999"),
        dep("gpt-down", f"http://127.0.0.1:{down}/v1"),
        {"model_name": "fake-model", "litellm_params": {"model": "fake/echo"}},
    ]})
    r = get(gw, "/health")
    body = r.json()
    assert "sk-wrong-key-999999" not in r.text and UPSTREAM_KEY not in r.text and "sk-1234" not in r.text
    healthy = {e["model_name"]: e for e in body["healthy_endpoints"]}
    unhealthy = {e["model_name"]: e for e in body["unhealthy_endpoints"]}
    assert set(healthy) == {"gpt-fake-upstream", "gpt-checked", "fake-model"}
    assert set(unhealthy) == {"gpt-wrong-key", "gpt-down"}
    assert (body["healthy_count"], body["unhealthy_count"]) == (3, 2)
    checked = healthy["gpt-checked"]
    assert checked["model"] == "openai/upstream-model" and checked["api_base"] == good.url
    assert checked["custom_llm_provider"] == "openai" and checked["health_check"] == "models"
    assert healthy["fake-model"]["health_check"] == "none"
    assert "401" in unhealthy["gpt-wrong-key"]["error"] or "Incorrect API key" in unhealthy["gpt-wrong-key"]["error"]
    assert "Connection error" in unhealthy["gpt-down"]["error"]
    assert str(down) in unhealthy["gpt-down"]["api_base"]
    # The probe was a models listing carrying the deployment's key; no chat call was made anywhere.
    assert [(m, p) for m, p, _, _ in good.requests] == [("GET", "/v1/models"), ("GET", "/v1/models")]
    assert {h["Authorization"] for _, _, h, _ in good.requests} == {f"Bearer {UPSTREAM_KEY}",
                                                                  "Bearer sk-wrong-key-999999"}
    assert not [q for q in fake_upstream.requests if q.method == "POST"]


def test_each_provider_is_probed_by_its_own_listing_with_its_credentials(gateway_server, peer):
    p = peer(key=None)
    root = f"http://127.0.0.1:{p.port}"
    gw = gateway_server({"model_list": [
        dep("claude", root, model="anthropic/claude-3-5-sonnet", key="sk-ant-1"),
        dep("gem", root, model="gemini/gemini-1.5-flash", key="gem-key-1"),
        dep("llama", root, model="ollama/llama3", key="oll-key-1"),
        dep("command", root, model="cohere/command-r", key="co-key-1"),
        {"model_name": "az", "litellm_params": {"model": "azure/my-dep", "api_base": root, "api_key": "az-key-1",
                                                "api_version": "2024-10-21"}},
        {"model_name": "az1", "litellm_params": {"model": "azure/my-dep", "api_base": root, "api_key": "az-key-2",
                                                 "api_version": "v1"}},
    ]})
    body = get(gw, "/health").json()
    assert body["healthy_count"] == 6 and body["unhealthy_count"] == 0, body["unhealthy_endpoints"]
    seen = {(path, tuple(sorted((k.lower(), v) for k, v in h.items() if "key" in k.lower() or k.lower() ==
                                "authorization"))) for m, path, h, _ in p.requests if m == "GET"}
    assert seen == {
        ("/v1/models", (("x-api-key", "sk-ant-1"),)),
        ("/v1beta/models/gemini-1.5-flash", (("x-goog-api-key", "gem-key-1"),)),
        ("/api/tags", (("authorization", "Bearer oll-key-1"),)),
        ("/v1/models", (("authorization", "Bearer co-key-1"),)),
        ("/openai/models", (("api-key", "az-key-1"),)),
        ("/openai/v1/models", (("api-key", "az-key-2"),)),
    }
    assert not [r for r in p.requests if r[0] == "POST"]  # no billed call


def test_health_checks_one_group_or_deployment(gateway_server, fake_upstream):
    gw = gateway_server({"model_list": [dep("a", fake_upstream.url, id="dep-a"),
                                        dep("b", f"http://127.0.0.1:{closed_port()}/v1", id="dep-b")]})
    body = get(gw, "/health", model="a").json()
    assert [e["model_name"] for e in body["healthy_endpoints"]] == ["a"] and body["unhealthy_count"] == 0
    body = get(gw, "/health", model_id="dep-b").json()
    assert [e["model_id"] for e in body["unhealthy_endpoints"]] == ["dep-b"] and body["healthy_count"] == 0
    error = get(gw, "/health", status=400, model="nope").json()["error"]
    assert "model=nope" in error["message"]
    assert get(gw, "/health", status=404, model_id="nope").json()["error"]["message"] == "Model with ID nope not found"
    assert get(gw, "/health", headers={}, status=401).status_code == 401  # not public


def test_a_configured_call_is_a_one_token_call(gateway_server, peer):
    p = peer()
    gw = gateway_server({"model_list": [dep("chat", p.url, mode="chat"),
                                        dep("wild", p.url, model="openai/*", health_check_model="openai/gpt-x")]})
    body = get(gw, "/health").json()
    assert body["healthy_count"] == 2, body
    assert {e["health_check"] for e in body["healthy_endpoints"]} == {"call"}
    import json

    calls = [json.loads(b) for m, path, _, b in p.requests if path == "/v1/chat/completions"]
    assert sorted(c["model"] for c in calls) == ["gpt-x", "upstream-model"]
    assert all(c["max_tokens"] == 1 for c in calls)
    assert not [r for r in p.requests if r[0] == "GET"]


def test_a_slow_upstream_is_unhealthy_within_its_timeout(gateway_server, peer):
    slow = peer(delay=5)
    gw = gateway_server({"model_list": [dep("slow", slow.url, health_check_timeout=0.5)]})
    started = time.monotonic()
    body = get(gw, "/health").json()
    assert time.monotonic() - started < 4
    assert body["unhealthy_endpoints"][0]["error"].startswith("Health check timed out after 0.5s")


def test_details_off_and_results_reused_between_polls(gateway_server, peer):
    p = peer()
    gw = gateway_server({"model_list": [dep("m", p.url)],
                         "general_settings": {"health_check_details": False, "background_health_checks": True,
                                              "health_check_interval": 300}})
    first = get(gw, "/health").json()
    second = get(gw, "/health").json()
    assert first == second == {"healthy_endpoints": [{"model": "openai/upstream-model", "model_name": "m"}],
                               "unhealthy_endpoints": [], "healthy_count": 1, "unhealthy_count": 0}
    assert len(p.requests) == 1  # polled twice, probed once


def test_a_non_admin_key_sees_its_models_without_api_bases(gateway_server, fake_upstream):
    gw = gateway_server({"model_list": [dep("mine", fake_upstream.url), dep("theirs", fake_upstream.url)]})
    key = httpx.post(gw.url + "/key/generate", json={"models": ["mine"]}, headers=ADMIN).json()["key"]
    user = {"Authorization": f"Bearer {key}"}
    body = get(gw, "/health", headers=user).json()
    assert [e["model_name"] for e in body["healthy_endpoints"]] == ["mine"]
    assert "api_base" not in body["healthy_endpoints"][0]
    error = get(gw, "/health", headers=user, status=401, model="theirs").json()["error"]
    assert "not allowed to access model" in error["message"]
    assert get(gw, "/health", headers=user, status=401, model="no-such").status_code == 401  # access first


# -- readiness, details, services -------------------------------------------------------------------


def test_readiness_carries_litellm_db_field(gateway_server, fake_upstream):
    gw = gateway_server({"model_list": [dep("m", fake_upstream.url)]})
    body = get(gw, "/health/readiness", headers={}).json()
    assert body["status"] == "healthy" and body["db"] == "connected" and body["cache"] is None
    assert body["litellm_version"] == body["version"] and body["checks"]["database"] == "connected"


def test_readiness_details_are_for_admins(gateway_server, fake_upstream):
    gw = gateway_server({"model_list": [dep("m", fake_upstream.url)]})
    body = get(gw, "/health/readiness/details").json()
    parts = body["components"]
    assert parts["database"]["status"] == "connected" and parts["database"]["dialect"] in ("sqlite", "postgres")
    assert parts["redis"] == {"status": "not_configured"}
    assert parts["spend_writer"]["status"] == "running" and parts["spend_writer"]["queued"] == 0
    assert {p["name"] for p in parts["plugins"]} >= {"virtual_keys", "spend_logs"}
    key = httpx.post(gw.url + "/key/generate", json={}, headers=ADMIN).json()["key"]
    error = get(gw, "/health/readiness/details", headers={"Authorization": f"Bearer {key}"}, status=403).json()
    assert "Only proxy admin" in error["error"]["message"]
    assert get(gw, "/health/services", headers={"Authorization": f"Bearer {key}"}, status=403, service="database")


def test_health_services(gateway_server, fake_upstream, peer):
    hook = peer()
    gw = gateway_server({"model_list": [dep("m", fake_upstream.url)],
                         "general_settings": {"alerting": ["slack"]}},
                        env={"SLACK_WEBHOOK_URL": f"http://127.0.0.1:{hook.port}/hook"})
    assert get(gw, "/health/services", service="database").json()["status"] == "healthy"
    error = get(gw, "/health/services", status=422, service="redis").json()["error"]
    assert error["message"] == '"redis" not in proxy config: REDIS_URL. Unable to test this.'
    error = get(gw, "/health/services", status=400, service="datadog").json()["error"]
    assert "Service=datadog not in" in error["message"] and "slack" in error["message"]
    assert get(gw, "/health/services", status=400).json()["error"]["message"] == "Service must be specified."
    body = get(gw, "/health/services", service="slack").json()
    assert body["status"] == "success" and "Mock Slack Alert sent" in body["message"]
    deadline = time.monotonic() + 10
    while not hook.requests:
        assert time.monotonic() < deadline, "the test alert never reached the webhook"
        time.sleep(0.05)
    assert b"This is a test slack alert message" in hook.requests[0][3]


def test_slack_not_configured_is_422(gateway_server, fake_upstream):
    gw = gateway_server({"model_list": [dep("m", fake_upstream.url)]})
    error = get(gw, "/health/services", status=422, service="slack").json()["error"]
    assert error["message"].startswith('"slack" not in proxy config')


def test_redis_service(gateway_server, fake_upstream, redis_url):
    gw = gateway_server({"model_list": [dep("m", fake_upstream.url)]}, env={"REDIS_URL": redis_url})
    assert get(gw, "/health/services", service="redis").json()["status"] == "healthy"
    assert get(gw, "/health/readiness/details").json()["components"]["redis"]["status"] == "connected"


# -- liveness with the database down ----------------------------------------------------------------


def test_liveness_answers_while_the_database_is_down(proxy_to, gateway_server, fake_upstream, database_url):
    url = database_url()
    cfg = {"model_list": [dep("m", fake_upstream.url)],
           "general_settings": {"database_query_timeout_s": 1, "database_connection_timeout": 1}}
    if url.startswith("sqlite"):
        import sqlite3

        gw = gateway_server(cfg, env={"DATABASE_URL": url})
        holder = sqlite3.connect(url.split("://", 1)[1], isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN EXCLUSIVE")  # another process holds the database
        release = lambda: holder.execute("ROLLBACK")  # noqa: E731
        proxy = None
    else:
        parts = urlsplit(url)
        proxy = proxy_to(parts.hostname or "127.0.0.1", parts.port or 5432)
        gw = gateway_server(cfg, env={"DATABASE_URL": parts._replace(
            netloc=f"{parts.username}@127.0.0.1:{proxy.port}").geturl()})
        assert get(gw, "/health/readiness", headers={}).json()["db"] == "connected"
        proxy.cut()
        release = None
    try:
        r = httpx.post(gw.url + "/key/generate", json={}, headers=ADMIN, timeout=15)
        assert r.status_code == 503, r.text  # the database really is unreachable
        for path in ("/health/liveliness", "/health/liveness"):
            started = time.monotonic()
            r = httpx.get(gw.url + path, timeout=15)
            assert (r.status_code, r.text) == (200, "I'm alive!")
            assert time.monotonic() - started < 0.5
        ready = httpx.get(gw.url + "/health/readiness", timeout=15)
        if proxy is not None:  # SQLite's `SELECT 1` needs no lock: its readiness stays connected
            assert ready.status_code == 503 and ready.json()["db"] == "disconnected"
    finally:
        if release is not None:
            release()
        if proxy is not None:
            proxy.restore()
