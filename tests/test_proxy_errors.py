"""The proxy's errors end to end: the OpenAI envelope, upstream failures, retries, no leaked secrets."""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

import httpx
import openai
import pytest

from gateway.testing import MASTER_KEY

UPSTREAM_KEY = "sk-upstream-secret-123"
AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
HI = [{"role": "user", "content": "hi"}]


# -- helpers ----------------------------------------------------------------------------------
def upstream_model(name: str, api_base: str, model: str = "openai/upstream-model", **params: Any) -> dict[str, Any]:
    """A model_list entry for an OpenAI-compatible deployment."""
    return {"model_name": name,
            "litellm_params": {"model": model, "api_base": api_base, "api_key": UPSTREAM_KEY, **params}}


def config(*models: dict[str, Any], **router: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {"model_list": list(models)}
    if router:
        cfg["router_settings"] = router
    return cfg


def closed_port_url() -> str:
    """A loopback URL nothing listens on (the port was free a moment ago)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def error_of(resp: httpx.Response, status: int, etype: str, message: str | None = None) -> dict[str, Any]:
    """Check the exact OpenAI envelope, its status and type (and message if given); return the error."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.headers["x-request-id"]
    body = resp.json()
    assert set(body) == {"error"}
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["code"] == str(status)
    assert err["type"] == etype
    assert isinstance(err["message"], str) and err["message"]
    if message is not None:
        assert err["message"] == message
    return err


@pytest.fixture
def proxy(gateway_server, fake_upstream):
    """A gateway with `gpt-test` on the fake upstream; no retries, so each call is one attempt."""
    return gateway_server(config(upstream_model("gpt-test", fake_upstream.url), num_retries=0))


@pytest.fixture
def http(proxy):
    with httpx.Client(base_url=proxy.url, timeout=30) as c:
        yield c


def chat(http: httpx.Client, **body: Any) -> httpx.Response:
    return http.post("/v1/chat/completions", headers=AUTH, json={"model": "gpt-test", "messages": HI, **body})


# -- authentication ---------------------------------------------------------------------------
def test_no_key(http):
    resp = http.post("/v1/chat/completions", json={"model": "gpt-test", "messages": HI})
    error_of(resp, 401, "auth_error", "Authentication Error, No api key passed in.")


def test_key_without_sk_prefix_is_not_echoed(http):
    resp = http.post("/v1/chat/completions", headers={"Authorization": "Bearer abcdefghSECRETTAIL"},
                     json={"model": "gpt-test", "messages": HI})
    err = error_of(resp, 401, "auth_error")
    assert err["message"] == ("Authentication Error, Virtual key expected. Received=abcdefgh..., "
                              "expected to start with 'sk-'.")
    assert "SECRETTAIL" not in resp.text


def test_unknown_sk_key(http):
    resp = http.post("/v1/chat/completions", headers={"Authorization": "Bearer sk-not-a-real-key"},
                     json={"model": "gpt-test", "messages": HI})
    error_of(resp, 401, "auth_error", "Authentication Error, Invalid proxy server token passed")


def test_key_accepted_from_each_header(http):
    for header in ("Authorization", "api-key", "x-api-key"):
        value = f"Bearer {MASTER_KEY}" if header == "Authorization" else MASTER_KEY
        resp = http.post("/v1/chat/completions", headers={header: value}, json={"model": "gpt-test", "messages": HI})
        assert resp.status_code == 200, (header, resp.text)


def test_models_need_a_key(http):
    error_of(http.get("/v1/models"), 401, "auth_error", "Authentication Error, No api key passed in.")


def test_sdk_raises_authentication_error(proxy):
    with proxy.client(api_key="sk-not-a-real-key") as client:
        with pytest.raises(openai.AuthenticationError) as info:
            client.chat.completions.create(model="gpt-test", messages=HI)
    assert info.value.status_code == 401
    assert info.value.body["code"] == "401"


# -- bad requests -----------------------------------------------------------------------------
def test_unknown_model(http, fake_upstream):
    err = error_of(chat(http, model="gpt-nope"), 400, "bad_request_error")
    assert err["message"] == ("Invalid model name passed in model=gpt-nope. "
                              "Call /v1/models to view available models for your key.")
    assert fake_upstream.requests == []


MALFORMED = [b"{not json", b"", b"[1, 2]", b"\xff\xfe", b'{"model": "gpt-test",']

WRONG_TYPES = [  # (path, body, the field the 400 must name)
    ("/v1/chat/completions", {"model": "gpt-test", "messages": "hi"}, "messages"),
    ("/v1/chat/completions", {"model": "gpt-test", "messages": []}, "messages"),
    ("/v1/chat/completions", {"model": "gpt-test", "messages": ["hi"]}, "messages[0]"),
    ("/v1/chat/completions", {"model": "gpt-test"}, "messages"),
    ("/v1/chat/completions", {"model": "gpt-test", "messages": HI, "stream": "yes"}, "stream"),
    ("/v1/chat/completions", {"model": "gpt-test", "messages": HI, "stream_options": "x"}, "stream_options"),
    ("/v1/chat/completions", {"model": "gpt-test", "messages": HI, "metadata": "x"}, "metadata"),
    ("/v1/chat/completions", {"model": "gpt-test", "messages": HI, "user": 7}, "user"),
    ("/v1/chat/completions", {"model": "gpt-test", "messages": HI, "tags": "a"}, "tags"),
    ("/v1/chat/completions", {"model": 42, "messages": HI}, "model"),
    ("/v1/chat/completions", {"messages": HI}, "model"),
    ("/v1/completions", {"model": "gpt-test", "prompt": 5}, "prompt"),
    ("/v1/embeddings", {"model": "gpt-test", "input": {"a": 1}}, "input"),
]


def test_malformed_json_is_400(http, fake_upstream):
    for raw in MALFORMED:
        resp = http.post("/v1/chat/completions", headers={**AUTH, "content-type": "application/json"}, content=raw)
        assert resp.status_code == 400, (raw, resp.text)
        error_of(resp, 400, "bad_request_error")
    assert fake_upstream.requests == []


def test_wrong_field_types_name_the_field(http, fake_upstream):
    for path, body, param in WRONG_TYPES:
        resp = http.post(path, headers=AUTH, json=body)
        assert resp.status_code == 400, (body, resp.text)
        err = error_of(resp, 400, "bad_request_error")
        assert err["param"] == param, (body, err)
        assert param.split("[")[0] in err["message"], (body, err)
    assert fake_upstream.requests == []


def test_unknown_route_is_404_envelope(http):
    err = error_of(http.get("/v1/no-such-thing"), 404, "not_found_error")
    assert "/v1/no-such-thing" in err["message"]


def test_wrong_method_is_405_envelope(http):
    resp = http.get("/v1/chat/completions", headers=AUTH)
    error_of(resp, 405, "method_not_allowed")
    assert "POST" in resp.headers["allow"]


# -- upstream failures ------------------------------------------------------------------------
def test_upstream_500_keeps_status_and_message(http, fake_upstream):
    fake_upstream.fail_next(500, message="the model melted")
    err = error_of(chat(http), 500, "server_error")
    assert err["message"] == "OpenAIException - the model melted"


def test_upstream_500_through_the_sdk(proxy, fake_upstream):
    fake_upstream.fail_next(500, message="the model melted")
    with proxy.client() as client, pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="gpt-test", messages=HI)
    assert info.value.status_code == 500
    assert "OpenAIException - the model melted" in info.value.message


