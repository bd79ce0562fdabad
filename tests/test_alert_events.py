"""Alert events reach `alert` hooks: a size-limit refusal, seen by the probe recorder plugin."""

from __future__ import annotations

import time

import httpx

ADMIN = {"Authorization": "Bearer sk-1234"}


def recorded_alerts(gw) -> list[str]:
    return httpx.get(gw.url + "/probe/recorded", headers=ADMIN).json()["alerts"]


def test_a_size_limit_refusal_raises_an_alert(gateway_server):
    gw = gateway_server({
        "model_list": [{"model_name": "m", "litellm_params": {"model": "fake/m"}}],
        "litellm_settings": {"callbacks": ["probe_recorder"]},
        "general_settings": {"max_request_size_mb": 0.0001},
    })
    r = httpx.post(gw.url + "/v1/chat/completions", headers=ADMIN,
                   json={"model": "m", "messages": [{"role": "user", "content": "x" * 500}]})
    assert r.status_code == 400
    deadline = time.monotonic() + 5
    while "size_limit" not in recorded_alerts(gw) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert recorded_alerts(gw) == ["size_limit"]
