"""GET /metrics behind a key, its formats, the settings that change the labels and names, and
the config's checks. Each test starts its own gateway (`gateway_server`) with the settings it needs."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import re
import sys
from pathlib import Path

import httpx
import openai
import pytest

if "prometheus_test_helpers" not in sys.modules:  # importlib mode: load the helpers by path, once
    _spec = importlib.util.spec_from_file_location("prometheus_test_helpers",
                                                   Path(__file__).with_name("prometheus_test_helpers.py"))
    sys.modules["prometheus_test_helpers"] = _module = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_module)
from prometheus_test_helpers import Scrape, scrape  # noqa: E402

MASTER = "sk-1234"
ADMIN = {"Authorization": f"Bearer {MASTER}"}


def config(upstream, native=None, **flat):
    cfg = {"model_list": [{"model_name": "gpt-test",
                           "litellm_params": {"model": "openai/upstream-model", "api_base": upstream.url,
                                              "api_key": "sk-upstream"}}]}
    if native is not None:
        cfg["plugins"] = [{"name": "prometheus", "config": native}]
    else:
        cfg["litellm_settings"] = {"callbacks": ["prometheus"], **flat}
    return cfg


def ask(client, user=None, **kwargs):
    extra = {"user": user} if user else {}
    return client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}],
                                          **extra, **kwargs)


def counted(url: str, name: str, count: float, **headers: str) -> Scrape:
    """Scrape until `name` reached `count` (request_finished runs after the reply)."""
    import time

    deadline = time.monotonic() + 10
    while True:
        got = scrape(url, **headers)
        if got.value(name) >= count or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def new_key(server, **body) -> str:
    return httpx.post(server.url + "/key/generate", headers=ADMIN, json=body).json()["key"]


# -- who may read /metrics -------------------------------------------------------------------------


def test_require_auth_asks_for_a_key_the_gateway_accepts(fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream, require_auth_for_metrics_endpoint=True))
    key = new_key(server, key_alias="reader")
    ask(server.client(api_key=key))
    for headers, message in [
        ({}, "Unauthorized access to metrics endpoint: Authentication Error, No api key passed in."),
        ({"Authorization": "Bearer sk-wrong-0000"},
         "Unauthorized access to metrics endpoint: Authentication Error, Invalid proxy server token passed"),
    ]:
        resp = httpx.get(server.url + "/metrics", headers=headers)
        assert resp.status_code == 401
        body = resp.json()["error"]
        assert (body["type"], body["code"]) == ("auth_error", "401")
        if message:
            assert body["message"] == message
        assert key not in resp.text and "sk-wrong" not in resp.text
    for headers in (ADMIN, {"x-api-key": MASTER}, {"api-key": MASTER}, {"Authorization": f"Bearer {key}"}):
        assert counted(server.url, "gateway_requests_total", 1, **headers).value("gateway_requests_total") == 1


def test_metrics_need_no_key_by_default(fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream))
    ask(server.client())
    resp = httpx.get(server.url + "/metrics")  # no key at all
    assert resp.status_code == 200
    assert "gateway_requests_total" in resp.text
    assert httpx.get(server.url + "/metrics/").status_code == 200
    doc = httpx.get(server.url + "/openapi.json").json()
    assert "get" in doc["paths"]["/metrics"]


# -- formats ---------------------------------------------------------------------------------------


def test_gateway_names_only_openmetrics_gzip_filter_and_time_to_first_token(fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream, native={"prometheus_metric_names": "gateway",
                                                          "prometheus_time_to_first_token": True}))
    fake_upstream.chunk_interval = 0.05
    with server.client() as client:
        assert "".join(c.choices[0].delta.content or "" for c in ask(client, stream=True) if c.choices)
    m = counted(server.url, "gateway_requests_total", 1)
    assert not [name for name in m.types if name.startswith("litellm_")]
    (labels, count) = m.one("gateway_time_to_first_token_seconds_count")
    assert count == 1 and labels == {"model_group": "gpt-test", "call_type": "acompletion"}
    ttft = m.value("gateway_time_to_first_token_seconds_sum")
    assert 0 < ttft < m.value("gateway_request_latency_seconds_sum")
    assert m.label_values("plugin") == set()  # its own stream_chunk verdicts are not a plugin's metrics

    om = httpx.get(server.url + "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert om.headers["content-type"].startswith("application/openmetrics-text")
    assert om.text.rstrip().endswith("# EOF")
    zipped = httpx.get(server.url + "/metrics", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"  # httpx unzipped it
    assert "gateway_requests_total" in zipped.text
    with httpx.stream("GET", server.url + "/metrics", headers={"Accept-Encoding": "gzip"}) as raw:
        assert b"gateway_requests_total" in gzip.decompress(b"".join(raw.iter_raw()))
    only = httpx.get(server.url + "/metrics", params={"name[]": "gateway_tokens_total"})
    assert Scrape(only.text).types.keys() == {"gateway_tokens"}


# -- labels the config adds, and their bound -------------------------------------------------------


def test_user_end_user_and_key_hash_when_asked_and_bounded(fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream, enable_end_user_cost_tracking_prometheus_only=True,
                                   prometheus_include_user=True, prometheus_include_key_hash=True,
                                   prometheus_label_value_limit=2))
    key = new_key(server, key_alias="bob-key", user_id="bob")
    client = server.client(api_key=key)
    for end_user in ("u1", "u2", "u3", "u4", "u1"):
        ask(client, user=end_user)
    m = counted(server.url, "gateway_requests_total", 5)
    digest = hashlib.sha256(key.encode()).hexdigest()
    who = {"api_key_alias": "bob-key", "user": "bob", "hashed_api_key": digest[:16]}
    assert m.value("gateway_requests_total", end_user="u1", **who) == 2
    assert m.value("gateway_requests_total", end_user="u2", **who) == 1
    assert m.value("gateway_requests_total", end_user="other", **who) == 2  # u3 and u4: past the bound of 2
    assert m.label_values("end_user") == {"u1", "u2", "other"}
    assert m.value("litellm_proxy_total_requests_metric_total", end_user="other", user="bob") == 2
    assert digest not in m.text and key not in m.text


def test_an_unknown_model_name_never_becomes_a_label(fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream))
    with server.client() as client:
        for name in ("invented-1", "invented-2"):
            with pytest.raises(openai.BadRequestError):
                client.chat.completions.create(model=name, messages=[{"role": "user", "content": "x"}])
    m = counted(server.url, "gateway_requests_total", 2)
    assert m.value("gateway_requests_total", model_group="other", status="failure", status_code="400") == 2
    assert "invented" not in m.text


def test_a_rate_limit_refusal_is_a_block_by_virtual_keys_and_leaves_zero(fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream))
    client = server.client(api_key=new_key(server, key_alias="slow", rpm_limit=0))
    with pytest.raises(openai.RateLimitError):
        ask(client)
    m = counted(server.url, "gateway_requests_total", 1)
    who = {"api_key_alias": "slow", "model_group": "gpt-test"}
    assert m.value("gateway_requests_total", status="blocked", status_code="429", blocked_by="virtual_keys",
                   **who) == 1
    # Read from the 429's own x-ratelimit-* headers: the refused call was the only one.
    assert m.one("gateway_rate_limit_remaining", unit="requests", **who)[1] == 0
    assert m.one("gateway_rate_limit_limit", unit="requests", **who)[1] == 0
    assert m.value("gateway_deployment_calls_total") == 0  # it reached no upstream
    assert fake_upstream.requests == []


# -- the config ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("plugin_config", "message"), [
    ({"prometheus_latency_buckets": [1, 0.5]},
     "plugin 'prometheus': config key prometheus_latency_buckets: Value error, bucket bounds must be positive "
     "and strictly increasing"),
    ({"prometheus_metric_names": "statsd"},
     "plugin 'prometheus': config key prometheus_metric_names: Input should be 'both', 'gateway' or 'litellm'"),
    ({"prometheus_labels": ["x"]}, "plugin 'prometheus': config key prometheus_labels: Extra inputs are not permitted"),
])
def test_a_bad_config_stops_start_up_with_one_line(fake_upstream, gateway_server, plugin_config, message):
    with pytest.raises(Exception, match=re.escape(message)):
        gateway_server(config(fake_upstream, native=plugin_config))
