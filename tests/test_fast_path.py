"""The fast path (gateway/core/fast_path.py) answers exactly as Quart's routing does, and steps
aside where a plugin would see the difference.

Two real gateways on one config, one with the fast path (the default) and one with
`GATEWAY_FAST_PATH=0`, get the same requests; what a client can see must be the same: statuses,
error envelopes, reply bodies (ids and timestamps aside), the headers the gateway sets, streams,
and the spend rows.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import httpx
import pytest

AUTH = {"Authorization": "Bearer sk-1234"}
ON = "fast path for the LLM routes: on"


def config(upstream: Any, **litellm_settings: Any) -> dict[str, Any]:
    params = {"api_base": upstream.url, "api_key": "sk-upstream"}
    return {"model_list": [{"model_name": "gpt-test", "litellm_params": {"model": "openai/upstream-model", **params}},
                           {"model_name": "embed-test", "litellm_params": {"model": "openai/embed-model", **params}}],
            "litellm_settings": litellm_settings}


CHAT = {"model": "gpt-test", "messages": [{"role": "user", "content": "hello there"}]}
CASES: list[tuple[str, str, dict[str, str], Any]] = [
    ("chat", "/v1/chat/completions", AUTH, CHAT),
    ("chat without /v1", "/chat/completions", AUTH, CHAT),
    ("completion", "/v1/completions", AUTH, {"model": "gpt-test", "prompt": "say hi"}),
    ("embedding", "/embeddings", AUTH, {"model": "embed-test", "input": ["a", "b"]}),
    ("client's request id", "/v1/chat/completions", {**AUTH, "x-request-id": "client-id-42"}, CHAT),
    ("no key", "/v1/chat/completions", {}, CHAT),
    ("not an sk- key", "/v1/chat/completions", {"Authorization": "Bearer nope"}, CHAT),
    ("unknown virtual key", "/v1/chat/completions", {"Authorization": "Bearer sk-unknown"}, CHAT),
    ("malformed JSON", "/v1/chat/completions", AUTH, b"{not json"),
    ("empty body", "/v1/chat/completions", AUTH, b""),
    ("a list, not an object", "/v1/chat/completions", AUTH, b"[1, 2]"),
    ("unknown model", "/v1/chat/completions", AUTH, {**CHAT, "model": "no-such-model"}),
    ("no messages", "/v1/chat/completions", AUTH, {"model": "gpt-test"}),
    ("wrong field type", "/v1/chat/completions", AUTH, {**CHAT, "user": 42}),
    ("stream on embeddings", "/v1/embeddings", AUTH, {"model": "embed-test", "input": "a", "stream": True}),
]
VARYING = ("id", "created", "x-request-id", "x-gateway-overhead-ms", "date", "content-length")


def _post(url: str, path: str, headers: dict[str, str], body: Any) -> httpx.Response:
    kwargs: dict[str, Any] = {"content": body} if isinstance(body, bytes) else {"json": body}
    return httpx.post(url + path, headers={**headers, "Connection": "close"}, timeout=30, **kwargs)


def _seen(resp: httpx.Response, request_id: str | None) -> dict[str, Any]:
    """What a client sees, with what differs from call to call taken out (and checked for form)."""
    assert resp.headers["x-request-id"] == request_id if request_id else len(resp.headers["x-request-id"]) == 36
    assert float(resp.headers["x-gateway-overhead-ms"]) >= 0
    body = resp.json()
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k not in VARYING}
        if "error" in body:  # a 500 names its request id; nothing here may be a 500
            assert resp.status_code < 500, body
    headers = sorted((k, v) for k, v in resp.headers.items() if k not in VARYING)
    return {"status": resp.status_code, "body": body, "headers": headers}


@pytest.fixture
def both(gateway_server, fake_upstream):
    fast = gateway_server(config(fake_upstream), process=True)
    slow = gateway_server(config(fake_upstream), env={"GATEWAY_FAST_PATH": "0"}, process=True)
    assert ON in fast.log
    assert "fast path for the LLM routes: off (GATEWAY_FAST_PATH=0)" in slow.log
    return fast, slow


def test_every_case_answers_alike_on_both_paths(both):
    fast, slow = both
    for name, path, headers, body in CASES:
        seen = [_seen(_post(gw.url, path, headers, body), headers.get("x-request-id")) for gw in (fast, slow)]
        assert seen[0] == seen[1], name
    statuses = {name: _post(fast.url, path, headers, body).status_code for name, path, headers, body in CASES}
    assert statuses["chat"] == statuses["embedding"] == 200
    assert statuses["no key"] == statuses["unknown virtual key"] == 401
    assert statuses["malformed JSON"] == statuses["unknown model"] == 400


def test_streams_and_spend_rows_alike(both):
    fast, slow = both
    texts, rows = [], []
    for gw in (fast, slow):
        chunks = gw.client().chat.completions.create(stream=True, **CHAT)
        texts.append("".join(c.choices[0].delta.content or "" for c in chunks if c.choices))
        gw.client().chat.completions.create(**CHAT)
        found = gw.spend_logs(2)
        rows.append(sorted((r["call_type"], r["status"], r["total_tokens"], r["model_group"]) for r in found))
    assert texts[0] and texts[0] == texts[1]
    assert rows[0] == rows[1] and len(rows[0]) == 2


def _seconds(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def test_a_client_that_leaves_mid_call_is_recorded_alike(both, fake_upstream):
    fake_upstream.delay = 1.0  # the client gives up first
    rows = []
    for gw in both:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(gw.url + "/v1/chat/completions", json=CHAT, headers=AUTH, timeout=0.3)
        found = gw.spend_logs(1)
        # The call stopped when its client left, not when the upstream would have answered.
        rows.append([(r["status"], r["model_group"], _seconds(r["startTime"], r["endTime"]) < 0.9) for r in found])
    assert rows[0] == rows[1] == [("failure", "gpt-test", True)]
    fake_upstream.delay = 0.0
    for gw in both:  # and the gateway goes on serving
        assert _post(gw.url, "/v1/chat/completions", AUTH, CHAT).status_code == 200


def test_under_uvicorn_a_client_that_leaves_stops_the_call_and_the_next_reply_is_whole(tmp_path, fake_upstream):
    # The gateway's default server (the fixtures above run hypercorn): its connection, not a
    # watcher task, tells the fast path that the client left.
    from tests.test_processes import MASTER_KEY, Gateway, free_port

    gw = Gateway(tmp_path, fake_upstream.url, free_port(), 1, "uvicorn")
    try:
        gw.wait_ready()
        assert ON in gw.log
        admin = {"Authorization": f"Bearer {MASTER_KEY}"}
        fake_upstream.delay = 1.0
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(gw.url + "/v1/chat/completions", json=CHAT, headers=admin, timeout=0.3)
        fake_upstream.delay = 0.0
        with httpx.Client(headers=admin, timeout=10) as client:  # one kept-alive connection
            replies = [client.post(gw.url + "/v1/chat/completions", json=CHAT) for _ in range(3)]
            assert [r.status_code for r in replies] == [200, 200, 200]
            assert all(r.json()["choices"][0]["message"]["content"] for r in replies)
            deadline = time.monotonic() + 10
            while len(rows := client.get(gw.url + "/spend/logs").json()) < 4:
                assert time.monotonic() < deadline, rows
                time.sleep(0.1)
        left = [r for r in rows if r["status"] == "failure"]
        assert len(left) == 1 and _seconds(left[0]["startTime"], left[0]["endTime"]) < 0.9, left
    finally:
        gw.cleanup()


def test_other_methods_and_paths_still_go_through_quart(gateway_server, fake_upstream):
    gw = gateway_server(config(fake_upstream), process=True)
    assert ON in gw.log
    wrong_method = httpx.get(gw.url + "/v1/chat/completions", headers=AUTH)
    assert wrong_method.status_code == 405 and "POST" in wrong_method.headers["allow"]
    engines = httpx.post(gw.url + "/engines/gpt-test/chat/completions", headers=AUTH,
                         json={"messages": CHAT["messages"]})
    assert engines.status_code == 200 and engines.json()["choices"]


def test_size_limits_refuse_alike_on_both_paths(gateway_server, fake_upstream):
    cfg = {**config(fake_upstream, callbacks=["size_limits"]), "general_settings": {"max_request_size_mb": 0.001}}
    fast = gateway_server(cfg, process=True)
    slow = gateway_server(cfg, env={"GATEWAY_FAST_PATH": "0"}, process=True)
    assert ON in fast.log  # the core measures bodies: the plugin has no request functions of its own
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * 2000}]}
    for body in (CHAT, big):
        seen = [_seen(_post(gw.url, "/v1/chat/completions", AUTH, body), None) for gw in (fast, slow)]
        assert seen[0] == seen[1]
    refused = _post(fast.url, "/v1/chat/completions", {"x-request-id": "big-one"}, big)
    assert refused.status_code == 400 and refused.json()["error"]["message"].startswith("Request size is too large")
    # Refused first (before the key is even looked at), with the request id, and the unread body closes the connection.
    assert refused.headers["x-request-id"] == "big-one" and refused.headers["connection"] == "close"


def test_it_steps_aside_for_plugins_that_would_see_the_difference(gateway_server, fake_upstream, local_plugin):
    local_plugin("request_function", """
        from gateway import Plugin, hookimpl

        class Guard(Plugin):
            name = "request_function"

            @hookimpl
            def routes(self, gateway):
                from quart import Blueprint

                bp = Blueprint("request_function", __name__)

                @bp.before_app_request
                async def look() -> None:
                    pass

                return [bp]
        """)
    sized = gateway_server(config(fake_upstream, callbacks=["request_function"]), process=True)
    assert "fast path for the LLM routes: off (request functions of gateway_plugin_request_function" in sized.log
    local_plugin("request_auth", """
        from gateway import Plugin, hookimpl

        class Guard(Plugin):
            name = "request_auth"

            @hookimpl
            async def auth(self, request, api_key):
                return None
        """)
    authed = gateway_server(config(fake_upstream, callbacks=["request_auth"]), process=True)
    assert "fast path for the LLM routes: off (auth plugin(s) request_auth take Quart's request)" in authed.log
    for gw in (sized, authed):
        assert gw.client().chat.completions.create(**CHAT).choices[0].message.content


def test_an_auth_plugin_without_request_runs_on_the_fast_path(gateway_server, fake_upstream, local_plugin):
    local_plugin("static_key", """
        import hashlib

        from gateway import AuthenticationError, Plugin, Principal, hookimpl

        class Guard(Plugin):
            name = "static_key"
            priority = 1600

            @hookimpl
            async def auth(self, api_key):
                if api_key == "sk-static-blocked":
                    raise AuthenticationError("Authentication Error, static key blocked")
                if api_key == "sk-static":
                    return Principal(api_key=hashlib.sha256(api_key.encode()).hexdigest(), key_name="static")
                return None
        """)
    gw = gateway_server(config(fake_upstream, callbacks=["static_key"]), process=True)
    assert ON in gw.log
    assert gw.client(api_key="sk-static").chat.completions.create(**CHAT).choices
    refused = _post(gw.url, "/v1/chat/completions", {"Authorization": "Bearer sk-static-blocked"}, CHAT)
    assert refused.status_code == 401
    assert refused.json()["error"]["message"] == "Authentication Error, static key blocked"
