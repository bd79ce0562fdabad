"""The native `vertex_ai/` provider end to end: a real gateway, the official `openai` SDK as the client,
and a fake Vertex AI + Google OAuth token endpoint on loopback (tests/peers/vertex_api.py) that the
official `google-genai` SDK (Vertex mode) is checked against.

Gemini on Vertex (chat, streams with usage and their spend row, tools, embeddings), Vertex-hosted
Claude (rawPredict, streamRawPredict), errors mapped to the envelope, OAuth tokens fetched with a
service account's signed JWT and refreshed when they expire, credentials kept out of logs, errors
and spend rows, the URL forms, and LiteLLM's documented config.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.core.providers import vertex

_spec = importlib.util.spec_from_file_location("vertex_api", Path(__file__).parent / "peers" / "vertex_api.py")
vertex_api = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("vertex_api", vertex_api)
_spec.loader.exec_module(vertex_api)
FakeVertex, GReply, AReply = vertex_api.FakeVertex, vertex_api.GeminiReply, vertex_api.AnthropicReply

ADMIN = {"Authorization": "Bearer sk-1234"}
PROJECT = "test-project"
BASE = f"/v1/projects/{PROJECT}/locations/us-central1/publishers"
PRICES = {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06}


@pytest.fixture
def api():
    fake = FakeVertex(project=PROJECT).start()
    yield fake
    fake.stop()


@pytest.fixture
def creds_file(api, tmp_path):
    path = tmp_path / "sa.json"
    path.write_text(json.dumps(api.service_account()))
    return path


def deployment(name: str, api: Any, creds: Any, model: str = "vertex_ai/gemini-1.5-pro", **params: Any) -> dict[str, Any]:
    return {"model_name": name, "litellm_params": {"model": model, "vertex_project": PROJECT,
                                                   "vertex_location": "us-central1", "vertex_credentials": str(creds),
                                                   "api_base": api.url, **params}}


def config(*models: dict[str, Any]) -> dict[str, Any]:
    return {"model_list": list(models), "router_settings": {"num_retries": 0, "cooldown_time": 0},
            "general_settings": {"spend_flush_interval_s": 0.05}}


@pytest.fixture
def gw(api, creds_file, gateway_server):
    return gateway_server(config(
        deployment("gem", api, creds_file, **PRICES),
        deployment("claude", api, creds_file, "vertex_ai/claude-3-5-sonnet@20240620", **PRICES),
        deployment("emb", api, creds_file, "vertex_ai/text-embedding-005")))


@pytest.fixture
def client(gw):
    with gw.client() as c:
        yield c


def spend_rows(server: Any, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    writer = server.gateway.spend_writer
    deadline = time.monotonic() + timeout
    while (writer.written < count or writer.queue) and time.monotonic() < deadline:
        time.sleep(0.02)
    return httpx.get(server.url + "/spend/logs", headers=ADMIN, timeout=10).json()


def hi(model: str = "gem") -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}]}


# -- Gemini on Vertex -------------------------------------------------------------------------------
def test_gemini_chat_goes_to_generate_content_with_a_bearer_token(client, api):
    reply = client.chat.completions.create(
        model="gem", messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}],
        temperature=0.2, max_tokens=50)
    assert reply.choices[0].message.content == "gemini says: hello there"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens) == (4, 4, 8)
    sent = api.last
    assert sent.url == f"{BASE}/google/models/gemini-1.5-pro:generateContent"
    token = sent.headers["authorization"].removeprefix("Bearer ")
    assert token in api.tokens and "x-goog-api-key" not in sent.headers
    assert sent.json == {"contents": [{"role": "user", "parts": [{"text": "hello there"}]}],
                         "systemInstruction": {"parts": [{"text": "be brief"}]},
                         "generationConfig": {"temperature": 0.2, "maxOutputTokens": 50}}
    (claims,) = api.token_requests  # one token, fetched with the service account's signed JWT
    assert claims["iss"] == "gateway@test-project.iam.gserviceaccount.com" and claims["aud"] in (api.token_uri, vertex_api.GOOGLE_TOKEN_URI)
    client.chat.completions.create(**hi())
    assert len(api.token_requests) == 1  # and reused


def test_gemini_stream_with_usage_bills_a_spend_row(client, gw, api):
    api.script(GReply(text="one two three four", stream_piece=7))
    chunks = list(client.chat.completions.create(model="gem", stream=True, stream_options={"include_usage": True},
                                                 messages=[{"role": "user", "content": "count to four"}]))
    assert api.last.url == f"{BASE}/google/models/gemini-1.5-pro:streamGenerateContent?alt=sse"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "one two three four"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].choices == [] and (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (3, 4)
    (row,) = spend_rows(gw, 1)
    assert (row["prompt_tokens"], row["completion_tokens"], row["status"]) == (3, 4, "success")
    assert row["spend"] == pytest.approx(3e-06 + 8e-06)
    assert row["model"] == "gemini-1.5-pro"


WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                           "required": ["city"]}}}


def test_gemini_tools_round_trip(client, api):
    api.script(GReply(parts=[{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]))
    messages: list[Any] = [{"role": "user", "content": "weather in Paris?"}]
    reply = client.chat.completions.create(model="gem", messages=messages, tools=[WEATHER], tool_choice="auto")
    (call,) = reply.choices[0].message.tool_calls
    assert reply.choices[0].finish_reason == "tool_calls"
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"city": "Paris"})
    assert api.last.json["tools"] == [{"functionDeclarations": [{
        "name": "get_weather", "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]}]
    messages += [reply.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "21 C"}]
    reply = client.chat.completions.create(model="gem", messages=messages, tools=[WEATHER])
    assert reply.choices[0].message.content.startswith("gemini says:")
    assert api.last.json["contents"][1:] == [
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"content": "21 C"}}}]}]


def test_embeddings_go_to_predict(client, gw, api):
    reply = client.embeddings.create(model="emb", input=["a b", "c"], dimensions=4)
    assert [d.embedding for d in reply.data] == [vertex_api.gemini_api._vector("a b", 4),
                                                 vertex_api.gemini_api._vector("c", 4)]
    assert reply.usage.prompt_tokens == 3
    assert api.last.url == f"{BASE}/google/models/text-embedding-005:predict"
    assert api.last.json == {"instances": [{"content": "a b"}, {"content": "c"}],
                             "parameters": {"outputDimensionality": 4}}


# -- Claude on Vertex ---------------------------------------------------------------------------------
def test_claude_chat_goes_to_raw_predict(client, api):
    reply = client.chat.completions.create(model="claude", max_tokens=100,
                                           messages=[{"role": "system", "content": "be brief"},
                                                     {"role": "user", "content": "hello claude"}])
    assert reply.choices[0].message.content == "anthropic says: hello claude"
    assert reply.choices[0].finish_reason == "stop" and reply.usage.completion_tokens == 4
    sent = api.last
    assert sent.url == f"{BASE}/anthropic/models/claude-3-5-sonnet@20240620:rawPredict"
    assert sent.headers["authorization"].removeprefix("Bearer ") in api.tokens
    assert sent.json == {"anthropic_version": "vertex-2023-10-16", "max_tokens": 100,
                         "system": [{"type": "text", "text": "be brief"}],
                         "messages": [{"role": "user", "content": [{"type": "text", "text": "hello claude"}]}]}


def test_claude_stream_with_usage_and_tools(client, gw, api):
    api.script(AReply(text="streamed from claude", stream_piece=9))
    chunks = list(client.chat.completions.create(model="claude", stream=True, stream_options={"include_usage": True},
                                                 messages=[{"role": "user", "content": "stream please"}]))
    assert api.last.url == f"{BASE}/anthropic/models/claude-3-5-sonnet@20240620:streamRawPredict"
    assert api.last.json["stream"] is True and "model" not in api.last.json
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "streamed from claude"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    (row,) = spend_rows(gw, 1)
    assert row["status"] == "success" and row["spend"] > 0
    api.script(AReply(content=[{"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Oslo"}}]))
    reply = client.chat.completions.create(model="claude", messages=[{"role": "user", "content": "weather?"}],
                                           tools=[WEATHER])
    (call,) = reply.choices[0].message.tool_calls
    assert (call.id, call.function.name, reply.choices[0].finish_reason) == ("toolu_01", "get_weather", "tool_calls")


# -- errors -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("model", "reply", "status", "kind", "text"), [
    ("gem", GReply(status=400, message="Request contains an invalid argument."), 400, "invalid_request_error",
     "invalid argument"),
    ("gem", GReply(status=403, message="Permission 'aiplatform.endpoints.predict' denied"), 403, "permission_error",
     "denied"),
    ("gem", GReply(status=429, message="Resource exhausted. Please try again later."), 429, "rate_limit_error",
     "Resource exhausted"),
    ("gem", GReply(status=500, message="Internal error encountered."), 500, "api_error", "Internal error"),
    ("claude", GReply(status=429, message="Quota exceeded for aiplatform.googleapis.com/online_prediction_requests"),
     429, "rate_limit_error", "Quota exceeded"),
    ("claude", AReply(status=400, error_type="invalid_request_error", error_message="prompt is too long"), 400,
     "invalid_request_error", "prompt is too long"),
    ("claude", AReply(status=529, error_type="overloaded_error", error_message="Overloaded"), 529,
     "overloaded_error", "Overloaded"),
])
def test_errors_are_mapped_to_the_envelope(client, gw, api, model, reply, status, kind, text):
    api.script(reply)
    r = httpx.post(gw.url + "/v1/chat/completions", headers=ADMIN, timeout=10, json=hi(model))
    assert r.status_code == status
    err = r.json()["error"]
    assert err["message"].startswith("VertexAIException - ") and text in err["message"]
    assert (err["type"], err["code"]) == (kind, str(status))


def test_a_wrong_project_is_a_permission_error(api, creds_file, gateway_server):
    server = gateway_server(config(deployment("gem", api, creds_file, vertex_project="not-mine")))
    r = httpx.post(server.url + "/v1/chat/completions", headers=ADMIN, timeout=10, json=hi())
    assert r.status_code == 403 and r.json()["error"]["type"] == "permission_error"
    assert "/projects/not-mine/" in api.last.path


def test_a_refused_token_is_an_auth_error_naming_the_account(api, tmp_path, gateway_server):
    info = api.service_account()
    api.keys.clear()  # Google no longer knows the key (deleted or rotated)
    path = tmp_path / "sa.json"
    path.write_text(json.dumps(info))
    server = gateway_server(config(deployment("gem", api, path)))
    r = httpx.post(server.url + "/v1/chat/completions", headers=ADMIN, timeout=10, json=hi())
    assert r.status_code == 401
    err = r.json()["error"]
    assert err["type"] == "authentication_error"
    assert err["message"] == ("VertexAIException - could not get an access token for service account "
                              "gateway@test-project.iam.gserviceaccount.com: invalid_grant: Invalid JWT Signature.")
    assert not api.requests  # nothing reached Vertex without a token


# -- tokens -------------------------------------------------------------------------------------------
def test_an_expired_token_is_refreshed(api, creds_file, gateway_server):
    api.token_ttl = 2.0
    server = gateway_server(config(deployment("gem", api, creds_file)))
    with server.client() as c:
        c.chat.completions.create(**hi())
        first = api.last.headers["authorization"]
        time.sleep(2.2)  # past its expiry: the fake refuses it now
        assert c.chat.completions.create(**hi()).choices[0].message.content == "gemini says: hi"
        second = api.last.headers["authorization"]
        assert second != first and len(api.token_requests) >= 2
        list(c.chat.completions.create(**hi(), stream=True))
    assert all(r.headers["authorization"].removeprefix("Bearer ") in api.tokens for r in api.requests)


def test_a_token_near_its_expiry_is_refreshed_in_the_background(api, creds_file, gateway_server):
    api.token_ttl = 4.0  # refreshed ahead from 3.0 s, not sent from 3.6 s
    server = gateway_server(config(deployment("gem", api, creds_file)))
    with server.client() as c:
        c.chat.completions.create(**hi())
        first = api.last.headers["authorization"]
        fetched = len(api.token_requests)
        time.sleep(max(0.0, 3.1 - (time.time() - (api.tokens[first[7:]] - 4.0))))
        c.chat.completions.create(**hi())  # still sends the token in hand, and starts a refresh
        assert api.last.headers["authorization"] == first
        deadline = time.monotonic() + 5
        while len(api.token_requests) == fetched and time.monotonic() < deadline:
            time.sleep(0.02)
        # The token endpoint was asked; the gateway stores its answer a moment later (on a busy
        # machine, after the next call may already have left): the calls after it send the new one.
        while True:
            c.chat.completions.create(**hi())
            if api.last.headers["authorization"] != first or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert api.last.headers["authorization"] != first


def test_prepare_waits_for_a_token_off_the_event_loop(api, creds_file):
    import asyncio

    from gateway.core.providers.registry import Providers

    from gateway.core.providers.deployment import resolve
    from gateway.core.settings import ModelEntry

    providers = Providers()
    provider = vertex.VertexAI()
    providers.add(provider, "test")
    entry = ModelEntry.model_validate(deployment("gem", api, creds_file))
    dep = resolve(0, entry, 30.0, providers=providers)

    async def main() -> tuple[str, float]:
        source = provider._settings(dep).source
        source.refresh().result(10)
        source.token, source.expires_at, source.refresh_at = None, 0.0, 0.0  # as after an idle hour
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)

        task = asyncio.create_task(ticker())
        await provider.prepare(dep, "acompletion")
        task.cancel()
        req = provider.build_request(dep, "acompletion", hi("gemini-1.5-pro"), False)
        return req.headers["authorization"], ticks

    auth, ticks = asyncio.run(main())
    assert auth.removeprefix("Bearer ") in api.tokens and ticks >= 1  # the loop ran while the token came


# -- secrets ------------------------------------------------------------------------------------------
def test_credentials_never_appear_in_logs_errors_or_spend_rows(api, gateway_server, caplog, monkeypatch):
    info = api.service_account()
    monkeypatch.setenv("VERTEX_SA_JSON", json.dumps(info))  # the JSON itself, as some users pass it
    server = gateway_server(config({"model_name": "gem", "litellm_params": {
        "model": "vertex_ai/gemini-1.5-pro", "vertex_project": PROJECT, "vertex_credentials": "os.environ/VERTEX_SA_JSON",
        "api_base": api.url, **PRICES}}), env={"GATEWAY_LOG_LEVEL": "DEBUG"})
    caplog.set_level(logging.DEBUG)
    with server.client() as c:
        c.chat.completions.create(**hi())
        list(c.chat.completions.create(**hi(), stream=True, stream_options={"include_usage": True}))
        api.script(GReply(status=400, message="echoing " + api.last.headers["authorization"]))
        r = httpx.post(server.url + "/v1/chat/completions", headers=ADMIN, timeout=10, json=hi())
    assert r.status_code == 400
    rows = spend_rows(server, 3)
    info_routes = [httpx.get(server.url + p, headers=ADMIN, timeout=10).text for p in ("/model/info", "/v1/models")]
    tokens = list(api.tokens)
    key_body = info["private_key"].split("\n")[1]
    for text in [r.text, json.dumps(rows), caplog.text, *info_routes]:
        assert key_body not in text and "PRIVATE KEY" not in text
        assert not any(t in text for t in tokens)
    assert "***" in r.text


# -- configs ------------------------------------------------------------------------------------------
def test_the_config_from_litellms_vertex_docs(api, creds_file, gateway_server):
    """docs.litellm.ai/docs/providers/vertex: model, vertex_project, vertex_location, vertex_credentials
    from the environment (a path to the service-account file)."""
    server = gateway_server({"model_list": [{"model_name": "gemini-pro", "litellm_params": {
        "model": "vertex_ai/gemini-1.5-pro", "vertex_project": PROJECT, "vertex_location": "us-central1",
        "vertex_credentials": "os.environ/VERTEX_FILE_PATH_ENV_VAR", "api_base": api.url}}]},
        env={"VERTEX_FILE_PATH_ENV_VAR": str(creds_file)})
    with server.client() as c:
        assert c.chat.completions.create(model="gemini-pro", **{k: v for k, v in hi().items() if k != "model"}) \
            .choices[0].message.content == "gemini says: hi"


def test_project_and_credentials_from_the_environment(api, creds_file, gateway_server):
    server = gateway_server(config({"model_name": "gem", "litellm_params": {
        "model": "vertex_ai/gemini-2.0-flash", "api_base": api.url}}),
        env={"GOOGLE_APPLICATION_CREDENTIALS": str(creds_file), "VERTEXAI_LOCATION": "europe-west4"})
    with server.client() as c:
        c.chat.completions.create(**hi())
    assert api.last.path == f"/v1/projects/{PROJECT}/locations/europe-west4/publishers/google/models/gemini-2.0-flash:generateContent"


@pytest.mark.parametrize(("api_base", "location", "model", "url"), [
    (None, "us-central1", "gemini-1.5-pro",
     "https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1/publishers/google/models/gemini-1.5-pro"),
    (None, "global", "gemini-2.5-pro",
     "https://aiplatform.googleapis.com/v1/projects/p/locations/global/publishers/google/models/gemini-2.5-pro"),
    (None, "us-east5", "claude-3-5-sonnet-v2@20241022",
     "https://us-east5-aiplatform.googleapis.com/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-3-5-sonnet-v2@20241022"),
    (None, "us-central1", "1234567890",
     "https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1/endpoints/1234567890"),
    ("http://proxy:8080", "us-central1", "gemini-1.5-pro",
     "http://proxy:8080/v1/projects/p/locations/us-central1/publishers/google/models/gemini-1.5-pro"),
    ("https://proxy/v1beta1", "us-central1", "gemini-1.5-pro",
     "https://proxy/v1beta1/projects/p/locations/us-central1/publishers/google/models/gemini-1.5-pro"),
    ("https://proxy/vertex", "us-central1", "gemini-1.5-pro",
     "https://proxy/vertex/v1/projects/p/locations/us-central1/publishers/google/models/gemini-1.5-pro"),
    ("https://proxy/v1/projects/p/locations/l/publishers/google/models/gemini-1.5-pro", "us-central1",
     "gemini-1.5-pro", "https://proxy/v1/projects/p/locations/l/publishers/google/models/gemini-1.5-pro"),
])
def test_urls(api_base, location, model, url):
    assert vertex.model_url(api_base, "p", location, model)[0] == url


def test_missing_project_or_bad_credentials_stop_start_up(api, tmp_path, creds_file, monkeypatch):
    from gateway.core.providers.deployment import DeploymentError, resolve
    from gateway.core.providers.registry import Providers
    from gateway.core.settings import ModelEntry

    for name in ("VERTEXAI_PROJECT", "VERTEX_PROJECT", "GOOGLE_CLOUD_PROJECT", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(name, raising=False)
    providers = Providers()
    providers.add(vertex.VertexAI(), "test")

    def start(**params: Any) -> Any:
        return resolve(0, ModelEntry.model_validate({"model_name": "m", "litellm_params": {
            "model": "vertex_ai/gemini-1.5-pro", **params}}), 30.0, providers=providers)

    with pytest.raises(DeploymentError, match="vertex_credentials: no such file"):
        start(vertex_project="p", vertex_credentials=str(tmp_path / "missing.json"))
    with pytest.raises(DeploymentError, match="vertex_credentials: is not valid JSON"):
        start(vertex_project="p", vertex_credentials="{not json")
    info = api.service_account()
    del info["project_id"]
    with pytest.raises(DeploymentError, match="vertex_project: no project given"):
        start(vertex_credentials=json.dumps(info))
    dep = start(vertex_credentials=str(creds_file))  # the project comes from the credentials
    assert dep.display_base == "https://us-central1-aiplatform.googleapis.com"


# -- the fake against the official SDK ------------------------------------------------------------------
# About one run in six, a socket transport of an event loop this test does not own (no allocation
# traceback reaches it) is collected unclosed while the google-genai SDK runs: not what this test checks.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_the_fake_speaks_the_protocol_the_google_genai_sdk_speaks_in_vertex_mode(api, monkeypatch):
    from google import genai
    from google.genai import errors, types
    from google.oauth2 import service_account

    for name in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_CLOUD_PROJECT",
                 "GOOGLE_CLOUD_LOCATION", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(name, raising=False)
    creds = service_account.Credentials.from_service_account_info(api.service_account(), scopes=[vertex.SCOPE])
    sdk = genai.Client(vertexai=True, project=PROJECT, location="us-central1", credentials=creds,
                       http_options=types.HttpOptions(base_url=api.url))
    reply = sdk.models.generate_content(model="gemini-2.0-flash", contents="hello sdk",
                                        config=types.GenerateContentConfig(system_instruction="be nice",
                                                                           max_output_tokens=64))
    assert reply.text == "gemini says: hello sdk" and reply.usage_metadata.total_token_count == 8
    assert reply.candidates[0].finish_reason == types.FinishReason.STOP
    version, project, location, publisher, model, method = api.last.parts
    assert (project, location, publisher, model, method) == (PROJECT, "us-central1", "google", "gemini-2.0-flash",
                                                             "generateContent")
    assert api.last.headers["authorization"].removeprefix("Bearer ") in api.tokens
    assert len(api.token_requests) == 1  # the SDK got its token from the fake token endpoint

    chunks = list(sdk.models.generate_content_stream(model="gemini-2.0-flash", contents="stream these words"))
    assert api.last.parts[-1] == "streamGenerateContent" and api.last.query.get("alt") == "sse"
    assert "".join(c.text or "" for c in chunks) == "gemini says: stream these words"
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP

    api.script(GReply(status=429, message="Resource exhausted. Please try again later."))
    with pytest.raises(errors.ClientError) as info:
        sdk.models.generate_content(model="gemini-2.0-flash", contents="x")
    assert (info.value.code, info.value.status) == (429, "RESOURCE_EXHAUSTED")
    other = genai.Client(vertexai=True, project="someone-else", location="us-central1", credentials=creds,
                         http_options=types.HttpOptions(base_url=api.url))
    with pytest.raises(errors.ClientError, match="PERMISSION_DENIED|denied"):
        other.models.generate_content(model="gemini-2.0-flash", contents="x")
    r = httpx.post(f"{api.url}/v1/projects/{PROJECT}/locations/us-central1/publishers/google/models/g:generateContent",
                   json={"contents": [{"role": "user", "parts": [{"text": "x"}]}]})
    assert r.status_code == 401 and r.json()["error"]["status"] == "UNAUTHENTICATED"
    sdk.close()
    other.close()


def test_the_fake_speaks_the_protocol_the_anthropic_vertex_sdk_speaks(api, monkeypatch):
    anthropic = pytest.importorskip("anthropic")
    if not hasattr(anthropic, "AnthropicVertex"):
        pytest.skip("this anthropic SDK has no AnthropicVertex")
    from google.oauth2 import service_account

    creds = service_account.Credentials.from_service_account_info(api.service_account(), scopes=[vertex.SCOPE])
    try:
        sdk = anthropic.AnthropicVertex(project_id=PROJECT, region="us-east5", credentials=creds,
                                        base_url=f"{api.url}/v1")
    except TypeError:
        pytest.skip("this AnthropicVertex takes no credentials")
    msg = sdk.messages.create(model="claude-3-5-sonnet-v2@20241022", max_tokens=64,
                              messages=[{"role": "user", "content": "hello vertex claude"}])
    assert msg.content[0].text == "anthropic says: hello vertex claude"
    assert api.last.parts[3:] == ("anthropic", "claude-3-5-sonnet-v2@20241022", "rawPredict")
    with sdk.messages.stream(model="claude-3-5-sonnet-v2@20241022", max_tokens=64,
                             messages=[{"role": "user", "content": "stream it"}]) as stream:
        text = "".join(stream.text_stream)
    assert text == "anthropic says: stream it" and api.last.parts[-1] == "streamRawPredict"
