"""The native `cohere/` provider, end to end: the official `openai` SDK talks to a real gateway, which
talks to a fake Cohere API v2 on loopback (tests/peers/cohere_api.py). The fake itself is checked
against the official `cohere` SDK (tests/peers/cohere_sdk_check.py; run here when `cohere` is
installed).

The configs are the ones LiteLLM users write: `model: cohere/command-r-plus` with
`api_key: os.environ/COHERE_API_KEY`, `cohere_chat/<model>`, or a bare `command-r`.

Translation cost: `uv run --no-sync python tests/test_provider_cohere.py --bench` prints the CPU
per call and per streamed chunk.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

PEERS = Path(__file__).parent / "peers"
_spec = importlib.util.spec_from_file_location("cohere_api", PEERS / "cohere_api.py")
cohere_api = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
sys.modules.setdefault("cohere_api", cohere_api)
_spec.loader.exec_module(cohere_api)  # type: ignore[union-attr]
FakeCohere = cohere_api.FakeCohere

ADMIN = {"Authorization": "Bearer sk-1234"}
KEY = "co-test-key-0123456789"
HI = [{"role": "user", "content": "hello there"}]
IN_PRICE, OUT_PRICE = 0.001, 0.002
PNG = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


# -- fixtures and helpers ---------------------------------------------------------------------
@pytest.fixture
def cohere():
    with FakeCohere(api_key=KEY) as fake:
        yield fake


def entry(name: str, fake: Any, model: str = "cohere/command-r", **params: Any) -> dict[str, Any]:
    return {"model_name": name, "litellm_params": {"model": model, "api_base": fake.url, "api_key": KEY, **params}}


def config(*entries: dict[str, Any], **router: Any) -> dict[str, Any]:
    return {"model_list": list(entries), "router_settings": {"num_retries": 0, **router},
            "general_settings": {"spend_flush_interval_s": 0.05}}


@pytest.fixture
def gw(gateway_server, cohere):
    return gateway_server(config(entry("command-r", cohere),
                                 entry("vision", cohere, "cohere/command-a-vision-07-2025"),
                                 entry("reasoning", cohere, "cohere/command-a-reasoning-08-2025"),
                                 entry("embedder", cohere, "cohere/embed-english-v3.0"),
                                 entry("priced", cohere, input_cost_per_token=IN_PRICE, output_cost_per_token=OUT_PRICE)))


@pytest.fixture
def client(gw):
    return gw.client()


def sent(fake: Any) -> dict[str, Any]:
    """The body of the last request the fake received."""
    return fake.requests[-1].json


def error_of(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and body["error"]["code"] == str(status), body
    assert resp.headers.get("x-request-id")
    return body["error"]


def post(gw: Any, body: dict[str, Any], route: str = "/v1/chat/completions") -> httpx.Response:
    return httpx.post(gw.url + route, headers=ADMIN, timeout=10, json=body)


def spend_rows(gw: Any, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        rows = httpx.get(gw.url + "/spend/logs", headers=ADMIN, timeout=10).json()
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def text_of(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


# -- chat -------------------------------------------------------------------------------------
def test_chat(client, cohere):
    cohere.script(input_tokens=11, output_tokens=5, raw_input_tokens=90)
    reply = client.chat.completions.create(model="command-r", messages=HI)
    assert reply.object == "chat.completion" and reply.id
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content == "cohere says: hello there"
    assert reply.choices[0].finish_reason == "stop"
    # usage is what Cohere bills (billed_units), not its raw token counts (which include its template)
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens) == (11, 5, 16)
    request = cohere.requests[-1]
    assert request.path == "/v2/chat"
    assert request.json == {"model": "command-r", "messages": HI, "stream": False}
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"


def test_usage_falls_back_to_tokens_and_counts_cached(client, cohere):
    cohere.script(input_tokens=0, output_tokens=0, cached_tokens=8)
    reply = client.chat.completions.create(model="command-r", messages=HI)
    assert reply.usage.prompt_tokens == 0 and reply.usage.prompt_tokens_details.cached_tokens == 8
    cohere.script(raw=json.dumps({
        "id": "x", "finish_reason": "COMPLETE", "message": {"role": "assistant", "content": [{"type": "text", "text": "hi"}]},
        "usage": {"tokens": {"input_tokens": 30, "output_tokens": 2}}}).encode())
    reply = client.chat.completions.create(model="command-r", messages=HI)
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (30, 2)


def test_chat_stream(client, cohere):
    cohere.script(chunks=["Hel", "lo", " world"], input_tokens=7, output_tokens=3)
    chunks = list(client.chat.completions.create(model="command-r", messages=HI, stream=True,
                                                 stream_options={"include_usage": True}))
    assert sent(cohere)["stream"] is True
    assert cohere.requests[-1].headers["accept"] == "text/event-stream"
    text = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert text == ["Hel", "lo", " world"]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert len({c.id for c in chunks}) == 1
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (7, 3)


def test_stream_usage_hidden_unless_asked(client, cohere):
    chunks = list(client.chat.completions.create(model="command-r", messages=HI, stream=True))
    assert all(c.usage is None for c in chunks)
    assert text_of(chunks) == "cohere says: hello there"


def test_stream_without_done_marker_and_max_tokens(client, cohere):
    cohere.script(chunks=["cut", " short"], finish_reason="MAX_TOKENS", done_marker=False)
    chunks = list(client.chat.completions.create(model="command-r", messages=HI, stream=True, max_tokens=2))
    assert text_of(chunks) == "cut short"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["length"]
    cohere.script(reply="x", finish_reason="MAX_TOKENS")
    assert client.chat.completions.create(model="command-r", messages=HI).choices[0].finish_reason == "length"
    cohere.script(reply="x", finish_reason="STOP_SEQUENCE")
    assert client.chat.completions.create(model="command-r", messages=HI).choices[0].finish_reason == "stop"


@pytest.mark.db
def test_streams_and_calls_are_billed_from_cohere_billed_units(gw, cohere):
    key = httpx.post(gw.url + "/key/generate", json={}, headers=ADMIN, timeout=10).json()["key"]
    client = gw.client(api_key=key)
    cohere.script(chunks=["a", "b", "c"], input_tokens=100, output_tokens=30, raw_input_tokens=400)
    cohere.script(input_tokens=40, output_tokens=8, raw_input_tokens=200)
    stream = client.chat.completions.create(model="priced", messages=HI, stream=True)
    assert text_of(list(stream)) == "abc"
    client.chat.completions.create(model="priced", messages=HI)
    rows = spend_rows(gw, 2)
    assert sorted((r["prompt_tokens"], r["completion_tokens"], r["total_tokens"]) for r in rows) == [
        (40, 8, 48), (100, 30, 130)]
    for row in rows:
        assert row["status"] == "success" and row["call_type"] == "acompletion"
        assert "usage_estimated" not in row["metadata"]
        assert row["spend"] == pytest.approx(row["prompt_tokens"] * IN_PRICE + row["completion_tokens"] * OUT_PRICE)
        assert row["api_base"] == cohere.url
    info = httpx.get(gw.url + "/key/info", params={"key": key}, headers=ADMIN, timeout=10).json()["info"]
    assert info["spend"] == pytest.approx(140 * IN_PRICE + 38 * OUT_PRICE)


def test_sampling_parameters(client, cohere):
    client.chat.completions.create(
        model="command-r", messages=HI, temperature=0.2, top_p=0.9, seed=7, stop="END", max_tokens=64,
        presence_penalty=0.5, frequency_penalty=0.25, user="end-user-1", n=1, logit_bias={"1": 2},
        logprobs=False, parallel_tool_calls=False,
        extra_body={"top_k": 40, "safety_mode": "STRICT", "drop_params": True})
    assert sent(cohere) == {"model": "command-r", "messages": HI, "stream": False, "temperature": 0.2, "p": 0.9,
                            "seed": 7, "stop_sequences": ["END"], "max_tokens": 64, "presence_penalty": 0.5,
                            "frequency_penalty": 0.25, "k": 40, "safety_mode": "STRICT"}
    with pytest.raises(openai.BadRequestError, match="cohere does not support parameters: logit_bias, parallel_tool_calls"):
        client.chat.completions.create(model="command-r", messages=HI, logit_bias={"1": 2}, parallel_tool_calls=False)
    client.chat.completions.create(model="command-r", messages=HI, max_tokens=10, max_completion_tokens=20,
                                   stop=["a", "b"], extra_body={"k": 5, "p": 0.5})
    assert sent(cohere) == {"model": "command-r", "messages": HI, "stream": False, "max_tokens": 20,
                            "stop_sequences": ["a", "b"], "k": 5, "p": 0.5}


def test_deployment_params(gateway_server, cohere):
    gw = gateway_server(config(entry("tuned", cohere, temperature=0.1, max_tokens=99, safety_mode="OFF")))
    client = gw.client()
    client.chat.completions.create(model="tuned", messages=HI)
    assert sent(cohere) == {"model": "command-r", "messages": HI, "stream": False, "temperature": 0.1,
                            "max_tokens": 99, "safety_mode": "OFF"}
    client.chat.completions.create(model="tuned", messages=HI, temperature=0.9, extra_body={"safety_mode": "STRICT"})
    assert sent(cohere)["temperature"] == 0.9 and sent(cohere)["safety_mode"] == "STRICT"


def test_n_above_one_is_refused(gw, cohere):
    err = error_of(post(gw, {"model": "command-r", "messages": HI, "n": 2}), 400)
    assert err["message"].startswith("CohereException - ") and err["param"] == "n"
    assert not cohere.requests


def test_response_format(client, cohere):
    client.chat.completions.create(model="command-r", messages=HI, response_format={"type": "json_object"})
    assert sent(cohere)["response_format"] == {"type": "json_object"}
    schema = {"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"]}
    client.chat.completions.create(model="command-r", messages=HI, response_format={
        "type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": True}})
    assert sent(cohere)["response_format"] == {"type": "json_object", "json_schema": schema}
    client.chat.completions.create(model="command-r", messages=HI, response_format={"type": "text"})
    assert "response_format" not in sent(cohere)


def test_system_developer_and_multipart_text(client, cohere):
    client.chat.completions.create(model="command-r", messages=[
        {"role": "system", "content": "be brief", "name": "ops"},
        {"role": "developer", "content": [{"type": "text", "text": "no lists"}]},
        {"role": "user", "content": [{"type": "text", "text": "part one"}, {"type": "text", "text": "part two"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "earlier answer"}]},
        {"role": "user", "content": "and now?", "name": "alice"},
    ])
    assert sent(cohere)["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "system", "content": [{"type": "text", "text": "no lists"}]},
        {"role": "user", "content": [{"type": "text", "text": "part one"}, {"type": "text", "text": "part two"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "earlier answer"}]},
        {"role": "user", "content": "and now?"}]


def test_unsupported_messages_are_refused_with_a_reason(gw, cohere):
    cases = [
        ({"role": "function", "name": "f", "content": "x"}, "messages[1].role", "role 'tool'"),
        ({"role": "narrator", "content": "x"}, "messages[1].role", "no role 'narrator'"),
        ({"role": "tool", "content": "x"}, "messages[1].tool_call_id", "tool_call_id"),
        ({"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}]},
         "messages[1].content[0]", "not 'input_audio'"),
        ({"role": "system", "content": [{"type": "image_url", "image_url": {"url": PNG}}]},
         "messages[1].content[0]", "images in user messages only"),
    ]
    for message, param, says in cases:
        err = error_of(post(gw, {"model": "command-r", "messages": [HI[0], message]}), 400)
        assert err["message"].startswith("CohereException - ") and says in err["message"], err
        assert err["param"] == param
    err = error_of(post(gw, {"model": "command-r", "messages": HI, "tools": [{"type": "web_search"}]}), 400)
    assert err["param"] == "tools[0]" and "function tools only" in err["message"]
    assert not cohere.requests


# -- images -----------------------------------------------------------------------------------
def test_images_are_image_url_blocks(client, cohere):
    cohere.script(reply="a tiny png")
    reply = client.chat.completions.create(model="vision", messages=[{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]}])
    assert reply.choices[0].message.content == "a tiny png"
    assert sent(cohere)["model"] == "command-a-vision-07-2025"
    assert sent(cohere)["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]


# -- tools ------------------------------------------------------------------------------------
def test_tools_round_trip(client, cohere):
    cohere.script(tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}],
                  tool_plan="I will look up the weather in Paris.", input_tokens=20, output_tokens=10)
    first = client.chat.completions.create(model="command-r", messages=[{"role": "user", "content": "weather?"}],
                                           tools=[WEATHER_TOOL], tool_choice="auto")
    assert sent(cohere)["tools"] == [WEATHER_TOOL] and "tool_choice" not in sent(cohere)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.model_extra["reasoning_content"] == "I will look up the weather in Paris."
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather" and call.id.startswith("get_weather_")
    assert json.loads(call.function.arguments) == {"city": "Paris"}

    cohere.script(reply="It is sunny in Paris.")
    second = client.chat.completions.create(model="command-r", tools=[WEATHER_TOOL], messages=[
        {"role": "user", "content": "weather?"},
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 24C"},
    ])
    assert second.choices[0].message.content == "It is sunny in Paris."
    assistant, tool = sent(cohere)["messages"][1:]
    assert assistant == {"role": "assistant", "tool_plan": "I will look up the weather in Paris.", "tool_calls": [
        {"id": call.id, "type": "function", "function": {"name": "get_weather", "arguments": call.function.arguments}}]}
    assert tool == {"role": "tool", "tool_call_id": call.id, "content": "sunny, 24C"}


def test_tool_calls_from_another_model_keep_their_text_as_the_plan(client, cohere):
    client.chat.completions.create(model="command-r", tools=[WEATHER_TOOL], messages=[
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": "Let me check.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "rain"}]},
    ])
    assert sent(cohere)["messages"][1:] == [
        {"role": "assistant", "tool_plan": "Let me check.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "rain"}]}]


def test_tool_calls_streamed(client, cohere):
    cohere.script(tool_calls=[{"name": "get_weather", "arguments": {"city": "Oslo"}, "id": "get_weather_abc"},
                              {"name": "get_weather", "arguments": {"city": "Rome"}}],
                  tool_plan="Two cities.", input_tokens=12, output_tokens=9)
    chunks = list(client.chat.completions.create(model="command-r", messages=HI, tools=[WEATHER_TOOL], stream=True,
                                                 stream_options={"include_usage": True}))
    calls: dict[int, dict[str, Any]] = {}
    for c in chunks:
        for tc in (c.choices[0].delta.tool_calls or ()) if c.choices else ():
            slot = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
            slot["id"] = slot["id"] or tc.id
            slot["name"] += (tc.function.name or "") if tc.function else ""
            slot["arguments"] += (tc.function.arguments or "") if tc.function else ""
    assert [(k, v["name"], json.loads(v["arguments"])) for k, v in sorted(calls.items())] == [
        (0, "get_weather", {"city": "Oslo"}), (1, "get_weather", {"city": "Rome"})]
    assert calls[0]["id"] == "get_weather_abc" and calls[1]["id"].startswith("get_weather_")
    plan = "".join(c.choices[0].delta.model_extra.get("reasoning_content") or "" for c in chunks if c.choices)
    assert plan == "Two cities."
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]
    assert chunks[-1].usage.completion_tokens == 9


def test_tool_choice(client, cohere):
    other = {"type": "function", "function": {"name": "other", "parameters": {"type": "object", "properties": {}}}}
    client.chat.completions.create(model="command-r", messages=HI, tools=[WEATHER_TOOL, other], tool_choice="none")
    assert sent(cohere)["tool_choice"] == "NONE" and len(sent(cohere)["tools"]) == 2
    client.chat.completions.create(model="command-r", messages=HI, tools=[WEATHER_TOOL, other], tool_choice="required")
    assert sent(cohere)["tool_choice"] == "REQUIRED"
    client.chat.completions.create(model="command-r", messages=HI, tools=[WEATHER_TOOL, other],
                                   tool_choice={"type": "function", "function": {"name": "other"}})
    assert sent(cohere)["tools"] == [other] and sent(cohere)["tool_choice"] == "REQUIRED"
    strict = {"type": "function", "function": {**WEATHER_TOOL["function"], "strict": True}}
    client.chat.completions.create(model="command-r", messages=HI, tools=[strict])  # -> Cohere's strict_tools
    assert sent(cohere)["strict_tools"] is True and sent(cohere)["tools"] == [WEATHER_TOOL]
    client.chat.completions.create(model="command-r", messages=HI, functions=[WEATHER_TOOL["function"]])
    assert sent(cohere)["tools"] == [WEATHER_TOOL]


def test_tool_choice_naming_an_unknown_function_is_400(gw, cohere):
    err = error_of(post(gw, {"model": "command-r", "messages": HI, "tools": [WEATHER_TOOL],
                             "tool_choice": {"type": "function", "function": {"name": "nope"}}}), 400)
    assert err["param"] == "tool_choice" and "'nope'" in err["message"]
    assert not cohere.requests


# -- reasoning --------------------------------------------------------------------------------
def test_thinking_is_reasoning_content(client, cohere):
    cohere.script(thinking="let me think", reply="42")
    reply = client.chat.completions.create(model="reasoning", messages=HI, reasoning_effort="high")
    assert sent(cohere)["thinking"] == {"type": "enabled"}
    message = reply.choices[0].message
    assert message.content == "42" and message.model_extra["reasoning_content"] == "let me think"
    cohere.script(thinking="hmm", reply="42")
    chunks = list(client.chat.completions.create(model="reasoning", messages=HI, stream=True,
                                                 extra_body={"thinking": {"type": "enabled", "budget_tokens": 2048}}))
    assert sent(cohere)["thinking"] == {"type": "enabled", "token_budget": 2048}
    assert "".join(c.choices[0].delta.model_extra.get("reasoning_content") or "" for c in chunks if c.choices) == "hmm"
    assert text_of(chunks) == "42"
    client.chat.completions.create(model="reasoning", messages=HI, reasoning_effort="none")
    assert sent(cohere)["thinking"] == {"type": "disabled"}


# -- embeddings -------------------------------------------------------------------------------
def test_embeddings(client, cohere):
    one = client.embeddings.create(model="embedder", input="hello")
    request = cohere.requests[-1]
    assert request.path == "/v2/embed" and request.headers["authorization"] == f"Bearer {KEY}"
    assert sent(cohere) == {"model": "embed-english-v3.0", "texts": ["hello"], "input_type": "search_document",
                            "embedding_types": ["float"]}
    assert one.object == "list" and len(one.data) == 1 and len(one.data[0].embedding) == 8
    assert one.usage.prompt_tokens == one.usage.total_tokens == 2
    cohere.script(embeddings=[[0.5, 0.25], [0.125, 1.0]], input_tokens=9)
    many = client.embeddings.create(model="embedder", input=["a", "b"], dimensions=2,
                                    extra_body={"input_type": "search_query"})
    assert sent(cohere) == {"model": "embed-english-v3.0", "texts": ["a", "b"], "input_type": "search_query",
                            "embedding_types": ["float"], "output_dimension": 2}
    assert [d.embedding for d in many.data] == [[0.5, 0.25], [0.125, 1.0]] and [d.index for d in many.data] == [0, 1]
    assert many.usage.prompt_tokens == 9


def test_embedding_input_type_from_the_deployment(gateway_server, cohere):
    gw = gateway_server(config(entry("queries", cohere, "cohere/embed-v4.0", input_type="search_query",
                                     truncate="END")))
    gw.client().embeddings.create(model="queries", input=["q"], encoding_format="float")
    assert sent(cohere) == {"model": "embed-v4.0", "texts": ["q"], "input_type": "search_query",
                            "embedding_types": ["float"], "truncate": "END"}


def test_embedding_tokens_are_refused(gw, cohere):
    err = error_of(post(gw, {"model": "embedder", "input": [[1, 2, 3]]}, "/v1/embeddings"), 400)
    assert err["message"].startswith("CohereException - ") and err["param"] == "input"
    err = error_of(post(gw, {"model": "embedder", "prompt": "x"}, "/v1/completions"), 400)
    assert err["message"].startswith("CohereException - ")
    assert not cohere.requests


# -- errors -----------------------------------------------------------------------------------
def test_401_from_cohere(gateway_server, cohere):
    gw = gateway_server(config({"model_name": "m", "litellm_params": {
        "model": "cohere/command-r", "api_base": cohere.url, "api_key": "co-wrong-key-abcdef"}}))
    with pytest.raises(openai.AuthenticationError) as info:
        gw.client().chat.completions.create(model="m", messages=HI)
    assert info.value.status_code == 401
    assert info.value.body["message"] == "CohereException - invalid api token"
    assert info.value.body["type"] == "authentication_error"
    with pytest.raises(openai.AuthenticationError):
        gw.client().chat.completions.create(model="m", messages=HI, stream=True)


def test_429_is_a_rate_limit(gw, cohere):
    cohere.script(status=429, error="You are using a Trial key, which is limited to 20 API calls / minute.")
    with pytest.raises(openai.RateLimitError) as info:
        gw.client().chat.completions.create(model="command-r", messages=HI)
    assert info.value.status_code == 429
    assert info.value.body["message"] == ("CohereException - You are using a Trial key, which is limited to "
                                          "20 API calls / minute.")
    assert info.value.body["type"] == "rate_limit_error"


def test_500_keeps_status_and_message(gw, cohere):
    cohere.script(status=500, error="internal server error")
    with pytest.raises(openai.InternalServerError) as info:
        gw.client().chat.completions.create(model="command-r", messages=HI, stream=True)
    assert info.value.status_code == 500 and info.value.body["type"] == "api_error"
    assert info.value.body["message"] == "CohereException - internal server error"


def test_400_and_404_from_cohere(gw, cohere):
    cohere.script(status=400, error="invalid request: p must be between 0.01 and 0.99")
    err = error_of(post(gw, {"model": "command-r", "messages": HI, "top_p": 1.0}), 400)
    assert err["message"] == "CohereException - invalid request: p must be between 0.01 and 0.99"
    assert err["type"] == "invalid_request_error"
    cohere.models.discard("command-r")
    err = error_of(post(gw, {"model": "command-r", "messages": HI}), 404)
    assert err["message"].startswith("CohereException - model 'command-r' not found") and err["type"] == "not_found_error"


def test_malformed_error_body(gw, cohere):
    cohere.script(raw=b"<html><body>502 Bad Gateway</body></html>", status=502)
    err = error_of(post(gw, {"model": "command-r", "messages": HI}), 502)
    assert err["message"] == "CohereException - <html><body>502 Bad Gateway</body></html>"


def test_malformed_reply_is_502(gw, cohere):
    cohere.script(raw=b'{"id": "x", "message": {"role": "assis')
    err = error_of(post(gw, {"model": "command-r", "messages": HI}), 502)
    assert err["message"].startswith("CohereException - upstream returned a reply that could not be read")
    cohere.script(raw=b'{"id": "x", "finish_reason": "COMPLETE"}')  # JSON, but no message
    err = error_of(post(gw, {"model": "command-r", "messages": HI}), 502)
    assert err["message"].startswith("CohereException - ")
    cohere.script(raw=b'{"id": "x", "embeddings": "nope"}')
    err = error_of(post(gw, {"model": "embedder", "input": "x"}, "/v1/embeddings"), 502)
    assert err["message"].startswith("CohereException - ")


def test_generation_error_is_not_a_success(gw, cohere):
    cohere.script(reply="partial", finish_reason="ERROR", error="the model crashed")
    cohere.script(raw=json.dumps({"id": "x", "finish_reason": "ERROR", "message": {"role": "assistant", "content": [
        {"type": "text", "text": "partial"}]}}).encode())
    with pytest.raises(openai.APIError) as info:
        list(gw.client().chat.completions.create(model="command-r", messages=HI, stream=True))
    assert info.value.message == "CohereException - the generation failed (finish_reason ERROR): the model crashed"
    err = error_of(post(gw, {"model": "command-r", "messages": HI}), 502)
    assert err["message"] == "CohereException - the generation failed (finish_reason ERROR)"


def test_malformed_stream_event(gw, cohere):
    cohere.script(raw=b'event: message-start\ndata: {"id":"m1","type":"message-start","delta":{"message":'
                      b'{"role":"assistant"}}}\n\nevent: content-delta\ndata: not json\n\n')
    with pytest.raises(openai.APIError) as info:
        list(gw.client().chat.completions.create(model="command-r", messages=HI, stream=True))
    assert info.value.message == "CohereException - Cohere sent a stream event that is not JSON"


def test_stream_cut_before_message_end(gw, cohere):
    cohere.script(chunks=["half"], cut=True)
    received = []
    with pytest.raises(openai.APIError) as info:
        for chunk in gw.client().chat.completions.create(model="command-r", messages=HI, stream=True):
            received.append(chunk)
    assert text_of(received) == "half"
    assert info.value.message == "CohereException - Cohere closed the stream before it finished"


# -- credentials, configs and names -----------------------------------------------------------
def test_a_key_goes_only_to_its_own_host(gateway_server, fake_upstream):
    with FakeCohere() as explicit, FakeCohere() as from_env:
        gw = gateway_server(config(
            entry("explicit", explicit),
            {"model_name": "env", "litellm_params": {"model": "cohere/command-r-plus", "api_base": from_env.url}},
            {"model_name": "gpt", "litellm_params": {"model": "openai/upstream-model", "api_base": fake_upstream.url,
                                                     "api_key": "sk-openai-secret"}},
        ), env={"OPENAI_API_KEY": "sk-env-openai-secret", "COHERE_API_KEY": "co-env-cohere-secret",
                "ANTHROPIC_API_KEY": "sk-ant-secret"})
        client = gw.client()
        for model in ("explicit", "env", "gpt"):
            client.chat.completions.create(model=model, messages=HI)
            list(client.chat.completions.create(model=model, messages=HI, stream=True))
        client.embeddings.create(model="env", input="x")
        assert [r.headers["authorization"] for r in explicit.requests] == [f"Bearer {KEY}"] * 2
        assert [r.headers["authorization"] for r in from_env.requests] == ["Bearer co-env-cohere-secret"] * 3
        assert {r.headers.get("authorization") for r in fake_upstream.requests} == {"Bearer sk-openai-secret"}
        for fake in (explicit, from_env):
            for r in fake.requests:
                seen = r.body.decode() + json.dumps(r.headers)
                assert "sk-openai" not in seen and "sk-env-openai" not in seen and "sk-ant" not in seen
        for r in fake_upstream.requests:
            assert "co-" not in json.dumps(dict(r.headers)) and b"co-env" not in r.body


def test_litellm_docs_config(gateway_server, cohere):
    """LiteLLM's Cohere docs, unchanged: the base comes from COHERE_API_BASE, the key from the env."""
    cohere.api_key = "co-from-the-environment"
    gw = gateway_server(
        {"model_list": [
            {"model_name": "command-r-plus", "litellm_params": {"model": "cohere/command-r-plus",
                                                                "api_key": "os.environ/COHERE_API_KEY"}},
            {"model_name": "command-a", "litellm_params": {"model": "cohere_chat/command-a-03-2025",
                                                           "api_key": "os.environ/COHERE_API_KEY"}},
            {"model_name": "command-r-v1", "litellm_params": {"model": "cohere_chat/v1/command-r"}},
            {"model_name": "cohere-embed", "litellm_params": {"model": "cohere/embed-english-v3.0"}},
        ]},
        env={"COHERE_API_KEY": "co-from-the-environment", "COHERE_API_BASE": cohere.url})
    client = gw.client()
    assert client.chat.completions.create(model="command-r-plus", messages=HI).choices[0].message.content
    assert sent(cohere)["model"] == "command-r-plus"
    reply = client.chat.completions.create(model="command-a", messages=HI)
    assert sent(cohere)["model"] == "command-a-03-2025" and reply.choices[0].message.content
    chunks = list(client.chat.completions.create(model="command-r-v1", messages=HI, stream=True))
    assert sent(cohere)["model"] == "command-r" and cohere.requests[-1].path == "/v2/chat"
    assert {c.model for c in chunks} == {"command-r"}
    assert client.embeddings.create(model="cohere-embed", input="x").data
    assert {r.headers["authorization"] for r in cohere.requests} == {"Bearer co-from-the-environment"}
    deployment = gw.gateway.router.groups["command-a"][0]
    assert deployment.handler.display_name == "Cohere" and deployment.provider == "cohere_chat"


