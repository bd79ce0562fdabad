"""Anthropic's Messages API on the gateway, end to end: the official `anthropic` SDK -> a real gateway
-> (a) an OpenAI-compatible upstream (the `fake_upstream` fixture: what it receives is the chat
translation), (b) the fake Anthropic Messages API of tests/peers (the `anthropic/` provider: the
round trip Messages -> chat -> Messages), (c) the built-in fake provider.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
from aiohttp import web

from gateway.core.apis.anthropic_messages import MessageStream, from_chat, to_chat
from gateway.errors import GatewayError
from gateway.testing import MASTER_KEY

_PEER = Path(__file__).parent / "peers" / "anthropic_api.py"
_spec = importlib.util.spec_from_file_location("anthropic_api_peer", _PEER)
assert _spec is not None and _spec.loader is not None
peer = sys.modules.get(_spec.name) or importlib.util.module_from_spec(_spec)
if _spec.name not in sys.modules:
    sys.modules[_spec.name] = peer  # dataclasses look their module up
    _spec.loader.exec_module(peer)
Reply = peer.Reply

ANT_KEY = "sk-ant-api03-test-key-0123456789"
UPSTREAM_KEY = "sk-upstream-secret-123"
ADMIN = {"Authorization": f"Bearer {MASTER_KEY}"}
CLAUDE = "claude-3-7-sonnet-20250219"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()
WEATHER = {"name": "get_weather", "description": "Weather in a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
TOOL_USE = {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}}
THINKING = {"type": "thinking", "thinking": "The user wants weather. I should call the tool.",
            "signature": "EqQBCgIYAhIM=="}


@dataclass
class CountingAnthropic(peer.FakeAnthropic):
    """The fake Anthropic API, answering count_tokens too (4242, recording what it was asked)."""

    counted: list[dict[str, Any]] = field(default_factory=list)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/v1/messages/count_tokens":
            if request.headers.get("x-api-key") != ANT_KEY:
                return web.json_response({"type": "error", "error": {"type": "authentication_error"}}, status=401)
            self.counted.append(await request.json())
            return web.json_response({"input_tokens": 4242})
        return await super()._handle(request)


@pytest.fixture
def api():
    with CountingAnthropic(keys={ANT_KEY}) as fake:
        yield fake


def models(upstream: Any, api: Any) -> list[dict[str, Any]]:
    return [
        {"model_name": "gpt-x", "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": upstream.url,
                                                   "api_key": UPSTREAM_KEY}},
        {"model_name": "claude", "litellm_params": {"model": f"anthropic/{CLAUDE}", "api_base": api.url,
                                                    "api_key": ANT_KEY}},
        {"model_name": "claude-away", "litellm_params": {"model": f"anthropic/{CLAUDE}",
                                                         "api_base": "http://127.0.0.1:9", "api_key": ANT_KEY}},
        {"model_name": "fake-model", "litellm_params": {"model": "fake/echo-1"}},
    ]


def config(upstream: Any, api: Any, **litellm: Any) -> dict[str, Any]:
    return {"model_list": models(upstream, api), "litellm_settings": litellm,
            "router_settings": {"num_retries": 0, "cooldown_time": 0},
            "general_settings": {"spend_flush_interval_s": 0.05}}


@pytest.fixture
def gw(gateway_server, fake_upstream, api):
    return gateway_server(config(fake_upstream, api))


@pytest.fixture
def client(gw):
    with anthropic.Anthropic(base_url=gw.url, api_key=MASTER_KEY, max_retries=0, timeout=30) as c:
        yield c


def hello(text: str = "hello there") -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


# -- (a) an OpenAI-compatible upstream: what it receives is the chat translation ----------------
def test_message_through_an_openai_upstream(client, fake_upstream):
    msg = client.messages.create(model="gpt-x", max_tokens=100, system="Be brief.", messages=hello(),
                                 stop_sequences=["END"], metadata={"user_id": "user-42"},
                                 extra_body={"temperature": 0.2, "top_p": 0.9})  # this SDK no longer types them
    assert msg.type == "message" and msg.role == "assistant" and msg.id.startswith("msg_")
    assert [b.type for b in msg.content] == ["text"] and msg.content[0].text == "upstream says: hello there"
    assert msg.stop_reason == "end_turn" and msg.model == "gpt-4o-mini"
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (4, 4)  # the upstream's word counts
    sent = fake_upstream.requests[-1]
    assert sent.path == "/v1/chat/completions" and sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert sent.json == {"model": "gpt-4o-mini", "max_tokens": 100, "temperature": 0.2, "top_p": 0.9, "stop": ["END"],
                         "user": "user-42", "messages": [{"role": "system", "content": "Be brief."},
                                                         {"role": "user", "content": "hello there"}]}


def test_streams_through_an_openai_upstream(gw, client, fake_upstream):
    with client.messages.stream(model="gpt-x", max_tokens=50, messages=hello("stream this please")) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "upstream says: stream this please" and final.content[0].text == text
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 5 and final.usage.input_tokens == 3
    assert fake_upstream.requests[-1].json["stream_options"] == {"include_usage": True}

    events = list(client.messages.create(model="gpt-x", max_tokens=50, messages=hello("again"), stream=True))
    assert [e.type for e in events][:3] == ["message_start", "content_block_start", "content_block_delta"]
    assert [e.type for e in events][-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert events[-2].delta.stop_reason == "end_turn" and events[-2].usage.output_tokens == 3

    # On the wire: `event: <type>` then `data: <json>` with the same type, and a ping after message_start.
    with httpx.stream("POST", gw.url + "/v1/messages", headers={"x-api-key": MASTER_KEY}, timeout=30,
                      json={"model": "gpt-x", "max_tokens": 9, "messages": hello("hi"), "stream": True}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        raw = r.read().decode()
    frames = [f.split("\n") for f in raw.strip().split("\n\n")]
    assert all(len(f) == 2 and f[0] == f"event: {json.loads(f[1][6:])['type']}" for f in frames), raw
    assert [f[0][7:] for f in frames][:2] == ["message_start", "ping"]


def test_tools_and_history_become_chat_tool_calls(client, fake_upstream):
    history = [*hello("weather in Paris?"),
               {"role": "assistant", "content": [{"type": "text", "text": "Let me check."}, TOOL_USE]},
               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01A", "content": "18C sunny"},
                                            {"type": "text", "text": "and tomorrow?"}]}]
    client.messages.create(model="gpt-x", max_tokens=100, messages=history, tools=[WEATHER],
                           tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True})
    sent = fake_upstream.requests[-1].json
    assert sent["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather in a city", "parameters": WEATHER["input_schema"]}}]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["parallel_tool_calls"] is False
    assert sent["messages"][1:] == [
        {"role": "assistant", "content": "Let me check.", "tool_calls": [
            {"id": "toolu_01A", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "toolu_01A", "content": "18C sunny"},
        {"role": "user", "content": [{"type": "text", "text": "and tomorrow?"}]}]


def test_images_thinking_and_cache_hints_for_other_models(client, fake_upstream):
    content = [{"type": "text", "text": "what is this?", "cache_control": {"type": "ephemeral"}},
               {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
               {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}]
    client.messages.create(model="gpt-x", max_tokens=5000, messages=[{"role": "user", "content": content}],
                           thinking={"type": "enabled", "budget_tokens": 2048}, cache_control={"type": "ephemeral"},
                           speed="fast", extra_body={"top_k": 5, "context_management": {"edits": []}})
    sent = fake_upstream.requests[-1].json
    assert sent["messages"][0]["content"] == [  # no cache_control: a Claude-only hint
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]
    assert sent["reasoning_effort"] == "medium" and "thinking" not in sent  # LiteLLM's budget buckets
    assert sent["top_k"] == 5  # passed as it is: an upstream that lacks it says so
    assert not {"cache_control", "speed", "context_management"} & set(sent)  # Claude's hints, dropped


# -- (b) the anthropic/ provider: Messages -> chat -> Messages and back --------------------------
def test_native_round_trip_with_tools_and_thinking(client, api):
    api.script(Reply(content=[THINKING, {"type": "text", "text": "Let me check."}, TOOL_USE]),
               Reply(text="18C and sunny."))
    system = [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}]
    first = client.messages.create(model="claude", max_tokens=4000, system=system, messages=hello("weather in Paris?"),
                                   tools=[WEATHER], thinking={"type": "enabled", "budget_tokens": 2000})
    assert api.last.json["thinking"] == {"type": "enabled", "budget_tokens": 2000}
    assert api.last.json["system"] == system  # cache_control kept: the model is Claude
    assert api.last.json["tools"] == [WEATHER]
    assert [b.type for b in first.content] == ["thinking", "text", "tool_use"]
    assert first.content[0].thinking == THINKING["thinking"] and first.content[0].signature == THINKING["signature"]
    assert (first.content[2].id, first.content[2].name, first.content[2].input) == ("toolu_01A", "get_weather",
                                                                                     {"city": "Paris"})
    assert first.stop_reason == "tool_use" and first.id == "msg_01FakeAnthropic"

    history = [*hello("weather in Paris?"), {"role": "assistant", "content": [b.model_dump() for b in first.content]},
               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01A", "content": "18C"}]}]
    second = client.messages.create(model="claude", max_tokens=4000, messages=history, tools=[WEATHER],
                                    thinking={"type": "enabled", "budget_tokens": 2000},
                                    cache_control={"type": "ephemeral"})  # on the last block, as Anthropic does
    assert second.content[0].text == "18C and sunny." and second.stop_reason == "end_turn"
    sent = api.last.json["messages"]  # the peer checks the tool_result answers the tool_use
    assert sent[1]["content"] == [THINKING, {"type": "text", "text": "Let me check."}, TOOL_USE]
    assert sent[2]["content"] == [{"type": "tool_result", "tool_use_id": "toolu_01A", "content": "18C",
                                   "cache_control": {"type": "ephemeral"}}]


def test_native_stream_with_thinking_and_tools(client, api):
    blocks = [THINKING, {"type": "redacted_thinking", "data": "opaque"}, {"type": "text", "text": "Checking both."},
              TOOL_USE, {**TOOL_USE, "id": "toolu_01B", "input": {"city": "Rome", "unit": "C"}}]
    api.script(Reply(content=blocks, stream_piece=7, usage={"input_tokens": 10, "cache_read_input_tokens": 100,
                                                            "cache_creation_input_tokens": 50, "output_tokens": 33}))
    with client.messages.stream(model="claude", max_tokens=4000, messages=hello("weather?"), tools=[WEATHER],
                                thinking={"type": "enabled", "budget_tokens": 1024}) as stream:
        final = stream.get_final_message()
    assert [b.model_dump(exclude_none=True) for b in final.content] == blocks
    assert final.stop_reason == "tool_use"
    assert (final.usage.input_tokens, final.usage.cache_read_input_tokens, final.usage.cache_creation_input_tokens,
            final.usage.output_tokens) == (10, 100, 50, 33)


def test_native_images_and_the_anthropic_prefix(gw, api):
    with anthropic.Anthropic(base_url=gw.url + "/anthropic", api_key=MASTER_KEY, max_retries=0) as client:
        content = [{"type": "text", "text": "what is this?"},
                   {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]
        msg = client.messages.create(model="claude", max_tokens=10, messages=[{"role": "user", "content": content}])
    assert msg.content[0].text == "anthropic says: what is this?"
    assert api.last.json["messages"][0]["content"][1] == {
        "type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}


def test_upstream_errors_keep_their_status(client, api):
    api.script(Reply(status=429, error_type="rate_limit_error", error_message="slow down"))
    with pytest.raises(anthropic.RateLimitError) as info:
        client.messages.create(model="claude", max_tokens=10, messages=hello())
    assert info.value.body["type"] == "error"
    assert info.value.body["error"]["message"] == "AnthropicException - slow down"
    api.script(Reply(text="partial answer", stream_error=("overloaded_error", "Overloaded")))
    with pytest.raises(anthropic.APIStatusError, match="Overloaded"):
        with client.messages.stream(model="claude", max_tokens=10, messages=hello()) as stream:
            stream.get_final_message()


def claude_code_body(model: str) -> dict[str, Any]:
    """A request shaped as Claude Code sends it: cached system blocks, tools with JSON Schema
    dialects, a long `metadata.user_id`, thinking, context management, a streamed reply."""
    schema = {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "additionalProperties": False,
              "properties": {"command": {"type": "string"}}, "required": ["command"]}
    return {"model": model, "max_tokens": 32000, "stream": True, "temperature": 1,
            "system": [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
                       {"type": "text", "text": "Be concise.", "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "<system-reminder>context</system-reminder>"},
                {"type": "text", "text": "list the files", "cache_control": {"type": "ephemeral"}}]}],
            "tools": [{"name": "Bash", "description": "Run a command", "input_schema": schema}],
            "metadata": {"user_id": "user_" + "a" * 64 + "_account__session_" + "b" * 36},
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]}}


@pytest.mark.parametrize("model", ["claude", "gpt-x"])
def test_claude_code_request_shape(gw, api, fake_upstream, model):
    headers = {"x-api-key": MASTER_KEY, "anthropic-version": "2023-06-01", "anthropic-beta": "claude-code-20250219",
               "user-agent": "claude-cli/2.0.0 (external, cli)"}
    with httpx.stream("POST", gw.url + "/v1/messages?beta=true", headers=headers, json=claude_code_body(model),
                      timeout=30) as r:
        assert r.status_code == 200, r.read()
        types = [line[7:] for line in r.iter_lines() if line.startswith("event: ")]
    assert types[:2] == ["message_start", "ping"] and types[-2:] == ["message_delta", "message_stop"]
    if model == "claude":
        sent = api.last.json
        assert sent["system"][0]["cache_control"] == {"type": "ephemeral"}
        assert sent["thinking"] == {"type": "enabled", "budget_tokens": 1024} and "context_management" in sent
        assert sent["tools"][0]["input_schema"]["$schema"].startswith("http://json-schema.org")
        assert "claude-code-20250219" in api.last.headers["anthropic-beta"].split(",")  # the client's betas go on
        assert "anthropic_beta" not in sent
    else:
        sent = fake_upstream.requests[-1].json
        assert sent["reasoning_effort"] == "low" and sent["user"].startswith("user_")
        assert not {"thinking", "context_management", "anthropic_beta"} & set(sent)
        assert "anthropic-beta" not in fake_upstream.requests[-1].headers


# -- (c) the built-in fake provider, hooks, refusals, keys, spend -------------------------------
def test_fake_provider_streamed_and_not(client):
    msg = client.messages.create(model="fake-model", max_tokens=10, messages=hello("ping"))
    assert msg.content[0].text == "This is a fake reply from echo-1 to: ping"
    with client.messages.stream(model="fake-model", max_tokens=10, messages=hello("ping")) as stream:
        assert "".join(stream.text_stream) == msg.content[0].text


def test_hooks_see_chat_and_shape_the_reply(gateway_server, fake_upstream, api):
    gw = gateway_server(config(fake_upstream, api, callbacks=["probe_stream_upper", "banned_keywords"],
                               banned_keywords_list=["forbidden"]))
    with anthropic.Anthropic(base_url=gw.url, api_key=MASTER_KEY, max_retries=0) as client:
        with pytest.raises(anthropic.BadRequestError) as info:
            client.messages.create(model="gpt-x", max_tokens=10, system=[{"type": "text", "text": "forbidden"}],
                                   messages=hello())
        assert info.value.body["error"]["message"] == "Keyword banned. Keyword=forbidden"
        assert client.messages.create(model="gpt-x", max_tokens=10, messages=hello()).content[0].text == \
            "UPSTREAM SAYS: HELLO THERE"
        with client.messages.stream(model="claude", max_tokens=10, messages=hello("loud")) as stream:
            assert "".join(stream.text_stream) == "ANTHROPIC SAYS: LOUD"


def test_refusals_are_400s_the_sdk_raises(client, fake_upstream, api):
    with pytest.raises(anthropic.BadRequestError) as info:  # the SDK insists on max_tokens: post the body raw
        client.post("/v1/messages", cast_to=object, body={"model": "gpt-x", "messages": hello()})
    assert info.value.body == {"type": "error", "error": {
        "type": "bad_request_error", "message": "max_tokens: Field required (the Messages API requires max_tokens)",
        "param": "max_tokens", "code": "400"}}
    refused = [({"type": "web_fetch_20250910", "name": "web_fetch"}, "gpt-x"),
               ({"type": "code_execution_20250825", "name": "code_execution"}, "claude"),
               ({"type": "bash_20250124", "name": "bash"}, "gpt-x")]
    for tool, model in refused:
        with pytest.raises(anthropic.BadRequestError) as info:
            client.messages.create(model=model, max_tokens=10, messages=hello(), tools=[WEATHER, tool])
        assert info.value.body["error"]["param"] == "tools[1].type" and tool["type"] in info.value.message
    with pytest.raises(anthropic.BadRequestError, match=r"messages\[0\].content\[0\].type"):
        client.messages.create(model="gpt-x", max_tokens=10, messages=[{"role": "user", "content": [
            {"type": "thinking", "thinking": "x", "signature": "y"}]}])
    with pytest.raises(anthropic.BadRequestError, match="Invalid model name"):
        client.messages.create(model="nope", max_tokens=10, messages=hello())
    assert fake_upstream.requests == [] and api.requests == []
    # Client-run Anthropic tools reach Claude as they are; web search is an option for other models.
    bash = {"type": "bash_20250124", "name": "bash"}
    client.messages.create(model="claude", max_tokens=10, messages=hello(), tools=[bash])
    assert api.last.json["tools"] == [bash]
    client.messages.create(model="gpt-x", max_tokens=10, messages=hello(), tools=[
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}], tool_choice={"type": "auto"})
    sent = fake_upstream.requests[-1].json
    assert sent["web_search_options"] == {"search_context_size": "medium"} and "tools" not in sent
    assert "tool_choice" not in sent


@pytest.mark.db
def test_virtual_key_by_x_api_key_and_spend_rows(gw, fake_upstream):
    key = httpx.post(gw.url + "/key/generate", headers=ADMIN, json={"models": ["gpt-x"]}).json()["key"]
    with anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0) as client:  # sends x-api-key
        msg = client.messages.create(model="gpt-x", max_tokens=10, messages=hello(), metadata={"user_id": "end-7"})
        with client.messages.stream(model="gpt-x", max_tokens=10, messages=hello("streamed")) as stream:
            streamed = stream.get_final_message()
        rows = {r["request_id"]: r for r in gw.spend_logs(2)}
        with pytest.raises(anthropic.AuthenticationError, match="not allowed to access model"):
            client.messages.create(model="claude", max_tokens=10, messages=hello())
        with pytest.raises(anthropic.AuthenticationError, match="not allowed to access model"):
            client.messages.count_tokens(model="claude", messages=hello())
    with anthropic.Anthropic(base_url=gw.url, api_key="sk-not-a-key", max_retries=0) as client:
        with pytest.raises(anthropic.AuthenticationError):
            client.messages.create(model="gpt-x", max_tokens=10, messages=hello())
    assert fake_upstream.requests[0].headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    row = rows[msg.id]  # the row carries the id the client saw
    assert row["call_type"] == "anthropic_messages" and row["status"] == "success" and row["end_user"] == "end-7"
    assert (row["prompt_tokens"], row["completion_tokens"], row["model_group"]) == (2, 4, "gpt-x")
    assert row["api_key"] != key and key not in json.dumps(rows)
    assert rows[streamed.id]["call_type"] == "anthropic_messages"


def test_count_tokens(client, api):
    # Estimated for other models: about four characters a token, said so in a header.
    raw = client.messages.with_raw_response.count_tokens(model="gpt-x", system="Be brief.", messages=hello())
    assert raw.parse().input_tokens == 5 and raw.headers["x-gateway-token-count-estimated"] == "true"  # 20 chars
    with_tools = client.messages.count_tokens(model="gpt-x", system="Be brief.", messages=hello(), tools=[WEATHER])
    assert with_tools.input_tokens > 5
    # Anthropic's own count for anthropic/ deployments, asked of the upstream with the deployment's model.
    raw = client.messages.with_raw_response.count_tokens(model="claude", system="Be brief.", messages=hello())
    assert raw.parse().input_tokens == 4242 and "x-gateway-token-count-estimated" not in raw.headers
    assert api.counted == [{"model": CLAUDE, "system": "Be brief.", "messages": hello()}]
    # An upstream that cannot be reached: the estimate, flagged.
    raw = client.messages.with_raw_response.count_tokens(model="claude-away", messages=hello())
    assert raw.parse().input_tokens == 3 and raw.headers["x-gateway-token-count-estimated"] == "true"
    with pytest.raises(anthropic.BadRequestError, match="Invalid model name"):
        client.messages.count_tokens(model="nope", messages=hello())
    with pytest.raises(anthropic.BadRequestError, match=r"messages\[0\].role"):
        client.messages.count_tokens(model="gpt-x", messages=[{"role": "system", "content": "x"}])


# -- the translation, unit by unit ------------------------------------------------------------
def test_usage_counts_cache_reads_and_writes_apart():
    reply = {"id": "chatcmpl-1", "model": "m", "choices": [{"message": {"role": "assistant", "content": None,
             "tool_calls": [{"id": "call_1", "function": {"name": "f", "arguments": "not json"}}]},
             "finish_reason": "stop"}],
             "usage": {"prompt_tokens": 160, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 100},
                       "cache_creation_input_tokens": 50}}
    msg = from_chat(reply, "asked")
    assert msg["usage"] == {"input_tokens": 10, "output_tokens": 7, "cache_read_input_tokens": 100,
                            "cache_creation_input_tokens": 50}
    assert msg["stop_reason"] == "tool_use"  # a tool call finished with "stop" is still one to run
    assert msg["content"] == [{"type": "tool_use", "id": "call_1", "name": "f",
                               "input": {"_raw_arguments": "not json"}}]
    assert msg["id"] == "msg_chatcmpl-1"
    # A provider that says which stop sequence matched (a choice's `stop_sequence`) is believed.
    reply["choices"][0].update(finish_reason="stop", stop_sequence="END", message={"role": "assistant", "content": "x"})
    assert (from_chat(reply, "m")["stop_reason"], from_chat(reply, "m")["stop_sequence"]) == ("stop_sequence", "END")
    assert to_chat({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t", "content": "failed", "is_error": True}]}]},
        native=True)["messages"][0]["is_error"] is True


def test_stream_encoder_blocks_follow_the_chunks():
    enc = MessageStream("asked", 12)

    def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
        return {"id": "c1", "model": "m", "choices": [] if delta is None else
                [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}

    wire = b"".join([
        enc.chunk(chunk({"role": "assistant", "reasoning_content": "hmm"})),
        enc.chunk(chunk({"content": "Hi"})),
        enc.chunk(chunk({"tool_calls": [{"index": 0, "id": "call_a",
                                         "function": {"name": "f", "arguments": '{"a":'}}]})),
        enc.chunk(chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]})),
        enc.chunk(chunk({}, "tool_calls")),
        enc.chunk(chunk(None, usage={"prompt_tokens": 12, "completion_tokens": 3})),
        enc.done()]).decode()
    events = [json.loads(frame.split("\ndata: ")[1]) for frame in wire.strip().split("\n\n")]
    assert [(e["type"], e.get("index")) for e in events] == [
        ("message_start", None), ("ping", None), ("content_block_start", 0), ("content_block_delta", 0),
        ("content_block_stop", 0), ("content_block_start", 1), ("content_block_delta", 1), ("content_block_stop", 1),
        ("content_block_start", 2), ("content_block_delta", 2), ("content_block_delta", 2),
        ("content_block_stop", 2), ("message_delta", None), ("message_stop", None)]
    assert events[0]["message"]["usage"] == {"input_tokens": 12, "output_tokens": 0}
    assert events[8]["content_block"] == {"type": "tool_use", "id": "call_a", "name": "f", "input": {}}
    assert events[-2] == {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                          "usage": {"input_tokens": 12, "output_tokens": 3}}
    assert enc.error(GatewayError("boom", status=502, type="api_error")).startswith(b"event: error\ndata: ")


@pytest.mark.parametrize("body,param", [
    ({"messages": hello()}, "model"),
    ({"model": "m", "max_tokens": 0, "messages": hello()}, "max_tokens"),
    ({"model": "m", "max_tokens": 5, "messages": []}, "messages"),
    ({"model": "m", "max_tokens": 5, "messages": hello(), "system": [{"type": "image"}]}, "system[0]"),
    ({"model": "m", "max_tokens": 5, "messages": hello(), "tools": [{"name": "f"}]}, "tools[0].input_schema"),
    ({"model": "m", "max_tokens": 5, "messages": hello(), "tool_choice": {"type": "tool"}}, "tool_choice.name"),
    ({"model": "m", "max_tokens": 5, "messages": hello(), "thinking": {"type": "enabled"}}, "thinking.budget_tokens"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "tool_result", "content": "x"}]}]}, "messages[0].content[0].tool_use_id"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "file", "file_id": "f"}}]}]}, "messages[0].content[0].source"),
])
def test_malformed_requests_name_the_field(body, param):
    with pytest.raises(GatewayError) as info:
        to_chat(body, native=False)
    assert info.value.param == param and info.value.status == 400


def test_routes_are_documented(gw):
    spec = httpx.get(gw.url + "/openapi.json", timeout=30).json()
    for prefix in ("", "/anthropic"):
        create = spec["paths"][f"{prefix}/v1/messages"]["post"]
        assert create["tags"] == ["Anthropic"] and "Messages API" in create["summary"]
        assert "x-api-key" in create["description"]
        body = create["requestBody"]["content"]["application/json"]["schema"]
        assert "MessageCreateParams" in body["description"] and "max_tokens" in body["required"]
        assert "text/event-stream" in create["responses"]["200"]["content"]
        count = spec["paths"][f"{prefix}/v1/messages/count_tokens"]["post"]
        assert "x-gateway-token-count-estimated" in count["summary"] + count["description"]
    ids = [op["operationId"] for path in spec["paths"].values() for op in path.values() if "operationId" in op]
    assert len(ids) == len(set(ids))


def test_refusals_before_the_route_are_in_anthropics_envelope_too(gw):
    """A missing key or an unknown route under /anthropic is refused before the adapter runs:
    the error still carries Anthropic's top-level type, so the anthropic SDK reads it as its own."""
    r = httpx.post(gw.url + "/v1/messages", json={"model": "gpt-x", "max_tokens": 5, "messages": hello()})
    assert r.status_code == 401 and r.json()["type"] == "error"
    assert r.json()["error"]["message"] == "Authentication Error, No api key passed in."
    with anthropic.Anthropic(base_url=gw.url, api_key="sk-unknown-key", max_retries=0) as client:
        with pytest.raises(anthropic.AuthenticationError) as info:
            client.messages.create(model="gpt-x", max_tokens=5, messages=hello())
    assert info.value.body["type"] == "error"
    other = httpx.post(gw.url + "/v1/chat/completions", json={"model": "gpt-x", "messages": hello()})
    assert other.status_code == 401 and "type" not in other.json()  # OpenAI's routes keep OpenAI's envelope
