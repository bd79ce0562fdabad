"""End-to-end: plugin hooks as child spans, the upstream's parent, and prompts and replies (off by
default). A real gateway with a guard beside the plugin (written here and installed with the
`local_plugin` fixture, so these tests need no other shipped plugin), the fake upstream and a real
OTLP/HTTP collector (conftest.py).
"""

from __future__ import annotations

import openai
import pytest

from otel_test_helpers import CLIENT_SPAN, PROMPT, TRACE_ID, all_values, chat, config, only, otel_env

from gateway_plugin_otel.handler import UPSTREAM_HEADERS

GUARD = "word_guard"
GUARD_SOURCE = """
from gateway import BadRequestError, Plugin, hookimpl, iter_response_text


class Guard(Plugin):
    \"\"\"Blocks a request or a reply holding the word `forbidden`, quoting the text it judged.\"\"\"

    name = "word_guard"
    priority = 950

    @hookimpl
    async def pre_request(self, ctx):
        if "forbidden" in ctx.user_message_text:
            raise BadRequestError(f"Blocked: {ctx.user_message_text!r} holds a forbidden word")

    @hookimpl
    async def post_response(self, ctx, response):
        if any("forbidden" in text for text in iter_response_text(response)):
            raise BadRequestError("Blocked: the reply holds a forbidden word")
"""


@pytest.fixture
def guarded(local_plugin, fake_upstream):
    """A config factory: the otel plugin with the guard beside it."""
    local_plugin(GUARD, GUARD_SOURCE)
    return lambda **settings: config(fake_upstream, callbacks=("otel", GUARD), **settings)


def test_plugin_hooks_are_child_spans(collector, fake_upstream, gateway_server, guarded):
    cfg = guarded()
    server = gateway_server(cfg, env=otel_env(collector))
    chat(server.client())
    spans = collector.wait_for(3)
    llm = only(spans)
    hooks = sorted((s for s in spans if s.kind == "SPAN_KIND_INTERNAL"), key=lambda s: s.start_ns)
    assert [s.name for s in hooks] == [f"pre_call {GUARD}", f"post_call {GUARD}"]
    for hook in hooks:
        assert (hook.trace_id, hook.parent_span_id) == (llm.trace_id, llm.span_id)
        assert llm.start_ns <= hook.start_ns <= hook.end_ns <= llm.end_ns
        assert hook.status == "STATUS_CODE_UNSET"
        assert hook.attributes["gateway.plugin.name"] == GUARD
        assert hook.attributes["gateway.plugin.verdict"] == "pass"
        assert abs((hook.end_ns - hook.start_ns) / 1e6 - hook.attributes["gateway.plugin.latency_ms"]) < 0.01
    assert [h.attributes["gateway.plugin.phase"] for h in hooks] == ["pre_call", "post_call"]
    assert hooks[0].end_ns <= hooks[1].start_ns


def test_a_block_is_an_error_span_with_the_blocking_hook(collector, fake_upstream, gateway_server, guarded):
    cfg = guarded()
    server = gateway_server(cfg, env=otel_env(collector))
    with pytest.raises(openai.BadRequestError):
        chat(server.client(), "this is forbidden text")
    spans = collector.wait_for(2)
    llm = only(spans)
    hook = only(spans, "SPAN_KIND_INTERNAL")
    assert (llm.status, llm.attributes["error.type"]) == ("STATUS_CODE_ERROR", "bad_request_error")
    assert llm.attributes["gateway.status"] == "blocked"
    assert llm.attributes["gateway.blocked_by"] == GUARD
    assert "gen_ai.provider.name" not in llm.attributes  # blocked before any deployment was chosen
    assert hook.parent_span_id == llm.span_id
    assert (hook.name, hook.status, hook.attributes["gateway.plugin.verdict"]) == (
        f"pre_call {GUARD}", "STATUS_CODE_ERROR", "block")
    assert "forbidden" not in all_values(spans)  # the block message quotes the client: content
    assert fake_upstream.requests == []


def test_hook_spans_can_be_turned_off(collector, fake_upstream, gateway_server, guarded):
    cfg = guarded(otel_hook_spans=False)
    server = gateway_server(cfg, env=otel_env(collector))
    chat(server.client())
    spans = collector.wait_for(2, timeout=1.5)
    assert [s.kind for s in spans] == ["SPAN_KIND_CLIENT"]


def test_the_plugin_is_no_guard(collector, fake_upstream, gateway_server, guarded):
    """It judges nothing: no verdict of its own, and the upstream request is as without it
    (until the core offers upstream headers: see test_the_upstream_gets_the_span_as_parent)."""
    cfg = guarded()
    server = gateway_server(cfg, env=otel_env(collector))
    raw = server.client().chat.completions.with_raw_response.create(
        model="gpt-test", messages=[{"role": "user", "content": "hi"}])
    assert raw.headers["x-gateway-guardrails"] == GUARD
    rows = server.spend_logs(1)
    assert [g["name"] for g in rows[0]["metadata"]["guardrails"]] == [GUARD, GUARD]
    assert "traceparent" in fake_upstream.requests[0].headers  # its pre_request ran, and judged nothing


def test_the_upstream_gets_the_span_as_parent(collector, fake_upstream, gateway_server):
    assert UPSTREAM_HEADERS  # the core this repository ships lets hooks add upstream headers
    server = gateway_server(config(fake_upstream), env=otel_env(collector))
    chat(server.client(), extra_headers={"traceparent": f"00-{TRACE_ID}-{CLIENT_SPAN}-01", "tracestate": "vendor=abc"})
    span = only(collector.wait_for(1))
    sent = fake_upstream.requests[0].headers
    assert sent["traceparent"] == f"00-{TRACE_ID}-{span.span_id}-01"
    assert sent["tracestate"] == "vendor=abc"


def test_prompts_and_replies_only_when_asked_for(collector, fake_upstream, gateway_server, guarded):
    cfg = guarded(otel_log_messages=True)
    server = gateway_server(cfg, env=otel_env(collector))
    client = server.client()
    _, reply = chat(client)
    span = only(collector.wait_for(3))
    assert span.attributes["gen_ai.input.messages"] == (
        '[{"role": "user", "parts": [{"type": "text", "content": "tell me about the weather in Paris"}]}]')
    assert span.attributes["gen_ai.output.messages"] == (
        '[{"role": "assistant", "parts": [{"type": "text", "content": "%s"}], "finish_reason": "stop"}]'
        % reply.choices[0].message.content)

    with pytest.raises(openai.BadRequestError):
        chat(client, "forbidden words")
    block = [s for s in collector.wait_for(5) if s.attributes.get("gateway.plugin.verdict") == "block"][0]
    assert "forbidden" in block.attributes["gateway.plugin.message"]

    # A request's own turn_off_message_logging wins.
    chat(client, "secret plans", extra_body={"metadata": {"turn_off_message_logging": True}})
    spans = collector.wait_for(8)
    assert len(spans) == 8 and "secret plans" not in all_values(spans)


def test_turn_off_message_logging_wins(collector, fake_upstream, gateway_server):
    cfg = config(fake_upstream, otel_log_messages=True, turn_off_message_logging=True)
    server = gateway_server(cfg, env=otel_env(collector, OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="true"))
    chat(server.client())
    span = only(collector.wait_for(1))
    assert "gen_ai.input.messages" not in span.attributes and PROMPT not in all_values([span])


def test_the_standard_capture_variable_turns_them_on(collector, fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream),
                            env=otel_env(collector, OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="true"))
    chat(server.client())
    assert PROMPT in only(collector.wait_for(1)).attributes["gen_ai.input.messages"]
