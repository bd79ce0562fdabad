"""End-to-end tests: a real gateway with this plugin enabled, a fake OpenAI upstream on loopback, and
the official `openai` SDK as the client.

`fake_upstream`, `gateway_server` and `plugin_conformance` come from `gateway.testing`, a pytest
plugin that is active as soon as `gateway` is installed; nothing to import or register (see the
gateway's docs/testing-a-plugin.md).
"""

from __future__ import annotations

import asyncio
import logging
import re

import openai
import pytest

from gateway_plugin_example import HeaderGuard, HeaderGuardConfig

NAME = HeaderGuard.name
HEADER = {"x-project-id": "alpha"}


def config(upstream, plugin_entry=None, **flat):
    """A gateway config with one model group served by the fake upstream, the plugin enabled
    either natively (`plugin_entry`) or through `litellm_settings.callbacks` with flat keys."""
    cfg = {
        "model_list": [{
            "model_name": "gpt-test",
            "litellm_params": {"model": "openai/upstream-model", "api_base": upstream.url, "api_key": "sk-upstream"},
        }],
    }
    if plugin_entry is not None:
        cfg["plugins"] = [{"name": NAME, **plugin_entry}]
    else:
        cfg["litellm_settings"] = {"callbacks": [NAME], **flat}
    return cfg


def chat(client, text="hello", **kwargs):
    return client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": text}], **kwargs)


def test_request_with_the_header_passes(fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream))
    with server.client(default_headers=HEADER) as client:
        reply = chat(client, "hi there")
    assert reply.choices[0].message.content == "upstream says: hi there"
    (sent,) = fake_upstream.requests  # what left the gateway: objects with .path, .json, .headers, .text
    assert (sent.path, sent.text) == ("/v1/chat/completions", "hi there")
    assert sent.headers["authorization"] == "Bearer sk-upstream"  # the upstream's key, never the client's


def test_request_without_the_header_gets_400_and_never_reaches_upstream(fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream))
    with server.client() as client, pytest.raises(openai.BadRequestError) as err:
        chat(client)
    assert err.value.status_code == 400
    assert err.value.response.json() == {
        "error": {"message": "Missing required header: x-project-id", "type": "bad_request_error",
                  "param": None, "code": "400"},
    }
    assert fake_upstream.requests == []


def test_every_llm_route_is_guarded(plugin_conformance):
    """The conformance check: calls with the header pass and calls without it are refused on every
    LLM route (chat, completions, embeddings, messages, responses, images, audio, moderations, rerank;
    with and without /v1; streamed and not)."""
    report = plugin_conformance(NAME, headers=HEADER, trigger_headers={})
    assert report.hooks == ["pre_request"]
    assert {c.outcome for c in report.cases} == {"blocked"}
    assert {"/v1/chat/completions", "/v1/completions", "/v1/embeddings"} <= report.routes_for("pre_request")


def test_an_upstream_error_passes_through_the_guard(fake_upstream, gateway_server):
    """Script the fake upstream per request (`extra_body={"fake_upstream": {...}}`): here an error."""
    server = gateway_server(config(fake_upstream))
    with server.client(default_headers=HEADER) as client, pytest.raises(openai.RateLimitError) as err:
        chat(client, extra_body={"fake_upstream": {"status": 429, "message": "slow down", "type": "rate_limit_error"}})
    assert "slow down" in err.value.response.json()["error"]["message"]


def test_native_entry_with_an_allow_list(fake_upstream, gateway_server):
    entry = {"config": {"example_required_headers": ["X-Project-Id", "x-cost-center"],
                        "example_allowed_values": {"x-project-id": ["alpha", "beta"]}}}
    server = gateway_server(config(fake_upstream, entry))
    good = {"x-project-id": "beta", "x-cost-center": "cc-42"}
    with server.client(default_headers=good) as client:
        assert chat(client).choices[0].message.content == "upstream says: hello"
    with server.client(default_headers={**good, "x-project-id": "gamma"}) as client:
        with pytest.raises(openai.BadRequestError) as err:
            chat(client)
    assert err.value.response.json()["error"]["message"] == (
        "Header x-project-id has a value that is not allowed: 'gamma'. Allowed: alpha, beta"
    )
    with server.client(default_headers={"x-project-id": "alpha"}) as client:
        with pytest.raises(openai.BadRequestError, match="Missing required header: x-cost-center"):
            chat(client)
    assert len(fake_upstream.requests) == 1


def test_flat_settings_configure_the_plugin_enabled_by_callbacks(fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream, example_max_value_length=5))
    with server.client(default_headers={"x-project-id": "too-long"}) as client:
        with pytest.raises(openai.BadRequestError) as err:
            chat(client)
    assert err.value.response.json()["error"]["message"] == "Header x-project-id is longer than 5 characters"


def test_admin_exemption(fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream, {"config": {"example_exempt_admin": True}}))
    with server.client() as client:  # the master key: an admin caller
        assert chat(client).choices[0].message.content == "upstream says: hello"


def test_monitor_mode_lets_a_blocked_request_through(fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream, {"mode": "monitor"}))
    with server.client() as client:
        assert chat(client).choices[0].message.content == "upstream says: hello"


async def test_finished_calls_are_logged_with_the_header_values(fake_upstream, gateway_server, caplog):
    caplog.set_level(logging.INFO, logger=f"gateway.plugins.{NAME}")
    server = gateway_server(config(fake_upstream))
    async with server.async_client(default_headers=HEADER) as client:
        await client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "one two"}])
    # request_finished runs off the request path: wait for it briefly.
    for _ in range(200):
        lines = [r.getMessage() for r in caplog.records if r.name == f"gateway.plugins.{NAME}"]
        if lines:
            break
        await asyncio.sleep(0.01)
    assert len(lines) == 1
    assert re.fullmatch(r"request \S+ x-project-id=alpha model=gpt-test status=success total_tokens=\d+", lines[0])


@pytest.mark.parametrize(("plugin_config", "message"), [
    ({"example_required_header": ["x-team"]},
     f"plugin '{NAME}': config key example_required_header: Extra inputs are not permitted"),
    ({"example_required_headers": []},
     f"plugin '{NAME}': config key example_required_headers: List should have at least 1 item after "
     "validation, not 0"),
    ({"example_allowed_values": {"x-team": ["a"]}},
     f"plugin '{NAME}': config key example_allowed_values: Value error, header 'x-team' is not in "
     "example_required_headers"),
])
def test_a_bad_config_stops_start_up(fake_upstream, gateway_server, plugin_config, message):
    with pytest.raises(Exception, match=re.escape(message)):
        gateway_server(config(fake_upstream, {"config": plugin_config}))


def test_config_normalises_header_names():
    cfg = HeaderGuardConfig(example_required_headers=["X-Project-Id", "x-project-id", " X-Team "])
    assert cfg.example_required_headers == ["x-project-id", "x-team"]
    with pytest.raises(ValueError, match="not a valid HTTP header name"):
        HeaderGuardConfig(example_required_headers=["bad header"])
