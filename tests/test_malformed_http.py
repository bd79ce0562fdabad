"""Requests whose HTTP framing is broken get the error envelope (with an `x-request-id`) from the
real `gateway` CLI on uvicorn, not uvicorn's plain-text 400; the server keeps serving."""

from __future__ import annotations

import json
import socket

import httpx
import pytest

from tests.test_processes import Gateway, free_port

BROKEN = {
    "bad content-length": b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}",
    "broken chunked body": b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n",
    "control character in a header": b"GET /health/liveliness HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01b\r\n\r\n",
}


def raw(port: int, data: bytes) -> tuple[str, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    status, *lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return status, headers, body


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("malformed")
    gw = Gateway(tmp, "http://127.0.0.1:9/v1", free_port(), 1, "uvicorn")
    try:
        gw.wait_ready()
        yield gw
    finally:
        gw.cleanup()


@pytest.mark.parametrize("case", BROKEN, ids=list(BROKEN))
def test_unparsable_requests_get_the_error_envelope(served, case):
    status, headers, body = raw(served.port, BROKEN[case])
    assert status.startswith("HTTP/1.1 400"), status
    assert headers["content-type"] == "application/json"
    assert len(headers["x-request-id"]) == 36
    error = json.loads(body)["error"]
    assert error["type"] == "bad_request_error" and error["code"] == "400"
    assert error["message"].startswith("Malformed HTTP request")
    assert httpx.get(served.url + "/health/liveliness", timeout=5).status_code == 200
