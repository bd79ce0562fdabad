"""End-to-end: the LLM call's span. A real gateway with the plugin, the fake OpenAI upstream, a
real OTLP/HTTP collector on loopback (conftest.py) decoding what arrives with opentelemetry-proto,
configured through the OTEL_* environment variables, and the official `openai` SDK as the client.
"""

from __future__ import annotations

import time

import openai
import pytest

from otel_test_helpers import (CLIENT_SPAN, COLLECTOR_TOKEN, PROMPT, TRACE_ID, UPSTREAM_KEY, all_values, chat, config,
                               only, otel_env)


def test_one_client_span_per_call_with_genai_attributes(collector, fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream), env=otel_env(collector))
    started = time.time_ns()
    request_id, reply = chat(server.client(), temperature=0.5, max_tokens=40, top_p=0.9, stop=["\n\n"], seed=7)
    finished = time.time_ns()
    span = only(collector.wait_for(1))

    assert span.name == "chat gpt-test"
    assert span.scope == "gateway_plugin_otel"
    assert len(span.trace_id) == 32 and span.parent_span_id == ""  # no traceparent: a new trace
    assert span.status == "STATUS_CODE_UNSET"
    assert started <= span.start_ns < span.end_ns <= finished
    attrs = dict(span.attributes)
    seconds = attrs.pop("gateway.upstream.seconds")
    assert 0 < seconds < (span.end_ns - span.start_ns) / 1e9
    assert attrs == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-test",
        "gen_ai.request.temperature": 0.5,
        "gen_ai.request.max_tokens": 40,
        "gen_ai.request.top_p": 0.9,
        "gen_ai.request.seed": 7,
        "gen_ai.request.stop_sequences": ["\n\n"],
        "gen_ai.response.id": reply.id,
        "gen_ai.response.model": "upstream-model",
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.usage.input_tokens": reply.usage.prompt_tokens,
        "gen_ai.usage.output_tokens": reply.usage.completion_tokens,
        "server.address": "127.0.0.1",
        "server.port": fake_upstream.port,
        "http.response.status_code": 200,
        "gateway.request_id": request_id,
        "gateway.api": "acompletion",
        "gateway.route": "/v1/chat/completions",
        "gateway.stream": False,
        "gateway.status": "success",
        "gateway.deployment.id": server.gateway.router.groups["gpt-test"][0].id,
        "gateway.deployment.provider": "openai",
        "gateway.upstream.attempts": 1,
        "gateway.key_name": "master-key",
    }
    assert span.resource["service.name"] == "gateway"
    assert span.resource["service.version"] == "0.1.0"

    export = collector.exports[0]
    assert export.path == "/v1/traces"
    assert export.headers["authorization"] == f"Bearer {COLLECTOR_TOKEN}"
    text = all_values(collector.spans)
    for secret in (UPSTREAM_KEY, COLLECTOR_TOKEN, "sk-1234", PROMPT, reply.choices[0].message.content):
        assert secret not in text


def test_a_span_per_call_and_the_resource_from_the_environment(collector, fake_upstream, gateway_server):
    env = otel_env(collector, OTEL_SERVICE_NAME="llm-gateway",
                   OTEL_RESOURCE_ATTRIBUTES="deployment.environment=staging,service.version=9.9")
    server = gateway_server(config(fake_upstream), env=env)
    client = server.client()
    ids = {chat(client, f"question {i}")[0] for i in range(3)}
    client.embeddings.create(model="embed-test", input=["one", "two"])
    spans = collector.wait_for(4)
    assert len(spans) == 4
    chats = [s for s in spans if s.name == "chat gpt-test"]
    assert {s.attributes["gateway.request_id"] for s in chats} == ids
    assert len({s.trace_id for s in spans}) == 4  # each call is its own trace
    embed = next(s for s in spans if s.name == "embeddings embed-test")
    assert embed.kind == "SPAN_KIND_CLIENT"
    assert embed.attributes["gen_ai.operation.name"] == "embeddings"
    assert embed.attributes["gen_ai.usage.input_tokens"] == 2
    assert "gen_ai.usage.output_tokens" not in embed.attributes
    for s in spans:
        assert s.resource["service.name"] == "llm-gateway"
        assert s.resource["deployment.environment"] == "staging"
        assert s.resource["service.version"] == "9.9"


