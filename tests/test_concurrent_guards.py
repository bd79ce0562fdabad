"""Remote guards (`concurrent = True`) that neighbour each other in priority order run together:
a request waits for the slowest, not for the sum. Probe guards from the test distribution wait a
set time and record when they ran."""

from __future__ import annotations

from typing import Any

import httpx

ADMIN = {"Authorization": "Bearer sk-1234"}


def config(upstream: Any, *guards: dict[str, Any]) -> dict[str, Any]:
    return {"model_list": [{"model_name": "gpt-test", "litellm_params": {
                "model": "openai/upstream-model", "api_base": upstream.url, "api_key": "sk-up"}}],
            "plugins": list(guards)}


def call(gw: Any, text: str = "hello") -> httpx.Response:
    return httpx.post(gw.url + "/v1/chat/completions", headers=ADMIN, timeout=30,
                      json={"model": "gpt-test", "messages": [{"role": "user", "content": text}]})


def guard(gw: Any, name: str) -> Any:
    return gw.gateway.host.slots[name].instance


def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def test_neighbouring_remote_guards_overlap_and_a_sequential_one_waits(gateway_server, fake_upstream):
    gw = gateway_server(config(fake_upstream, {"name": "probe_guard_a", "config": {"seconds": 0.3}},
                               {"name": "probe_guard_b", "config": {"seconds": 0.3}},
                               {"name": "probe_guard_seq", "config": {"seconds": 0.1}}))
    r = call(gw)
    assert r.status_code == 200, r.text
    (a,), (b,), (seq,) = (guard(gw, n).spans for n in ("probe_guard_a", "probe_guard_b", "probe_guard_seq"))
    assert overlap(a, b)
    assert seq[0] >= max(a[1], b[1])  # the plain guard runs in its own turn, after both
    assert len(fake_upstream.requests) == 1


def test_first_block_wins_and_cancels_the_slower_guard(gateway_server, fake_upstream):
    gw = gateway_server(config(fake_upstream, {"name": "probe_guard_a", "config": {"seconds": 0.05}},
                               {"name": "probe_guard_b", "config": {"seconds": 5}}))
    r = call(gw, "this is unsafe-a content")
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "Violated content safety policy. Guard=probe_guard_a"
    assert guard(gw, "probe_guard_b").cancelled == 1 and guard(gw, "probe_guard_b").spans == []
    assert fake_upstream.requests == []
    counters = httpx.get(gw.url + "/plugins", headers=ADMIN, timeout=10).json()["counters"]
    assert counters["blocks"] == {"probe_guard_a": 1}


def test_monitor_and_fail_open_apply_to_each_concurrent_guard(gateway_server, fake_upstream):
    gw = gateway_server(config(
        fake_upstream,
        {"name": "probe_guard_a", "mode": "monitor", "config": {"seconds": 0.05}},
        {"name": "probe_guard_b", "timeout_s": 0.2, "on_error": "fail_open", "config": {"seconds": 5}}))
    r = call(gw, "unsafe-a")
    assert r.status_code == 200, r.text
    counters = httpx.get(gw.url + "/plugins", headers=ADMIN, timeout=10).json()["counters"]
    assert counters["monitored"] == {"probe_guard_a": 1} and counters["errors"] == {"probe_guard_b": 1}


def test_a_failing_concurrent_guard_fails_closed(gateway_server, fake_upstream):
    gw = gateway_server(config(fake_upstream, {"name": "probe_guard_a", "config": {"seconds": 1}},
                               {"name": "probe_guard_b", "timeout_s": 0.1, "config": {"seconds": 5}}))
    r = call(gw)
    assert r.status_code == 503
    assert r.json()["error"] == {"message": "Guardrail probe_guard_b is unavailable (timed out)",
                                 "type": "guardrail_unavailable", "param": None, "code": "503"}
    assert guard(gw, "probe_guard_a").cancelled == 1
    assert fake_upstream.requests == []


def test_a_guard_reporting_itself_unavailable_is_a_failure_not_a_block(gateway_server, fake_upstream):
    """`GuardrailUnavailableError` from a plugin means its service is down: `on_error` decides."""
    closed = gateway_server(config(fake_upstream, {"name": "probe_guard_down"}))
    r = call(closed)
    assert r.status_code == 503
    assert r.json()["error"]["message"] == "Guardrail probe_guard_down is unavailable (GuardrailUnavailableError)"
    closed.stop()  # one gateway per process (tortoise's global context)
    opened = gateway_server(config(fake_upstream, {"name": "probe_guard_down", "on_error": "fail_open"}))
    r = call(opened)
    assert r.status_code == 200, r.text
    counters = httpx.get(opened.url + "/plugins", headers=ADMIN, timeout=10).json()["counters"]
    assert counters["errors"] == {"probe_guard_down": 1} and counters["blocks"] == {}
