"""Gemini's replies as OpenAI's: a GenerateContentResponse as a `chat.completion`, its SSE stream
as `chat.completion.chunk`s (`GeminiStream`), its usageMetadata as usage, and Google's error
bodies as ProviderErrors. Shared by the `gemini/` and `vertex_ai/` providers.
"""

from __future__ import annotations

import os
import time
from typing import Any

import orjson

from gateway.core.providers.gemini_request import SIGNATURE
from gateway.provider import ProviderError

FINISH = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter", "RECITATION": "content_filter",
          "LANGUAGE": "content_filter", "OTHER": "content_filter", "BLOCKLIST": "content_filter",
          "PROHIBITED_CONTENT": "content_filter", "SPII": "content_filter", "IMAGE_SAFETY": "content_filter",
          "MALFORMED_FUNCTION_CALL": "stop", "FINISH_REASON_UNSPECIFIED": "stop"}


def _new_id(prefix: str) -> str:
    return prefix + os.urandom(12).hex()


def usage_of(meta: dict[str, Any]) -> dict[str, Any]:
    """Gemini's usageMetadata as OpenAI's usage: thoughts are completion tokens (reasoning_tokens),
    cached content is part of the prompt (cached_tokens), as Gemini bills them."""
    prompt = (meta.get("promptTokenCount") or 0) + (meta.get("toolUsePromptTokenCount") or 0)
    candidates = meta.get("candidatesTokenCount") or 0
    thoughts = meta.get("thoughtsTokenCount") or 0
    total = meta.get("totalTokenCount") or prompt + candidates + thoughts
    # Some Vertex versions counted thoughts inside candidatesTokenCount (as LiteLLM checks).
    completion = candidates if prompt + candidates == total else candidates + thoughts
    usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}
    if thoughts:
        usage["completion_tokens_details"] = {"reasoning_tokens": thoughts}
    if meta.get("cachedContentTokenCount"):
        usage["prompt_tokens_details"] = {"cached_tokens": meta["cachedContentTokenCount"]}
    return usage


