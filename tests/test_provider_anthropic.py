"""The native `anthropic/` provider, end to end: the official `openai` SDK -> a real gateway -> a fake
Anthropic Messages API on loopback (tests/peers/anthropic_api.py), which checks every request as the
real API does and is itself checked against the official `anthropic` SDK.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest

from gateway.core.providers.anthropic import Anthropic, AnthropicStream, messages_url, translate_request

_spec = importlib.util.spec_from_file_location("anthropic_api_peer", Path(__file__).parent / "peers" / "anthropic_api.py")
assert _spec is not None and _spec.loader is not None
peer = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = peer  # dataclasses look their module up
_spec.loader.exec_module(peer)
Reply = peer.Reply

ANT_KEY = "sk-ant-api03-test-key-0123456789"
OPENAI_KEY = "sk-openai-upstream-key-9876"
ADMIN = {"Authorization": "Bearer sk-1234"}
MODEL = "claude-3-5-sonnet-20240620"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
TOOL_USE = {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}}
THINKING = {"type": "thinking", "thinking": "The user wants a haiku. Let me count syllables.", "signature": "EqQBCgIYAhIM1gbcDa=="}


@pytest.fixture
def api():
    with peer.FakeAnthropic(keys={ANT_KEY}) as fake:
        yield fake


def ant_model(name: str, api_base: str | None, model: str = f"anthropic/{MODEL}", **params: Any) -> dict[str, Any]:
    litellm_params: dict[str, Any] = {"model": model, "api_key": ANT_KEY, **params}
    if api_base is not None:
        litellm_params["api_base"] = api_base
    return {"model_name": name, "litellm_params": litellm_params}


def config(*models: dict[str, Any]) -> dict[str, Any]:
    return {"model_list": list(models), "router_settings": {"num_retries": 0, "cooldown_time": 0},
            "general_settings": {"spend_flush_interval_s": 0.05}}


@pytest.fixture
def claude(gateway_server, api):
    return gateway_server(config(ant_model("claude", api.url)))


@pytest.fixture
def client(claude):
    return claude.client()


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


# -- chat ---------------------------------------------------------------------------------------
def test_chat(client, api):
    reply = client.chat.completions.create(
        model="claude", messages=[{"role": "system", "content": "Be brief."}, *user("hello there")],
        temperature=0.2, top_p=0.9, stop="END", user="user-42", max_tokens=300)
    assert reply.choices[0].message.content == "anthropic says: hello there"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.model == MODEL and reply.object == "chat.completion"
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens > 0
    req = api.last
    assert req.path == "/v1/messages"
    assert req.headers["x-api-key"] == ANT_KEY and req.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in req.headers
    assert req.json == {"model": MODEL, "messages": [{"role": "user", "content": [{"type": "text", "text": "hello there"}]}],
                        "system": [{"type": "text", "text": "Be brief."}], "max_tokens": 300, "temperature": 0.2,
                        "top_p": 0.9, "stop_sequences": ["END"], "metadata": {"user_id": "user-42"}}


OPENAI_ONLY = {"presence_penalty": 0.5, "frequency_penalty": 0.1, "seed": 7, "logit_bias": {"1": 1}}


def test_params_anthropic_lacks_are_refused_by_name_unless_dropped(client, api):
    # As LiteLLM: a parameter the provider cannot honour is an error, never silently ignored.
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="claude", messages=user("hi"), **OPENAI_ONLY)
    message = err.value.body["message"]
    assert "anthropic does not support parameters: frequency_penalty, logit_bias, presence_penalty, seed" in message
    assert "drop_params" in message and err.value.body["param"] == "frequency_penalty"
    assert api.requests == []  # nothing was sent
    # Dropped on request: `n: 1` and `logprobs: false` ask for nothing and pass anyway.
    client.chat.completions.create(
        model="claude", messages=[{"role": "developer", "content": [{"type": "text", "text": "rules"}]}, *user("hi")],
        n=1, logprobs=False, user="someone@example.com", service_tier="default", **OPENAI_ONLY,
        extra_body={"top_k": 5, "drop_params": True, "additional_drop_params": ["service_tier"]})
    body = api.last.json
    assert body["max_tokens"] == 4096  # Anthropic requires it; LiteLLM's default
    assert body["system"] == [{"type": "text", "text": "rules"}]
    assert body["top_k"] == 5  # a Messages API parameter: passed on
    assert set(body) == {"model", "messages", "system", "max_tokens", "top_k"}  # no e-mail as user_id
    client.chat.completions.create(model="claude", messages=user("hi"), max_completion_tokens=77)
    assert api.last.json["max_tokens"] == 77


@pytest.mark.parametrize("where", ["deployment", "litellm_settings"])
def test_drop_params_in_the_config_drops_what_anthropic_lacks(gateway_server, api, where):
    cfg = config(ant_model("claude", api.url, **({"drop_params": True} if where == "deployment" else {})))
    if where == "litellm_settings":
        cfg["litellm_settings"] = {"drop_params": True}
    client = gateway_server(cfg).client()
    client.chat.completions.create(model="claude", messages=user("hi"), **OPENAI_ONLY)
    assert set(api.last.json) == {"model", "messages", "max_tokens"}
    # The request may still say otherwise.
    with pytest.raises(openai.BadRequestError, match="does not support parameters: seed"):
        client.chat.completions.create(model="claude", messages=user("hi"), seed=1, extra_body={"drop_params": False})


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/", "/v1/messages"])
def test_api_base_with_or_without_v1(gateway_server, api, suffix):
    gw = gateway_server(config(ant_model("claude", api.url + suffix)))
    assert gw.client().chat.completions.create(model="claude", messages=user("hi")).choices[0].message.content
    assert api.last.path == "/v1/messages"


def test_deployment_headers_basic_auth_and_params(gateway_server, api):
    base = api.url.replace("http://", "http://proxyuser:proxy%20pass@")
    gw = gateway_server(config(ant_model("claude", base, extra_headers={"anthropic-beta": "output-128k-2025-02-19"},
                                         temperature=0.1, max_tokens=99)))
    gw.client().chat.completions.create(model="claude", messages=user("hi"))
    req = api.last
    assert req.headers["authorization"] == "Basic " + base64.b64encode(b"proxyuser:proxy pass").decode()
    assert req.headers["x-api-key"] == ANT_KEY and req.headers["anthropic-beta"] == "output-128k-2025-02-19"
    if req.json.get("temperature") is not None:  # deployment defaults (another lane applies them)
        assert (req.json["temperature"], req.json["max_tokens"]) == (0.1, 99)


# -- streams ------------------------------------------------------------------------------------
def only_row(gw: Any, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = httpx.get(gw.url + "/spend/logs", headers=ADMIN, timeout=10).json()
        if rows:
            assert len(rows) == 1, rows
            return rows[0]
        time.sleep(0.05)
    raise AssertionError("no spend row written")


@pytest.mark.db
def test_stream_with_usage_is_billed(claude, client, api):
    usage = {"input_tokens": 10, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 50, "output_tokens": 7}
    api.script(Reply(text="a streamed answer, cut into many small pieces", usage=usage, stream_piece=7))
    chunks = list(client.chat.completions.create(model="claude", messages=user("stream please"), stream=True,
                                                 stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "a streamed answer, cut into many small pieces"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    last = chunks[-1]
    assert last.choices == [] and last.usage.prompt_tokens == 160 and last.usage.completion_tokens == 7
    assert last.usage.prompt_tokens_details.cached_tokens == 100
    assert api.last.json["stream"] is True and "stream_options" not in api.last.json
    row = only_row(claude)
    assert row["status"] == "success" and (row["prompt_tokens"], row["completion_tokens"]) == (160, 7)
    assert not (row.get("metadata") or {}).get("usage_estimated")
    assert row["spend"] == pytest.approx(160 * 3e-06 + 7 * 1.5e-05)  # anthropic/claude-3-5-sonnet in prices.json


def test_stream_usage_hidden_unless_asked(client, api):
    chunks = list(client.chat.completions.create(model="claude", messages=user("hi"), stream=True))
    assert all(c.choices for c in chunks) and all(c.usage is None for c in chunks)


def test_prompt_caching_usage_non_stream(client, api):
    api.script(Reply(usage={"input_tokens": 3, "cache_read_input_tokens": 2000, "cache_creation_input_tokens": 0,
                            "output_tokens": 5}))
    messages = [{"role": "system", "content": [{"type": "text", "text": "long context " * 5,
                                                 "cache_control": {"type": "ephemeral"}}]}, *user("q")]
    reply = client.chat.completions.create(model="claude", messages=messages)
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens) == (2003, 5, 2008)
    assert reply.usage.prompt_tokens_details.cached_tokens == 2000
    assert api.last.json["system"][0]["cache_control"] == {"type": "ephemeral"}


# -- tools --------------------------------------------------------------------------------------
def test_tool_call_and_result_round_trip(client, api):
    api.script(Reply(content=[{"type": "text", "text": "Let me check."}, TOOL_USE,
                              {**TOOL_USE, "id": "toolu_01B", "input": {"city": "Rome"}}]))
    first = client.chat.completions.create(model="claude", messages=user("weather in Paris and Rome?"),
                                           tools=[WEATHER_TOOL], tool_choice="required", parallel_tool_calls=True)
    sent = api.last.json
    assert sent["tools"] == [{"name": "get_weather", "description": "Weather in a city",
                              "input_schema": WEATHER_TOOL["function"]["parameters"]}]
    assert sent["tool_choice"] == {"type": "any", "disable_parallel_tool_use": False}
    msg = first.choices[0].message
    assert first.choices[0].finish_reason == "tool_calls" and msg.content == "Let me check."
    calls = msg.tool_calls
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("toolu_01A", "get_weather", {"city": "Paris"}), ("toolu_01B", "get_weather", {"city": "Rome"})]

    history = [*user("weather in Paris and Rome?"), msg.model_dump(exclude_none=True),
               {"role": "tool", "tool_call_id": "toolu_01A", "content": "18C sunny"},
               {"role": "tool", "tool_call_id": "toolu_01B", "content": [{"type": "text", "text": "21C"}]}]
    second = client.chat.completions.create(model="claude", messages=history, tools=[WEATHER_TOOL],
                                            tool_choice={"type": "function", "function": {"name": "get_weather"}})
    assert second.choices[0].message.content.startswith("anthropic says:")
    sent = api.last.json
    assert sent["tool_choice"] == {"type": "tool", "name": "get_weather"}
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]  # both results in one turn
    assert sent["messages"][1]["content"] == [{"type": "text", "text": "Let me check."}, TOOL_USE,
                                              {**TOOL_USE, "id": "toolu_01B", "input": {"city": "Rome"}}]
    assert sent["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "18C sunny"},
        {"type": "tool_result", "tool_use_id": "toolu_01B", "content": [{"type": "text", "text": "21C"}]}]


def test_streamed_tool_calls(client, api):
    api.script(Reply(content=[TOOL_USE, {**TOOL_USE, "id": "toolu_01B", "input": {"city": "Rome", "unit": "C"}}],
                     stream_piece=11))
    chunks = list(client.chat.completions.create(model="claude", messages=user("weather?"), tools=[WEATHER_TOOL],
                                                 stream=True))
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for tc in (chunk.choices[0].delta.tool_calls or ()) if chunk.choices else ():
            slot = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
            slot["id"] += tc.id or ""
            slot["name"] += (tc.function.name or "") if tc.function else ""
            slot["arguments"] += (tc.function.arguments or "") if tc.function else ""
    assert [(c["id"], c["name"], json.loads(c["arguments"])) for _, c in sorted(calls.items())] == [
        ("toolu_01A", "get_weather", {"city": "Paris"}), ("toolu_01B", "get_weather", {"city": "Rome", "unit": "C"})]
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]


def test_json_response_format_is_a_forced_tool(client, api):
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    api.script(Reply(content=[{"type": "tool_use", "id": "toolu_J", "name": "json_tool_call", "input": {"name": "Ada"}}]),
               Reply(content=[{"type": "tool_use", "id": "toolu_J", "name": "json_tool_call", "input": {"name": "Ada"}}]))
    fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": schema}}
    reply = client.chat.completions.create(model="claude", messages=user("who?"), response_format=fmt)
    assert json.loads(reply.choices[0].message.content) == {"name": "Ada"}
    assert reply.choices[0].finish_reason == "stop" and not reply.choices[0].message.tool_calls
    assert api.last.json["tools"] == [{"name": "json_tool_call", "input_schema": schema}]
    assert api.last.json["tool_choice"] == {"type": "tool", "name": "json_tool_call"}
    chunks = list(client.chat.completions.create(model="claude", messages=user("who?"), response_format=fmt, stream=True))
    assert json.loads("".join(c.choices[0].delta.content or "" for c in chunks if c.choices)) == {"name": "Ada"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]


# -- images -------------------------------------------------------------------------------------
def test_images(client, api):
    content = [{"type": "text", "text": "what is in these?"},
               {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
               {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
               {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{PNG}"}}]
    reply = client.chat.completions.create(model="claude", messages=[{"role": "user", "content": content}])
    assert reply.choices[0].message.content == "anthropic says: what is in these?"
    assert api.last.json["messages"][0]["content"][1:] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PNG}}]


def test_unsupported_content_is_a_400_not_junk(client, api):
    audio = [{"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="claude", messages=[{"role": "user", "content": audio}])
    assert info.value.body["message"].startswith("AnthropicException - messages.0.content.0: content type 'input_audio'")
    assert api.requests == []


# -- thinking -----------------------------------------------------------------------------------
def test_thinking(client, api):
    api.script(Reply(content=[THINKING, {"type": "text", "text": "Leaves fall."}],
                     usage={"output_tokens": 40, "output_tokens_details": {"thinking_tokens": 30}}))
    reply = client.chat.completions.create(model="claude", messages=user("a haiku"), reasoning_effort="low")
    assert api.last.json["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert api.last.json["max_tokens"] == 1024 + 4096
    msg = reply.choices[0].message
    assert msg.content == "Leaves fall."
    assert msg.model_extra["reasoning_content"] == THINKING["thinking"]
    assert msg.model_extra["thinking_blocks"] == [THINKING]
    assert reply.usage.completion_tokens_details.reasoning_tokens == 30

    # The next turn sends the thinking block back first, as Anthropic requires with tools.
    history = [*user("a haiku"), msg.model_dump(exclude_none=True), *user("another")]
    client.chat.completions.create(model="claude", messages=history,
                                   extra_body={"thinking": {"type": "enabled", "budget_tokens": 2000}})
    assert api.last.json["thinking"] == {"type": "enabled", "budget_tokens": 2000}
    assert api.last.json["messages"][1]["content"] == [THINKING, {"type": "text", "text": "Leaves fall."}]


def test_thinking_streamed(client, api):
    api.script(Reply(content=[THINKING, {"type": "redacted_thinking", "data": "opaque"},
                              {"type": "text", "text": "Leaves fall."}], stream_piece=3))
    chunks = list(client.chat.completions.create(model="claude", messages=user("a haiku"), reasoning_effort="high",
                                                 stream=True))
    assert api.last.json["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert "".join(d.model_extra.get("reasoning_content") or "" for d in deltas) == THINKING["thinking"]
    blocks = [b for d in deltas for b in d.model_extra.get("thinking_blocks") or ()]
    assert {"type": "thinking", "thinking": "", "signature": THINKING["signature"]} in blocks
    assert {"type": "redacted_thinking", "data": "opaque"} in blocks
    assert "".join(d.content or "" for d in deltas) == "Leaves fall."


@pytest.mark.parametrize("model,effort,thinking,config", [
    ("claude-sonnet-4-5", "xhigh", {"type": "enabled", "budget_tokens": 8192}, None),  # budgets before 4.6
    ("claude-opus-4-6", "xhigh", {"type": "adaptive"}, {"effort": "high"}),  # 4.6: adaptive, no xhigh
    ("claude-sonnet-5", "minimal", {"type": "adaptive"}, {"effort": "low"}),
    ("claude-opus-4-7", "xhigh", {"type": "adaptive"}, {"effort": "xhigh"}),
    ("claude-sonnet-4-6", "none", {"type": "disabled"}, None),
    ("claude-fable-5-1", "none", None, None),  # always thinks: it cannot be disabled
])
def test_reasoning_effort_per_generation(gateway_server, api, model, effort, thinking, config):
    gw = gateway_server(config_for(api, model))
    gw.client().chat.completions.create(model="claude", messages=user("think"), reasoning_effort=effort,
                                        temperature=0.3, extra_body={"top_k": 4})
    sent = api.last.json
    assert sent.get("thinking") == thinking and sent.get("output_config") == config
    adaptive_only = model in ("claude-sonnet-5", "claude-opus-4-7", "claude-fable-5-1")
    # from 4.7 the API refuses sampling parameters: they are not sent
    assert ("temperature" in sent, "top_k" in sent) == ((False, False) if adaptive_only else (True, True))


def config_for(api: Any, model: str) -> dict[str, Any]:
    return config(ant_model("claude", api.url, model=f"anthropic/{model}"))


def test_structured_output_on_modern_models_is_native(gateway_server, api):
    gw = gateway_server(config_for(api, "claude-sonnet-5-5"))
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"],
              "additionalProperties": False}
    api.script(Reply(text='{"name": "Ada"}'), Reply(content=[
        {"type": "tool_use", "id": "toolu_J", "name": "json_tool_call", "input": {"any": "thing"}}]))
    client = gw.client()
    reply = client.chat.completions.create(model="claude", messages=user("who?"), response_format={
        "type": "json_schema", "json_schema": {"name": "person", "schema": schema}})
    assert json.loads(reply.choices[0].message.content) == {"name": "Ada"}
    assert api.last.json["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    assert "tools" not in api.last.json
    # json_object has no schema: the JSON tool, not forced (Sonnet 5.5 refuses forced tool use)
    reply = client.chat.completions.create(model="claude", messages=user("who?"), response_format={"type": "json_object"})
    assert json.loads(reply.choices[0].message.content) == {"any": "thing"}
    assert api.last.json["tools"][0]["name"] == "json_tool_call" and "tool_choice" not in api.last.json


# -- errors -------------------------------------------------------------------------------------
@pytest.mark.parametrize("status,kind,exc", [
    (429, "rate_limit_error", openai.RateLimitError),
    (529, "overloaded_error", openai.InternalServerError),
    (500, "api_error", openai.InternalServerError),
    (400, "invalid_request_error", openai.BadRequestError),
])
def test_upstream_errors_keep_status_and_type(client, api, status, kind, exc):
    api.default = Reply(status=status, error_type=kind, error_message=f"the {kind} message")
    with pytest.raises(exc) as info:
        client.chat.completions.create(model="claude", messages=user("hi"))
    assert info.value.status_code == status
    assert info.value.body["message"] == f"AnthropicException - the {kind} message"
    assert info.value.body["type"] == kind and info.value.body["code"] == str(status)


def test_errors_before_a_stream_starts(client, api):
    api.default = Reply(status=429, error_type="rate_limit_error", error_message="Number of request tokens has exceeded")
    with pytest.raises(openai.RateLimitError) as info:
        list(client.chat.completions.create(model="claude", messages=user("hi"), stream=True))
    assert info.value.body["message"] == "AnthropicException - Number of request tokens has exceeded"


def test_wrong_key_is_401_and_never_echoed(gateway_server, api):
    gw = gateway_server(config({"model_name": "claude", "litellm_params": {
        "model": f"anthropic/{MODEL}", "api_base": api.url, "api_key": "sk-ant-wrong-key-555"}}))
    with pytest.raises(openai.AuthenticationError) as info:
        gw.client().chat.completions.create(model="claude", messages=user("hi"))
    assert info.value.status_code == 401
    assert info.value.body["message"] == "AnthropicException - invalid x-api-key"
    assert info.value.body["type"] == "authentication_error"
    assert "sk-ant-wrong-key-555" not in str(info.value.body)


@pytest.mark.parametrize("reply,status,start", [
    (Reply(raw=b"{not json", status=200), 502, "AnthropicException - upstream returned a reply that could not be read"),
    (Reply(raw=b"<html>502 Bad Gateway</html>", status=503, content_type="text/html"), 503,
     "AnthropicException - <html>502 Bad Gateway</html>"),
    (Reply(raw=b"", status=504), 504, "AnthropicException - upstream returned HTTP 504"),
])
def test_malformed_replies(client, api, reply, status, start):
    api.default = reply
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="claude", messages=user("hi"))
    assert info.value.status_code == status and info.value.body["message"].startswith(start)


def test_error_event_in_a_stream(client, api):
    api.script(Reply(text="partial", stream_error=("overloaded_error", "Overloaded")))
    seen = []
    with pytest.raises(openai.APIError) as info:
        for chunk in client.chat.completions.create(model="claude", messages=user("hi"), stream=True):
            seen.append(chunk)
    assert "AnthropicException - Overloaded" in str(info.value)
    assert "".join(c.choices[0].delta.content or "" for c in seen if c.choices) == "partial"


def test_anthropic_rejects_what_we_send_as_a_400(client, api):
    # a real Anthropic 400 (tool_result without tools) comes back with Anthropic's message
    messages = [*user("q"), {"role": "assistant", "tool_calls": [
        {"id": "toolu_X", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "toolu_X", "content": "r"}]
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="claude", messages=messages)
    assert info.value.body["message"].startswith("AnthropicException - Requests which include `tool_use`")


# -- keys go only to their own provider --------------------------------------------------------
def test_keys_reach_only_their_own_provider(gateway_server, api, fake_upstream):
    gw = gateway_server(config(
        ant_model("claude", api.url),
        ant_model("claude-bare", api.url, model="claude-3-opus-20240229"),  # a bare name is Anthropic's
        {"model_name": "gpt", "litellm_params": {"model": "openai/gpt-4o", "api_base": fake_upstream.url,
                                                 "api_key": OPENAI_KEY}},
    ))
    client = gw.client()
    for model in ("claude", "claude-bare", "gpt"):
        client.chat.completions.create(model=model, messages=user("hi"))
        list(client.chat.completions.create(model=model, messages=user("hi"), stream=True))
    assert len(api.requests) == 4 and len(fake_upstream.requests) == 2
    assert [r.json["model"] for r in api.requests] == [MODEL, MODEL, "claude-3-opus-20240229", "claude-3-opus-20240229"]
    for r in fake_upstream.requests:
        seen = json.dumps(dict(r.headers)) + r.body.decode()
        assert ANT_KEY not in seen, "the Anthropic key reached the OpenAI upstream"
    for r in api.requests:
        seen = json.dumps(r.headers) + r.body.decode()
        assert OPENAI_KEY not in seen, "the OpenAI key reached Anthropic"
        assert r.headers["x-api-key"] == ANT_KEY


def test_config_from_litellm_docs(gateway_server, api):
    """LiteLLM's Anthropic page: `model: anthropic/...`, `api_key: os.environ/ANTHROPIC_API_KEY`; the base
    URL from ANTHROPIC_API_BASE, as LiteLLM reads it (here: the fake, so nothing leaves the machine)."""
    cfg = {"model_list": [{"model_name": "claude-3", "litellm_params": {
        "model": "anthropic/claude-3-5-sonnet-20240620", "api_key": "os.environ/ANTHROPIC_API_KEY"}}]}
    gw = gateway_server(cfg, env={"ANTHROPIC_API_KEY": ANT_KEY, "ANTHROPIC_API_BASE": api.url})
    reply = gw.client().chat.completions.create(model="claude-3", messages=user("from the docs"))
    assert reply.choices[0].message.content == "anthropic says: from the docs"
    assert api.last.headers["x-api-key"] == ANT_KEY


def test_embeddings_are_refused(client, api):
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model="claude", input="x")
    assert info.value.body["message"].startswith("AnthropicException - anthropic does not serve embeddings")
    assert api.requests == []


# -- the fake against the official anthropic SDK ------------------------------------------------
def test_fake_speaks_the_real_protocol(api):
    sdk = anthropic.Anthropic(base_url=api.url, api_key=ANT_KEY, max_retries=0)
    plain = sdk.messages.create(model=MODEL, max_tokens=100, system="terse", messages=[{"role": "user", "content": "hi"}])
    assert isinstance(plain, anthropic.types.Message) and plain.content[0].text == "anthropic says: hi"
    assert plain.stop_reason == "end_turn" and plain.usage.input_tokens > 0

    tool = {"name": "get_weather", "input_schema": WEATHER_TOOL["function"]["parameters"]}
    api.script(Reply(content=[{"type": "text", "text": "Checking."}, TOOL_USE]))
    used = sdk.messages.create(model=MODEL, max_tokens=100, tools=[tool], messages=[{"role": "user", "content": "w?"}])
    assert isinstance(used.content[1], anthropic.types.ToolUseBlock) and used.content[1].input == {"city": "Paris"}
    assert used.stop_reason == "tool_use"
    follow_up = [{"role": "user", "content": "w?"}, {"role": "assistant", "content": used.model_dump()["content"]},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01A", "content": "18C"}]}]
    assert sdk.messages.create(model=MODEL, max_tokens=100, tools=[tool], messages=follow_up).content[0].text

    api.script(Reply(content=[THINKING, {"type": "text", "text": "done"}]))
    thought = sdk.messages.create(model=MODEL, max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 1024},
                                  messages=[{"role": "user", "content": "think"}])
    assert isinstance(thought.content[0], anthropic.types.ThinkingBlock)
    assert thought.content[0].signature == THINKING["signature"]

    api.script(Reply(content=[THINKING, {"type": "text", "text": "streamed words here"}, TOOL_USE],
                     usage={"cache_read_input_tokens": 9}, stream_piece=5))
    with sdk.messages.stream(model=MODEL, max_tokens=2048, tools=[tool], thinking={"type": "enabled", "budget_tokens": 1024},
                             messages=[{"role": "user", "content": "go"}]) as stream:
        kinds = {event.type for event in stream}
        final = stream.get_final_message()
    assert {"message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta",
            "message_stop", "text", "thinking", "signature", "input_json"} <= kinds
    assert [b.type for b in final.content] == ["thinking", "text", "tool_use"]
    assert final.content[0].thinking == THINKING["thinking"] and final.content[0].signature == THINKING["signature"]
    assert final.content[1].text == "streamed words here" and final.content[2].input == {"city": "Paris"}
    assert final.stop_reason == "tool_use" and final.usage.cache_read_input_tokens == 9


def test_fake_errors_parse_in_the_sdk(api):
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=api.url, api_key="nope", max_retries=0).messages.create(
            model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "x"}])
    sdk = anthropic.Anthropic(base_url=api.url, api_key=ANT_KEY, max_retries=0)
    api.script(Reply(status=529, error_type="overloaded_error", error_message="Overloaded"))
    with pytest.raises(anthropic.APIStatusError) as info:
        sdk.messages.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 529 and info.value.body["error"]["type"] == "overloaded_error"
    with pytest.raises(anthropic.BadRequestError, match="Extra inputs are not permitted"):
        sdk.messages.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "x"}],
                            extra_body={"presence_penalty": 1})
    modern = sdk.messages.create(model="claude-sonnet-5", max_tokens=200, thinking={"type": "adaptive"},
                                 output_config={"effort": "high", "format": {"type": "json_schema", "schema": {
                                     "type": "object", "properties": {}, "additionalProperties": False}}},
                                 messages=[{"role": "user", "content": "x"}])
    assert modern.content[0].text
    with pytest.raises(anthropic.BadRequestError, match="thinking.type.enabled is not supported"):
        sdk.messages.create(model="claude-opus-4-7", max_tokens=5000, thinking={"type": "enabled", "budget_tokens": 1024},
                            messages=[{"role": "user", "content": "x"}])
    api.script(Reply(text="partial", stream_error=("overloaded_error", "Overloaded")))
    with pytest.raises(anthropic.APIStatusError, match="Overloaded"):
        with sdk.messages.stream(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "x"}]) as stream:
            for _ in stream:
                pass


# -- the translation itself -----------------------------------------------------------------------
class Dep:
    api_base = "https://api.anthropic.com"
    api_key = ANT_KEY
    basic_auth = None
    extra_headers: dict[str, str] = {}
    extra_body: dict[str, Any] = {}


def test_url_forms():
    for base in ("https://h", "https://h/", "https://h/v1", "https://h/v1/", "https://h/v1/messages"):
        assert messages_url(base) == "https://h/v1/messages"
    assert messages_url("https://proxy/anthropic") == "https://proxy/anthropic/v1/messages"


def test_translation_edges():
    betas: set[str] = set()
    body = translate_request({
        "model": "m", "stop": ["\n", "  ", "STOP"], "tool_choice": "none", "parallel_tool_calls": False,
        "messages": [{"role": "system", "content": "a"}, {"role": "user", "content": "u"},
                     {"role": "system", "content": "b"}, {"role": "assistant", "content": "prefill  "}],
        "reasoning_effort": "none", "stream_options": {"include_usage": True}, "web_search_options": {
            "search_context_size": "low", "user_location": {"type": "approximate", "approximate": {"city": "Oslo"}}},
    }, False, betas)
    assert body["system"] == [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    assert body["messages"][-1] == {"role": "assistant", "content": [{"type": "text", "text": "prefill"}]}
    assert body["stop_sequences"] == ["STOP"] and "thinking" not in body and "stream" not in body
    assert body["tools"] == [{"type": "web_search_20250305", "name": "web_search", "max_uses": 1,
                              "user_location": {"type": "approximate", "city": "Oslo"}}]
    assert body["tool_choice"] == {"type": "none"}
    assert translate_request({"model": "m", "messages": user("x"), "tool_choice": "auto"}, True, betas) == {
        "model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}], "max_tokens": 4096,
        "stream": True}  # no tools: no tool_choice either


def test_deployment_extra_body_goes_to_anthropic_as_is():
    dep = Dep()
    dep.extra_body = {"top_k": 3, "context_management": {"edits": []}}
    req = Anthropic().build_request(dep, "acompletion", {"model": "m", "messages": user("x"), "top_k": 3}, False)
    body = orjson.loads(req.body)
    assert (body["top_k"], body["context_management"]) == (3, {"edits": []})


def test_json_tool_beside_other_tool_calls_stays_a_tool_call():
    reply = Anthropic().parse_reply(Dep(), "acompletion", orjson.dumps(peer.build_message(
        {"model": "m", "messages": user("x")},
        Reply(content=[{"type": "tool_use", "id": "t1", "name": "json_tool_call", "input": {"a": 1}}, TOOL_USE]))))
    message = reply["choices"][0]["message"]
    assert [c["function"]["name"] for c in message["tool_calls"]] == ["json_tool_call", "get_weather"]
    assert reply["choices"][0]["finish_reason"] == "tool_calls" and message["content"] is None


def test_deployment_thinking_follows_the_generation():
    betas: set[str] = set()
    budget = {"type": "enabled", "budget_tokens": 2048}
    assert translate_request({"model": "claude-opus-4-7", "messages": user("x"), "thinking": budget}, False,
                             betas)["thinking"] == {"type": "adaptive"}
    old = translate_request({"model": "claude-3-7-sonnet-latest", "messages": user("x"),
                             "thinking": {"type": "adaptive"}}, False, betas)
    assert old["thinking"] == budget and old["max_tokens"] == 2048 + 4096
    assert translate_request({"model": "claude-sonnet-4-6", "messages": user("x"), "thinking": budget}, False,
                             betas)["thinking"] == budget  # 4.6 takes both


def test_stream_parser_takes_any_cut_of_the_bytes():
    message = peer.build_message({"model": "m", "messages": user("x")},
                                 Reply(content=[THINKING, {"type": "text", "text": "héllo wörld"}, TOOL_USE]))
    raw = b"".join(peer.sse(k, e) for k, e in peer.stream_events(message)).replace(b"\n", b"\r\n")
    whole = AnthropicStream()
    expected = whole.feed(raw) + whole.end()
    for step in (1, 2, 3, 17):
        s = AnthropicStream()
        got = [c for i in range(0, len(raw), step) for c in s.feed(raw[i:i + step])] + s.end()
        assert [{k: v for k, v in c.items() if k != "created"} for c in got] == [
            {k: v for k, v in c.items() if k != "created"} for c in expected]
    assert expected[-1]["choices"] == [] and expected[-1]["usage"]["completion_tokens"] == message["usage"]["output_tokens"]
    assert expected[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_provider_replaces_the_openai_compatible_member():
    from gateway.builtins.providers import BuiltinProviders
    from gateway.core.providers.registry import Providers

    registry = Providers()
    for provider in BuiltinProviders.providers(object.__new__(BuiltinProviders), None):
        registry.add(provider, "builtin_providers")
    mine = registry.get("anthropic")
    assert registry.split("claude-3-opus-20240229") == ("anthropic", "claude-3-opus-20240229")
    assert isinstance(mine, Anthropic) and not mine.passthrough and mine.call_types == {"acompletion"}
    req = mine.build_request(Dep(), "acompletion", {"model": "m", "messages": user("x")}, False)
    assert req.url == "https://api.anthropic.com/v1/messages"
    assert orjson.loads(req.body)["max_tokens"] == 4096
