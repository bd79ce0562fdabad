"""A request refused before its body is read (a wrong key, a missing CSRF token) must leave its
kept-alive connection usable, or say that it closes: hypercorn otherwise drops the connection
silently and the client's next request on it fails ("Server disconnected")."""

from __future__ import annotations

import socket
import time

import pytest

BODY = b'{"key_alias": "refused"}'


def request(path: str, key: str, length: int) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n").encode()


def read_reply(sock: socket.socket) -> tuple[int, dict[str, str]]:
    """One reply's status and headers; its body (a content-length) is read and dropped."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"the gateway closed the connection without replying (read {data!r})")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    while len(rest) < int(headers.get("content-length", "0")):
        rest += sock.recv(65536)
    return int(lines[0].split()[1]), headers


@pytest.fixture
def gw(gateway_server):
    return gateway_server({"model_list": [{"model_name": "fake-model", "litellm_params": {"model": "fake/echo"}}]})


def test_a_refused_request_whose_body_comes_late_leaves_the_connection_serving(gw):
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as sock:
        sock.sendall(request("/key/generate", "sk-wrong", len(BODY)))
        time.sleep(0.3)  # the body arrives well after the headers (a slow client, a busy machine)
        sock.sendall(BODY)
        status, headers = read_reply(sock)
        assert status == 401 and headers.get("connection") != "close"
        sock.sendall(request("/key/generate", "sk-1234", 2) + b"{}")  # the same connection, reused
        status, _ = read_reply(sock)
        assert status == 200


def test_a_refused_request_with_a_large_unread_body_is_told_the_connection_closes(gw):
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as sock:
        sock.sendall(request("/key/generate", "sk-wrong", 10 * 1024 * 1024))  # the body never sent
        status, headers = read_reply(sock)
        assert status == 401 and headers.get("connection") == "close"
