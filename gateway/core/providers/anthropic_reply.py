"""Messages API replies as OpenAI's: a reply as a `chat.completion` (`translate_reply`), its usage
with cache reads and writes in prompt_tokens, and its SSE events as `chat.completion.chunk`s as the
bytes arrive (`AnthropicStream`).
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from gateway.core.providers.anthropic_request import JSON_TOOL

FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
          "pause_turn": "stop", "refusal": "content_filter", "model_context_window_exceeded": "length"}


def translate_usage(usage: dict[str, Any]) -> dict[str, Any]:
    """Anthropic usage as OpenAI's, cache reads and writes counted in prompt_tokens (as LiteLLM does)."""
    written = usage.get("cache_creation_input_tokens") or 0
    read = usage.get("cache_read_input_tokens") or 0
    prompt = (usage.get("input_tokens") or 0) + written + read
    completion = usage.get("output_tokens") or 0
    out: dict[str, Any] = {
        "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": read, "cache_creation_tokens": written},
        "cache_creation_input_tokens": written, "cache_read_input_tokens": read,
    }
    details = usage.get("output_tokens_details")
    if isinstance(details, dict) and details.get("thinking_tokens") is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": details["thinking_tokens"]}
    if usage.get("server_tool_use"):
        out["server_tool_use"] = usage["server_tool_use"]
    return out


def translate_reply(msg: dict[str, Any]) -> dict[str, Any]:
    """A Messages API reply as a `chat.completion`."""
    if not isinstance(msg, dict) or msg.get("type") == "error":
        raise ValueError("not a Messages API reply")
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    thinking: list[dict[str, Any]] = []
    json_reply: dict[str, Any] | None = None
    for block in msg["content"]:
        kind = block["type"]
        if kind == "text":
            texts.append(block["text"])
        elif kind == "tool_use":
            call = {"id": block["id"], "type": "function",
                    "function": {"name": block["name"], "arguments": orjson.dumps(block["input"]).decode()}}
            if block["name"] == JSON_TOOL and json_reply is None:
                json_reply = call
            else:
                calls.append(call)
        elif kind in ("thinking", "redacted_thinking"):
            thinking.append(block)
    finish = FINISH.get(msg.get("stop_reason") or "end_turn", "stop")
    if json_reply is not None:
        if calls:  # other tools were called too: it is one of the calls
            calls.insert(0, json_reply)
        else:  # JSON mode: the forced tool's input is the answer
            texts, finish = [json_reply["function"]["arguments"]], "stop"
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        message["tool_calls"] = calls
    if thinking:
        message["reasoning_content"] = "".join(b.get("thinking") or "" for b in thinking)
        message["thinking_blocks"] = thinking
    choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": finish}
    if msg.get("stop_reason") == "stop_sequence" and isinstance(msg.get("stop_sequence"), str):
        choice["stop_sequence"] = msg["stop_sequence"]  # which one matched (read by /v1/messages)
    return {"id": msg.get("id"), "object": "chat.completion", "created": int(time.time()), "model": msg.get("model"),
            "choices": [choice],
            "usage": translate_usage(msg.get("usage") or {})}


