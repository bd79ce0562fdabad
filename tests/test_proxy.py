"""The proxy end to end, as a client sees it: a real gateway, a real upstream, the official SDK.

Happy paths, what reaches the upstream, Azure, headers, public routes and development mode.
Errors, retries and secrets are in test_proxy_errors.py.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import openai
import pytest

from gateway.testing import MASTER_KEY

UPSTREAM_KEY = "sk-upstream-secret-123"
AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}


# -- config helpers ---------------------------------------------------------------------------
def upstream_model(name: str, api_base: str, model: str = "openai/upstream-model", **params: Any) -> dict[str, Any]:
    """A model_list entry for an OpenAI-compatible deployment."""
    return {"model_name": name,
            "litellm_params": {"model": model, "api_base": api_base, "api_key": UPSTREAM_KEY, **params}}


def fake_model(name: str, model: str = "fake/echo-1") -> dict[str, Any]:
    """A model_list entry for the built-in, in-process fake provider."""
    return {"model_name": name, "litellm_params": {"model": model}}


def config(*models: dict[str, Any], **general: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {"model_list": list(models)}
    if general:
        cfg["general_settings"] = general
    return cfg


@pytest.fixture
def proxy(gateway_server, fake_upstream):
    """A gateway with `gpt-test` on the fake upstream and `fake-model` on the built-in fake."""
    return gateway_server(config(upstream_model("gpt-test", fake_upstream.url), fake_model("fake-model")))


@pytest.fixture
def client(proxy):
    with proxy.client() as c:
        yield c


@pytest.fixture
def http(proxy):
    with httpx.Client(base_url=proxy.url, timeout=30) as c:
        yield c


def chat_text(client: Any, model: str, content: str, **kwargs: Any) -> str:
    stream = client.chat.completions.create(model=model, messages=[{"role": "user", "content": content}],
                                            stream=True, **kwargs)
    return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


# -- the OpenAI surface through an upstream deployment ----------------------------------------
def test_chat_through_upstream(client):
    reply = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hello there"}])
    assert reply.choices[0].message.content == "upstream says: hello there"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens > 0


def test_chat_streamed_through_upstream(client):
    assert chat_text(client, "gpt-test", "hello streamed world") == "upstream says: hello streamed world"


def test_completion_through_upstream(client):
    reply = client.completions.create(model="gpt-test", prompt="say this")
    assert reply.choices[0].text == "upstream says: say this"
    assert reply.usage.total_tokens > 0


def test_completion_streamed_through_upstream(client):
    chunks = list(client.completions.create(model="gpt-test", prompt="say this slowly", stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "upstream says: say this slowly"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_embeddings_through_upstream(client, fake_upstream):
    reply = client.embeddings.create(model="gpt-test", input=["one", "two words"])
    assert [d.index for d in reply.data] == [0, 1]
    assert all(len(d.embedding) == 4 for d in reply.data)
    assert reply.usage.prompt_tokens == 3
    assert fake_upstream.requests[-1].path == "/v1/embeddings"


def test_models_list_names_every_group(client):
    ids = {m.id for m in client.models.list()}
    assert ids == {"gpt-test", "fake-model"}


def test_models_retrieve(client):
    model = client.models.retrieve("gpt-test")
    assert model.id == "gpt-test"
    assert model.object == "model"


def test_models_retrieve_unknown_is_404(client):
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("no-such-model")
    assert info.value.body["code"] == "404"


# -- the built-in fake provider ---------------------------------------------------------------
def test_fake_chat_is_deterministic_with_usage(client):
    messages = [{"role": "user", "content": "tell me a story"}]
    first = client.chat.completions.create(model="fake-model", messages=messages)
    second = client.chat.completions.create(model="fake-model", messages=messages)
    other = client.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "other"}])
    assert first.choices[0].message.content == second.choices[0].message.content
    assert "tell me a story" in first.choices[0].message.content
    assert other.choices[0].message.content != first.choices[0].message.content
    assert first.usage.total_tokens == first.usage.prompt_tokens + first.usage.completion_tokens > 0


def test_fake_chat_streamed_matches_plain(client):
    messages = [{"role": "user", "content": "stream me"}]
    plain = client.chat.completions.create(model="fake-model", messages=messages).choices[0].message.content
    assert chat_text(client, "fake-model", "stream me") == plain


def test_fake_completion_plain_and_streamed(client):
    plain = client.completions.create(model="fake-model", prompt="complete me")
    streamed = client.completions.create(model="fake-model", prompt="complete me", stream=True)
    assert "complete me" in plain.choices[0].text
    assert "".join(c.choices[0].text for c in streamed if c.choices) == plain.choices[0].text
    assert plain.usage.total_tokens > 0


def test_fake_embeddings_are_deterministic(client):
    first = client.embeddings.create(model="fake-model", input="same text")
    second = client.embeddings.create(model="fake-model", input="same text")
    other = client.embeddings.create(model="fake-model", input="other text")
    assert first.data[0].embedding == second.data[0].embedding
    assert first.data[0].embedding != other.data[0].embedding
    assert first.usage.prompt_tokens > 0


def test_fake_stream_usage_only_when_asked(client):
    without = list(client.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "hi"}], stream=True))
    with_usage = list(client.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True}))
    assert all(c.usage is None for c in without)
    assert with_usage[-1].choices == [] and with_usage[-1].usage.total_tokens > 0


# -- streaming usage --------------------------------------------------------------------------
def test_stream_asks_upstream_for_usage_but_hides_it(client, fake_upstream):
    chunks = list(client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "hi"}], stream=True))
    assert fake_upstream.requests[-1].json["stream_options"] == {"include_usage": True}
    assert chunks and all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)


def test_stream_usage_chunk_when_client_asks(client, fake_upstream):
    chunks = list(client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "hi there"}], stream=True,
        stream_options={"include_usage": True}))
    last = chunks[-1]
    assert last.choices == []
    assert last.usage.prompt_tokens == 2
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens


def test_completion_stream_hides_usage_unless_asked(client, fake_upstream):
    chunks = list(client.completions.create(model="gpt-test", prompt="hi", stream=True))
    assert fake_upstream.requests[-1].json["stream_options"] == {"include_usage": True}
    assert all(c.usage is None for c in chunks)


# -- what reaches the upstream ----------------------------------------------------------------
def test_unknown_fields_pass_through_untouched(client, fake_upstream):
    client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}],
                                   temperature=0.25, extra_body={"foo": {"bar": 1}})
    sent = fake_upstream.requests[-1].json
    assert sent["foo"] == {"bar": 1}
    assert sent["temperature"] == 0.25


def test_metadata_is_not_forwarded(client, fake_upstream):
    client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}],
                                   extra_body={"metadata": {"trace": "abc"}})
    assert "metadata" not in fake_upstream.requests[-1].json


def test_upstream_model_name_replaces_group_name(client, fake_upstream):
    reply = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
    assert fake_upstream.requests[-1].json["model"] == "upstream-model"
    assert reply.model == "upstream-model"


def test_upstream_gets_the_deployment_key(client, fake_upstream):
    client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
    headers = {k.lower(): v for k, v in fake_upstream.requests[-1].headers.items()}
    assert headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert MASTER_KEY not in " ".join(headers.values())


# -- Azure ------------------------------------------------------------------------------------
@pytest.fixture
def azure_proxy(gateway_server, fake_upstream):
    return gateway_server(config(upstream_model(
        "gpt-azure", fake_upstream.root, model="azure/my-deploy", api_version="2024-10-21", api_key="az-key")))


def test_azure_deployment_url_query_and_key(azure_proxy, fake_upstream):
    with azure_proxy.client() as client:
        reply = client.chat.completions.create(model="gpt-azure", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "upstream says: hi"
    seen = fake_upstream.requests[-1]
    headers = {k.lower(): v for k, v in seen.headers.items()}
    assert seen.path == "/openai/deployments/my-deploy/chat/completions"
    assert seen.query == {"api-version": "2024-10-21"}
    assert headers["api-key"] == "az-key"
    assert "authorization" not in headers


@pytest.mark.parametrize("path", ["/openai/deployments/gpt-test/chat/completions",
                                  "/engines/gpt-test/chat/completions"])
def test_client_side_deployment_routes(http, fake_upstream, path):
    resp = http.post(path, params={"api-version": "2024-10-21"}, headers={"api-key": MASTER_KEY},
                     json={"messages": [{"role": "user", "content": "via path"}]})
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"] == "upstream says: via path"
    assert fake_upstream.requests[-1].json["model"] == "upstream-model"


def test_client_side_deployment_route_overrides_body_model(http, fake_upstream):
    resp = http.post("/openai/deployments/fake-model/chat/completions", headers=AUTH,
                     json={"model": "gpt-test", "messages": [{"role": "user", "content": "which"}]})
    assert resp.status_code == 200, resp.text
    assert resp.json()["model"] == "echo-1"
    assert fake_upstream.requests == []


# -- headers ----------------------------------------------------------------------------------
def test_request_id_is_echoed(http):
    resp = http.post("/v1/chat/completions", headers={**AUTH, "x-request-id": "my-trace-42"},
                     json={"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]})
    assert resp.status_code == 200
    assert resp.headers["x-request-id"] == "my-trace-42"


def test_request_id_is_generated_and_unique(http):
    ids = {http.get("/v1/models", headers=AUTH).headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3 and all(ids)


def test_request_id_on_streams(http):
    body = {"model": "gpt-test", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with http.stream("POST", "/v1/chat/completions", headers={**AUTH, "x-request-id": "stream-id"}, json=body) as resp:
        assert resp.headers["x-request-id"] == "stream-id"
        assert resp.headers["content-type"].startswith("text/event-stream")
        assert resp.read().endswith(b"data: [DONE]\n\n")


ERRORS = [  # (method, path, headers, the status they answer)
    ("POST", "/v1/chat/completions", {}, 401),
    ("POST", "/v1/chat/completions", AUTH, 400),  # no body
    ("GET", "/no/such/route", {}, 404),
    ("GET", "/v1/chat/completions", AUTH, 405),
]


def test_request_id_on_errors(http):
    for method, path, headers, status in ERRORS:
        generated = http.request(method, path, headers=headers)
        echoed = http.request(method, path, headers={**headers, "x-request-id": "err-id"})
        assert generated.status_code == echoed.status_code == status, (method, path)
        assert generated.headers["x-request-id"], (method, path)
        assert echoed.headers["x-request-id"] == "err-id", (method, path)


def test_overhead_header_on_llm_replies(http):
    chat = {"messages": [{"role": "user", "content": "hi"}]}
    for path, body in [("/v1/chat/completions", {"model": "gpt-test", **chat}),
                       ("/v1/chat/completions", {"model": "gpt-test", "stream": True, **chat}),
                       ("/v1/chat/completions", {"model": "fake-model", **chat}),
                       ("/v1/completions", {"model": "gpt-test", "prompt": "hi"}),
                       ("/v1/embeddings", {"model": "gpt-test", "input": "hi"})]:
        resp = http.post(path, headers=AUTH, json=body)
        assert resp.status_code == 200, resp.text
        assert float(resp.headers["x-gateway-overhead-ms"]) >= 0, body


# -- public routes and development mode -------------------------------------------------------
def test_public_routes_need_no_key(http):
    for path in ("/health/liveliness", "/health/liveness", "/"):
        resp = http.get(path)
        assert resp.status_code == 200, (path, resp.text)
        assert resp.headers["x-request-id"]


def test_routes_lists_the_llm_routes(http):
    resp = http.get("/routes")
    assert resp.status_code == 200
    listed = {r["path"]: r["methods"] for r in resp.json()["routes"]}
    for path in ("/v1/chat/completions", "/chat/completions", "/v1/completions", "/v1/embeddings"):
        assert listed[path] == ["POST"]
    assert "GET" in listed["/v1/models"]


def test_dev_mode_needs_no_key(gateway_server, fake_upstream):
    server = gateway_server(config(upstream_model("gpt-test", fake_upstream.url), master_key=None))
    assert server.master_key is None
    with httpx.Client(base_url=server.url, timeout=30) as http:
        resp = http.post("/v1/chat/completions",
                         json={"model": "gpt-test", "messages": [{"role": "user", "content": "no key"}]})
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"] == "upstream says: no key"


@pytest.mark.parametrize("transport", ["gateway", "aiohttp", "httpx-aiohttp", "httpx"])
def test_every_upstream_transport_serves_plain_and_streamed_calls(gateway_server, fake_upstream, transport):
    """GATEWAY_HTTP_TRANSPORT picks how upstreams are called; each must give the same answers."""
    gw = gateway_server({"model_list": [{"model_name": "m", "litellm_params": {
        "model": "openai/upstream-model", "api_base": fake_upstream.url, "api_key": "sk-up"}}],
        "router_settings": {"num_retries": 0}}, env={"GATEWAY_HTTP_TRANSPORT": transport})
    client = gw.client()
    reply = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "ping"}])
    assert reply.choices[0].message.content == "upstream says: ping"
    chunks = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "ping"}], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "upstream says: ping"
    fake_upstream.fail_next(500, message="boom")
    with pytest.raises(openai.InternalServerError) as err:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert err.value.body["message"] == "OpenAIException - boom"


LOADED_CLIENTS = """
import json, sys, urllib.request
from pathlib import Path
from gateway.testing_servers import GatewayServer

