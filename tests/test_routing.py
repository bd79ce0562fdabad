"""Routing as LiteLLM configs use it: fallbacks of every kind, aliases, wildcards, routing
strategies, cooldown and recovery, batch completions. Two fake upstreams on loopback stand for two
providers; what each received is what is checked, with the official `openai` SDK as the client."""

from __future__ import annotations

import collections
import time
from typing import Any

import httpx
import openai
import pytest

from gateway.fake_upstream import FakeUpstream

ADMIN = {"Authorization": "Bearer sk-1234"}
CLOSED = "http://127.0.0.1:9/v1"  # nothing listens: connection refused


@pytest.fixture
def second_upstream():
    with FakeUpstream() as upstream:
        yield upstream


def dep(name: str, base: str, model: str = "openai/m", **params: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"model_name": name, "litellm_params": {"model": model, "api_base": base,
                                                                    "api_key": "sk-up", **params}}
    info = params.pop("model_info", None)
    if info:
        entry["model_info"] = info
        entry["litellm_params"].pop("model_info", None)
    return entry


def config(*models: dict[str, Any], **router: Any) -> dict[str, Any]:
    return {"model_list": list(models), "router_settings": {"num_retries": 0, **router},
            "general_settings": {"spend_flush_interval_s": 0.05}}


