"""Cohere's API v2 replies as OpenAI's (the `cohere/` provider's reply side).

Replies: text blocks become `content`, `thinking` blocks and the `tool_plan` become
`reasoning_content`, tool calls keep their ids. Usage is what Cohere bills (`billed_units`), falling
back to its raw `tokens`. Streams become `chat.completion.chunk`s as bytes arrive, ending with a
finish chunk and a usage chunk (`choices: []`); a stream that ends without `message-end`, or that
ends in `finish_reason: ERROR`, ends with an error chunk.
"""

from __future__ import annotations

import os
import time
from typing import Any

import orjson

from gateway.core.providers.cohere_request import PREFIX
from gateway.errors import GatewayError

FINISH = {"COMPLETE": "stop", "STOP_SEQUENCE": "stop", "MAX_TOKENS": "length", "TOOL_CALL": "tool_calls"}
#: Finish reasons that mean the generation failed: (status, type) of the error the client gets.
FAILED = {"ERROR": (502, "api_error"), "TIMEOUT": (504, "timeout")}


def _ident(prefix: str) -> str:
    return prefix + os.urandom(12).hex()


def translate_usage(usage: Any) -> dict[str, Any]:
    """Cohere's usage as OpenAI's: what Cohere bills (`billed_units`), else its raw `tokens`."""
    if not isinstance(usage, dict):
        return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    billed = usage.get("billed_units") or {}
    tokens = usage.get("tokens") or {}
    prompt = billed.get("input_tokens")
    if prompt is None:
        prompt = tokens.get("input_tokens")
    completion = billed.get("output_tokens")
    if completion is None:
        completion = tokens.get("output_tokens")
    prompt, completion = int(prompt or 0), int(completion or 0)
    out: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                           "total_tokens": prompt + completion}
    cached = usage.get("cached_tokens")
    if cached:
        out["prompt_tokens_details"] = {"cached_tokens": int(cached)}
    return out


def _calls_in(calls: list[Any]) -> list[dict[str, Any]]:
    out = []
    for call in calls:
        fn = call.get("function") or {}
        args = fn.get("arguments")
        out.append({"id": call.get("id") or _ident("call_"), "type": "function",
                    "function": {"name": fn.get("name") or "",
                                 "arguments": args if isinstance(args, str) else orjson.dumps(args or {}).decode()}})
    return out


def _failure(reason: str, detail: Any) -> GatewayError:
    status, kind = FAILED[reason]
    what = "timed out" if reason == "TIMEOUT" else "failed"
    message = f"the generation {what} (finish_reason {reason})"
    if isinstance(detail, str) and detail:
        message += f": {detail}"
    return GatewayError(PREFIX + message, status=status, type=kind)


def translate_reply(reply: dict[str, Any], model: str) -> dict[str, Any]:
    msg = reply["message"]
    reason = reply.get("finish_reason")
    if reason in FAILED:
        raise _failure(reason, reply.get("error"))
    texts: list[str] = []
    thinking: list[str] = []
    for block in msg.get("content") or ():
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "thinking":
            thinking.append(block.get("thinking") or "")
    calls = msg.get("tool_calls") or []
    out: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        out["tool_calls"] = _calls_in(calls)
    plan = msg.get("tool_plan")
    if plan:
        thinking.append(plan)
    if thinking:
        out["reasoning_content"] = "\n".join(thinking)
    if msg.get("citations"):
        out["citations"] = msg["citations"]
    finish = "tool_calls" if calls else FINISH.get(reason or "COMPLETE", "stop")
    return {"id": reply.get("id") or _ident("chatcmpl-"), "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "message": out, "finish_reason": finish, "logprobs": None}],
            "usage": translate_usage(reply.get("usage")), "system_fingerprint": None}


def translate_embeddings(reply: dict[str, Any], model: str) -> dict[str, Any]:
    vectors = reply["embeddings"]
    if isinstance(vectors, dict):  # `embeddings_by_type`: what `embedding_types` asks for
        vectors = vectors["float"]
    if not isinstance(vectors, list):
        raise TypeError("embeddings is not a list")
    meta = reply.get("meta") or {}
    billed = meta.get("billed_units") or {}
    prompt = billed.get("input_tokens")
    if prompt is None:
        prompt = (meta.get("tokens") or {}).get("input_tokens")
    prompt = int(prompt or 0)
    return {"object": "list", "model": model,
            "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
            "usage": {"prompt_tokens": prompt, "total_tokens": prompt}}