def test_bare_command_name_goes_to_cohere(gateway_server, cohere, fake_upstream):
    cohere.api_key = "co-sdk-variable"
    gw = gateway_server({"model_list": [{"model_name": "command-r", "litellm_params": {"model": "command-r"}}]},
                        env={"CO_API_KEY": "co-sdk-variable", "COHERE_API_BASE": cohere.url,
                             "OPENAI_API_KEY": "sk-openai-secret", "OPENAI_API_BASE": fake_upstream.url})
    reply = gw.client().chat.completions.create(model="command-r", messages=HI)
    assert reply.choices[0].message.content == "cohere says: hello there"
    assert cohere.requests[-1].headers["authorization"] == "Bearer co-sdk-variable"
    assert not fake_upstream.requests
    assert gw.gateway.router.groups["command-r"][0].provider == "cohere"


def test_default_api_base_and_written_forms(gateway_server, cohere):
    gw = gateway_server(config(
        {"model_name": "default", "litellm_params": {"model": "cohere/command-r", "api_key": KEY}},
        *[entry(f"form{i}", cohere, api_base=cohere.url + suffix)
          for i, suffix in enumerate(("/", "/v1", "/v2/", "/v2/chat", "/v1/chat"))]))
    deployment = gw.gateway.router.groups["default"][0]
    assert deployment.api_base == "https://api.cohere.com" and deployment.handler.display_name == "Cohere"
    client = gw.client()
    for i in range(5):
        client.chat.completions.create(model=f"form{i}", messages=HI)
        assert cohere.requests[-1].path == "/v2/chat"


