"""A deployment's `litellm_params` beyond where to call: request defaults (`temperature`,
`max_tokens`, ...; the request's own win), `extra_body`, `additional_drop_params`, `ssl_verify`,
and Azure's v1 API versions. What the upstream received is what is checked."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
import threading

import openai
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def config(upstream_url: str, **params):
    return {"model_list": [{"model_name": "m", "litellm_params": {
        "model": "openai/upstream-model", "api_base": upstream_url, "api_key": "sk-up", **params}}]}


def chat(server, **kwargs):
    with server.client() as client:
        return client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], **kwargs)


def test_deployment_params_are_defaults_the_request_overrides(fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream.url, temperature=0.2, max_tokens=64, top_p=0.9,
                                   reasoning_effort="low", rpm=100))
    chat(server)
    chat(server, temperature=0.7, max_tokens=10)
    first, second = (r.json for r in fake_upstream.requests)
    assert (first["temperature"], first["max_tokens"], first["top_p"], first["reasoning_effort"]) == (0.2, 64, 0.9, "low")
    assert (second["temperature"], second["max_tokens"], second["top_p"]) == (0.7, 10, 0.9)
    for body in (first, second):  # the gateway's own settings never go upstream
        assert not {"rpm", "api_key", "api_base"} & set(body)


def test_extra_body_is_merged_and_additional_drop_params_removed(fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream.url, extra_body={"chat_template_kwargs": {"thinking": False}},
                                   additional_drop_params=["logit_bias", "user"]))
    chat(server, user="alice", logit_bias={"50256": -100}, temperature=0.5)
    (sent,) = fake_upstream.requests
    assert sent.json["chat_template_kwargs"] == {"thinking": False}
    assert "logit_bias" not in sent.json and "user" not in sent.json
    assert sent.json["temperature"] == 0.5


@pytest.mark.parametrize(("api_version", "path", "query"), [
    ("2024-10-21", "/openai/deployments/gpt-4o-prod/chat/completions", {"api-version": "2024-10-21"}),
    ("preview", "/openai/v1/chat/completions", {"api-version": "preview"}),
    ("latest", "/openai/v1/chat/completions", {}),
])
def test_azure_api_versions_build_azures_urls(fake_upstream, gateway_server, api_version, path, query):
    server = gateway_server({"model_list": [{"model_name": "m", "litellm_params": {
        "model": "azure/gpt-4o-prod", "api_base": fake_upstream.root, "api_key": "azure-key",
        "api_version": api_version}}]})
    chat(server)
    (sent,) = fake_upstream.requests
    assert (sent.path, sent.query) == (path, query)
    assert sent.headers["api-key"] == "azure-key" and "authorization" not in sent.headers
    assert sent.json["model"] == "gpt-4o-prod"


# -- ssl_verify: an HTTPS upstream whose certificate no default trust store knows ----------------------

REPLY = {"id": "chatcmpl-tls", "object": "chat.completion", "created": 1, "model": "upstream-model",
         "choices": [{"index": 0, "message": {"role": "assistant", "content": "over TLS"}, "finish_reason": "stop"}],
         "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}


@pytest.fixture
def tls_upstream(tmp_path):
    """An HTTPS OpenAI-style upstream with a self-signed certificate; yields (url, ca_path)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tls-upstream")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    ca = tmp_path / "ca.pem"
    ca.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file = tmp_path / "key.pem"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(ca, key_file)
    seen: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.json_response(REPLY)

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))

    async def boot() -> web.AppRunner:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", answer)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.SockSite(runner, sock, ssl_context=context).start()
        return runner

    runner = asyncio.run_coroutine_threadsafe(boot(), loop).result(10)
    yield f"https://127.0.0.1:{sock.getsockname()[1]}/v1", str(ca), seen
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def test_ssl_verify_with_a_ca_bundle_or_off_reaches_a_self_signed_upstream(tls_upstream, gateway_server):
    url, ca, seen = tls_upstream
    server = gateway_server({"model_list": [
        {"model_name": "strict", "litellm_params": {"model": "openai/upstream-model", "api_base": url, "api_key": "k"}},
        {"model_name": "bundle", "litellm_params": {"model": "openai/upstream-model", "api_base": url, "api_key": "k",
                                                    "ssl_verify": ca}},
        {"model_name": "off", "litellm_params": {"model": "openai/upstream-model", "api_base": url, "api_key": "k",
                                                 "ssl_verify": False}},
    ], "router_settings": {"num_retries": 0}})
    with server.client() as client:
        with pytest.raises(openai.APIStatusError) as err:  # the default trust store does not know it
            client.chat.completions.create(model="strict", messages=[{"role": "user", "content": "hi"}])
        assert err.value.status_code == 502
        assert "Connection error calling deployment strict" in err.value.response.json()["error"]["message"]
        for model in ("bundle", "off"):
            reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
            assert reply.choices[0].message.content == "over TLS"
    assert seen == ["/v1/chat/completions", "/v1/chat/completions"]


def test_ssl_verify_naming_a_missing_file_stops_start_up(tmp_path):
    from gateway.core.app import create_app
    from gateway.core.providers.deployment import DeploymentError
    from gateway.core.settings import load_settings

    path = tmp_path / "config.yaml"
    path.write_text("model_list:\n  - model_name: m\n    litellm_params: {model: openai/x, api_base: 'https://h/v1', "
                    f"ssl_verify: '{tmp_path}/nope.pem'}}\n")
    with pytest.raises(DeploymentError, match=r"ssl_verify: .*nope.pem' is neither true, false nor an existing CA bundle"):
        create_app(load_settings(str(path)))


@pytest.mark.parametrize("model, field", [("openai/o3-mini", "max_completion_tokens"), ("openai/gpt-5", "max_completion_tokens"),
                                          ("openai/gpt-4o", "max_tokens"), ("groq/o3-like", "max_tokens")])
def test_reasoning_models_get_max_completion_tokens(fake_upstream, gateway_server, model, field):
    """OpenAI's reasoning models refuse `max_tokens` on chat (a client's, or a Responses call's
    `max_output_tokens`): for them it is sent as `max_completion_tokens`."""
    server = gateway_server(config(fake_upstream.url, model=model))
    chat(server, max_tokens=12)
    with server.client() as client:
        client.responses.create(model="m", input="hi", max_output_tokens=34)
    sent = [r.json for r in fake_upstream.requests]
    other = ({"max_tokens", "max_completion_tokens"} - {field}).pop()
    assert [(s.get(field), other in s) for s in sent] == [(12, False), (34, False)]