def hi(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


def post(server: Any, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(server.url + "/v1/chat/completions", headers=ADMIN, json=body, timeout=20)


# -- fallbacks ------------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["router_settings", "litellm_settings"])
def test_a_failing_group_falls_back_and_the_reply_says_so(gateway_server, fake_upstream, second_upstream, where):
    cfg = config(dep("gpt-4", fake_upstream.url, "openai/big"), dep("gpt-3.5", second_upstream.url, "openai/small"))
    (cfg["router_settings"] if where == "router_settings" else cfg.setdefault("litellm_settings", {}))[
        "fallbacks"] = [{"gpt-4": ["gpt-3.5"]}]
    server = gateway_server(cfg)
    fake_upstream.fail_next(503)
    r = post(server, hi("gpt-4"))
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "upstream says: hi"
    assert second_upstream.requests[-1].json["model"] == "small"
    assert r.headers["x-gateway-attempted-fallbacks"] == "1" and r.headers["x-gateway-model-id"] == "gpt-3.5-1"
    (row,) = server.spend_logs(1)
    assert row["model"] == "small" and row["model_group"] == "gpt-4"
    assert [(a["model_group"], a["status"]) for a in row["metadata"]["attempts"]] == [("gpt-4", 503), ("gpt-3.5", 200)]
    # A healthy group answers itself: no fallback header.
    r = post(server, hi("gpt-4"))
    assert r.headers["x-gateway-model-id"] == "gpt-4-0" and "x-gateway-attempted-fallbacks" not in r.headers


def test_fallback_after_retries_when_the_host_refuses_connections(gateway_server, fake_upstream):
    server = gateway_server(config(dep("primary", CLOSED), dep("backup", fake_upstream.url, "openai/b"),
                                   num_retries=1, fallbacks=[{"primary": ["backup"]}]))
    started = time.perf_counter()
    r = post(server, hi("primary"))
    assert r.status_code == 200 and fake_upstream.requests[-1].json["model"] == "b"
    assert time.perf_counter() - started < 5


def test_context_window_and_content_policy_errors_take_their_own_lists(gateway_server, fake_upstream, second_upstream):
    with FakeUpstream() as third:
        server = gateway_server(config(
            dep("small", fake_upstream.url, "openai/small"), dep("long", second_upstream.url, "openai/long"),
            dep("lenient", third.url, "openai/lenient"),
            context_window_fallbacks=[{"small": ["long"]}], content_policy_fallbacks=[{"small": ["lenient"]}]))
        fake_upstream.fail_next(400, message="This model's maximum context length is 8192 tokens.",
                                type="invalid_request_error")
        assert post(server, hi("small")).status_code == 200 and second_upstream.requests and not third.requests
        fake_upstream.fail_next(400, message="The response was filtered due to the prompt triggering Azure "
                                "OpenAI's content management policy.", type="invalid_request_error")
        assert post(server, hi("small")).status_code == 200 and len(third.requests) == 1
        # Any other 400 is the request's fault: returned as it is, tried nowhere else.
        fake_upstream.fail_next(400, message="Invalid value for 'temperature'", type="invalid_request_error")
        r = post(server, hi("small"))
        assert r.status_code == 400 and "temperature" in r.json()["error"]["message"]
        assert len(second_upstream.requests) == 1 and len(third.requests) == 1


def test_default_fallbacks_and_fallbacks_in_the_request(gateway_server, fake_upstream, second_upstream):
    server = gateway_server(config(dep("a", fake_upstream.url, "openai/a"), dep("b", fake_upstream.url, "openai/b"),
                                   dep("c", second_upstream.url, "openai/c"), default_fallbacks=["c"]))
    fake_upstream.fail_next(500)
    assert post(server, hi("a")).status_code == 200 and second_upstream.requests[-1].json["model"] == "c"
    # The request's own list comes after the config's; unknown names in it are skipped.
    fake_upstream.fail_next(429)
    second_upstream.fail_next(500)
    r = post(server, hi("a", fallbacks=["nope", "b"]))
    assert r.status_code == 200 and r.headers["x-gateway-attempted-fallbacks"] == "2"
    assert "fallbacks" not in fake_upstream.requests[-1].json  # the gateway's field, never sent
    # When every group fails, the client gets its own model's error.
    fake_upstream.fail_next(500, message="a is down")
    second_upstream.fail_next(502, message="c is down")
    r = post(server, hi("a"))
    assert r.status_code == 500 and "a is down" in r.json()["error"]["message"]


def test_fallback_names_are_checked_at_start_up(gateway_server, fake_upstream):
    with pytest.raises(Exception) as err:
        gateway_server(config(dep("a", fake_upstream.url), fallbacks=[{"a": ["missing"]}]))
    assert "router_settings.fallbacks: 'missing' is not a model_name in model_list" in str(err.value)


def test_a_timeout_is_retried_on_another_deployment(gateway_server, fake_upstream, second_upstream):
    fake_upstream.delay = 3
    server = gateway_server(config(dep("g", fake_upstream.url, timeout=0.5), dep("g", second_upstream.url),
                                   num_retries=2, routing_strategy="least-busy"))
    for _ in range(3):
        r = post(server, hi("g"))
        assert r.status_code == 200, r.text
    assert len(second_upstream.requests) == 3  # the slow one was tried at most once, then cooled down
    assert len(fake_upstream.requests) <= 1


# -- names ----------------------------------------------------------------------------------------
def test_model_group_alias_visible_and_hidden(gateway_server, fake_upstream):
    server = gateway_server(config(dep("gpt-4o", fake_upstream.url, "openai/real-4o"),
                                   model_group_alias={"gpt-4": "gpt-4o", "secret": {"model": "gpt-4o", "hidden": True}}))
    client = server.client()
    for name in ("gpt-4", "secret"):
        assert client.chat.completions.create(**hi(name)).choices[0].message.content == "upstream says: hi"
        assert fake_upstream.requests[-1].json["model"] == "real-4o"
    assert [m.id for m in client.models.list()] == ["gpt-4o", "gpt-4"]
    with pytest.raises(openai.BadRequestError, match="Invalid model name passed in model=gpt-5"):
        client.chat.completions.create(**hi("gpt-5"))


def test_key_and_team_aliases(gateway_server, fake_upstream):
    server = gateway_server(config(dep("gpt-4o", fake_upstream.url, "openai/real-4o"),
                                   dep("mini", fake_upstream.url, "openai/real-mini")))
    team = httpx.post(server.url + "/team/new", headers=ADMIN, json={"model_aliases": {"cheap": "mini"}}).json()
    key = httpx.post(server.url + "/key/generate", headers=ADMIN,
                     json={"team_id": team["team_id"], "aliases": {"smart": "gpt-4o"}}).json()
    assert key["aliases"] == {"smart": "gpt-4o"}
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=key["key"])
    client.chat.completions.create(**hi("smart"))
    assert fake_upstream.requests[-1].json["model"] == "real-4o"
    client.chat.completions.create(**hi("cheap"))
    assert fake_upstream.requests[-1].json["model"] == "real-mini"
    with pytest.raises(openai.BadRequestError):  # another key has no such alias
        server.client().chat.completions.create(**hi("smart"))


def test_wildcards_resolve_to_the_name_asked_for(gateway_server, fake_upstream, second_upstream):
    server = gateway_server(config(
        dep("openai/*", fake_upstream.url, "openai/*"),
        dep("anthropic/claude-*", second_upstream.url, "openai/claude-*"),
        dep("*", second_upstream.url, "openai/*"),
        dep("gpt-4o", fake_upstream.url, "openai/pinned")))
    client = server.client()
    client.chat.completions.create(**hi("openai/gpt-4o-mini"))
    assert fake_upstream.requests[-1].json["model"] == "gpt-4o-mini"
    client.chat.completions.create(**hi("anthropic/claude-3-5-sonnet"))
    assert second_upstream.requests[-1].json["model"] == "claude-3-5-sonnet"
    client.chat.completions.create(**hi("anything-else"))  # `*` takes what nothing more specific does
    assert second_upstream.requests[-1].json["model"] == "anything-else"
    client.chat.completions.create(**hi("gpt-4o"))  # a group of its own wins over every pattern
    assert fake_upstream.requests[-1].json["model"] == "pinned"
    listed = [m.id for m in client.models.list()]
    assert listed[:4] == ["openai/*", "anthropic/claude-*", "*", "gpt-4o"]
    # Then the known models each pattern matches, as LiteLLM lists them.
    assert "openai/gpt-4o-mini" in listed and "gpt-4o-mini" in listed and "openai/*" not in listed[4:]


# -- strategies -------------------------------------------------------------------------------------
def calls(server: Any, n: int, model: str = "g") -> collections.Counter[str]:
    seen: collections.Counter[str] = collections.Counter()
    with httpx.Client(headers=ADMIN, timeout=20) as client:
        for _ in range(n):
            r = client.post(server.url + "/v1/chat/completions", json=hi(model))
            assert r.status_code == 200, r.text
            seen[r.headers["x-gateway-model-id"]] += 1
    return seen


def test_simple_shuffle_follows_weights(gateway_server, fake_upstream):
    server = gateway_server(config(dep("g", fake_upstream.url, weight=9), dep("g", fake_upstream.url, weight=1)))
    seen = calls(server, 200)
    assert 150 <= seen["g-0"] <= 195 and seen["g-0"] + seen["g-1"] == 200


def test_simple_shuffle_by_rpm_when_no_weight(gateway_server, fake_upstream):
    server = gateway_server(config(dep("g", fake_upstream.url, rpm=1000), dep("g", fake_upstream.url, rpm=10)))
    assert calls(server, 100)["g-0"] >= 90


def test_cost_based_routing_takes_the_cheapest(gateway_server, fake_upstream):
    server = gateway_server(config(
        dep("g", fake_upstream.url, input_cost_per_token=1e-5, output_cost_per_token=1e-5),
        dep("g", fake_upstream.url, input_cost_per_token=1e-7, output_cost_per_token=1e-7),
        routing_strategy="cost-based-routing"))
    assert calls(server, 20) == {"g-1": 20}


def test_latency_based_routing_prefers_the_fast_one(gateway_server, fake_upstream, second_upstream):
    fake_upstream.delay = 0.2
    server = gateway_server(config(dep("g", fake_upstream.url), dep("g", second_upstream.url),
                                   routing_strategy="latency-based-routing"))
    seen = calls(server, 20)
    assert seen["g-1"] >= 18  # each measured once, then the fast one


def test_usage_based_routing_takes_the_least_used(gateway_server, fake_upstream):
    fake_upstream.usage = {"prompt_tokens": 5, "completion_tokens": 5}
    server = gateway_server(config(dep("g", fake_upstream.url), dep("g", fake_upstream.url),
                                   routing_strategy="usage-based-routing-v2"))
    seen = calls(server, 20)
    assert seen == {"g-0": 10, "g-1": 10}  # each call goes to whichever has used fewer tokens


@pytest.mark.parametrize("strategy", ["usage-based-routing-v2", "simple-shuffle"])
def test_deployment_rpm_is_enforced_then_429(gateway_server, fake_upstream, strategy):
    server = gateway_server(config(dep("g", fake_upstream.url, rpm=2), dep("g", fake_upstream.url, rpm=3),
                                   routing_strategy=strategy))
    assert calls(server, 5) == {"g-0": 2, "g-1": 3}
    r = post(server, hi("g"))
    assert r.status_code == 429 and r.json()["error"]["type"] == "rate_limit_error"
    assert "No deployments available for selected model" in r.json()["error"]["message"]
    assert 1 <= int(r.headers["retry-after"]) <= 60


def test_deployment_rpm_is_exact_across_instances(gateway_server, fake_upstream, redis_url):
    import asyncio

    cfg = config(dep("g", fake_upstream.url, rpm=7, model_info={"id": f"dep-{time.time_ns()}"}))
    servers = [gateway_server(cfg, env={"REDIS_URL": redis_url}) for _ in range(2)]

    async def burst() -> list[int]:
        async with httpx.AsyncClient(headers=ADMIN, timeout=20) as client:
            replies = await asyncio.gather(*(client.post(s.url + "/v1/chat/completions", json=hi("g"))
                                             for s in servers for _ in range(10)))
        return [r.status_code for r in replies]

    codes = asyncio.run(burst())
    assert codes.count(200) == 7 and codes.count(429) == 13


def test_unknown_strategy_stops_start_up(gateway_server, fake_upstream):
    with pytest.raises(Exception, match="routing_strategy: 'fastest' is not one of"):
        gateway_server(config(dep("g", fake_upstream.url), routing_strategy="fastest"))


def test_a_failing_deployment_cools_down_and_recovers(gateway_server, fake_upstream, second_upstream):
    server = gateway_server(config(dep("g", fake_upstream.url), dep("g", second_upstream.url),
                                   num_retries=1, cooldown_time=1, allowed_fails=0))
    fake_upstream.fail_next(500, times=1000)
    seen = calls(server, 20)
    assert seen == {"g-1": 20} and len(fake_upstream.requests) == 1  # tried once, then left alone
    fake_upstream.scripts.clear()
    time.sleep(1.1)
    assert calls(server, 40)["g-0"] > 0  # back in the rotation


# -- batch completions ------------------------------------------------------------------------------
def test_batch_completions_answer_one_reply_per_model(gateway_server, fake_upstream, second_upstream):
    server = gateway_server(config(dep("a", fake_upstream.url, "openai/ma"), dep("b", second_upstream.url, "openai/mb")))
    r = post(server, hi("a,b"))
    assert r.status_code == 200
    replies = r.json()
    assert [x["model"] for x in replies] == ["ma", "mb"]
    assert all(x["choices"][0]["message"]["content"] == "upstream says: hi" for x in replies)
    second_upstream.fail_next(500, message="b broke")
    replies = post(server, hi("a,b")).json()
    assert replies[0]["object"] == "chat.completion" and "b broke" in replies[1]["error"]["message"]
    assert len(server.spend_logs(4)) == 4
    r = post(server, hi("a,b", stream=True))
    assert r.status_code == 400 and "do not stream" in r.json()["error"]["message"]


def test_a_key_may_name_a_model_access_group(gateway_server, fake_upstream):
    beta = {"model_info": {"access_groups": ["beta-models"]}}
    server = gateway_server(config(dep("b1", fake_upstream.url, **beta), dep("b2", fake_upstream.url, **beta),
                                   dep("other", fake_upstream.url)))
    key = httpx.post(server.url + "/key/generate", headers=ADMIN, json={"models": ["beta-models"]}).json()["key"]
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=key)
    for name in ("b1", "b2"):
        assert client.chat.completions.create(**hi(name)).choices[0].message.content
    with pytest.raises(openai.AuthenticationError, match="not allowed to access model"):
        client.chat.completions.create(**hi("other"))
    assert [m.id for m in client.models.list()] == ["b1", "b2"]


def test_a_cooldown_reaches_the_other_instances_through_redis(gateway_server, fake_upstream, redis_url):
    cfg = config(dep("g", CLOSED, weight=1_000_000), dep("g", fake_upstream.url, weight=0.000001),
                 num_retries=1, cooldown_time=30)
    env = {"REDIS_URL": redis_url}
    first = gateway_server(cfg, env=env)
    second = gateway_server(cfg, env=env)  # a process of its own
    r = post(first, hi("g"))
    assert r.status_code == 200 and r.headers["x-gateway-model-id"] == "g-1"
    (row,) = first.spend_logs(1)
    assert [a["model_id"] for a in row["metadata"]["attempts"]] == ["g-0", "g-1"]  # refused, then the other
    time.sleep(0.5)
    for _ in range(5):  # the other instance knows: it never tries the dead deployment
        assert post(second, hi("g")).headers["x-gateway-model-id"] == "g-1"
    assert all("attempts" not in row["metadata"] for row in second.spend_logs(5))