# -- the fake speaks Cohere's protocol: the official SDK parses every reply ---------------------
def test_the_fake_against_the_official_cohere_sdk():
    pytest.importorskip("cohere", reason="the official `cohere` SDK is not installed (the dev group needs it); "
                        "run tests/peers/cohere_sdk_check.py in a venv that has it")
    spec = importlib.util.spec_from_file_location("cohere_sdk_check", PEERS / "cohere_sdk_check.py")
    check = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(check)  # type: ignore[union-attr]
    assert check.check(report=lambda line: None) == 6


# -- the translator alone ---------------------------------------------------------------------
def _dep(**kw: Any) -> Any:
    from gateway.core.providers.cohere import Cohere
    from gateway.core.providers.deployment import Deployment

    values = dict(id="d", model_name="m", provider="cohere", upstream_model="command-r", api_base="https://api.cohere.com",
                  api_key="co-x", api_version=None, timeout=60.0, stream_timeout=60.0, stream_total_timeout=60.0,
                  weight=1.0, input_cost_per_token=None, output_cost_per_token=None, mock_response=None,
                  extra_headers={}, model_info={}, handler=Cohere())
    values.update(kw)
    return Deployment(**values)


def _events(*events: dict[str, Any], done: bool = True) -> bytes:
    out = b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)
    return out + (b"data: [DONE]\n\n" if done else b"")


