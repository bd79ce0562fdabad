"""`max_request_size_mb` on every LLM route, streamed and not, and on transcriptions' multipart form.

The kit's conformance check drives plugins that act on text; this one acts on size, so this module
walks the check's own table of routes (`gateway.conformance.REQUEST_SHAPES`: a route added there is
covered here with no change) and, for each path and stream mode, sends a small body that must be
served and one over the limit that must be refused with the README's message before anything goes
upstream. Transcriptions, multipart and not in that table, get the same two calls. Replies: on
every route whose reply is text (`REPLY_SHAPES`), a reply over `max_response_size_mb` is refused,
a stream cut with its API's error event, next to a small reply that is delivered.
"""

from __future__ import annotations

import json
import socket
from typing import Any

import httpx
import pytest

from gateway.conformance import CONFORMANCE_MODEL, CONFORMANCE_RERANK_MODEL, REPLY_SHAPES, REQUEST_SHAPES

MB = 1024 * 1024
ADMIN = {"Authorization": "Bearer sk-1234"}
LIMIT_MB = 0.001  # 1,048 bytes: a small call fits, 2,000 more characters do not
TRANSCRIPTION_PATHS = ("/v1/audio/transcriptions", "/audio/transcriptions")


def gateway_config(upstream_url: str, **limits: float) -> dict[str, Any]:
    """The seed's way: the limit in `general_settings` switches the plugin on. The model groups
    are the conformance check's (each shape names its own: rerank's is a vLLM reranker)."""
    return {
        "model_list": [
            {"model_name": CONFORMANCE_MODEL, "litellm_params": {
                "model": "openai/upstream-model", "api_base": upstream_url, "api_key": "sk-upstream"}},
            {"model_name": CONFORMANCE_RERANK_MODEL, "litellm_params": {
                "model": "hosted_vllm/upstream-reranker", "api_base": upstream_url, "api_key": "sk-upstream"}},
        ],
        "general_settings": {"master_key": "sk-1234", **limits},
    }


def cases(shapes: Any) -> list[tuple[str, Any, bool]]:
    """(path, body maker, stream) for every path of every shape, streamed too where it streams;
    the body names the shape's model group."""
    return [(path.format(model=CONFORMANCE_MODEL), maker(shape), stream)
            for shape in shapes if not shape.multipart  # transcriptions: their own test below
            for path in shape.paths for stream in ((False, True) if shape.streams else (False,))]


def maker(shape: Any) -> Any:
    return lambda text: {"model": shape.model, **shape.make(text)}


def where(path: str, stream: bool) -> str:
    return f"POST {path}{' (streamed)' if stream else ''}"


def stream_error(resp: httpx.Response) -> str | None:
    """The error a served stream ended with, in any API's shape (None: it ended cleanly)."""
    for line in resp.iter_lines():
        if not line.startswith("data:") or line[5:].strip() in ("", "[DONE]"):
            continue
        event = json.loads(line[5:])
        if isinstance(event, dict) and ("error" in event or event.get("type") in ("error", "response.failed")):
            return json.dumps(event)
    return None


def post(http: httpx.Client, url: str, body: dict[str, Any], stream: bool) -> tuple[int, Any]:
    """POST `body` as exactly the bytes measured; the status and the error body (None when served)."""
    raw = json.dumps(body).encode()
    with http.stream("POST", url, content=raw, headers={**ADMIN, "Content-Type": "application/json"}) as resp:
        if resp.status_code >= 400:
            resp.read()
            return resp.status_code, resp.json()
        return resp.status_code, stream_error(resp) if stream else None


def refusal(size_bytes: int, path: str = "") -> dict[str, Any]:
    """The README's refusal, the size printed as Python prints floats; on Anthropic's routes in
    Anthropic's envelope too (a top-level `type: error`)."""
    message = f"Request size is too large. Request size is {size_bytes / MB} MB. Max size is {LIMIT_MB} MB"
    error = {"error": {"message": message, "type": "bad_request_error", "param": "content-length", "code": "400"}}
    return {"type": "error", **error} if path.startswith(("/v1/messages", "/anthropic/")) else error


@pytest.fixture
def gateway(gateway_server, fake_upstream):
    return gateway_server(gateway_config(fake_upstream.url, max_request_size_mb=LIMIT_MB))


@pytest.fixture
def http():
    """One pooled client for every call: a refusal sent before the body was read says
    `Connection: close`, so the pool opens a new connection for the next call."""
    with httpx.Client(timeout=30) as client:
        yield client