server = GatewayServer(Path(sys.argv[1])).start()
try:
    for stream in (False, True):
        body = json.dumps({"model": "m", "stream": stream, "messages": [{"role": "user", "content": "ping"}]})
        sent = urllib.request.Request(server.url + "/v1/chat/completions", data=body.encode(), method="POST",
                                      headers={"Authorization": "Bearer sk-1234", "Content-Type": "application/json"})
        with urllib.request.urlopen(sent, timeout=30) as reply:
            raw = reply.read().decode()
        if stream:
            events = [json.loads(line[6:]) for line in raw.splitlines() if line.startswith("data: {")]
            text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
        else:
            text = json.loads(raw)["choices"][0]["message"]["content"]
        assert text == "upstream says: ping", (stream, raw)
finally:
    server.stop()
print(json.dumps(sorted(m for m in ("aiohttp", "httpx", "httpx_aiohttp") if m in sys.modules)))
"""


@pytest.mark.parametrize("transport,loaded", [("gateway", []), ("aiohttp", ["aiohttp", "httpx", "httpx_aiohttp"])])
def test_a_worker_on_the_default_transport_never_loads_the_library_clients(tmp_path, fake_upstream, transport, loaded):
    """httpx and aiohttp cost ~12 MiB per worker (bench/README.md, Memory): a gateway serving plain and
    streamed calls on its own client never imports them; the aiohttp transport does (so this can tell)."""
    import os
    import subprocess
    import sys

    import yaml

    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(yaml.safe_dump({"model_list": [{"model_name": "m", "litellm_params": {
        "model": "openai/upstream-model", "api_base": fake_upstream.url, "api_key": "sk-up"}}],
        "general_settings": {"master_key": MASTER_KEY, "database_url": f"sqlite:///{tmp_path / 'db.sqlite'}"}}))
    env = {**os.environ, "GATEWAY_HTTP_TRANSPORT": transport}
    done = subprocess.run([sys.executable, "-c", LOADED_CLIENTS, str(cfg)], capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == loaded


async def test_calls_at_once_streamed_or_not_each_get_their_own_answer(gateway_server, fake_upstream):
    """Sixty calls at a time, half streamed, three rounds: the upstream connections are reused from
    call to call, and no call's ending (a stream read to its end, then closed) touches another's."""
    gw = gateway_server({"model_list": [{"model_name": "m", "litellm_params": {
        "model": "openai/upstream-model", "api_base": fake_upstream.url, "api_key": "sk-up"}}],
        "router_settings": {"num_retries": 0}})
    async with gw.async_client() as client:
        async def plain(n: int) -> str:
            reply = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": f"p{n}"}])
            return reply.choices[0].message.content or ""

        async def streamed(n: int) -> str:
            chunks = await client.chat.completions.create(model="m", stream=True,
                                                          messages=[{"role": "user", "content": f"s{n}"}])
            return "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])

        for _ in range(3):
            got = await asyncio.gather(*(plain(n) for n in range(30)), *(streamed(n) for n in range(30)))
            assert got == [f"upstream says: p{n}" for n in range(30)] + [f"upstream says: s{n}" for n in range(30)]