def test_upstream_500_on_a_stream_request_is_an_http_error(proxy, fake_upstream):
    fake_upstream.fail_next(500, message="the model melted")
    with proxy.client() as client, pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="gpt-test", messages=HI, stream=True)
    assert "OpenAIException - the model melted" in info.value.message


def test_upstream_400_is_passed_through_and_not_retried(gateway_server, fake_upstream):
    server = gateway_server(config(upstream_model("gpt-test", fake_upstream.url), num_retries=3))
    fake_upstream.fail_next(400, message="temperature is out of range", type="invalid_request_error")
    with httpx.Client(base_url=server.url, timeout=30) as http:
        err = error_of(chat(http), 400, "invalid_request_error")
    assert err["message"] == "OpenAIException - temperature is out of range"
    assert len(fake_upstream.requests) == 1


def test_upstream_error_echoing_the_key_is_redacted(http, fake_upstream):
    fake_upstream.fail_next(401, message=f"Incorrect API key provided: {UPSTREAM_KEY}.", type="invalid_request_error")
    resp = chat(http)
    err = error_of(resp, 401, "invalid_request_error")
    assert err["message"].startswith("OpenAIException - Incorrect API key provided: ")
    assert UPSTREAM_KEY not in resp.text


def test_upstream_timeout_is_504(gateway_server, fake_upstream):
    server = gateway_server(config(upstream_model("gpt-slow", fake_upstream.url, timeout=0.5), num_retries=0))
    fake_upstream.delay = 2
    with httpx.Client(base_url=server.url, timeout=30) as http:
        resp = http.post("/v1/chat/completions", headers=AUTH, json={"model": "gpt-slow", "messages": HI})
    err = error_of(resp, 504, "timeout")
    assert "gpt-slow" in err["message"]
    assert UPSTREAM_KEY not in resp.text