class CohereStream:
    """Cohere's v2 SSE events -> `chat.completion.chunk`s, as bytes arrive (any cut of the bytes)."""

    __slots__ = ("buffer", "id", "model", "created", "tools", "done")

    def __init__(self, model: str) -> None:
        self.buffer = b""
        self.id: str | None = None
        self.model = model
        self.created = int(time.time())
        self.tools: dict[Any, int] = {}  # Cohere's tool-call index -> OpenAI's tool_calls index
        self.done = False  # message-end (or an error) was seen: later bytes are ignored

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        if self.id is None:
            self.id = _ident("chatcmpl-")
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self.done:
            return out
        buffer = self.buffer + data if self.buffer else data
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
        find = buffer.find
        start = 0
        while not self.done and (end := find(b"\n\n", start)) >= 0:
            at = find(b"data:", start, end)
            # The usual event: `event: <type>` then one `data: <json>` line, the event's last.
            if at >= 0 and (at == start or buffer[at - 1] == 10) and find(b"\n", at, end) < 0:
                self._payload(buffer[at + 5:end], out)
            elif at >= 0:
                self._event(buffer[start:end], out)
            start = end + 2
        self.buffer = b"" if self.done else (buffer[start:] if start else buffer)
        return out

    def end(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self.buffer.strip() and not self.done:
            self._event(self.buffer.strip(), out)
        self.buffer = b""
        if not self.done:  # Cohere always ends with `message-end`: without it the stream was cut
            out.append({"error": {"message": "Cohere closed the stream before it finished", "type": "api_error"}})
            self.done = True
        return out

    def _event(self, raw: bytes, out: list[dict[str, Any]]) -> None:
        """Any other event: its `data:` lines joined (comments and other fields skipped)."""
        lines = [line[5:] for line in raw.split(b"\n") if line.startswith(b"data:")]
        if lines:
            self._payload(b"\n".join(lines), out)

    def _fail(self, message: str, out: list[dict[str, Any]]) -> None:
        out.append({"error": {"message": message, "type": "api_error"}})
        self.done = True

    def _payload(self, payload: bytes, out: list[dict[str, Any]]) -> None:
        try:
            ev = orjson.loads(payload)
        except orjson.JSONDecodeError:
            if payload.strip() in (b"[DONE]", b""):
                return
            return self._fail("Cohere sent a stream event that is not JSON", out)
        if not isinstance(ev, dict):
            return self._fail("Cohere sent a stream event that is not a JSON object", out)
        try:
            self._translate(ev, out)
        except (KeyError, TypeError, AttributeError):
            self._fail(f"Cohere sent a {ev.get('type') or 'stream'} event that could not be read", out)

    def _translate(self, ev: dict[str, Any], out: list[dict[str, Any]]) -> None:
        kind = ev.get("type")
        if kind == "content-delta":
            content = ev["delta"]["message"]["content"]
            text = content.get("text")
            if text:
                out.append(self._chunk({"content": text}))
            elif content.get("thinking"):
                out.append(self._chunk({"reasoning_content": content["thinking"]}))
        elif kind == "tool-call-delta":
            call = ev["delta"]["message"]["tool_calls"]
            if isinstance(call, list):
                call = call[0]
            args = (call.get("function") or {}).get("arguments")
            if args:
                index = self.tools.get(ev.get("index"), len(self.tools) - 1)
                out.append(self._chunk({"tool_calls": [{"index": index, "function": {"arguments": args}}]}))
        elif kind == "tool-plan-delta":
            plan = ev["delta"]["message"].get("tool_plan")
            if plan:
                out.append(self._chunk({"reasoning_content": plan}))
        elif kind == "tool-call-start":
            call = ev["delta"]["message"]["tool_calls"]
            if isinstance(call, list):
                call = call[0]
            fn = call.get("function") or {}
            n = self.tools[ev.get("index", len(self.tools))] = len(self.tools)
            out.append(self._chunk({"tool_calls": [{"index": n, "id": call.get("id") or _ident("call_"),
                                                    "type": "function",
                                                    "function": {"name": fn.get("name") or "",
                                                                 "arguments": fn.get("arguments") or ""}}]}))
        elif kind == "content-start":
            content = (ev.get("delta") or {}).get("message", {}).get("content") or {}
            if content.get("text"):
                out.append(self._chunk({"content": content["text"]}))
            elif content.get("thinking"):
                out.append(self._chunk({"reasoning_content": content["thinking"]}))
        elif kind == "message-start":
            if ev.get("id"):
                self.id = ev["id"]
            out.append(self._chunk({"role": "assistant", "content": ""}))
        elif kind == "message-end":
            delta = ev.get("delta") or {}
            reason = delta.get("finish_reason")
            usage = delta.get("usage")
            if reason in FAILED or delta.get("error"):
                if isinstance(usage, dict):  # bill what Cohere counted before the error ends the stream
                    out.append(self._usage_chunk(usage))
                err = _failure(reason if reason in FAILED else "ERROR", delta.get("error"))
                out.append({"error": {"message": err.message[len(PREFIX):], "type": err.type}})
            else:
                finish = "tool_calls" if self.tools else FINISH.get(reason or "COMPLETE", "stop")
                out.append(self._chunk({}, finish))
                if isinstance(usage, dict):
                    out.append(self._usage_chunk(usage))
            self.done = True
        # content-end, tool-call-end, citation-start/-end and debug carry nothing a client needs

    def _usage_chunk(self, usage: dict[str, Any]) -> dict[str, Any]:
        chunk = self._chunk({})
        chunk["choices"] = []
        chunk["usage"] = translate_usage(usage)
        return chunk
