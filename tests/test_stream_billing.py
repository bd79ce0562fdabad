"""Streams that end early are billed for what was sent and relayed, and no stream runs forever.

A stream the client aborts, that the upstream cuts or fails, or that times out gets no final usage
chunk: its spend row estimates the tokens (the prompt from the request text, the completion from
the text relayed, about four characters a token), says so (`metadata.usage_estimated`), and the
cost is added to the key's spend like any call's. `stream_timeout` bounds each wait for the
upstream's next bytes; `stream_total_timeout` bounds the whole stream.
"""

from __future__ import annotations

import math
import time
from typing import Any

import httpx
import openai
import orjson
import pytest

pytestmark = pytest.mark.db

ADMIN = {"Authorization": "Bearer sk-1234"}
IN_PRICE, OUT_PRICE = 0.001, 0.002
PROMPT = "count the characters of this prompt"
PROMPT_TOKENS = math.ceil(len(PROMPT) / 4)
PIECE = "abcd"  # one streamed chunk = one estimated token
TIGHT = 1e-9


def config(upstream: Any, router: dict[str, Any] | None = None, **params: Any) -> dict[str, Any]:
    return {
        "model_list": [{"model_name": "gpt-test", "litellm_params": {
            "model": "openai/upstream-model", "api_base": upstream.url, "api_key": "sk-upstream",
            "input_cost_per_token": IN_PRICE, "output_cost_per_token": OUT_PRICE, **params}}],
        "router_settings": {"num_retries": 0, "cooldown_time": 0, **(router or {})},
        "general_settings": {"spend_flush_interval_s": 0.05},
    }


def new_key(gw: Any) -> str:
    r = httpx.post(gw.url + "/key/generate", json={}, headers=ADMIN, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["key"]


def only_row(gw: Any, timeout: float = 10.0) -> dict[str, Any]:
    """The one spend row, once the writer has written it."""
    writer = gw.gateway.spend_writer
    deadline = time.monotonic() + timeout
    while (writer.written < 1 or writer.queue) and time.monotonic() < deadline:
        time.sleep(0.02)
    rows = httpx.get(gw.url + "/spend/logs", headers=ADMIN, timeout=10).json()
    assert len(rows) == 1, rows
    return rows[0]


def key_spend(gw: Any, key: str) -> float:
    return httpx.get(gw.url + "/key/info", params={"key": key}, headers=ADMIN, timeout=10).json()["info"]["spend"]


def assert_billed_for(gw: Any, key: str, row: dict[str, Any], completion_tokens: int) -> None:
    """A failed stream's row: estimated usage of what was sent and relayed, and its cost counted."""
    assert row["status"] == "failure"
    assert row["metadata"]["usage_estimated"] is True
    assert (row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]) == (
        PROMPT_TOKENS, completion_tokens, PROMPT_TOKENS + completion_tokens)
    expected = PROMPT_TOKENS * IN_PRICE + completion_tokens * OUT_PRICE
    assert row["spend"] == pytest.approx(expected, rel=TIGHT)
    assert key_spend(gw, key) == pytest.approx(expected, rel=TIGHT)


def sse_stream(gw: Any, key: str, body: dict[str, Any], limit_s: float = 10.0) -> tuple[list[str], list[dict[str, Any]]]:
    """POST a stream with raw httpx and read it to the end (at most `limit_s`): the content pieces
    and the error events received."""
    pieces: list[str] = []
    errors: list[dict[str, Any]] = []
    started = time.monotonic()
    with httpx.stream("POST", gw.url + "/v1/chat/completions", json={"stream": True, **body},
                      headers={"Authorization": f"Bearer {key}"}, timeout=10) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            assert time.monotonic() - started < limit_s, "the stream did not end"
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = orjson.loads(line[6:])
            if "error" in event:
                errors.append(event["error"])
            else:
                pieces += [c["delta"].get("content") or "" for c in event["choices"]]
    return [p for p in pieces if p], errors


CHAT = {"model": "gpt-test", "messages": [{"role": "user", "content": PROMPT}]}


# -- the upstream breaks mid-stream -----------------------------------------------------------------


@pytest.mark.parametrize("how", ["reset", "error_event"])
def test_a_stream_the_upstream_breaks_is_billed_for_what_was_relayed(gateway_server, fake_upstream, how):
    fake_upstream.reply_chunks = [PIECE] * 10
    if how == "reset":
        fake_upstream.break_stream_after = 3
    else:
        fake_upstream.stream_error_after = 3
    gw = gateway_server(config(fake_upstream))
    key = new_key(gw)
    pieces, errors = sse_stream(gw, key, CHAT)
    assert pieces == [PIECE] * 3 and len(errors) == 1
    assert_billed_for(gw, key, only_row(gw), completion_tokens=3)