def _tool_call(call: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    cid = _new_id("call_")
    if part.get("thoughtSignature"):
        cid += SIGNATURE + part["thoughtSignature"]
    return {"id": cid, "type": "function",
            "function": {"name": call.get("name", ""), "arguments": orjson.dumps(call.get("args") or {}).decode()}}


def _split_parts(parts: Any) -> tuple[str | None, str | None, list[dict[str, Any]]]:
    """Candidate parts as (text, reasoning text, tool calls)."""
    text: list[str] = []
    thoughts: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in parts or ():
        if "text" in part:
            (thoughts if part.get("thought") else text).append(part["text"])
        elif "functionCall" in part:
            calls.append(_tool_call(part["functionCall"], part))
    return ("".join(text) if text else None), ("".join(thoughts) if thoughts else None), calls


def chat_reply(data: dict[str, Any], model: str) -> dict[str, Any]:
    """A GenerateContentResponse as an OpenAI chat.completion."""
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    try:
        choices = []
        for idx, cand in enumerate(data.get("candidates") or ()):
            text, reasoning, calls = _split_parts((cand.get("content") or {}).get("parts"))
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if reasoning is not None:
                message["reasoning_content"] = reasoning
            if calls:
                message["tool_calls"] = calls
            finish = "tool_calls" if calls else FINISH.get(cand.get("finishReason"), "stop")
            choices.append({"index": cand.get("index", idx), "message": message, "finish_reason": finish})
        if not choices:  # the prompt itself was blocked (promptFeedback.blockReason)
            choices.append({"index": 0, "message": {"role": "assistant", "content": None},
                            "finish_reason": "content_filter"})
        reply: dict[str, Any] = {"id": "chatcmpl-" + (data.get("responseId") or os.urandom(12).hex()),
                                 "object": "chat.completion", "created": int(time.time()), "model": model,
                                 "choices": choices}
        if isinstance(data.get("usageMetadata"), dict):
            reply["usage"] = usage_of(data["usageMetadata"])
        return reply
    except AttributeError as exc:  # a part or candidate that is not an object
        raise ValueError(str(exc)) from None


SSE_FIELDS = (b":", b"event:", b"id:", b"retry:")


class GeminiStream:
    """Gemini's SSE stream (`data: {GenerateContentResponse}` events) as OpenAI chunks. Finish
    reasons and usage are held until the stream ends: then one finish chunk per candidate and a
    usage chunk (`choices: []`)."""

    __slots__ = ("model", "id", "created", "buffer", "raw", "started", "finish", "calls", "usage", "failed")

    def __init__(self, model: str) -> None:
        self.model = model
        self.id: str | None = None
        self.created = int(time.time())
        self.buffer = b""
        self.raw: list[bytes] = []  # lines outside SSE events (a JSON reply when alt=sse was lost)
        self.started: set[int] = set()
        self.finish: dict[int, str] = {}
        self.calls: dict[int, int] = {}  # candidate -> tool calls so far
        self.usage: dict[str, Any] | None = None
        self.failed = False

    def _chunk(self, idx: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [{"index": idx, "delta": delta, "finish_reason": finish}]}

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        buffer = self.buffer + data if self.buffer else data
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
        events = buffer.split(b"\n\n")
        self.buffer = events.pop()  # an event not yet complete
        out: list[dict[str, Any]] = []
        for event in events:
            if self.failed:
                break
            if event.startswith(b"data:") and b"\n" not in event:  # what Gemini sends: one data line
                self._event(event[5:], out)
                continue
            payload = []
            for line in event.split(b"\n"):
                if line.startswith(b"data:"):
                    payload.append(line[5:])
                elif line and not line.startswith(SSE_FIELDS):
                    self.raw.append(line)
            if payload:
                self._event(b"\n".join(payload), out)
        return out

    def _event(self, payload: bytes, out: list[dict[str, Any]]) -> None:
        try:
            resp = orjson.loads(payload)
            if isinstance(resp, list):
                for item in resp:
                    self._response(item, out)
            else:
                self._response(resp, out)
        except (ValueError, TypeError, AttributeError, KeyError):
            self._fail(out, "Gemini sent a stream event that could not be read")

    def _fail(self, out: list[dict[str, Any]], message: str, kind: str = "api_error") -> None:
        self.failed = True
        out.append({"error": {"message": message, "type": kind}})

    def _response(self, resp: dict[str, Any], out: list[dict[str, Any]]) -> None:
        if "error" in resp:
            err = error_of(0, resp)
            self._fail(out, err.message, err.type)
            return
        if self.id is None:
            self.id = "chatcmpl-" + (resp.get("responseId") or os.urandom(12).hex())
        if resp.get("usageMetadata"):
            self.usage = resp["usageMetadata"]
        candidates = resp.get("candidates")
        if not candidates:
            if (resp.get("promptFeedback") or {}).get("blockReason"):
                self.finish.setdefault(0, "SAFETY")  # the prompt itself was blocked
            return
        for pos, cand in enumerate(candidates):
            idx = cand.get("index", pos)
            content = cand.get("content")
            parts = content.get("parts") if content else None
            if parts:
                first = parts[0]
                if len(parts) == 1 and len(first) == 1 and "text" in first:  # the usual event: a piece of text
                    delta: dict[str, Any] = {"content": first["text"]}
                else:
                    delta = self._delta(idx, parts)
                if idx not in self.started:
                    self.started.add(idx)
                    delta["role"] = "assistant"
                if delta:
                    out.append({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                                "model": self.model,
                                "choices": [{"index": idx, "delta": delta, "finish_reason": None}]})
            if cand.get("finishReason"):
                self.finish[idx] = cand["finishReason"]

    def _delta(self, idx: int, parts: list[dict[str, Any]]) -> dict[str, Any]:
        delta: dict[str, Any] = {}
        text, reasoning, calls = _split_parts(parts)
        if text is not None:
            delta["content"] = text
        if reasoning is not None:
            delta["reasoning_content"] = reasoning
        if calls:
            first = self.calls.get(idx, 0)
            delta["tool_calls"] = [{"index": first + i, **call} for i, call in enumerate(calls)]
            self.calls[idx] = first + len(calls)
        return delta

    def end(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        tail = b"\n".join([*self.raw, self.buffer.strip()]).strip()
        if tail and not self.failed:
            if tail.startswith(b"data:"):
                self._event(tail[5:], out)
            else:
                self._event(tail, out)
        if self.failed:
            return out
        if not self.finish:
            self._fail(out, "Gemini closed the stream before it finished")
            return out
        if self.id is None:
            self.id = _new_id("chatcmpl-")
        for idx in sorted(self.finish):
            reason = self.finish[idx]
            finish = "tool_calls" if self.calls.get(idx) else FINISH.get(reason, "stop")
            out.append(self._chunk(idx, {"role": "assistant"} if idx not in self.started else {}, finish))
        if self.usage is not None:
            out.append({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                        "model": self.model, "choices": [], "usage": usage_of(self.usage)})
        return out


ERROR_TYPES = {"INVALID_ARGUMENT": "invalid_request_error", "FAILED_PRECONDITION": "invalid_request_error",
               "OUT_OF_RANGE": "invalid_request_error", "UNAUTHENTICATED": "authentication_error",
               "PERMISSION_DENIED": "permission_error", "NOT_FOUND": "not_found_error",
               "RESOURCE_EXHAUSTED": "rate_limit_error", "DEADLINE_EXCEEDED": "timeout",
               "UNAVAILABLE": "service_unavailable", "INTERNAL": "api_error", "UNKNOWN": "api_error"}
STATUS_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 429: "rate_limit_error", 503: "service_unavailable", 504: "timeout"}


def error_of(status: int, data: Any) -> ProviderError:
    """Google's `{"error": {"code", "message", "status", "details"}}` (or anything else) as a ProviderError."""
    if isinstance(data, (bytes, str)):
        try:
            data = orjson.loads(data)
        except orjson.JSONDecodeError:
            text = " ".join((data.decode(errors="replace") if isinstance(data, bytes) else data).split())
            return ProviderError(f"HTTP {status}: {text[:200]}" if text else f"HTTP {status} with an empty body",
                                 STATUS_TYPES.get(status, "api_error"))
    if isinstance(data, list) and data:
        data = data[0]
    err = data.get("error") if isinstance(data, dict) else None
    if not isinstance(err, dict):
        return ProviderError(f"HTTP {status}: unrecognised error body", STATUS_TYPES.get(status, "api_error"))
    message = err.get("message") if isinstance(err.get("message"), str) and err.get("message") else f"HTTP {status}"
    kind = ERROR_TYPES.get(err.get("status")) or STATUS_TYPES.get(status or err.get("code"), "api_error")
    for detail in err.get("details") or ():
        if isinstance(detail, dict) and detail.get("reason") in ("API_KEY_INVALID", "API_KEY_EXPIRED"):
            kind = "authentication_error"  # Google answers a bad key with 400 INVALID_ARGUMENT
    return ProviderError(message, kind, extra={"status": err.get("status")} if err.get("status") else {})
