"""Converse replies as OpenAI's: a reply as a `chat.completion` (usage with cache reads and writes in
`prompt_tokens`), and ConverseStream's event stream as `chat.completion.chunk`s as the bytes arrive.
"""

from __future__ import annotations

import os
import time
from typing import Any

import orjson

from gateway_plugin_bedrock.converse_request import JSON_TOOL
from gateway_plugin_bedrock.eventstream import EventStreamDecoder, EventStreamError

FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
          "guardrail_intervened": "content_filter", "content_filtered": "content_filter",
          "model_context_window_exceeded": "length", "malformed_model_output": "stop",
          "malformed_tool_use": "stop"}


def translate_usage(usage: dict[str, Any]) -> dict[str, Any]:
    """Converse usage as OpenAI's; cache reads and writes are counted in prompt_tokens (LiteLLM)."""
    read = usage.get("cacheReadInputTokens") or 0
    written = usage.get("cacheWriteInputTokens") or 0
    prompt = (usage.get("inputTokens") or 0) + read + written
    completion = usage.get("outputTokens") or 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": read, "cache_creation_tokens": written},
            "cache_creation_input_tokens": written, "cache_read_input_tokens": read}


def _ident() -> str:
    return "chatcmpl-" + os.urandom(12).hex()


def translate_reply(reply: Any, model: str) -> dict[str, Any]:
    """A Converse reply as a `chat.completion`."""
    if not isinstance(reply, dict):
        raise ValueError("not a JSON object")
    message = (reply.get("output") or {}).get("message") or {}
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    thinking: list[dict[str, Any]] = []
    json_reply: str | None = None
    for block in message.get("content") or ():
        if "text" in block:
            texts.append(block["text"])
        elif "toolUse" in block:
            use = block["toolUse"]
            arguments = orjson.dumps(use.get("input") if use.get("input") is not None else {}).decode()
            if use.get("name") == JSON_TOOL:
                json_reply = arguments
                continue
            calls.append({"id": use["toolUseId"], "type": "function",
                          "function": {"name": use["name"], "arguments": arguments}})
        elif "reasoningContent" in block:
            rc = block["reasoningContent"]
            if "reasoningText" in rc:
                item: dict[str, Any] = {"type": "thinking", "thinking": rc["reasoningText"].get("text") or ""}
                if rc["reasoningText"].get("signature"):
                    item["signature"] = rc["reasoningText"]["signature"]
                thinking.append(item)
            elif "redactedContent" in rc:
                thinking.append({"type": "redacted_thinking", "data": rc["redactedContent"]})
    finish = FINISH.get(reply.get("stopReason") or "end_turn", "stop")
    if json_reply is not None and not calls:  # JSON mode: the forced tool's input is the answer
        texts, finish = [json_reply], "stop"
    out: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        out["tool_calls"] = calls
    if thinking:
        out["reasoning_content"] = "".join(b.get("thinking") or "" for b in thinking)
        out["thinking_blocks"] = thinking
    result: dict[str, Any] = {
        "id": _ident(), "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": out, "finish_reason": finish, "logprobs": None}],
        "usage": translate_usage(reply.get("usage") or {}), "system_fingerprint": None,
    }
    if reply.get("trace") is not None:  # guardrail trace, when the request asked for it
        result["trace"] = reply["trace"]
    return result


#: ConverseStream exception events -> error types (the stream's HTTP status was already 200).
STREAM_ERRORS = {"throttlingException": "rate_limit_error", "validationException": "invalid_request_error",
                 "internalServerException": "api_error", "serviceUnavailableException": "service_unavailable",
                 "modelStreamErrorException": "api_error"}