def test_a_text_completion_stream_cut_short_is_billed_too(gateway_server, fake_upstream):
    fake_upstream.reply_chunks = [PIECE] * 10
    fake_upstream.break_stream_after = 2
    gw = gateway_server(config(fake_upstream))
    key = new_key(gw)
    with pytest.raises(openai.APIError):
        list(gw.client(api_key=key).completions.create(model="gpt-test", prompt=PROMPT, stream=True))
    assert_billed_for(gw, key, only_row(gw), completion_tokens=2)


# -- the client goes away ---------------------------------------------------------------------------


def _abort_raw(gw: Any, key: str, after: int) -> int:
    got = 0
    with httpx.stream("POST", gw.url + "/v1/chat/completions", json={"stream": True, **CHAT},
                      headers={"Authorization": f"Bearer {key}"}, timeout=10) as resp:
        for line in resp.iter_lines():
            if line.startswith("data: {"):
                got += 1
                if got == after:
                    break  # leaving the block closes the connection mid-stream
    return got


def _abort_sdk(gw: Any, key: str, after: int) -> int:
    stream = gw.client(api_key=key).chat.completions.create(stream=True, **CHAT)
    got = 0
    for chunk in stream:
        got += bool(chunk.choices and chunk.choices[0].delta.content)
        if got == after:
            break
    stream.close()
    return got


@pytest.mark.parametrize("abort", [_abort_raw, _abort_sdk], ids=["raw_http", "openai_sdk"])
def test_a_stream_the_client_aborts_is_billed_for_what_was_relayed(gateway_server, fake_upstream, abort):
    fake_upstream.reply_chunks = [PIECE]
    fake_upstream.endless = True  # the upstream would go on forever: only the client ends this stream
    fake_upstream.chunk_interval = 0.05
    gw = gateway_server(config(fake_upstream))
    key = new_key(gw)
    assert abort(gw, key, 3) == 3
    row = only_row(gw)
    # The gateway relayed at least what the client read, and stopped soon after the client left.
    relayed = row["completion_tokens"]
    assert 3 <= relayed <= 3 + 25, relayed
    assert_billed_for(gw, key, row, completion_tokens=relayed)
    time.sleep(0.3)
    assert only_row(gw)["completion_tokens"] == relayed  # one row, written once


# -- time limits ------------------------------------------------------------------------------------


def test_stream_timeout_bounds_each_gap_between_chunks_not_the_whole_stream(gateway_server, fake_upstream):
    fake_upstream.reply_chunks = [PIECE] * 8
    fake_upstream.chunk_interval = 0.1  # the stream lasts 0.7 s, no gap comes near stream_timeout
    gw = gateway_server(config(fake_upstream, stream_timeout=0.5))
    key = new_key(gw)
    pieces, errors = sse_stream(gw, key, CHAT)
    assert pieces == [PIECE] * 8 and errors == []
    fake_upstream.chunk_interval = 1.2  # now the second chunk comes too late
    pieces, errors = sse_stream(gw, key, CHAT)
    assert pieces == [PIECE]
    assert [e["type"] for e in errors] == ["timeout"] and errors[0]["code"] == "504"


@pytest.mark.parametrize("where", ["litellm_params", "router_settings"])
def test_a_stream_that_trickles_forever_ends_at_its_total_deadline(gateway_server, fake_upstream, where):
    fake_upstream.reply_chunks = [PIECE]
    fake_upstream.endless = True
    fake_upstream.chunk_interval = 0.05  # never a long gap: stream_timeout never fires
    limit = {"stream_total_timeout": 0.6}
    cfg = (config(fake_upstream, stream_timeout=5, **limit) if where == "litellm_params"
           else config(fake_upstream, router=limit, stream_timeout=5))
    gw = gateway_server(cfg)
    key = new_key(gw)
    started = time.monotonic()
    pieces, errors = sse_stream(gw, key, CHAT, limit_s=5)
    took = time.monotonic() - started
    assert 0.6 <= took < 3, took
    assert len(errors) == 1, errors
    assert errors[0]["type"] == "timeout" and errors[0]["code"] == "504"
    assert "0.6" in errors[0]["message"] and "sk-upstream" not in errors[0]["message"]
    assert len(pieces) >= 3
    row = only_row(gw)
    assert_billed_for(gw, key, row, completion_tokens=len(pieces))
    assert row["metadata"]["error"]["type"] == "timeout"
