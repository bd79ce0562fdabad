"""Ollama's native replies as OpenAI's (the `ollama/` provider's reply side): chat, text completion
and embedding replies, and the NDJSON stream as chunks ending with a finish and a usage chunk.
"""

from __future__ import annotations

import os
import time
from typing import Any

import orjson


def _ident(prefix: str) -> str:
    return prefix + os.urandom(12).hex()


def _usage(data: dict[str, Any]) -> dict[str, int]:
    prompt = data.get("prompt_eval_count") or 0
    completion = data.get("eval_count") or 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _finish(data: dict[str, Any], tools: bool) -> str:
    if tools:
        return "tool_calls"
    return "length" if data.get("done_reason") == "length" else "stop"


def _calls_in(calls: list[Any], start: int = 0, indexed: bool = False) -> list[dict[str, Any]]:
    """Ollama's tool calls (arguments an object) as OpenAI's (arguments a JSON string)."""
    out = []
    for k, call in enumerate(calls):
        fn = call.get("function") or {}
        args = fn.get("arguments")
        item: dict[str, Any] = {
            "id": call.get("id") or _ident("call_"), "type": "function",
            "function": {"name": fn.get("name") or "",
                         "arguments": args if isinstance(args, str) else orjson.dumps(args or {}).decode()},
        }
        if indexed:
            item["index"] = start + k
        out.append(item)
    return out


def error_text(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("message") or value.get("error") or value
    return value if isinstance(value, str) else orjson.dumps(value).decode()


class OllamaStream:
    """Ollama's NDJSON stream as OpenAI chunks (see `gateway.provider.StreamTranslator`)."""

    __slots__ = ("buffer", "ident", "created", "model", "chat", "started", "tool_index", "done")

    def __init__(self, model: str, chat: bool) -> None:
        self.buffer = b""
        self.chat = chat
        self.ident = _ident("chatcmpl-" if chat else "cmpl-")
        self.created = int(time.time())
        self.model = model
        self.started = False  # the role was sent
        self.tool_index = 0
        self.done = False  # the last line (or an error) was seen: later bytes are ignored

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self.done:
            return out
        buffer = self.buffer + data if self.buffer else data
        start = 0
        while not self.done:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            if end > start:
                self._line(buffer[start:end], out)
            start = end + 1
        self.buffer = buffer[start:] if start < len(buffer) and not self.done else b""
        return out

    def end(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self.buffer.strip() and not self.done:
            self._line(self.buffer, out)
        self.buffer = b""
        if not self.done:  # Ollama always ends with a `done` line: without it the stream was cut
            out.append({"error": {"message": "Ollama closed the stream before it finished", "type": "api_error"}})
            self.done = True
        return out

    def _chunk(self, choice: dict[str, Any]) -> dict[str, Any]:
        return {"id": self.ident, "object": "chat.completion.chunk" if self.chat else "text_completion",
                "created": self.created, "model": self.model, "choices": [choice]}

    def _line(self, line: bytes, out: list[dict[str, Any]]) -> None:
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError:
            if not line.strip():
                return
            data = None
        if not isinstance(data, dict):
            out.append({"error": {"message": "Ollama sent a stream line that is not a JSON object", "type": "api_error"}})
            self.done = True
            return
        if "error" in data:
            out.append({"error": {"message": error_text(data["error"]), "type": "api_error"}})
            self.done = True
            return
        if self.chat:
            message = data.get("message") or {}
            delta: dict[str, Any] = {}
            if message.get("content"):
                delta["content"] = message["content"]
            if message.get("thinking"):
                delta["reasoning_content"] = message["thinking"]
            calls = message.get("tool_calls")
            if calls:
                delta["tool_calls"] = _calls_in(calls, self.tool_index, indexed=True)
                self.tool_index += len(calls)
            if delta:
                if not self.started:
                    delta["role"] = "assistant"
                    self.started = True
                out.append(self._chunk({"index": 0, "delta": delta, "finish_reason": None, "logprobs": None}))
            if data.get("done"):
                last: dict[str, Any] = {} if self.started else {"role": "assistant", "content": ""}
                out.append(self._chunk({"index": 0, "delta": last, "finish_reason": _finish(data, self.tool_index > 0),
                                        "logprobs": None}))
        else:
            text = data.get("response")
            if text:
                out.append(self._chunk({"index": 0, "text": text, "finish_reason": None, "logprobs": None}))
            if data.get("done"):
                out.append(self._chunk({"index": 0, "text": "", "finish_reason": _finish(data, False),
                                        "logprobs": None}))
        if data.get("done"):
            usage = self._chunk({})
            usage["choices"] = []
            usage["usage"] = _usage(data)
            out.append(usage)
            self.done = True


def translate_reply(call_type: str, reply: dict[str, Any], model: str) -> dict[str, Any]:
    """A reply of /api/chat, /api/generate or /api/embed (not an error) as OpenAI's."""
    if call_type == "aembedding":
        vectors = reply["embeddings"]
        prompt = reply.get("prompt_eval_count") or 0
        return {"object": "list", "model": model,
                "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
                "usage": {"prompt_tokens": prompt, "total_tokens": prompt}}
    created = int(time.time())
    if call_type == "atext_completion":
        choice = {"index": 0, "text": reply["response"], "finish_reason": _finish(reply, False), "logprobs": None}
        return {"id": _ident("cmpl-"), "object": "text_completion", "created": created, "model": model,
                "choices": [choice], "usage": _usage(reply)}
    message = reply["message"]
    out: dict[str, Any] = {"role": "assistant", "content": message.get("content") or ""}
    calls = message.get("tool_calls")
    if calls:
        out["tool_calls"] = _calls_in(calls)
    if message.get("thinking"):
        out["reasoning_content"] = message["thinking"]
    choice = {"index": 0, "message": out, "finish_reason": _finish(reply, bool(calls)), "logprobs": None}
    return {"id": _ident("chatcmpl-"), "object": "chat.completion", "created": created, "model": model,
            "choices": [choice], "usage": _usage(reply), "system_fingerprint": None}
