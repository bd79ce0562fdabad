"""The native `ollama/` and `ollama_chat/` providers, end to end: the official `openai` SDK talks to a
real gateway, which talks to a fake Ollama on loopback (tests/peers/ollama_api.py) speaking Ollama's
native API. The fake itself is checked against the official `ollama` Python client.

The config is the one LiteLLM users write: `model: ollama/llama3`, `api_base: http://host:11434`.

Translation cost: `uv run --no-sync python tests/test_provider_ollama.py --bench` prints the CPU
per call and per streamed chunk.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

_spec = importlib.util.spec_from_file_location("ollama_api", Path(__file__).parent / "peers" / "ollama_api.py")
ollama_api = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
sys.modules.setdefault("ollama_api", ollama_api)
_spec.loader.exec_module(ollama_api)  # type: ignore[union-attr]
FakeOllama = ollama_api.FakeOllama

ADMIN = {"Authorization": "Bearer sk-1234"}
HI = [{"role": "user", "content": "hello there"}]
IN_PRICE, OUT_PRICE = 0.001, 0.002
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


# -- fixtures and helpers ---------------------------------------------------------------------
@pytest.fixture
def ollama():
    with FakeOllama() as fake:
        yield fake


def entry(name: str, fake: Any, model: str = "ollama/llama3", **params: Any) -> dict[str, Any]:
    return {"model_name": name, "litellm_params": {"model": model, "api_base": fake.url, **params}}


def config(*entries: dict[str, Any], **router: Any) -> dict[str, Any]:
    return {"model_list": list(entries), "router_settings": {"num_retries": 0, **router},
            "general_settings": {"spend_flush_interval_s": 0.05}}


@pytest.fixture
def gw(gateway_server, ollama):
    return gateway_server(config(entry("llama3", ollama),
                                 entry("llama3-chat", ollama, "ollama_chat/llama3"),
                                 entry("llava", ollama, "ollama/llava"),
                                 entry("embedder", ollama, "ollama/nomic-embed-text"),
                                 entry("priced", ollama, input_cost_per_token=IN_PRICE, output_cost_per_token=OUT_PRICE)))


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


def spend_rows(gw: Any, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        rows = httpx.get(gw.url + "/spend/logs", headers=ADMIN, timeout=10).json()
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


# -- chat -------------------------------------------------------------------------------------
def test_chat(client, ollama):
    ollama.script(prompt_eval_count=11, eval_count=5)
    reply = client.chat.completions.create(model="llama3", messages=HI)
    assert reply.object == "chat.completion" and reply.id.startswith("chatcmpl-")
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content == "ollama says: hello there"
    assert reply.choices[0].finish_reason == "stop"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens) == (11, 5, 16)
    request = ollama.requests[-1]
    assert request.path == "/api/chat"
    assert request.json == {"model": "llama3", "messages": HI, "stream": False}
    assert "authorization" not in request.headers


def test_chat_stream(client, ollama):
    ollama.script(chunks=["Hel", "lo", " world"], prompt_eval_count=7, eval_count=3)
    chunks = list(client.chat.completions.create(model="llama3", messages=HI, stream=True,
                                                 stream_options={"include_usage": True}))
    assert sent(ollama)["stream"] is True
    text = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert text == ["Hel", "lo", " world"]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert len({c.id for c in chunks}) == 1
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (7, 3)


def test_stream_usage_hidden_unless_asked(client, ollama):
    chunks = list(client.chat.completions.create(model="llama3", messages=HI, stream=True))
    assert all(c.usage is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "ollama says: hello there"


@pytest.mark.db
def test_streams_and_calls_are_billed_from_ollamas_counts(gw, ollama):
    key = httpx.post(gw.url + "/key/generate", json={}, headers=ADMIN, timeout=10).json()["key"]
    client = gw.client(api_key=key)
    ollama.script(chunks=["a", "b", "c"], prompt_eval_count=100, eval_count=30)
    ollama.script(prompt_eval_count=40, eval_count=8)
    stream = client.chat.completions.create(model="priced", messages=HI, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "abc"
    client.chat.completions.create(model="priced", messages=HI)
    rows = spend_rows(gw, 2)
    assert sorted((r["prompt_tokens"], r["completion_tokens"], r["total_tokens"]) for r in rows) == [
        (40, 8, 48), (100, 30, 130)]
    for row in rows:
        assert row["status"] == "success" and row["call_type"] == "acompletion"
        assert "usage_estimated" not in row["metadata"]
        assert row["spend"] == pytest.approx(row["prompt_tokens"] * IN_PRICE + row["completion_tokens"] * OUT_PRICE)
        assert row["api_base"] == ollama.url
    info = httpx.get(gw.url + "/key/info", params={"key": key}, headers=ADMIN, timeout=10).json()["info"]
    assert info["spend"] == pytest.approx(140 * IN_PRICE + 38 * OUT_PRICE)


def test_sampling_parameters_become_options(client, ollama):
    client.chat.completions.create(
        model="llama3", messages=HI, temperature=0.2, top_p=0.9, seed=7, stop="END", max_tokens=64,
        presence_penalty=0.5, frequency_penalty=0.25, user="end-user-1",
        extra_body={"top_k": 40, "num_ctx": 4096, "keep_alive": "10m", "repeat_penalty": 1.1})
    body = sent(ollama)
    assert body["options"] == {"temperature": 0.2, "top_p": 0.9, "seed": 7, "stop": ["END"], "num_predict": 64,
                               "presence_penalty": 0.5, "frequency_penalty": 0.25, "top_k": 40, "num_ctx": 4096,
                               "repeat_penalty": 1.1}
    assert body["keep_alive"] == "10m" and "user" not in body and "max_tokens" not in body
    client.chat.completions.create(model="llama3", messages=HI, max_tokens=10, max_completion_tokens=20,
                                   stop=["a", "b"])
    assert sent(ollama)["options"] == {"num_predict": 20, "stop": ["a", "b"]}


def test_response_format(client, ollama):
    client.chat.completions.create(model="llama3", messages=HI, response_format={"type": "json_object"})
    assert sent(ollama)["format"] == "json"
    schema = {"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"]}
    client.chat.completions.create(model="llama3", messages=HI, response_format={
        "type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": True}})
    assert sent(ollama)["format"] == schema
    client.chat.completions.create(model="llama3", messages=HI, response_format={"type": "text"})
    assert "format" not in sent(ollama)


def test_deployment_params(gateway_server, ollama):
    """Ollama's own keys in litellm_params (num_ctx, keep_alive) and OpenAI's request defaults."""
    gw = gateway_server(config(entry("tuned", ollama, num_ctx=8192, keep_alive=-1, temperature=0.1, max_tokens=99)))
    client = gw.client()
    client.chat.completions.create(model="tuned", messages=HI)
    body = sent(ollama)
    assert body["options"] == {"num_ctx": 8192, "temperature": 0.1, "num_predict": 99}
    assert body["keep_alive"] == -1
    client.chat.completions.create(model="tuned", messages=HI, temperature=0.9, extra_body={"num_ctx": 2048})
    assert sent(ollama)["options"] == {"num_ctx": 2048, "temperature": 0.9, "num_predict": 99}


def test_system_developer_and_multipart_text(client, ollama):
    client.chat.completions.create(model="llama3", messages=[
        {"role": "system", "content": "be brief"},
        {"role": "developer", "content": [{"type": "text", "text": "no lists"}]},
        {"role": "user", "content": [{"type": "text", "text": "part one"}, {"type": "text", "text": "part two"}]},
    ])
    assert sent(ollama)["messages"] == [{"role": "system", "content": "be brief"},
                                        {"role": "system", "content": "no lists"},
                                        {"role": "user", "content": "part one\npart two"}]


def test_thinking_is_reasoning_content(client, ollama):
    ollama.script(thinking="let me think", reply="42")
    reply = client.chat.completions.create(model="llama3", messages=HI, reasoning_effort="high")
    assert sent(ollama)["think"] is True
    message = reply.choices[0].message
    assert message.content == "42" and message.model_extra["reasoning_content"] == "let me think"
    ollama.script(thinking="hmm", reply="42")
    chunks = list(client.chat.completions.create(model="llama3", messages=HI, stream=True))
    assert [c.choices[0].delta.model_extra.get("reasoning_content") for c in chunks if c.choices][0] == "hmm"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "42"


# -- ollama_chat/ and api_base forms ----------------------------------------------------------
def test_ollama_chat_prefix(client, ollama):
    ollama.script(chunks=["x", "y"])
    reply = client.chat.completions.create(model="llama3-chat", messages=HI)
    assert reply.choices[0].message.content == "xy"
    assert ollama.requests[-1].path == "/api/chat" and sent(ollama)["model"] == "llama3"
    stream = client.chat.completions.create(model="llama3-chat", messages=HI, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "ollama says: hello there"


@pytest.mark.parametrize("suffix", ["/", "/v1", "/v1/"])
def test_api_base_with_v1_or_slash_still_works(gateway_server, ollama, suffix):
    gw = gateway_server(config({"model_name": "old", "litellm_params": {
        "model": "ollama/llama3", "api_base": ollama.url + suffix}}))
    assert gw.client().chat.completions.create(model="old", messages=HI).choices[0].message.content
    assert ollama.requests[-1].path == "/api/chat"


def test_default_api_base_is_localhost_11434(gateway_server):
    gw = gateway_server(config({"model_name": "local", "litellm_params": {"model": "ollama_chat/llama3"}}))
    deployment = gw.gateway.router.groups["local"][0]
    assert deployment.api_base == "http://localhost:11434"
    assert deployment.handler.display_name == "Ollama"


# -- text completions and embeddings ----------------------------------------------------------
def test_completion(client, ollama):
    ollama.script(prompt_eval_count=4, eval_count=6)
    reply = client.completions.create(model="llama3", prompt="Once upon", max_tokens=5, suffix="The end.")
    assert reply.object == "text_completion" and reply.choices[0].text == "ollama says: Once upon"
    assert reply.choices[0].finish_reason == "stop"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (4, 6)
    assert ollama.requests[-1].path == "/api/generate"
    assert sent(ollama) == {"model": "llama3", "prompt": "Once upon", "stream": False, "suffix": "The end.",
                            "options": {"num_predict": 5}}


def test_completion_stream(client, ollama):
    ollama.script(chunks=["one", " two"], done_reason="length", prompt_eval_count=2, eval_count=2)
    chunks = list(client.completions.create(model="llama3", prompt=["count"], stream=True,
                                            stream_options={"include_usage": True}))
    assert sent(ollama)["prompt"] == "count" and sent(ollama)["stream"] is True
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "one two"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["length"]
    assert chunks[-1].usage.total_tokens == 4


def test_completion_takes_one_prompt(gw, ollama):
    resp = httpx.post(gw.url + "/v1/completions", headers=ADMIN, timeout=10,
                      json={"model": "llama3", "prompt": ["one", "two"]})
    err = error_of(resp, 400)
    assert err["message"].startswith("OllamaException - ") and err["param"] == "prompt"
    assert not ollama.requests


def test_embeddings(client, ollama):
    one = client.embeddings.create(model="embedder", input="hello")
    assert ollama.requests[-1].path == "/api/embed"
    assert sent(ollama) == {"model": "nomic-embed-text", "input": "hello"}
    assert len(one.data) == 1 and len(one.data[0].embedding) == 4
    assert one.usage.prompt_tokens == one.usage.total_tokens == 2
    ollama.script(embeddings=[[0.5, 0.25], [0.125, 1.0]], prompt_eval_count=9)
    many = client.embeddings.create(model="embedder", input=["a", "b"], dimensions=2)
    assert sent(ollama) == {"model": "nomic-embed-text", "input": ["a", "b"], "dimensions": 2}
    assert [d.embedding for d in many.data] == [[0.5, 0.25], [0.125, 1.0]] and [d.index for d in many.data] == [0, 1]
    assert many.usage.prompt_tokens == 9


# -- tools ------------------------------------------------------------------------------------
def test_tools_round_trip(client, ollama):
    ollama.script(tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}], prompt_eval_count=20,
                  eval_count=10)
    first = client.chat.completions.create(model="llama3", messages=[{"role": "user", "content": "weather?"}],
                                           tools=[WEATHER_TOOL], tool_choice="auto")
    assert sent(ollama)["tools"] == [WEATHER_TOOL]
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather" and call.id
    assert json.loads(call.function.arguments) == {"city": "Paris"}

    ollama.script(reply="It is sunny in Paris.")
    second = client.chat.completions.create(model="llama3", tools=[WEATHER_TOOL], messages=[
        {"role": "user", "content": "weather?"},
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 24C"},
    ])
    assert second.choices[0].message.content == "It is sunny in Paris."
    assistant, tool = sent(ollama)["messages"][1:]
    assert assistant == {"role": "assistant", "content": "", "tool_calls": [
        {"id": call.id, "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]}
    assert tool == {"role": "tool", "content": "sunny, 24C", "tool_name": "get_weather", "tool_call_id": call.id}


def test_tool_calls_streamed(client, ollama):
    ollama.script(tool_calls=[{"name": "get_weather", "arguments": {"city": "Oslo"}, "id": "call_abc"},
                              {"name": "get_weather", "arguments": {"city": "Rome"}}])
    chunks = list(client.chat.completions.create(model="llama3", messages=HI, tools=[WEATHER_TOOL], stream=True))
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or ())]
    assert [(tc.index, tc.function.name, json.loads(tc.function.arguments)) for tc in calls] == [
        (0, "get_weather", {"city": "Oslo"}), (1, "get_weather", {"city": "Rome"})]
    assert calls[0].id == "call_abc" and calls[1].id.startswith("call_")
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]


def test_tool_choice_none_and_named(client, ollama):
    other = {"type": "function", "function": {"name": "other", "parameters": {"type": "object", "properties": {}}}}
    client.chat.completions.create(model="llama3", messages=HI, tools=[WEATHER_TOOL, other], tool_choice="none")
    assert "tools" not in sent(ollama)
    client.chat.completions.create(model="llama3", messages=HI, tools=[WEATHER_TOOL, other],
                                   tool_choice={"type": "function", "function": {"name": "other"}})
    assert sent(ollama)["tools"] == [other]


def test_bad_tool_arguments_are_400(gw, ollama):
    messages = [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]}]
    resp = httpx.post(gw.url + "/v1/chat/completions", headers=ADMIN, timeout=10,
                      json={"model": "llama3", "messages": messages})
    err = error_of(resp, 400)
    assert err["param"] == "messages[0].tool_calls[0].function.arguments"
    assert not ollama.requests


# -- images -----------------------------------------------------------------------------------
def test_images_become_base64_on_the_message(client, ollama):
    ollama.script(reply="a tiny png")
    reply = client.chat.completions.create(model="llava", messages=[{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "low"}},
        {"type": "image_url", "image_url": {"url": PNG}},
    ]}])
    assert reply.choices[0].message.content == "a tiny png"
    assert sent(ollama)["messages"] == [{"role": "user", "content": "what is this?", "images": [PNG, PNG]}]


def test_image_links_are_refused_with_a_reason(gw, ollama):
    resp = httpx.post(gw.url + "/v1/chat/completions", headers=ADMIN, timeout=10, json={
        "model": "llava", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]})
    err = error_of(resp, 400)
    assert err["message"].startswith("OllamaException - ") and "data: URL" in err["message"]
    assert err["param"] == "messages[0].content[0].image_url"
    assert not ollama.requests


# -- errors -----------------------------------------------------------------------------------
def test_model_not_found_is_404(gw, ollama):
    gw_model = {"model": "llama3", "messages": HI}
    ollama.models.discard("llama3")
    resp = httpx.post(gw.url + "/v1/chat/completions", headers=ADMIN, timeout=10, json=gw_model)
    err = error_of(resp, 404)
    assert err["message"] == 'OllamaException - model "llama3" not found, try pulling it first'
    assert err["type"] == "not_found_error"
    with pytest.raises(openai.NotFoundError) as info:
        gw.client().chat.completions.create(model="llama3", messages=HI, stream=True)
    assert info.value.status_code == 404 and "try pulling it first" in info.value.message


def test_500_keeps_status_and_message(gw, ollama):
    ollama.script(status=500, error="llama runner process has terminated: signal: killed")
    with pytest.raises(openai.InternalServerError) as info:
        gw.client().chat.completions.create(model="llama3", messages=HI)
    assert info.value.status_code == 500
    assert info.value.body["message"] == "OllamaException - llama runner process has terminated: signal: killed"
    assert info.value.body["type"] == "api_error"


def test_400_from_ollama(gw, ollama):
    ollama.script(status=400, error='invalid format: "yaml"')
    resp = httpx.post(gw.url + "/v1/completions", headers=ADMIN, timeout=10, json={"model": "llama3", "prompt": "x"})
    err = error_of(resp, 400)
    assert err["message"] == 'OllamaException - invalid format: "yaml"' and err["type"] == "invalid_request_error"


def test_malformed_error_body(gw, ollama):
    ollama.script(raw=b"<html><body>502 Bad Gateway</body></html>", status=502)
    err = error_of(httpx.post(gw.url + "/v1/chat/completions", headers=ADMIN, timeout=10,
                              json={"model": "llama3", "messages": HI}), 502)
    assert err["message"] == "OllamaException - <html><body>502 Bad Gateway</body></html>"


def test_malformed_reply_is_502(gw, ollama):
    ollama.script(raw=b'{"model": "llama3", "done": tr')
    err = error_of(httpx.post(gw.url + "/v1/chat/completions", headers=ADMIN, timeout=10,
                              json={"model": "llama3", "messages": HI}), 502)
    assert err["message"].startswith("OllamaException - upstream returned a reply that could not be read")
    ollama.script(raw=b'{"model": "llama3", "done": true}')  # JSON, but no message
    err = error_of(httpx.post(gw.url + "/v1/chat/completions", headers=ADMIN, timeout=10,
                              json={"model": "llama3", "messages": HI}), 502)
    assert err["message"].startswith("OllamaException - ")


def test_error_line_inside_a_stream(gw, ollama):
    ollama.script(chunks=["partial", " answer"], stream_error="an error was encountered while running the model")
    received = []
    with pytest.raises(openai.APIError) as info:
        for chunk in gw.client().chat.completions.create(model="llama3", messages=HI, stream=True):
            received.append(chunk)
    assert "".join(c.choices[0].delta.content or "" for c in received if c.choices) == "partial answer"
    assert info.value.message == "OllamaException - an error was encountered while running the model"


def test_malformed_stream_line(gw, ollama):
    ollama.script(raw=b'{"model":"llama3","message":{"role":"assistant","content":"ok"},"done":false}\nnot json\n')
    with pytest.raises(openai.APIError) as info:
        list(gw.client().completions.create(model="llama3", prompt="x", stream=True))
    assert info.value.message.startswith("OllamaException - ")


def test_stream_cut_before_done(gw, ollama):
    ollama.script(raw=b'{"model":"llama3","message":{"role":"assistant","content":"half"},"done":false}\n')
    with pytest.raises(openai.APIError) as info:
        list(gw.client().chat.completions.create(model="llama3", messages=HI, stream=True))
    assert info.value.message == "OllamaException - Ollama closed the stream before it finished"


# -- credentials ------------------------------------------------------------------------------
def test_a_key_goes_only_to_its_own_deployment(gateway_server, fake_upstream):
    with FakeOllama() as proxied, FakeOllama() as local:
        gw = gateway_server(config(
            entry("behind-proxy", proxied, api_key="sk-ollama-proxy-secret"),
            entry("local", local, "ollama_chat/llama3"),
            {"model_name": "gpt", "litellm_params": {"model": "openai/upstream-model", "api_base": fake_upstream.url,
                                                     "api_key": "sk-openai-secret"}},
        ), env={"OPENAI_API_KEY": "sk-env-openai-secret", "OLLAMA_API_KEY": "sk-env-ollama"})
        client = gw.client()
        for model in ("behind-proxy", "local", "gpt"):
            client.chat.completions.create(model=model, messages=HI)
            list(client.chat.completions.create(model=model, messages=HI, stream=True))
        client.embeddings.create(model="local", input="x")
        assert [r.headers.get("authorization") for r in proxied.requests] == ["Bearer sk-ollama-proxy-secret"] * 2
        assert all("authorization" not in r.headers for r in local.requests) and len(local.requests) == 3
        upstream_auth = {r.headers.get("authorization") for r in fake_upstream.requests}
        assert upstream_auth == {"Bearer sk-openai-secret"}
        for fake in (proxied, local):
            assert not any(b"sk-openai-secret" in r.body or "sk-openai" in json.dumps(r.headers) for r in fake.requests)


def test_basic_auth_in_api_base(gateway_server, ollama):
    base = ollama.url.replace("http://", "http://user:pa%40ss@")
    gw = gateway_server(config({"model_name": "m", "litellm_params": {"model": "ollama/llama3", "api_base": base}}))
    gw.client().chat.completions.create(model="m", messages=HI)
    expected = "Basic " + base64.b64encode(b"user:pa@ss").decode()
    assert ollama.requests[-1].headers["authorization"] == expected


# -- the fake speaks Ollama's protocol: the official client parses every reply ------------------
def test_the_fake_against_the_official_ollama_client(ollama):
    import ollama as ollama_sdk

    def get_weather(city: str) -> str:
        """Get the weather in a city.

        Args:
          city: the city
        """
        return "sunny"

    client = ollama_sdk.Client(host=ollama.url, trust_env=False)
    reply = client.chat(model="llama3", messages=HI)
    assert reply.message.content == "ollama says: hello there" and reply.done and reply.done_reason == "stop"
    assert reply.prompt_eval_count > 0 and reply.eval_count > 0
    parts = list(client.chat(model="llama3", messages=HI, stream=True))
    assert "".join(p.message.content for p in parts) == "ollama says: hello there"
    assert [p.done for p in parts][-1] is True and parts[-1].eval_count > 0
    ollama.script(tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}])
    called = client.chat(model="llama3", messages=[{"role": "user", "content": "weather?"}], tools=[get_weather])
    assert called.message.tool_calls[0].function.name == "get_weather"
    assert called.message.tool_calls[0].function.arguments == {"city": "Paris"}
    assert sent(ollama)["tools"][0]["function"]["name"] == "get_weather"
    # the tool result goes back as the client sends it, and the fake takes it
    follow = client.chat(model="llama3", messages=[
        {"role": "user", "content": "weather?"}, called.message,
        {"role": "tool", "content": "sunny", "tool_name": "get_weather"}])
    assert follow.message.content == "ollama says: sunny"
    ollama.script(tool_calls=[{"name": "get_weather", "arguments": {"city": "Oslo"}}])
    streamed = [p for p in client.chat(model="llama3", messages=HI, tools=[get_weather], stream=True)]
    assert [tc.function.arguments for p in streamed for tc in (p.message.tool_calls or ())] == [{"city": "Oslo"}]
    assert client.chat(model="llava", messages=[{"role": "user", "content": "what?",
                                                 "images": [base64.b64decode(PNG)]}]).message.content
    generated = client.generate(model="llama3", prompt="Why?")
    assert generated.response == "ollama says: Why?" and generated.done
    assert "".join(p.response for p in client.generate(model="llama3", prompt="Why?", stream=True)) == "ollama says: Why?"
    embedded = client.embed(model="all-minilm", input=["a", "b"])
    assert len(embedded.embeddings) == 2 and embedded.prompt_eval_count == 2
    with pytest.raises(ollama_sdk.ResponseError) as info:
        client.chat(model="missing", messages=HI)
    assert info.value.status_code == 404 and "not found" in info.value.error
    ollama.script(chunks=["a"], stream_error="boom")
    with pytest.raises(ollama_sdk.ResponseError) as info:
        list(client.chat(model="llama3", messages=HI, stream=True))
    assert info.value.error == "boom"


# -- the translator alone ---------------------------------------------------------------------
def _dep(**kw: Any) -> Any:
    from gateway.core.providers.deployment import Deployment
    from gateway.core.providers.ollama import Ollama

    values = dict(id="d", model_name="m", provider="ollama", upstream_model="llama3", api_base="http://h:11434",
                  api_key=None, api_version=None, timeout=60.0, stream_timeout=60.0, stream_total_timeout=60.0,
                  weight=1.0, input_cost_per_token=None, output_cost_per_token=None, mock_response=None,
                  extra_headers={}, model_info={}, handler=Ollama("ollama"))
    values.update(kw)
    return Deployment(**values)


def test_stream_lines_split_anywhere():
    dep = _dep()
    lines = [{"message": {"role": "assistant", "content": "Hi"}, "done": False},
             {"message": {"role": "assistant", "content": " there"}, "done": False},
             {"message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop",
              "prompt_eval_count": 3, "eval_count": 2}]
    data = b"".join(json.dumps(line).encode() + b"\r\n" for line in lines)
    for size in (1, 2, 7, len(data)):
        translator = dep.handler.stream(dep, "acompletion")
        chunks = []
        for i in range(0, len(data), size):
            chunks += translator.feed(data[i:i + size])
        chunks += translator.end()
        assert [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]] == ["Hi", " there", None]
        assert chunks[-1]["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        assert translator.feed(b'{"message":{"content":"late"},"done":false}\n') == []


def test_last_line_without_newline_is_read_at_the_end():
    dep = _dep()
    translator = dep.handler.stream(dep, "atext_completion")
    assert translator.feed(b'{"response":"a","done":false}\n{"response":"","done":true,"eval_count":1}') != []
    tail = translator.end()
    assert [c["choices"][0]["finish_reason"] for c in tail if c["choices"]] == ["stop"] and tail[-1]["usage"]


# -- the micro-benchmark (not a test) ---------------------------------------------------------
def bench(n: int = 20000) -> None:
    """CPU per call (build_request + parse_reply) and per streamed chunk (feed one NDJSON line)."""
    dep = _dep()
    provider = dep.handler
    body = {"model": "llama3", "messages": [{"role": "system", "content": "You are helpful."},
                                            {"role": "user", "content": "Why is the sky blue? " * 10}],
            "temperature": 0.2, "max_tokens": 256, "stream": False}
    reply = json.dumps({"model": "llama3", "created_at": "2026-12-02T12:00:00.000000Z",
                        "message": {"role": "assistant", "content": "Because of Rayleigh scattering. " * 10},
                        "done": True, "done_reason": "stop", "total_duration": 1, "load_duration": 1,
                        "prompt_eval_count": 60, "prompt_eval_duration": 1, "eval_count": 70,
                        "eval_duration": 1}).encode()
    line = json.dumps({"model": "llama3", "created_at": "2026-12-02T12:00:00.000000Z",
                       "message": {"role": "assistant", "content": " scattering"}, "done": False}).encode() + b"\n"

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
    translator = provider.stream(dep, "acompletion")
    chunk = per(lambda: translator.feed(line), n * 5)
    batch_translator = provider.stream(dep, "acompletion")
    batch = line * 50
    batched = per(lambda: batch_translator.feed(batch), n // 10) / 50
    print(f"build_request (chat, 2 messages, 2 options): {build:.2f} us")
    print(f"parse_reply (chat.completion): {parse:.2f} us")
    print(f"per call (build + parse): {build + parse:.2f} us")
    print(f"per stream chunk (one NDJSON line per feed): {chunk:.2f} us")
    print(f"per stream chunk (50 lines per feed): {batched:.2f} us")


if __name__ == "__main__":
    if "--bench" in sys.argv:
        bench()
