"""Known traffic through one real gateway, then exact counts and sums from GET /metrics.

One gateway for the module (the kit's `GatewayServer` and `FakeUpstream`, which the
`gateway_server` and `fake_upstream` fixtures wrap): a virtual key `alpha` of team `research`
(rpm limit 100) makes, in order, one call the upstream fails (500), three chat calls, one text
completion, one stream, one call the guard plugin blocks, and one call to a model that does not
exist. The upstream reports 7 prompt and 5 completion tokens per call; the deployment costs
0.001 / 0.002 USD per prompt / completion token, so each call that got an answer costs 0.017.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from gateway.testing import FakeUpstream, GatewayServer

if "prometheus_test_helpers" not in sys.modules:  # importlib mode: load the helpers by path, once
    _spec = importlib.util.spec_from_file_location("prometheus_test_helpers",
                                                   Path(__file__).with_name("prometheus_test_helpers.py"))
    sys.modules["prometheus_test_helpers"] = _module = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_module)
from prometheus_test_helpers import (  # noqa: E402
    GUARD_NAME, GUARD_TRIGGER, Scrape, forget_guard, install_guard, scrape)

MASTER = "sk-1234"
ADMIN = {"Authorization": f"Bearer {MASTER}"}
DEP_ID = "dep-1"
USAGE = {"prompt_tokens": 7, "completion_tokens": 5}
COST = 7 * 0.001 + 5 * 0.002
END_USER = "alice-end-user-7731"
UNKNOWN_MODEL = "no-such-model-4242"
CALLS = 8  # every call below reaches request_finished


@dataclass
class Scenario:
    server: GatewayServer
    key: str
    team_id: str
    after_failure: Scrape
    final: Scrape


def wait_for(url: str, name: str, count: float, **labels: str) -> Scrape:
    """request_finished runs in the background, after the reply: scrape until it counted."""
    deadline = time.monotonic() + 10
    while True:
        got = scrape(url)
        if got.value(name, **labels) >= count or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def chat(client: openai.OpenAI, text: str, **kwargs):
    return client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": text}],
                                          user=END_USER, **kwargs)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory):
    tmp: Path = tmp_path_factory.mktemp("prometheus")
    patch = pytest.MonkeyPatch()
    patch.syspath_prepend(str(install_guard(tmp / "site")))
    upstream = FakeUpstream().start()
    upstream.usage = dict(USAGE)
    config = {
        "model_list": [{"model_name": "gpt-test",
                        "litellm_params": {"model": "openai/upstream-model", "api_base": upstream.url,
                                           "api_key": "sk-upstream-secret", "input_cost_per_token": 0.001,
                                           "output_cost_per_token": 0.002},
                        "model_info": {"id": DEP_ID}}],
        "router_settings": {"num_retries": 0},
        "litellm_settings": {"callbacks": ["prometheus", GUARD_NAME]},
        "general_settings": {"master_key": MASTER, "database_url": f"sqlite://{tmp / 'gateway.db'}"},
    }
    path = tmp / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    server = GatewayServer(path, MASTER).start()
    try:
        team = httpx.post(server.url + "/team/new", headers=ADMIN, json={"team_alias": "research"}).json()
        made = httpx.post(server.url + "/key/generate", headers=ADMIN,
                          json={"key_alias": "alpha", "team_id": team["team_id"], "rpm_limit": 100}).json()
        client = server.client(api_key=made["key"])

        upstream.fail_next(500)
        with pytest.raises(openai.InternalServerError):
            chat(client, "first")
        after_failure = wait_for(server.url, "gateway_requests_total", 1)

        for i in range(3):
            assert chat(client, f"hello {i}").usage.completion_tokens == 5
        client.completions.create(model="gpt-test", prompt="complete me", user=END_USER)
        assert "".join(c.choices[0].delta.content or "" for c in chat(client, "stream me", stream=True)
                       if c.choices)
        with pytest.raises(openai.BadRequestError, match=f"Blocked by {GUARD_NAME}"):
            chat(client, f"please {GUARD_TRIGGER}")
        with pytest.raises(openai.BadRequestError, match="Invalid model name"):
            client.chat.completions.create(model=UNKNOWN_MODEL, messages=[{"role": "user", "content": "x"}])
        final = wait_for(server.url, "gateway_requests_total", CALLS)
        yield Scenario(server, made["key"], team["team_id"], after_failure, final)
    finally:
        server.stop()
        upstream.stop()
        patch.undo()
        forget_guard()


def caller(scenario: Scenario) -> dict[str, str]:
    return {"api_key_alias": "alpha", "team": scenario.team_id, "team_alias": "research"}


# -- gateway_* names -------------------------------------------------------------------------------


def test_requests_by_model_group_call_type_status_and_http_status(scenario):
    m, who = scenario.final, caller(scenario)
    assert m.types["gateway_requests"] == "counter"
    assert m.value("gateway_requests_total") == CALLS
    expected = [
        ({"model_group": "gpt-test", "call_type": "acompletion", "status": "success", "status_code": "200"}, 4),
        ({"model_group": "gpt-test", "call_type": "atext_completion", "status": "success", "status_code": "200"}, 1),
        ({"model_group": "gpt-test", "call_type": "acompletion", "status": "failure", "status_code": "500"}, 1),
        ({"model_group": "gpt-test", "call_type": "acompletion", "status": "blocked", "status_code": "400",
          "blocked_by": GUARD_NAME}, 1),
        ({"model_group": "other", "call_type": "acompletion", "status": "failure", "status_code": "400"}, 1),
    ]
    for labels, count in expected:
        found, value = m.one("gateway_requests_total", **labels)
        assert value == count, labels
        assert found == {"blocked_by": "", **labels, **who}  # exactly these labels, nothing more


def test_tokens_and_spend(scenario):
    m, who = scenario.final, caller(scenario)
    answered = 5  # three chats, the completion and the stream
    assert m.value("gateway_tokens_total", type="prompt", **who) == 7 * answered
    assert m.value("gateway_tokens_total", type="completion", **who) == 5 * answered
    assert m.value("gateway_tokens_total", call_type="atext_completion", type="prompt") == 7
    assert m.value("gateway_spend_usd_total", **who) == pytest.approx(COST * answered)
    assert m.value("gateway_spend_usd_total", call_type="atext_completion") == pytest.approx(COST)


def test_latency_histograms(scenario):
    m = scenario.final
    assert m.types["gateway_request_latency_seconds"] == "histogram"
    assert m.value("gateway_request_latency_seconds_count") == CALLS
    assert m.value("gateway_request_latency_seconds_count", status="success") == 5
    # Upstream time: the JSON calls that reached the upstream (3 chats, the completion, the failure).
    assert m.value("gateway_upstream_latency_seconds_count") == 5
    # The gateway's own time: every call but the stream.
    assert m.value("gateway_overhead_latency_seconds_count") == CALLS - 1
    total = m.value("gateway_request_latency_seconds_sum")
    parts = m.value("gateway_upstream_latency_seconds_sum") + m.value("gateway_overhead_latency_seconds_sum")
    assert 0 < parts <= total
    assert m.value("gateway_request_latency_seconds_bucket", le="+Inf", status="success") == 5
    assert "gateway_time_to_first_token_seconds" not in m.types  # off unless configured


def test_deployment_health(scenario):
    dep = {"model_group": "gpt-test", "model_id": DEP_ID, "provider": "openai", "upstream_model": "upstream-model",
           "api_base": scenario.server.gateway.router.groups["gpt-test"][0].api_base}
    m = scenario.final
    assert m.value("gateway_deployment_calls_total", result="success", status_code="200", **dep) == 5
    assert m.value("gateway_deployment_calls_total", result="failure", status_code="500", **dep) == 1
    assert m.value("gateway_deployment_calls_total") == 6  # the blocked and unknown calls reached no upstream
    assert scenario.after_failure.one("gateway_deployment_state", **dep)[1] == 1  # partial outage
    assert m.one("gateway_deployment_state", **dep)[1] == 0  # healthy again


def test_plugin_latency_and_verdicts(scenario):
    m = scenario.final
    guard = {"plugin": GUARD_NAME, "phase": "pre_call"}
    # Every call past the model check met the guard: 6 passed, one was blocked.
    assert m.value("gateway_plugin_verdicts_total", verdict="pass", **guard) == 6
    assert m.value("gateway_plugin_verdicts_total", verdict="block", **guard) == 1
    assert m.value("gateway_plugin_latency_seconds_count", **guard) == 7
    assert m.label_values("plugin") == {GUARD_NAME}


def test_rate_limit_remaining(scenario):
    m, who = scenario.final, caller(scenario)
    # rpm 100; 7 calls were admitted (the unknown model never was): the last one left 93.
    assert m.one("gateway_rate_limit_remaining", unit="requests", model_group="gpt-test", **who)[1] == 93
    assert m.one("gateway_rate_limit_limit", unit="requests", model_group="gpt-test", **who)[1] == 100
    assert not m.select("gateway_rate_limit_remaining", unit="tokens")


# -- LiteLLM's names -------------------------------------------------------------------------------


def test_litellm_request_and_spend_metrics(scenario):
    m, who = scenario.final, caller(scenario)
    assert m.value("litellm_proxy_total_requests_metric_total") == CALLS
    assert m.value("litellm_proxy_total_requests_metric_total", requested_model="gpt-test", status_code="200",
                   **who) == 5
    assert m.value("litellm_proxy_failed_requests_metric_total") == 3
    assert m.value("litellm_proxy_failed_requests_metric_total", exception_status="400",
                   exception_class="BadRequestError") == 2
    assert m.value("litellm_proxy_failed_requests_metric_total", exception_status="500",
                   exception_class="UpstreamError", **who) == 1
    assert m.value("litellm_requests_metric_total", model="upstream-model", **who) == 5
    assert m.value("litellm_spend_metric_total", model="upstream-model", **who) == pytest.approx(COST * 5)
    assert m.value("litellm_total_tokens_metric_total", requested_model="gpt-test") == 60
    assert m.value("litellm_input_tokens_metric_total") == 35
    assert m.value("litellm_output_tokens_metric_total") == 25


def test_litellm_latency_and_deployment_metrics(scenario):
    m = scenario.final
    assert m.types["litellm_request_total_latency_metric"] == "histogram"
    assert m.value("litellm_request_total_latency_metric_count") == CALLS
    assert m.value("litellm_llm_api_latency_metric_count") == 5
    assert m.value("litellm_overhead_latency_metric_count") == CALLS - 1
    dep = {"litellm_model_name": "upstream-model", "model_id": DEP_ID, "api_provider": "openai"}
    assert m.value("litellm_deployment_success_responses_total", requested_model="gpt-test", **dep) == 5
    assert m.value("litellm_deployment_failure_responses_total", exception_status="500",
                   exception_class="server_error", **dep) == 1
    assert m.value("litellm_deployment_total_requests_total", **dep) == 6
    assert m.one("litellm_deployment_state", **dep)[1] == 0
    assert m.value("litellm_deployment_latency_per_output_token_count", **dep) == 4  # JSON successes


def test_litellm_guardrail_and_rate_limit_metrics(scenario):
    m = scenario.final
    guard = {"guardrail_name": GUARD_NAME, "hook_type": "pre_call"}
    assert m.value("litellm_guardrail_requests_total", status="success", **guard) == 6
    assert m.value("litellm_guardrail_requests_total", status="blocked", **guard) == 1
    assert m.value("litellm_guardrail_latency_seconds_count", **guard) == 7
    assert m.value("litellm_guardrail_errors_total") == 0
    assert m.one("litellm_remaining_api_key_requests_for_model", api_key_alias="alpha", model="gpt-test")[1] == 93


# -- what never becomes a label --------------------------------------------------------------------


def test_no_end_user_user_key_or_invented_model_in_any_label(scenario):
    m = scenario.final
    for label in ("end_user", "user", "hashed_api_key"):
        assert m.label_values(label) <= {""}, label
    assert END_USER not in m.text
    assert UNKNOWN_MODEL not in m.text
    assert scenario.key not in m.text and scenario.key[3:] not in m.text
    assert "sk-upstream-secret" not in m.text
    assert m.label_values("model_group") == {"gpt-test", "other"}


def test_only_this_gateways_metrics_and_the_process_ones(scenario):
    names = {n for n in scenario.final.types}
    assert names >= {"process_cpu_seconds", "python_gc_objects_collected"}
    assert all(n.startswith(("gateway_", "litellm_", "process_", "python_")) for n in names), names