STREAM = _events(
    {"id": "m1", "type": "message-start", "delta": {"message": {"role": "assistant"}}},
    {"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}},
    {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "Hi"}}}},
    {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": " there"}}}},
    {"type": "content-end", "index": 0},
    {"type": "message-end", "delta": {"finish_reason": "COMPLETE", "usage": {
        "billed_units": {"input_tokens": 3, "output_tokens": 2}, "tokens": {"input_tokens": 63, "output_tokens": 2}}}})


def test_stream_events_split_anywhere():
    dep = _dep()
    data = STREAM.replace(b"\n", b"\r\n")
    for size in (1, 2, 7, len(data)):
        translator = dep.handler.stream(dep, "acompletion")
        chunks = []
        for i in range(0, len(data), size):
            chunks += translator.feed(data[i:i + size])
        chunks += translator.end()
        assert [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]] == ["", "Hi", " there", None]
        assert {c["id"] for c in chunks} == {"m1"}
        assert chunks[-1]["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        assert translator.feed(b'event: content-delta\ndata: {"type":"content-delta"}\n\n') == []


def test_last_event_without_blank_line_is_read_at_the_end():
    dep = _dep()
    translator = dep.handler.stream(dep, "acompletion")
    data = STREAM.rstrip(b"\n")[: -len(b"data: [DONE]")].rstrip(b"\n")
    translator.feed(data)
    tail = translator.end()
    assert [c["choices"][0]["finish_reason"] for c in tail if c["choices"]] == ["stop"] and tail[-1]["usage"]


def test_request_and_reply_shapes_alone():
    dep = _dep(api_base="https://proxy.example/cohere/v2", extra_headers={"x-team": "a"})
    req = dep.handler.build_request(dep, "acompletion", {"model": "command-r", "messages": HI}, False)
    assert req.url == "https://proxy.example/cohere/v2/chat"
    assert req.headers["authorization"] == "Bearer co-x" and req.headers["x-team"] == "a"
    reply = dep.handler.parse_reply(dep, "acompletion", json.dumps({
        "id": "r1", "finish_reason": "COMPLETE", "message": {"role": "assistant", "content": [
            {"type": "text", "text": "see [1]"}], "citations": [{"start": 4, "end": 7, "text": "[1]", "sources": []}]},
        "usage": {"billed_units": {"input_tokens": 1, "output_tokens": 2}}}).encode())
    assert reply["id"] == "r1" and reply["choices"][0]["message"]["citations"][0]["text"] == "[1]"
    err = dep.handler.parse_error(dep, 429, b'{"id": "e", "message": "slow down"}')
    assert (err.message, err.type) == ("slow down", "rate_limit_error")
    assert dep.handler.parse_error(dep, 503, b"").message == "upstream returned HTTP 503"


# -- the micro-benchmark (not a test) ---------------------------------------------------------
def bench(n: int = 20000) -> None:
    """CPU per call (build_request + parse_reply) and per streamed chunk (feed one content-delta event)."""
    dep = _dep()
    provider = dep.handler
    body = {"model": "command-r", "messages": [{"role": "system", "content": "You are helpful."},
                                               {"role": "user", "content": "Why is the sky blue? " * 10}],
            "temperature": 0.2, "max_tokens": 256, "stream": False}
    reply = json.dumps({"id": "5a4c5b0e-8e3a-4a9f-9d1e-0c7c1e9b8f11", "finish_reason": "COMPLETE",
                        "message": {"role": "assistant", "content": [
                            {"type": "text", "text": "Because of Rayleigh scattering. " * 10}]},
                        "usage": {"billed_units": {"input_tokens": 60, "output_tokens": 70},
                                  "tokens": {"input_tokens": 120, "output_tokens": 70}}}).encode()
    event = _events({"type": "content-delta", "index": 0,
                     "delta": {"message": {"content": {"text": " scattering"}}}, "logprobs": None}, done=False)

    def per(fn: Any, count: int) -> float:
        for _ in range(min(count, 1000)):
            fn()
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(count):
                fn()
            best = min(best, (time.perf_counter() - started) / count)
        return best * 1e6

    build = per(lambda: provider.build_request(dep, "acompletion", body, False), n)
    parse = per(lambda: provider.parse_reply(dep, "acompletion", reply), n)
    tool_body = {**body, "tools": [WEATHER_TOOL], "tool_choice": "required"}
    build_tools = per(lambda: provider.build_request(dep, "acompletion", tool_body, False), n)
    translator = provider.stream(dep, "acompletion")
    chunk = per(lambda: translator.feed(event), n * 5)
    batch_translator = provider.stream(dep, "acompletion")
    batch = event * 50
    batched = per(lambda: batch_translator.feed(batch), n // 10) / 50
    embed_body = {"model": "embed-english-v3.0", "input": ["a sentence to embed"] * 8}
    embed_reply = json.dumps({"id": "e", "embeddings": {"float": [[0.1] * 1024] * 8}, "texts": ["x"] * 8,
                              "meta": {"billed_units": {"input_tokens": 40}}}).encode()
    embed = (per(lambda: provider.build_request(dep, "aembedding", embed_body, False), n)
             + per(lambda: provider.parse_reply(dep, "aembedding", embed_reply), n // 20))
    print(f"build_request (chat, 2 messages, 2 options): {build:.2f} us")
    print(f"build_request (same, with one tool and tool_choice): {build_tools:.2f} us")
    print(f"parse_reply (chat.completion): {parse:.2f} us")
    print(f"per call (build + parse): {build + parse:.2f} us")
    print(f"per embedding call (8 texts, 1024 dims: build + parse): {embed:.2f} us")
    print(f"per stream chunk (one content-delta event per feed): {chunk:.2f} us")
    print(f"per stream chunk (50 events per feed): {batched:.2f} us")


if __name__ == "__main__":
    if "--bench" in sys.argv:
        bench()
