"""Responses API replies as chat completions (the reply side of responses_bridge.py): a reply's
`message` text, function calls and reasoning summaries as a `chat.completion`, its usage, its
errors, and its SSE events as `chat.completion.chunk`s (`ResponsesStream`).
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from gateway.errors import GatewayError
from gateway.provider import ProviderError

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 408: "timeout", 422: "invalid_request_error", 429: "rate_limit_error"}
INCOMPLETE = {"max_output_tokens": "length", "content_filter": "content_filter"}


def chat_usage(usage: Any) -> dict[str, Any]:
    usage = usage if isinstance(usage, dict) else {}
    prompt, completion = int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)
    out: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                           "total_tokens": int(usage.get("total_tokens") or prompt + completion)}
    cached = (usage.get("input_tokens_details") or {}).get("cached_tokens")
    if cached is not None:
        out["prompt_tokens_details"] = {"cached_tokens": cached}
    reasoning = (usage.get("output_tokens_details") or {}).get("reasoning_tokens")
    if reasoning is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return out


def _finish(resp: dict[str, Any], has_calls: bool) -> str:
    if resp.get("status") == "incomplete":
        reason = (resp.get("incomplete_details") or {}).get("reason")
        return INCOMPLETE.get(reason, "length")
    return "tool_calls" if has_calls else "stop"


def _annotations(part: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for a in part.get("annotations") or ():
        if isinstance(a, dict) and a.get("type") == "url_citation":
            out.append({"type": "url_citation", "url_citation": {k: a.get(k) for k in
                                                                 ("start_index", "end_index", "url", "title")}})
    return out


def chat_reply(resp: Any, display: str) -> dict[str, Any]:
    """A Responses API `response` as a `chat.completion`."""
    if not isinstance(resp, dict) or not isinstance(resp.get("output"), list):
        raise ValueError("not a Responses API reply")
    if resp.get("status") == "failed":
        err = resp.get("error") or {}
        raise GatewayError(f"{display}Exception - {err.get('message') or 'the response failed'}", status=500,
                           type=err.get("code") or "api_error")
    texts: list[str] = []
    refusals: list[str] = []
    annotations: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    reasoning: list[str] = []
    for item in resp["output"]:
        kind = item.get("type")
        if kind == "message":
            for part in item.get("content") or ():
                if part.get("type") == "output_text":
                    texts.append(part["text"])
                    annotations.extend(_annotations(part))
                elif part.get("type") == "refusal":
                    refusals.append(part.get("refusal") or "")
        elif kind == "function_call":
            calls.append({"id": item["call_id"], "type": "function",
                          "function": {"name": item["name"], "arguments": item.get("arguments") or ""}})
        elif kind == "reasoning":
            reasoning.extend(s.get("text") or "" for s in item.get("summary") or ())
            reasoning.extend(c.get("text") or "" for c in item.get("content") or () if isinstance(c, dict))
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if refusals:
        message["refusal"] = "".join(refusals)
    if calls:
        message["tool_calls"] = calls
    if reasoning:
        message["reasoning_content"] = "\n\n".join(r for r in reasoning if r)
    if annotations:
        message["annotations"] = annotations
    return {"id": resp.get("id"), "object": "chat.completion", "created": int(resp.get("created_at") or time.time()),
            "model": resp.get("model"), "choices": [{"index": 0, "message": message,
                                                     "finish_reason": _finish(resp, bool(calls))}],
            "usage": chat_usage(resp.get("usage"))}


def error_of(status: int, data: bytes) -> ProviderError:
    """An OpenAI/Azure error body (`{"error": {"message", "type" or "code", "param"}}`) as a ProviderError."""
    default = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        body = None
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict) and isinstance(err.get("message"), str) and err["message"]:
        kind = err.get("type") if isinstance(err.get("type"), str) and err.get("type") else default
        param = err.get("param") if isinstance(err.get("param"), str) else None
        return ProviderError(err["message"], kind, param)
    if isinstance(body, dict) and isinstance(body.get("message"), str) and body["message"]:
        return ProviderError(body["message"], default)
    text = data.decode(errors="replace").strip()[:500]
    return ProviderError(text or f"upstream returned HTTP {status}", default)


class ResponsesStream:
    """Responses API SSE events -> `chat.completion.chunk`s, as bytes arrive (any cut of the bytes)."""

    def __init__(self, model: str) -> None:
        self.buffer = b""
        self.id: str | None = None
        self.model = model
        self.created = int(time.time())
        self.tools: dict[Any, int] = {}  # output_index -> tool_calls index
        self.usage: dict[str, Any] | None = None
        self.finished = False
        self.billed = False

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    def _usage_chunk(self) -> dict[str, Any]:
        self.billed = True
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [], "usage": chat_usage(self.usage)}

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        buffer = (self.buffer + data).replace(b"\r\n", b"\n")
        out: list[dict[str, Any]] = []
        *events, self.buffer = buffer.split(b"\n\n")
        for raw in events:
            self._event(raw, out)
        return out

    def end(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self.buffer.strip():
            self._event(self.buffer, out)
        self.buffer = b""
        if self.finished and not self.billed and self.usage is not None:
            out.append(self._usage_chunk())
        return out

    def _event(self, raw: bytes, out: list[dict[str, Any]]) -> None:
        lines = [line[5:].strip() for line in raw.split(b"\n") if line.startswith(b"data:")]
        if not lines or lines == [b"[DONE]"]:
            return
        try:
            ev = orjson.loads(b"\n".join(lines))
        except orjson.JSONDecodeError:
            return  # not an event we can read: skipped, as a client SDK would
        if isinstance(ev, dict):
            try:
                self._translate(ev, out)
            except (KeyError, TypeError, AttributeError):
                return

    def _translate(self, ev: dict[str, Any], out: list[dict[str, Any]]) -> None:
        kind = ev.get("type")
        if kind == "response.output_text.delta":
            if ev.get("delta"):
                out.append(self._chunk({"content": ev["delta"]}))
        elif kind == "response.function_call_arguments.delta":
            index = self.tools.get(ev.get("output_index"))
            if index is not None and ev.get("delta"):
                out.append(self._chunk({"tool_calls": [{"index": index, "function": {"arguments": ev["delta"]}}]}))
        elif kind == "response.output_item.added":
            item = ev.get("item") or {}
            if item.get("type") == "function_call":
                index = self.tools[ev.get("output_index")] = len(self.tools)
                out.append(self._chunk({"tool_calls": [{"index": index, "id": item.get("call_id"), "type": "function",
                                                        "function": {"name": item.get("name"),
                                                                     "arguments": item.get("arguments") or ""}}]}))
        elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            if ev.get("delta"):
                out.append(self._chunk({"reasoning_content": ev["delta"]}))
        elif kind == "response.refusal.delta":
            if ev.get("delta"):
                out.append(self._chunk({"refusal": ev["delta"]}))
        elif kind == "response.created":
            resp = ev.get("response") or {}
            self.id = resp.get("id")
            self.model = resp.get("model") or self.model
            out.append(self._chunk({"role": "assistant", "content": ""}))
        elif kind in ("response.completed", "response.incomplete"):
            resp = ev.get("response") or {}
            self.usage = resp.get("usage") if isinstance(resp.get("usage"), dict) else None
            self.finished = True
            out.append(self._chunk({}, _finish(resp, bool(self.tools))))
            if self.usage is not None:
                out.append(self._usage_chunk())
        elif kind == "response.failed":
            err = (ev.get("response") or {}).get("error") or {}
            out.append({"error": {"message": err.get("message") or "the response failed",
                                  "type": err.get("code") or "api_error"}})
        elif kind == "error":
            out.append({"error": {"message": ev.get("message") or "stream failed",
                                  "type": ev.get("code") or ev.get("type") or "api_error"}})
        # created/in_progress, content parts, *.done and the rest carry nothing a chat client needs