def test_the_clients_traceparent_is_the_parent(collector, fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream), env=otel_env(collector))
    client = server.client()
    chat(client, extra_headers={"traceparent": f"00-{TRACE_ID}-{CLIENT_SPAN}-01", "tracestate": "vendor=abc"})
    span = only(collector.wait_for(1))
    assert (span.trace_id, span.parent_span_id, span.trace_state) == (TRACE_ID, CLIENT_SPAN, "vendor=abc")

    chat(client, extra_headers={"traceparent": "00-not-a-trace-01"})  # invalid: ignored, a new trace
    second = [s for s in collector.wait_for(2) if s.span_id != span.span_id][0]
    assert second.parent_span_id == "" and second.trace_id != TRACE_ID


def test_a_client_that_does_not_sample_gets_no_span(collector, fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream), env=otel_env(collector))
    client = server.client()
    chat(client, extra_headers={"traceparent": f"00-{TRACE_ID}-{CLIENT_SPAN}-00"})  # sampled flag off
    chat(client)
    spans = collector.wait_for(2, timeout=2)
    assert len(spans) == 1 and spans[0].trace_id != TRACE_ID


def test_a_stream(collector, fake_upstream, gateway_server):
    fake_upstream.reply_chunks = ["Sunny ", "and ", "warm"]
    server = gateway_server(config(fake_upstream), env=otel_env(collector))
    with server.client().chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": PROMPT}], stream=True) as stream:
        chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Sunny and warm"
    span = only(collector.wait_for(1))
    assert span.name == "chat gpt-test"
    assert span.status == "STATUS_CODE_UNSET"
    a = span.attributes
    assert a["gateway.stream"] is True
    assert a["gen_ai.response.id"] == chunks[0].id
    assert a["gen_ai.response.finish_reasons"] == ["stop"]
    assert a["gen_ai.usage.output_tokens"] == 3  # the upstream's usage chunk, asked for by the gateway
    assert a["gen_ai.usage.input_tokens"] == len(PROMPT.split())
    assert "Sunny" not in all_values([span])


def test_an_upstream_failure_is_an_error_span(collector, fake_upstream, gateway_server):
    cfg = config(fake_upstream)
    cfg["router_settings"] = {"num_retries": 1}
    server = gateway_server(cfg, env=otel_env(collector))
    fake_upstream.fail_next(status=500)  # one failure, retried: a success after two attempts
    chat(server.client())
    retried = only(collector.wait_for(1))
    assert (retried.status, retried.attributes["gateway.upstream.attempts"]) == ("STATUS_CODE_UNSET", 2)

    fake_upstream.fail_next(status=500, times=2, message="upstream exploded near sk-leaky", type="server_error")
    with pytest.raises(openai.InternalServerError) as err:
        chat(server.client())
    span = [s for s in collector.wait_for(2) if s.span_id != retried.span_id][0]
    assert span.status == "STATUS_CODE_ERROR"
    assert span.status_message == err.value.body["type"] == span.attributes["error.type"]
    assert span.attributes["gateway.status"] == "failure"
    assert span.attributes["http.response.status_code"] == 500
    assert span.attributes["gateway.upstream.attempts"] == 2
    assert "gen_ai.usage.input_tokens" not in span.attributes
    assert "sk-leaky" not in all_values([span])  # the upstream's message is content: not recorded


def test_an_unreachable_upstream(collector, gateway_server):
    cfg = {"model_list": [{"model_name": "gpt-test", "litellm_params": {
        "model": "openai/upstream-model", "api_key": UPSTREAM_KEY, "api_base": "http://127.0.0.1:9/v1"}}],
        "litellm_settings": {"callbacks": ["otel"]}, "router_settings": {"num_retries": 0}}
    server = gateway_server(cfg, env=otel_env(collector))
    with pytest.raises(openai.APIStatusError) as err:
        chat(server.client())
    assert err.value.status_code == 502
    span = only(collector.wait_for(1))
    assert (span.status, span.attributes["error.type"]) == ("STATUS_CODE_ERROR", "api_connection_error")
    assert span.attributes["server.port"] == 9 and span.attributes["gateway.upstream.attempts"] == 1
