"""Response caching as LiteLLM configures it (`litellm_settings.cache`): hits answered without an
upstream call, marked and billed $0; per-request control; streams replayed; Redis shared between
instances. The fake upstream counts what really reached it."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

ADMIN = {"Authorization": "Bearer sk-1234"}


def config(fake_upstream: Any, **cache_params: Any) -> dict[str, Any]:
    return {"model_list": [
        {"model_name": "gpt", "litellm_params": {"model": "openai/m", "api_base": fake_upstream.url, "api_key": "k",
                                                 "input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}},
        {"model_name": "emb", "litellm_params": {"model": "openai/e", "api_base": fake_upstream.url, "api_key": "k",
                                                 "input_cost_per_token": 1e-6}}],
        "litellm_settings": {"cache": True, "cache_params": {"type": "local", **cache_params}},
        "router_settings": {"num_retries": 0}, "general_settings": {"spend_flush_interval_s": 0.05}}


def ask(server: Any, text: str = "hi", **extra: Any) -> httpx.Response:
    return httpx.post(server.url + "/v1/chat/completions", headers=ADMIN, timeout=20,
                      json={"model": "gpt", "messages": [{"role": "user", "content": text}], **extra})


def test_a_repeated_question_is_answered_from_the_cache_at_no_cost(gateway_server, fake_upstream):
    server = gateway_server(config(fake_upstream))
    first = ask(server)
    assert first.status_code == 200 and "x-gateway-cache-hit" not in first.headers
    time.sleep(0.1)  # stored after the reply went out
    second = ask(server, user="someone-else", metadata={"tags": ["x"]})  # fields that change nothing
    assert second.headers["x-gateway-cache-hit"] == "True"
    assert second.json() == first.json() and len(fake_upstream.requests) == 1
    assert ask(server, temperature=0.5).headers.get("x-gateway-cache-hit") is None  # another question
    rows = sorted(server.spend_logs(3), key=lambda r: r["startTime"])
    assert [r["cache_hit"] for r in rows] == [False, True, False]
    assert rows[0]["spend"] > 0 and rows[1]["spend"] == 0 and rows[1]["total_tokens"] == rows[0]["total_tokens"]
    assert "cache" not in fake_upstream.requests[-1].json


def test_streams_are_stored_and_replayed(gateway_server, fake_upstream):
    server = gateway_server(config(fake_upstream))
    client = server.client()
    text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="gpt", messages=[{"role": "user", "content": "stream me"}], stream=True) if c.choices)
    time.sleep(0.1)
    replay = list(client.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "stream me"}],
                                                 stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in replay if c.choices) == text
    assert replay[-1].usage is not None and len(fake_upstream.requests) == 1
    # A JSON request is answered from a stored stream too.
    assert ask(server, "stream me").json()["choices"][0]["message"]["content"] == text


def test_per_request_control(gateway_server, fake_upstream):
    server = gateway_server(config(fake_upstream))
    ask(server, "a", cache={"no-store": True})
    time.sleep(0.1)
    assert "x-gateway-cache-hit" not in ask(server, "a").headers  # nothing was kept
    time.sleep(0.1)
    assert ask(server, "a").headers["x-gateway-cache-hit"] == "True"
    assert "x-gateway-cache-hit" not in ask(server, "a", cache={"no-cache": True}).headers
    time.sleep(1.1)
    assert "x-gateway-cache-hit" not in ask(server, "a", cache={"s-maxage": 1}).headers  # too old for this caller
    ask(server, "b", cache={"ttl": 1})
    time.sleep(1.2)
    assert "x-gateway-cache-hit" not in ask(server, "b").headers  # expired
    r = ask(server, "c", cache={"ttl": -1})
    assert r.status_code == 400 and "cache.ttl" in r.json()["error"]["message"]


def test_default_off_caches_only_what_asks(gateway_server, fake_upstream):
    server = gateway_server(config(fake_upstream, mode="default_off", supported_call_types=["acompletion"]))
    ask(server)
    ask(server)
    assert len(fake_upstream.requests) == 2
    ask(server, cache={"use-cache": True})
    time.sleep(0.1)
    assert ask(server, cache={"use-cache": True}).headers["x-gateway-cache-hit"] == "True"


def test_embeddings_are_cached(gateway_server, fake_upstream):
    server = gateway_server(config(fake_upstream))
    client = server.client()
    first = client.embeddings.create(model="emb", input=["one", "two"])
    time.sleep(0.1)
    again = client.embeddings.with_raw_response.create(model="emb", input=["one", "two"])
    assert again.headers["x-gateway-cache-hit"] == "True"
    assert again.parse().data[0].embedding == first.data[0].embedding and len(fake_upstream.requests) == 1


def test_redis_cache_is_shared_between_instances(gateway_server, fake_upstream):
    namespace = f"test-{uuid.uuid4().hex[:8]}"
    cfg = config(fake_upstream, type="redis", host="127.0.0.1", port=6379, namespace=namespace)
    one = gateway_server(cfg)
    two = gateway_server(cfg)  # another process
    ask(one, "shared")
    time.sleep(0.2)
    r = ask(two, "shared")
    assert r.headers["x-gateway-cache-hit"] == "True" and len(fake_upstream.requests) == 1


def test_redis_down_is_a_miss_not_an_error(gateway_server, fake_upstream):
    server = gateway_server(config(fake_upstream, type="redis", url="redis://127.0.0.1:9/0"))
    assert ask(server).status_code == 200
    assert ask(server).status_code == 200 and len(fake_upstream.requests) == 2


@pytest.mark.parametrize("params,message", [
    ({"type": "s3"}, "cache_params.type: 's3' is not supported; use one of: local, redis"),
    ({"ttl": 0}, "cache_params.ttl: must be a number of seconds greater than 0"),
    ({"mode": "sometimes"}, "cache_params.mode: 'sometimes' is not default_on or default_off"),
])
def test_bad_cache_settings_stop_start_up(gateway_server, fake_upstream, params, message):
    with pytest.raises(Exception) as err:
        gateway_server(config(fake_upstream, **params))
    assert message in str(err.value)


def test_a_during_call_guard_still_judges_a_cache_hit(gateway_server, fake_upstream):
    cfg = config(fake_upstream)
    cfg["guardrails"] = [{"guardrail_name": "kw", "litellm_params": {  # the test distribution's guard
        "guardrail": "probe_guard_a", "mode": "during_call", "seconds": 0, "word": "forbidden"}}]
    server = gateway_server(cfg)
    assert ask(server, "a forbidden word").status_code == 200  # not switched on: answered and stored
    time.sleep(0.1)
    r = ask(server, "a forbidden word", guardrails=["kw"])  # the same question, the guard on
    assert r.status_code == 400 and "x-gateway-cache-hit" not in r.headers
    assert len(fake_upstream.requests) == 1
