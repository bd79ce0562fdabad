"""Azure end to end: the official `openai` SDK -> a real gateway -> a fake Azure on loopback
(tests/peers/azure_api.py: Azure OpenAI, Azure AI Foundry and Entra ID's token endpoint), itself
checked against the SDK's `AzureOpenAI` client.

Entra ID client-credentials tokens (fetched once, reused, refreshed when expired; refusals that name
the app, never its secret), static `azure_ad_token`s, `azure_ai/` chat, streams and embeddings, and
`azure/responses/<deployment>` (chat served by the Responses API: requests, replies, streams with
usage, tools round trips, errors).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import socket
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import openai
import pytest

from gateway.core.providers import azure, responses_bridge

_spec = importlib.util.spec_from_file_location("azure_api_peer", Path(__file__).parent / "peers" / "azure_api.py")
assert _spec is not None and _spec.loader is not None
peer = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = peer  # dataclasses look their module up
_spec.loader.exec_module(peer)
Reply = peer.Reply

KEY, AI_KEY, STATIC = "azure-key-0123456789abcdef", "azure-ai-key-fedcba9876543210", "eyJstatic.token.abcdef"
TENANT, CLIENT, SECRET = "72f988bf-86f1-41af-91ab-2d7cd011db47", "3fa85f64-5717-4562-b3fc-2c963f66afa6", "Xy7Q~s3cr3t-Value.9"
ADMIN = {"Authorization": "Bearer sk-1234"}
PRICES = {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06}
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}


@pytest.fixture
def api():
    with peer.FakeAzure(keys={KEY, AI_KEY}, static_tokens={STATIC}, apps={(TENANT, CLIENT): SECRET}) as fake:
        yield fake


def dep(name: str, model: str, api: Any, **params: Any) -> dict[str, Any]:
    return {"model_name": name, "litellm_params": {"model": model, "api_base": api.url, **params}}


def config(*models: dict[str, Any]) -> dict[str, Any]:
    return {"model_list": list(models), "router_settings": {"num_retries": 0, "cooldown_time": 0},
            "general_settings": {"spend_flush_interval_s": 0.05}}


ENTRA = {"tenant_id": TENANT, "client_id": CLIENT, "client_secret": SECRET, "api_version": "2024-10-21"}


def start(gateway_server: Any, api: Any, *models: dict[str, Any], env: dict[str, str] | None = None) -> Any:
    return gateway_server(config(*models), env={"AZURE_AUTHORITY_HOST": api.url, **(env or {})})


def hi(model: str, text: str = "hi") -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}]}


def post(server: Any, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(server.url + "/v1/chat/completions", headers=ADMIN, timeout=10, json=body)


def spend_rows(server: Any, count: int) -> list[dict[str, Any]]:
    writer, deadline = server.gateway.spend_writer, time.monotonic() + 10
    while (writer.written < count or writer.queue) and time.monotonic() < deadline:
        time.sleep(0.02)
    return httpx.get(server.url + "/spend/logs", headers=ADMIN, timeout=10).json()


# -- Entra ID -----------------------------------------------------------------------------------------
def test_client_credentials_token_is_fetched_once_and_reused(gateway_server, api):
    server = start(gateway_server, api, dep("gpt", "azure/gpt-4o-prod", api, **ENTRA))
    with server.client() as c:
        assert c.chat.completions.create(**hi("gpt")).choices[0].message.content == "azure says: hi"
        c.chat.completions.create(**hi("gpt"))
        assert "".join(ch.choices[0].delta.content or "" for ch in c.chat.completions.create(**hi("gpt"), stream=True)
                       if ch.choices) == "azure says: hi"
    (fetch,) = api.token_requests
    assert fetch.path == f"/{TENANT}/oauth2/v2.0/token"
    assert fetch.form == {"grant_type": "client_credentials", "client_id": CLIENT, "client_secret": SECRET,
                          "scope": "https://cognitiveservices.azure.com/.default"}
    tokens = {r.headers["authorization"] for r in api.requests}
    assert len(tokens) == 1 and tokens.pop()[7:] in api.tokens
    assert all("api-key" not in r.headers for r in api.requests)
    assert api.last.path == "/openai/deployments/gpt-4o-prod/chat/completions"


def test_concurrent_first_calls_share_one_token_fetch(gateway_server, api):
    import asyncio

    server = start(gateway_server, api, dep("gpt", "azure/gpt-4o", api, **ENTRA))

    async def burst() -> list[Any]:
        async with server.async_client() as c:
            return await asyncio.gather(*(c.chat.completions.create(**hi("gpt", f"n{i}")) for i in range(8)))

    replies = asyncio.run(burst())
    assert sorted(r.choices[0].message.content for r in replies) == [f"azure says: n{i}" for i in range(8)]
    assert len(api.token_requests) == 1 and len(api.requests) == 8


def test_an_expired_token_is_refreshed(gateway_server, api):
    api.token_ttl = 2.0  # not sent from 1.8 s
    server = start(gateway_server, api, dep("gpt", "azure/gpt-4o", api, **ENTRA))
    with server.client() as c:
        c.chat.completions.create(**hi("gpt"))
        first = api.last.headers["authorization"]
        time.sleep(2.1)  # expired: the fake refuses it now
        assert c.chat.completions.create(**hi("gpt")).choices[0].message.content == "azure says: hi"
    # Refreshed (at least once: on a loaded machine the first call itself may come near expiry).
    assert api.last.headers["authorization"] != first and len(api.token_requests) >= 2


def test_credentials_from_the_environment_and_a_static_token(gateway_server, api):
    server = start(gateway_server, api, dep("env", "azure/gpt-4o", api, api_version="2024-10-21"),
                   dep("static", "azure/gpt-4o-mini", api, azure_ad_token=STATIC, api_version="2024-10-21"),
                   dep("keyed", "azure/gpt-4o-mini", api, api_key=KEY, api_version="2024-10-21", **{
                       k: v for k, v in ENTRA.items() if k != "api_version"}),
                   env={"AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_ID": CLIENT, "AZURE_CLIENT_SECRET": SECRET})
    with server.client() as c:
        c.chat.completions.create(**hi("env"))
        assert api.last.headers["authorization"][7:] in api.tokens
        c.chat.completions.create(**hi("static"))
        assert api.last.headers["authorization"] == f"Bearer {STATIC}"
        c.chat.completions.create(**hi("keyed"))  # an api_key wins over client credentials (LiteLLM's order)
        assert api.last.headers["api-key"] == KEY and "authorization" not in api.last.headers
    assert len(api.token_requests) == 1


def test_a_refused_secret_is_an_auth_error_naming_the_app_not_the_secret(gateway_server, api, caplog):
    caplog.set_level(logging.DEBUG)
    server = start(gateway_server, api, dep("gpt", "azure/gpt-4o", api, **{**ENTRA, "client_secret": "wrong-" + SECRET}))
    r = post(server, hi("gpt"))
    assert r.status_code == 401, r.text
    err = r.json()["error"]
    assert err["type"] == "authentication_error"
    assert err["message"].startswith(f"AzureException - could not get an Entra ID token for client {CLIENT} in "
                                     f"tenant {TENANT}: invalid_client: AADSTS7000215: Invalid client secret")
    assert SECRET not in r.text and SECRET not in caplog.text
    assert not api.requests  # nothing reached Azure without a token


def test_an_unreachable_token_endpoint_is_a_connection_error(gateway_server, api):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    server = gateway_server(config(dep("gpt", "azure/gpt-4o", api, **ENTRA)), env={"AZURE_AUTHORITY_HOST": closed})
    r = post(server, hi("gpt"))
    assert r.status_code == 502 and r.json()["error"]["type"] == "api_connection_error"
    assert CLIENT in r.json()["error"]["message"] and SECRET not in r.text


def test_secrets_never_appear_in_logs_errors_or_spend_rows(gateway_server, api, caplog):
    server = start(gateway_server, api, dep("gpt", "azure/gpt-4o", api, **ENTRA, **PRICES),
                   dep("resp", "azure/responses/o3", api, **ENTRA), env={"GATEWAY_LOG_LEVEL": "DEBUG"})
    caplog.set_level(logging.DEBUG)
    with server.client() as c:
        c.chat.completions.create(**hi("gpt"))
        list(c.chat.completions.create(**hi("resp"), stream=True, stream_options={"include_usage": True}))
    api.script(Reply(status=400, code="BadRequest", message="bad token " + api.last.headers["authorization"]))
    r = post(server, hi("resp"))
    rows = spend_rows(server, 2)
    texts = [caplog.text, json.dumps(rows), httpx.get(server.url + "/model/info", headers=ADMIN).text]
    assert api.tokens and all(t not in text for t in api.tokens for text in texts)
    assert all(SECRET not in text for text in [*texts, r.text])
    assert r.status_code == 400 and next(iter(api.tokens)) not in r.text


def test_incomplete_client_credentials_or_oidc_tokens_stop_start_up(monkeypatch):
    from gateway.core.providers.deployment import DeploymentError, resolve
    from gateway.core.providers.registry import Providers
    from gateway.core.settings import ModelEntry

    for name in ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    providers = Providers()
    for p in azure.providers():
        providers.add(p, "test")

    def resolve_with(**params: Any) -> Any:
        return resolve(0, ModelEntry.model_validate({"model_name": "m", "litellm_params": {
            "model": "azure/gpt-4o", "api_base": "https://res.openai.azure.com", **params}}), 30.0, providers=providers)

    with pytest.raises(DeploymentError, match="tenant_id, client_id given without client_secret"):
        resolve_with(tenant_id=TENANT, client_id=CLIENT)
    with pytest.raises(DeploymentError, match="oidc/ tokens are not supported"):
        resolve_with(azure_ad_token="oidc/github/")
    assert resolve_with(api_key=KEY).handler.headers(resolve_with(api_key=KEY))["api-key"] == KEY


# -- azure_ai -----------------------------------------------------------------------------------------
def test_azure_ai_chat_stream_and_embeddings(gateway_server, api):
    server = gateway_server(config(
        dep("mistral", "azure_ai/mistral-large-2407", api, api_key=AI_KEY, api_version="2024-05-01-preview",
            api_base=api.url + "/models"),
        dep("emb", "azure_ai/embed-v-4-0", api, api_key=AI_KEY, api_version="2024-05-01-preview",
            api_base=api.url + "/models"),
        dep("llama", "azure_ai/Llama-3.3-70B-Instruct", api, api_key=AI_KEY)))
    with server.client() as c:
        assert c.chat.completions.create(**hi("mistral")).choices[0].message.content == "azure says: hi"
        assert (api.last.path, api.last.query) == ("/models/chat/completions", {"api-version": "2024-05-01-preview"})
        assert api.last.json["model"] == "mistral-large-2407"
        assert api.last.headers["authorization"] == f"Bearer {AI_KEY}"  # not *.services.ai.azure.com: bearer
        chunks = list(c.chat.completions.create(**hi("llama", "stream"), stream=True,
                                                stream_options={"include_usage": True}))
        assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == "azure says: stream"
        assert chunks[-1].usage.total_tokens > 0
        assert (api.last.path, api.last.query) == ("/chat/completions", {})
        emb = c.embeddings.create(model="emb", input=["a", "bb"])
        assert len(emb.data) == 2 and emb.usage.prompt_tokens == 2
        assert api.last.path == "/models/embeddings"


def test_azure_ai_key_and_base_from_the_environment(gateway_server, api):
    server = gateway_server(config({"model_name": "phi", "litellm_params": {"model": "azure_ai/Phi-4"}}),
                            env={"AZURE_AI_API_KEY": AI_KEY, "AZURE_AI_API_BASE": api.url + "/v1"})
    with server.client() as c:
        c.chat.completions.create(**hi("phi"))
    assert api.last.path == "/v1/chat/completions" and api.last.headers["authorization"] == f"Bearer {AI_KEY}"


@pytest.mark.parametrize(("base", "version", "url", "header"), [
    ("https://res.services.ai.azure.com/models", "2024-05-01-preview",
     "https://res.services.ai.azure.com/models/chat/completions?api-version=2024-05-01-preview", "api-key"),
    ("https://res.services.ai.azure.com", None, "https://res.services.ai.azure.com/models/chat/completions", "api-key"),
    ("https://res.services.ai.azure.com/models/chat/completions?api-version=2024-05-01-preview", "2025-01-01",
     "https://res.services.ai.azure.com/models/chat/completions?api-version=2024-05-01-preview", "api-key"),
    ("https://Mistral-large-abc.eastus2.models.ai.azure.com", None,
     "https://Mistral-large-abc.eastus2.models.ai.azure.com/chat/completions", "authorization"),
    ("https://res.openai.azure.com/openai/v1", None, "https://res.openai.azure.com/openai/v1/chat/completions", "api-key"),
])
def test_azure_ai_urls_and_key_headers(base, version, url, header):
    provider = azure.AzureAI()
    d = SimpleNamespace(api_base=base, api_key=AI_KEY, params={"api_version": version} if version else {})
    assert provider.url(d, "acompletion") == url
    headers = provider.headers(d)
    assert headers[header] == (AI_KEY if header == "api-key" else f"Bearer {AI_KEY}")
    assert ({"api-key", "authorization"} - {header}).isdisjoint(headers)


# -- the Responses API bridge ----------------------------------------------------------------------------
@pytest.fixture
def bridge(gateway_server, api):
    return gateway_server(config(dep("o3", "azure/responses/my-o3", api, api_key=KEY, api_version="2025-03-01-preview",
                                     **PRICES)))


def test_chat_through_the_responses_api(bridge, api):
    api.script(Reply(text='{"city": "Paris"}', reasoning="The user wants JSON.",
                     usage={"input_tokens": 40, "input_tokens_details": {"cached_tokens": 32}, "output_tokens": 20,
                            "output_tokens_details": {"reasoning_tokens": 12}, "total_tokens": 60}))
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
              "additionalProperties": False}
    with bridge.client() as c:
        reply = c.chat.completions.create(
            model="o3", messages=[{"role": "system", "content": "Be terse."},
                                  {"role": "user", "content": [{"type": "text", "text": "city?"},
                                                               {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}],
            max_completion_tokens=500, reasoning_effort="high", temperature=1, user="u-1",
            response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": schema, "strict": True}})
    sent = api.last
    assert (sent.path, sent.query) == ("/openai/responses", {"api-version": "2025-03-01-preview"})
    assert sent.headers["api-key"] == KEY
    assert sent.json == {
        "model": "my-o3", "instructions": "Be terse.", "max_output_tokens": 500, "reasoning": {"effort": "high"},
        "temperature": 1, "user": "u-1",
        "input": [{"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "city?"},
            {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "auto"}]}],
        "text": {"format": {"type": "json_schema", "name": "city", "schema": schema, "strict": True}}}
    msg = reply.choices[0].message
    assert msg.content == '{"city": "Paris"}' and reply.choices[0].finish_reason == "stop"
    assert msg.model_extra["reasoning_content"] == "The user wants JSON."
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens) == (40, 20, 60)
    assert reply.usage.prompt_tokens_details.cached_tokens == 32
    assert reply.usage.completion_tokens_details.reasoning_tokens == 12


@pytest.mark.parametrize(("version", "query"), [("preview", {"api-version": "preview"}), ("latest", {}), ("v1", {})])
def test_v1_api_versions_use_the_v1_responses_path(gateway_server, api, version, query):
    server = gateway_server(config(dep("o3", "azure/responses/my-o3", api, api_key=KEY, api_version=version)))
    with server.client() as c:
        c.chat.completions.create(**hi("o3"))
    assert (api.last.path, api.last.query, api.last.json["model"]) == ("/openai/v1/responses", query, "my-o3")


def test_openai_responses_prefix_uses_the_same_bridge(gateway_server, api):
    server = gateway_server(config(dep("gpt5", "openai/responses/gpt-5-mini", api, api_key=KEY,
                                       api_base=api.url + "/openai/v1")))
    with server.client() as c:
        assert c.chat.completions.create(**hi("gpt5")).choices[0].message.content == "azure says: hi"
    assert api.last.path == "/openai/v1/responses" and api.last.headers["authorization"] == f"Bearer {KEY}"


def test_stream_with_usage_and_its_spend_row(bridge, api):
    api.script(Reply(text="a streamed answer", usage={"input_tokens": 7, "output_tokens": 4, "total_tokens": 11}))
    with bridge.client() as c:
        chunks = list(c.chat.completions.create(**hi("o3"), stream=True, stream_options={"include_usage": True}))
    assert api.last.json["stream"] is True and "stream_options" not in api.last.json
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == "a streamed answer"
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason] == ["stop"]
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (7, 4)
    (row,) = spend_rows(bridge, 1)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (7, 4) and row["spend"] == pytest.approx(7e-06 + 8e-06)


def test_tools_round_trip(bridge, api):
    api.script(Reply(calls=[("get_weather", '{"city": "Paris"}'), ("get_weather", '{"city": "Rome"}')]),
               Reply(text="Sunny in both."),
               Reply(calls=[("get_weather", '{"city": "Oslo"}')]))
    with bridge.client() as c:
        first = c.chat.completions.create(model="o3", messages=[{"role": "user", "content": "weather?"}],
                                          tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "get_weather"}})
        assert api.last.json["tools"] == [{"type": "function", "name": "get_weather", "description": "Weather in a city",
                                           "parameters": WEATHER["function"]["parameters"], "strict": False}]
        assert api.last.json["tool_choice"] == {"type": "function", "name": "get_weather"}
        calls = first.choices[0].message.tool_calls
        assert first.choices[0].finish_reason == "tool_calls"
        assert [(t.id, t.function.name, t.function.arguments) for t in calls] == [
            ("call_0", "get_weather", '{"city": "Paris"}'), ("call_1", "get_weather", '{"city": "Rome"}')]
        history = [{"role": "user", "content": "weather?"}, first.choices[0].message.model_dump(exclude_none=True),
                   *({"role": "tool", "tool_call_id": t.id, "content": f"sunny in {i}"} for i, t in enumerate(calls))]
        second = c.chat.completions.create(model="o3", messages=history, tools=[WEATHER])
        assert second.choices[0].message.content == "Sunny in both."
        assert api.last.json["input"][1:] == [
            {"type": "function_call", "call_id": "call_0", "name": "get_weather", "arguments": '{"city": "Paris"}'},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city": "Rome"}'},
            {"type": "function_call_output", "call_id": "call_0", "output": "sunny in 0"},
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny in 1"}]
        chunks = list(c.chat.completions.create(model="o3", messages=[{"role": "user", "content": "oslo"}],
                                                tools=[WEATHER], stream=True))
    deltas = [tc for ch in chunks if ch.choices for tc in ch.choices[0].delta.tool_calls or ()]
    assert deltas[0].id == "call_0" and deltas[0].function.name == "get_weather"
    assert "".join(d.function.arguments or "" for d in deltas) == '{"city": "Oslo"}'
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize(("reply", "status", "kind", "text"), [
    (Reply(status=401, code="401", message=peer.UNAUTHORIZED), 401, "authentication_error", "Access denied"),
    (Reply(status=429, code="429", message="Requests to the Responses_Create Operation have exceeded the token rate "
                                            "limit. Please retry after 6 seconds."), 429, "rate_limit_error", "retry after"),
    (Reply(status=500, code="InternalServerError", message="The server had an error"), 500, "api_error", "server had"),
    (Reply(status=503, raw=b"<html>Service Unavailable</html>", content_type="text/html"), 503, "api_error",
     "Service Unavailable"),
    (Reply(raw=b'{"id": "resp_1", "output": [tru'), 502, "api_error", "could not be read"),
])
def test_errors_keep_their_status_and_say_why(bridge, api, reply, status, kind, text):
    api.script(reply)
    r = post(bridge, hi("o3"))
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["message"].startswith("AzureException - ") and text in err["message"]
    assert (err["type"], err["code"]) == (kind, str(status))


def test_a_request_the_api_refuses_and_a_failed_stream(bridge, api):
    r = post(bridge, {**hi("o3"), "max_tokens": 5})  # the Responses API wants >= 16
    assert r.status_code == 400 and "max_output_tokens" in r.json()["error"]["message"]
    r = post(bridge, {**hi("o3"), "stop": ["END"]})  # no Responses counterpart: refused, named
    assert r.status_code == 400 and "stop" in r.json()["error"]["message"]
    api.script(Reply(text="partial answer", fail=("server_error", "The model crashed")))
    with bridge.client() as c, pytest.raises(openai.APIError, match="The model crashed"):
        list(c.chat.completions.create(**hi("o3"), stream=True))


def test_stream_translator_takes_any_cut_of_the_bytes():
    resp = peer.build_response({"model": "m", "input": "hi"}, Reply(text="hello there", reasoning="think"))
    data = b"".join(f"event: {n}\ndata: {json.dumps(e)}\n\n".encode() for n, e in peer.response_events(resp, None))
    for step in (1, 7, len(data)):
        s = responses_bridge.ResponsesStream("m")
        chunks = [c for i in range(0, len(data), step) for c in s.feed(data[i:i + step])] + s.end()
        assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices")) == "hello there"
        assert chunks[-1]["usage"]["prompt_tokens"] == resp["usage"]["input_tokens"]


# -- the fake against the official SDK ---------------------------------------------------------------
def test_the_fake_speaks_the_protocol_the_azure_openai_sdk_speaks(api):
    requested: list[str] = []

    def provider() -> str:
        requested.append("token")
        return STATIC

    client = openai.AzureOpenAI(azure_endpoint=api.url, api_version="2025-03-01-preview",
                                azure_ad_token_provider=provider, max_retries=0)
    chat = client.chat.completions.create(model="gpt-4o-prod", messages=[{"role": "user", "content": "sdk"}])
    assert chat.choices[0].message.content == "azure says: sdk" and chat.usage.total_tokens > 0
    assert api.last.path == "/openai/deployments/gpt-4o-prod/chat/completions"
    assert api.last.headers["authorization"] == f"Bearer {STATIC}" and requested
    text = "".join(ch.choices[0].delta.content or "" for ch in client.chat.completions.create(
        model="gpt-4o-prod", messages=[{"role": "user", "content": "s"}], stream=True) if ch.choices)
    assert text == "azure says: s"
    resp = client.responses.create(model="my-o3", input="hello", instructions="terse", max_output_tokens=64)
    assert resp.output_text == "azure says: hello" and resp.usage.input_tokens > 0
    assert (api.last.path, api.last.query) == ("/openai/responses", {"api-version": "2025-03-01-preview"})
    api.script(Reply(calls=[("get_weather", '{"city": "Paris"}')]))
    events = list(client.responses.create(model="my-o3", input="weather", stream=True, tools=[
        {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {},
                                                                   "additionalProperties": False}, "strict": True}]))
    assert events[-1].type == "response.completed" and events[-1].response.output[0].name == "get_weather"
    assert "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta") == '{"city": "Paris"}'
    streamed = "".join(e.delta for e in client.responses.create(model="my-o3", input="yo", stream=True)
                       if e.type == "response.output_text.delta")
    assert streamed == "azure says: yo"
    keyed = openai.AzureOpenAI(azure_endpoint=api.url, api_version="2024-10-21", api_key=KEY, max_retries=0)
    assert len(keyed.embeddings.create(model="embed", input=["x", "y"]).data) == 2
    with pytest.raises(openai.AuthenticationError):
        openai.AzureOpenAI(azure_endpoint=api.url, api_version="2024-10-21", api_key="wrong",
                           max_retries=0).chat.completions.create(model="d", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError, match="additionalProperties"):
        client.responses.create(model="my-o3", input="x", tools=[{"type": "function", "name": "f", "strict": True,
                                                                  "parameters": {"type": "object", "properties": {}}}])
