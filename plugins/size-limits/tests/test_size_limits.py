"""The size-limits plugin against a real gateway and a real upstream, configured as the seed does."""

from __future__ import annotations

import json
import logging
import socket

import httpx
import openai
import pytest

ADMIN = {"Authorization": "Bearer sk-1234", "Content-Type": "application/json"}
MB = 1024 * 1024

# The seed's request, byte for byte as its curl sends it.
SEED_BODY = b"""{
"model": "fake-openai-endpoint",
"messages": [
{"role": "user", "content": "Hello, Claude!"}
]
}"""


def seed_config(upstream_url: str) -> dict:
    return {
        "model_list": [{"model_name": "fake-openai-endpoint", "litellm_params": {
            "model": "openai/fake", "api_key": "fake-key", "api_base": upstream_url}}],
        "general_settings": {"master_key": "sk-1234", "max_request_size_mb": 0.000000001,
                             "max_response_size_mb": 100},
    }


def test_seed_example_is_refused_with_the_seed_message(gateway_server, fake_upstream, caplog):
    gw = gateway_server(seed_config(fake_upstream.url))
    with caplog.at_level(logging.WARNING, logger="gateway.plugins.size_limits"):
        r = httpx.post(gw.url + "/v1/chat/completions", headers=ADMIN, content=SEED_BODY)
    assert r.status_code == 400
    assert r.json() == {"error": {
        "message": f"Request size is too large. Request size is {len(SEED_BODY) / MB} MB. Max size is 1e-09 MB",
        "type": "bad_request_error", "param": "content-length", "code": "400"}}
    assert fake_upstream.requests == []  # nothing went upstream
    assert any("Request size is too large" in r.getMessage() for r in caplog.records)


def test_under_the_limit_passes(gateway_server, fake_upstream):
    cfg = seed_config(fake_upstream.url)
    cfg["general_settings"]["max_request_size_mb"] = 1
    gw = gateway_server(cfg)
    reply = gw.client().chat.completions.create(model="fake-openai-endpoint",
                                                messages=[{"role": "user", "content": "Hello, Claude!"}])
    assert reply.choices[0].message.content == "upstream says: Hello, Claude!"


def _chunked_post(port: int, path: str, total: int) -> tuple[int, dict]:
    """POST `total` bytes with Transfer-Encoding: chunked (no content-length), on a raw socket."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk-1234\r\n"
                     "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
        chunk = b"x" * 65536
        sent = 0
        try:
            while sent < total:
                piece = chunk[: min(len(chunk), total - sent)]
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                sent += len(piece)
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before it has read everything
        data = b""
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            more = sock.recv(65536)
            if not more:
                break
            data += more
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    start = body.find(b"{")
    return status, json.loads(body[start: body.rfind(b"}") + 1])


def test_body_without_content_length_is_counted_and_never_buffered_past_the_limit(gateway_server, fake_upstream):
    cfg = seed_config(fake_upstream.url)
    cfg["general_settings"]["max_request_size_mb"] = 0.001  # 1048 bytes
    gw = gateway_server(cfg)
    status, body = _chunked_post(gw.port, "/v1/chat/completions", 8 * MB)
    limit = int(0.001 * MB)
    assert status == 400
    # The size reported is what was read: the limit plus one byte, not the 8 MB sent.
    assert body["error"]["message"] == (
        f"Request size is too large. Request size is {(limit + 1) / MB} MB. Max size is 0.001 MB")


def test_response_over_the_limit_is_refused(gateway_server, fake_upstream):
    fake_upstream.reply = "word " * 400  # about 2 KB of JSON
    cfg = seed_config(fake_upstream.url)
    cfg["general_settings"] = {"master_key": "sk-1234", "max_response_size_mb": 0.001}
    gw = gateway_server(cfg)
    with pytest.raises(openai.BadRequestError) as err:
        gw.client().chat.completions.create(model="fake-openai-endpoint", messages=[{"role": "user", "content": "hi"}])
    assert err.value.body["message"].startswith("Response size is too large. Response size is ")
    assert err.value.body["message"].endswith(" MB. Max size is 0.001 MB")
    assert err.value.body["param"] == "content-length"


def test_stream_over_the_limit_ends_with_an_error_event(gateway_server, fake_upstream):
    fake_upstream.reply = "word " * 400
    cfg = seed_config(fake_upstream.url)
    cfg["general_settings"] = {"master_key": "sk-1234", "max_response_size_mb": 0.002}
    gw = gateway_server(cfg)
    received = []
    with pytest.raises(openai.APIError) as err:
        for chunk in gw.client().chat.completions.create(
                model="fake-openai-endpoint", messages=[{"role": "user", "content": "hi"}], stream=True):
            received.append(chunk)
    assert received, "some chunks arrive before the limit is passed"
    assert "Response size is too large" in err.value.message


def test_a_config_with_no_limit_is_refused_at_start_up(gateway_server, fake_upstream):
    cfg = seed_config(fake_upstream.url)
    cfg["general_settings"] = {"master_key": "sk-1234"}
    cfg["plugins"] = [{"name": "size_limits", "config": {}}]
    with pytest.raises(Exception, match="size_limits.*max_request_size_mb or max_response_size_mb"):
        gateway_server(cfg)
