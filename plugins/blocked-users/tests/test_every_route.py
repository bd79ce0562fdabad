"""`blocked_user_check` on every LLM route, streamed and not, and on transcriptions' multipart form.

The kit's conformance check drives plugins that act on text; this one acts on who the end user is,
so this module walks the check's own table of routes (`gateway.conformance.REQUEST_SHAPES`: a
route added there is covered here with no change) and, for each path and stream mode, sends a call
from an end user who is not listed, which must be served, and one from a listed end user, which
must be refused with the README's message before anything goes upstream. The end user is the
body's `user`; on Anthropic's Messages it is `metadata.user_id` (the core maps it to `user`).
Transcriptions, multipart and not in that table, get the same two calls (`user` as a form field).
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from gateway.conformance import CONFORMANCE_MODEL, CONFORMANCE_RERANK_MODEL, MESSAGES_PATHS, REQUEST_SHAPES

NAME = "blocked_user_check"
ADMIN = {"Authorization": "Bearer sk-1234"}
BLOCKED = "user_id_1"
ALLOWED = "user_id_3"
TRANSCRIPTION_PATHS = ("/v1/audio/transcriptions", "/audio/transcriptions")


def gateway_config(upstream_url: str) -> dict[str, Any]:
    """The seed's way (`callbacks` and `blocked_user_list`). The model groups are the conformance
    check's (each shape names its own: rerank's is a vLLM reranker)."""
    return {
        "model_list": [
            {"model_name": CONFORMANCE_MODEL, "litellm_params": {
                "model": "openai/upstream-model", "api_base": upstream_url, "api_key": "sk-upstream"}},
            {"model_name": CONFORMANCE_RERANK_MODEL, "litellm_params": {
                "model": "hosted_vllm/upstream-reranker", "api_base": upstream_url, "api_key": "sk-upstream"}},
        ],
        "litellm_settings": {"callbacks": [NAME], "blocked_user_list": [BLOCKED, "user_id_2"]},
    }


def refusal(user: str, path: str = "") -> dict[str, Any]:
    """The README's refusal; on Messages in Anthropic's error envelope (`type: error`)."""
    error = {"error": {"message": f"User blocked from making LLM API Calls. User={user}",
                       "type": "bad_request_error", "param": "user", "code": "400"}}
    return {"type": "error", **error} if path in MESSAGES_PATHS else error


def with_user(path: str, body: dict[str, Any], user: str) -> dict[str, Any]:
    """`body` sent by end user `user`, the way the route's API names the end user."""
    if path in MESSAGES_PATHS:
        return {**body, "metadata": {"user_id": user}}
    return {**body, "user": user}


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
    """The status and the error body (None when served, a stream to its end without an error event)."""
    with http.stream("POST", url, json=body, headers=ADMIN) as resp:
        if resp.status_code >= 400:
            resp.read()
            return resp.status_code, resp.json()
        return resp.status_code, stream_error(resp) if stream else None


def where(path: str, stream: bool) -> str:
    return f"POST {path}{' (streamed)' if stream else ''}"


def test_a_blocked_end_user_is_refused_on_every_route(gateway_server, fake_upstream):
    """One gateway, every case; the failures are listed together, each naming its route."""
    gw = gateway_server(gateway_config(fake_upstream.url))
    every = [(path.format(model=CONFORMANCE_MODEL), shape, stream)
             for shape in REQUEST_SHAPES if not shape.multipart  # transcriptions: their own test below
             for path in shape.paths for stream in ((False, True) if shape.streams else (False,))]
    problems = []
    with httpx.Client(timeout=30) as http:
        for path, shape, stream in every:
            body = {"model": shape.model, **shape.make("hello there"), **({"stream": True} if stream else {})}
            before = len(fake_upstream.requests)
            served = post(http, gw.url + path, with_user(path, body, ALLOWED), stream)
            if served != (200, None) or len(fake_upstream.requests) == before:
                problems.append(f"{where(path, stream)}: the allowed end user was not served: {served}")
                continue
            before = len(fake_upstream.requests)
            refused = post(http, gw.url + path, with_user(path, body, BLOCKED), stream)
            if refused != (400, refusal(BLOCKED, path)):
                problems.append(f"{where(path, stream)}: the blocked end user got {refused}")
            elif len(fake_upstream.requests) != before:
                problems.append(f"{where(path, stream)}: refused, but the upstream got it")
    assert problems == [], f"{len(problems)} of {len(every)} case(s):\n" + "\n".join(problems)


def test_a_blocked_end_user_is_refused_on_transcriptions(gateway_server, fake_upstream):
    gw = gateway_server(gateway_config(fake_upstream.url))
    audio = b"RIFF" + b"\0" * 60  # not even a WAV file: the fake upstream transcribes anything
    with httpx.Client(timeout=30) as http:
        for path in TRANSCRIPTION_PATHS:
            def send(user: str) -> httpx.Response:
                return http.post(gw.url + path, headers=ADMIN, data={"model": CONFORMANCE_MODEL, "user": user},
                                 files={"file": ("a.wav", audio, "audio/wav")})

            before = len(fake_upstream.requests)
            served = send(ALLOWED)
            assert served.status_code == 200, (path, served.text)
            assert len(fake_upstream.requests) == before + 1
            refused = send(BLOCKED)
            assert (refused.status_code, refused.json()) == (400, refusal(BLOCKED)), path
            assert len(fake_upstream.requests) == before + 1