def test_a_body_that_stalls_after_the_headers_is_bounded_by_the_timeout_too(gateway_server):
    """`timeout` bounds the whole non-streamed call: an upstream that sends its headers at once and
    then stalls mid-body is cut off by the same deadline."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def stall() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{")
            stop.wait(5)

    threading.Thread(target=stall, daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    server = gateway_server(config(upstream_model("gpt-stall", url, timeout=0.5), num_retries=0))
    try:
        started = time.monotonic()
        with httpx.Client(base_url=server.url, timeout=30) as http:
            resp = http.post("/v1/chat/completions", headers=AUTH, json={"model": "gpt-stall", "messages": HI})
        took = time.monotonic() - started
    finally:
        stop.set()
        listener.close()
    err = error_of(resp, 504, "timeout")
    assert "gpt-stall" in err["message"]
    assert took < 3, took


def test_upstream_timeout_on_a_stream_request_is_504(gateway_server, fake_upstream):
    server = gateway_server(config(upstream_model("gpt-slow", fake_upstream.url, timeout=0.3), num_retries=0))
    fake_upstream.delay = 1
    with server.client() as client, pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="gpt-slow", messages=HI, stream=True)
    assert info.value.status_code == 504
    assert info.value.body["type"] == "timeout"


def test_upstream_unreachable_is_502(gateway_server):
    server = gateway_server(config(upstream_model("gpt-down", closed_port_url())))
    with httpx.Client(base_url=server.url, timeout=30) as http:
        resp = http.post("/v1/chat/completions", headers=AUTH, json={"model": "gpt-down", "messages": HI})
    err = error_of(resp, 502, "api_connection_error")
    assert "gpt-down" in err["message"]
    assert UPSTREAM_KEY not in resp.text


def test_upstream_breaks_mid_stream(proxy, fake_upstream):
    fake_upstream.break_stream_after = 2
    received = []
    with proxy.client() as client:
        stream = client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "one two three four five"}], stream=True)
        with pytest.raises(openai.APIError) as info:
            for chunk in stream:
                received.append(chunk)
    assert len(received) == 2
    assert "".join(c.choices[0].delta.content for c in received) == "upstream says:"
    assert info.value.message.startswith("OpenAIException - ")


# -- retries ----------------------------------------------------------------------------------
@pytest.mark.parametrize("cooldown_time", [None, 0], ids=["cooldown", "no-cooldown"])
def test_a_dead_deployment_is_retried_on_the_live_one(gateway_server, fake_upstream, cooldown_time):
    """Without a cooldown about half the requests try the dead one first, so the retry is exercised."""
    server = gateway_server(config(upstream_model("gpt-pair", closed_port_url()),
                                   upstream_model("gpt-pair", fake_upstream.url), cooldown_time=cooldown_time))
    with server.client() as client:
        for i in range(10):
            reply = client.chat.completions.create(model="gpt-pair", messages=[{"role": "user", "content": f"n{i}"}])
            assert reply.choices[0].message.content == f"upstream says: n{i}"


def test_a_500_is_retried_on_the_other_deployment(gateway_server, fake_upstream):
    server = gateway_server(config(upstream_model("gpt-pair", fake_upstream.url, model="openai/model-a"),
                                   upstream_model("gpt-pair", fake_upstream.url, model="openai/model-b")))
    with server.client() as client:
        for _ in range(10):
            fake_upstream.fail_next(500)
            assert client.chat.completions.create(model="gpt-pair", messages=HI).choices[0].message.content


def test_all_deployments_down_without_retries(gateway_server):
    server = gateway_server(config(upstream_model("gpt-pair", closed_port_url()),
                                   upstream_model("gpt-pair", closed_port_url()), num_retries=0))
    with httpx.Client(base_url=server.url, timeout=30) as http:
        resp = http.post("/v1/chat/completions", headers=AUTH, json={"model": "gpt-pair", "messages": HI})
    error_of(resp, 502, "api_connection_error")


def test_429_is_retried_on_the_other_deployment(gateway_server, fake_upstream):
    server = gateway_server(config(upstream_model("gpt-pair", fake_upstream.url, model="openai/model-a"),
                                   upstream_model("gpt-pair", fake_upstream.url, model="openai/model-b")))
    fake_upstream.fail_next(429, message="slow down", type="rate_limit_error")
    with server.client() as client:
        reply = client.chat.completions.create(model="gpt-pair", messages=HI)
    assert reply.choices[0].message.content == "upstream says: hi"
    first, second = (r.json["model"] for r in fake_upstream.requests)
    assert {first, second} == {"model-a", "model-b"}


def test_errors_and_logs_never_contain_the_upstream_key(gateway_server, fake_upstream, caplog):
    caplog.set_level(logging.DEBUG, logger="gateway")
    server = gateway_server(config(upstream_model("gpt-test", fake_upstream.url, timeout=0.5),
                                   upstream_model("gpt-down", closed_port_url())))
    bodies = []
    with httpx.Client(base_url=server.url, timeout=30) as http:
        fake_upstream.fail_next(500, times=3)
        bodies.append(chat(http).text)
        fake_upstream.fail_next(429, times=3)
        bodies.append(chat(http).text)
        fake_upstream.fail_next(400)
        bodies.append(chat(http).text)
        bodies.append(chat(http, model="gpt-down").text)
        bodies.append(chat(http, stream=True).text)
        fake_upstream.delay = 1
        bodies.append(chat(http).text)
    assert all('"error"' in b for b in bodies[:4] + bodies[5:])
    assert any(r.name == "gateway.upstream" for r in caplog.records), "the upstream calls were not logged"
    for text in [*bodies, caplog.text]:
        assert UPSTREAM_KEY not in text