def test_a_body_over_the_limit_is_refused_on_every_route(gateway, fake_upstream, http):
    """One gateway, every case; the failures are listed together, each naming its route."""
    problems = []
    every = cases(REQUEST_SHAPES)
    for path, make, stream in every:
        extra = {"stream": True} if stream else {}
        small = {**make("hello there"), **extra}
        before = len(fake_upstream.requests)
        served = post(http, gateway.url + path, small, stream)
        if served != (200, None) or len(fake_upstream.requests) == before:
            problems.append(f"{where(path, stream)}: the small body was not served: {served}")
            continue
        before = len(fake_upstream.requests)
        big = {**make("hello there " + "x" * 2000), **extra}
        refused = post(http, gateway.url + path, big, stream)
        if refused != (400, refusal(len(json.dumps(big).encode()), path)):
            problems.append(f"{where(path, stream)}: over the limit, got {refused}")
        elif len(fake_upstream.requests) != before:
            problems.append(f"{where(path, stream)}: refused, but the upstream got it")
    assert problems == [], f"{len(problems)} of {len(every)} case(s):\n" + "\n".join(problems)


def wav(frames: int) -> bytes:
    """A mono 8 kHz 16-bit WAV file of `frames` samples of silence."""
    import io
    import wave

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\0\0" * frames)
    return buffer.getvalue()


@pytest.mark.parametrize("path", TRANSCRIPTION_PATHS)
def test_a_transcription_over_the_limit_is_refused(gateway, fake_upstream, http, path):
    def send(audio: bytes) -> tuple[httpx.Response, int]:
        """The reply, and the size of the multipart body sent."""
        request = http.build_request("POST", gateway.url + path, headers=ADMIN,
                                     data={"model": CONFORMANCE_MODEL}, files={"file": ("a.wav", audio, "audio/wav")})
        return http.send(request), int(request.headers["content-length"])

    small, _ = send(wav(100))
    assert small.status_code == 200, small.text
    assert small.json()["text"] == "upstream heard a.wav"
    assert len(fake_upstream.requests) == 1

    big, size = send(wav(2000))  # 4 KB of audio
    assert (big.status_code, big.json()) == (400, refusal(size))
    assert len(fake_upstream.requests) == 1


def test_a_reply_over_the_limit_is_refused_on_every_route(gateway_server, fake_upstream, http):
    """One gateway, every reply route; the failures are listed together, each naming its route."""
    limit = 0.004  # about 4 KB: a short reply fits, 8 KB of text does not
    gw = gateway_server(gateway_config(fake_upstream.url, max_response_size_mb=limit))
    problems = []
    every = [(path.format(model=CONFORMANCE_MODEL), make, stream)
             for paths, make in REPLY_SHAPES if paths != TRANSCRIPTION_PATHS  # multipart: tested on its own
             for path in paths for stream in (False, True)]
    for path, make, stream in every:
        body = {"model": CONFORMANCE_MODEL, **make("hello there"), **({"stream": True} if stream else {})}
        fake_upstream.reply = "a short reply"
        served = post(http, gw.url + path, body, stream)
        if served != (200, None):
            problems.append(f"{where(path, stream)}: the short reply was not served: {served}")
            continue
        fake_upstream.reply = "word " * 1600
        status, error = post(http, gw.url + path, body, stream)
        if stream:  # the status went out with the first chunk: the stream ends with the error event
            ok = status == 200 and error is not None and "Response size is too large. Response size is " in error
        else:
            message = str(((error or {}).get("error") or {}).get("message"))
            ok = (status == 400 and message.startswith("Response size is too large. Response size is ")
                  and message.endswith(f" MB. Max size is {limit} MB"))
        if not ok:
            problems.append(f"{where(path, stream)}: over the limit, got {status} {error}")
    assert problems == [], f"{len(problems)} of {len(every)} case(s):\n" + "\n".join(problems)


def read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """One HTTP/1.1 response with a content-length: (head, body); (b"", b"") when the server closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        if not more:
            return b"", b""
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    length = next(int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length:"))
    while len(body) < length:
        body += sock.recv(65536)
    return head, body


def test_a_refusal_before_the_body_closes_the_connection_openly(gateway):
    """A client sends the headers, then the body (separate writes, as HTTP clients do with a large
    one); the refusal comes first. Either it says `Connection: close`, or the connection still
    serves the next call: never a silent close that fails the client's next request."""
    big = json.dumps({"model": CONFORMANCE_MODEL, "prompt": "x" * 4000}).encode()
    small = json.dumps({"model": CONFORMANCE_MODEL, "prompt": "hello there"}).encode()

    def head(size: int) -> bytes:
        return (f"POST /v1/completions HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer sk-1234\r\n"
                f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n").encode()

    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(head(len(big)))
        refused, _ = read_response(sock)
        assert refused.startswith(b"HTTP/1.1 400")
        if b"\r\nconnection: close" in refused.lower():
            return  # said so: the client opens a new connection
        try:
            sock.sendall(big + head(len(small)) + small)
            served, _ = read_response(sock)
        except OSError:  # reset: closed too
            served = b""
        assert served.startswith(b"HTTP/1.1 200"), "the server closed the connection without saying so"