class AnthropicStream:
    """Anthropic's SSE events -> `chat.completion.chunk`s, as bytes arrive (any cut of the bytes)."""

    __slots__ = ("buffer", "id", "model", "created", "usage", "tools", "json_blocks", "finished", "billed")

    def __init__(self) -> None:
        self.buffer = b""
        self.id: str | None = None
        self.model: str | None = None
        self.created = int(time.time())
        self.usage: dict[str, Any] = {}
        self.tools: dict[int, int] = {}  # Anthropic block index -> OpenAI tool_calls index
        self.json_blocks: set[int] = set()  # blocks of the JSON-mode tool: streamed as content
        self.finished = False
        self.billed = False

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    def _usage_chunk(self) -> dict[str, Any]:
        self.billed = True
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [], "usage": translate_usage(self.usage)}

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        buffer = self.buffer + data if self.buffer else data
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
        out: list[dict[str, Any]] = []
        find = buffer.find
        start = 0
        while (end := find(b"\n\n", start)) >= 0:
            at = find(b"data:", start, end)
            # The usual event: `event: <name>` then one `data: <json>` line, the event's last.
            if at >= 0 and (at == start or buffer[at - 1] == 10) and find(b"\n", at, end) < 0:
                self._payload(buffer[at + 5:end], out)
            elif at >= 0:
                self._event(buffer[start:end], out)
            start = end + 2
        self.buffer = buffer[start:] if start else buffer
        return out

    def end(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self.buffer.strip():
            self._event(self.buffer.strip(), out)
        self.buffer = b""
        if self.finished and not self.billed:
            out.append(self._usage_chunk())
        return out

    def _event(self, raw: bytes, out: list[dict[str, Any]]) -> None:
        """Any other event: its `data:` lines joined (comments and other fields skipped)."""
        lines = [line[5:] for line in raw.split(b"\n") if line.startswith(b"data:")]
        if lines:
            self._payload(b"\n".join(lines), out)

    def _payload(self, payload: bytes, out: list[dict[str, Any]]) -> None:
        try:
            ev = orjson.loads(payload)
            if isinstance(ev, dict):
                self._translate(ev, out)
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            return  # not an event we can read: skip it, as a client SDK would

    def _translate(self, ev: dict[str, Any], out: list[dict[str, Any]]) -> None:
        kind = ev.get("type")
        if kind == "content_block_delta":
            delta = ev["delta"]
            dkind = delta.get("type")
            if dkind == "text_delta":
                out.append(self._chunk({"content": delta["text"]}))
            elif dkind == "input_json_delta":
                part = delta.get("partial_json")
                index = ev.get("index")
                if not part:
                    return
                if index in self.json_blocks:
                    out.append(self._chunk({"content": part}))
                elif index in self.tools:
                    out.append(self._chunk({"tool_calls": [{"index": self.tools[index],
                                                            "function": {"arguments": part}}]}))
            elif dkind == "thinking_delta":
                text = delta["thinking"]
                out.append(self._chunk({"reasoning_content": text,
                                        "thinking_blocks": [{"type": "thinking", "thinking": text}]}))
            elif dkind == "signature_delta":
                out.append(self._chunk({"thinking_blocks": [
                    {"type": "thinking", "thinking": "", "signature": delta["signature"]}]}))
        elif kind == "content_block_start":
            block = ev["content_block"]
            bkind = block.get("type")
            if bkind == "tool_use":
                if block.get("name") == JSON_TOOL:
                    self.json_blocks.add(ev.get("index"))
                    return
                n = self.tools[ev.get("index")] = len(self.tools)
                out.append(self._chunk({"tool_calls": [{"index": n, "id": block.get("id"), "type": "function",
                                                        "function": {"name": block.get("name"), "arguments": ""}}]}))
            elif bkind == "text" and block.get("text"):
                out.append(self._chunk({"content": block["text"]}))
            elif bkind == "redacted_thinking":
                out.append(self._chunk({"thinking_blocks": [block]}))
        elif kind == "message_start":
            msg = ev.get("message") or {}
            self.id = msg.get("id")
            self.model = msg.get("model")
            self.usage = dict(msg.get("usage") or {})
            out.append(self._chunk({"role": "assistant", "content": ""}))
        elif kind == "message_delta":
            usage = ev.get("usage")
            if isinstance(usage, dict):  # cumulative counts: the latest wins
                self.usage.update((k, v) for k, v in usage.items() if v is not None)
            reason = (ev.get("delta") or {}).get("stop_reason")
            finish = FINISH.get(reason or "end_turn", "stop")
            if finish == "tool_calls" and not self.tools and self.json_blocks:
                finish = "stop"  # JSON mode: the forced tool's input was the answer
            self.finished = True
            chunk = self._chunk({}, finish)
            sequence = (ev.get("delta") or {}).get("stop_sequence")
            if reason == "stop_sequence" and isinstance(sequence, str):
                chunk["choices"][0]["stop_sequence"] = sequence  # which one matched (read by /v1/messages)
            out.append(chunk)
        elif kind == "message_stop":
            if self.finished and not self.billed:
                out.append(self._usage_chunk())
        elif kind == "error":
            err = ev.get("error") if isinstance(ev.get("error"), dict) else {}
            out.append({"error": {"message": err.get("message") or "stream failed", "type": err.get("type") or "api_error"}})
        # ping and content_block_stop carry nothing a client needs