class ConverseStream:
    """ConverseStream's event stream -> `chat.completion.chunk`s, as bytes arrive (any cut)."""

    __slots__ = ("decoder", "id", "created", "model", "tools", "json_blocks", "finished", "billed", "failed")

    def __init__(self, model: str) -> None:
        self.decoder = EventStreamDecoder()
        self.id = _ident()
        self.created = int(time.time())
        self.model = model
        self.tools: dict[int, int] = {}  # contentBlockIndex -> OpenAI tool_calls index
        self.json_blocks: set[int] = set()  # blocks of the JSON-mode tool: streamed as content
        self.finished = False
        self.billed = False
        self.failed = False  # an error was reported: nothing more is translated

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self.failed:
            return out
        try:
            messages = self.decoder.feed(data)
        except EventStreamError as exc:
            self.failed = True
            return [{"error": {"message": f"Bedrock sent an unreadable event stream: {exc}", "type": "api_error"}}]
        for headers, payload in messages:
            self._message(headers, payload, out)
            if self.failed:
                break
        return out

    def end(self) -> list[dict[str, Any]]:
        if self.failed:
            return []
        if self.decoder.pending:
            self.failed = True
            return [{"error": {"message": "Bedrock closed the stream in the middle of an event", "type": "api_error"}}]
        return []

    def _message(self, headers: dict[str, Any], payload: bytes, out: list[dict[str, Any]]) -> None:
        kind = headers.get(":message-type")
        if kind == "event":
            try:
                event = orjson.loads(payload) if payload else {}
                self._event(headers.get(":event-type"), event, out)
            except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
                return  # an event we cannot read: skipped, as botocore would skip an unknown one
        elif kind == "exception":
            name = str(headers.get(":exception-type") or "exception")
            try:
                message = (orjson.loads(payload) or {}).get("message")
            except (orjson.JSONDecodeError, AttributeError):
                message = None
            self.failed = True
            out.append({"error": {"message": f"{name}: {message or 'the stream failed'}",
                                  "type": STREAM_ERRORS.get(name, "api_error")}})
        elif kind == "error":
            self.failed = True
            out.append({"error": {"message": f"{headers.get(':error-code') or 'error'}: "
                                             f"{headers.get(':error-message') or 'the stream failed'}",
                                  "type": "api_error"}})

    def _event(self, kind: Any, ev: dict[str, Any], out: list[dict[str, Any]]) -> None:
        if kind == "contentBlockDelta":
            delta = ev["delta"]
            if "text" in delta:
                if delta["text"]:
                    out.append(self._chunk({"content": delta["text"]}))
            elif "toolUse" in delta:
                part = delta["toolUse"].get("input")
                index = ev.get("contentBlockIndex")
                if not part:
                    return
                if index in self.json_blocks:
                    out.append(self._chunk({"content": part}))
                elif index in self.tools:
                    out.append(self._chunk({"tool_calls": [{"index": self.tools[index],
                                                            "function": {"arguments": part}}]}))
            elif "reasoningContent" in delta:
                rc = delta["reasoningContent"]
                if "text" in rc:
                    out.append(self._chunk({"reasoning_content": rc["text"],
                                            "thinking_blocks": [{"type": "thinking", "thinking": rc["text"]}]}))
                elif "signature" in rc:
                    out.append(self._chunk({"thinking_blocks": [
                        {"type": "thinking", "thinking": "", "signature": rc["signature"]}]}))
                elif "redactedContent" in rc:
                    out.append(self._chunk({"thinking_blocks": [
                        {"type": "redacted_thinking", "data": rc["redactedContent"]}]}))
        elif kind == "contentBlockStart":
            use = (ev.get("start") or {}).get("toolUse")
            if use:
                index = ev.get("contentBlockIndex")
                if use.get("name") == JSON_TOOL:
                    self.json_blocks.add(index)
                    return
                n = self.tools[index] = len(self.tools)
                out.append(self._chunk({"tool_calls": [{"index": n, "id": use.get("toolUseId"), "type": "function",
                                                        "function": {"name": use.get("name"), "arguments": ""}}]}))
        elif kind == "messageStart":
            out.append(self._chunk({"role": ev.get("role") or "assistant", "content": ""}))
        elif kind == "messageStop":
            finish = FINISH.get(ev.get("stopReason") or "end_turn", "stop")
            if finish == "tool_calls" and not self.tools and self.json_blocks:
                finish = "stop"  # JSON mode: the forced tool's input was the answer
            self.finished = True
            out.append(self._chunk({}, finish))
        elif kind == "metadata":
            usage = ev.get("usage")
            if isinstance(usage, dict) and not self.billed:
                self.billed = True
                chunk = self._chunk({})
                chunk["choices"] = []
                chunk["usage"] = translate_usage(usage)
                out.append(chunk)
        # contentBlockStop carries nothing a client needs
