"""Anthropic's Messages API (`POST /v1/messages`) served through the chat path.

The request becomes an OpenAI chat request (gateway/core/apis/anthropic_request.py), so every hook
sees chat; the reply and the stream chunks are rendered back here as a `message` and Anthropic's
SSE events. The inverse of gateway/core/providers/anthropic.py, which speaks Messages to Anthropic.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from gateway.context import Principal, RequestContext
from gateway.core.apis.anthropic_request import estimate_tokens, is_claude, to_chat
from gateway.errors import GatewayError

__all__ = ["API", "AnthropicMessages", "MessageStream", "error_body", "estimate_tokens", "from_chat", "is_claude",
           "to_chat"]

API = "anthropic_messages"
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
                "content_filter": "refusal"}

# -- replies -----------------------------------------------------------------------------------
def message_id(chat_id: Any) -> str:
    """`msg_...`; an upstream's other id is kept after the prefix, so the spend row stays findable."""
    if isinstance(chat_id, str) and chat_id:
        return chat_id if chat_id.startswith("msg_") else f"msg_{chat_id}"
    return f"msg_{uuid.uuid4().hex[:24]}"


def usage_of(usage: Any) -> dict[str, Any]:
    """Chat usage as Anthropic's: `input_tokens` excludes cache reads and writes, which the chat
    `prompt_tokens` includes (as the anthropic provider and OpenAI both count them)."""
    usage = usage if isinstance(usage, dict) else {}
    details = usage.get("prompt_tokens_details") if isinstance(usage.get("prompt_tokens_details"), dict) else {}
    read = usage.get("cache_read_input_tokens", details.get("cached_tokens"))
    written = usage.get("cache_creation_input_tokens", details.get("cache_creation_tokens"))
    prompt = int(usage.get("prompt_tokens") or 0)
    out: dict[str, Any] = {"input_tokens": max(0, prompt - int(read or 0) - int(written or 0)),
                           "output_tokens": int(usage.get("completion_tokens") or 0)}
    if read is not None or written is not None:
        out["cache_creation_input_tokens"] = int(written or 0)
        out["cache_read_input_tokens"] = int(read or 0)
    return out


def stop_reason(finish: Any, has_tool_use: bool, sequence: Any = None) -> str:
    if isinstance(sequence, str):  # a provider that says which stop sequence matched
        return "stop_sequence"
    reason = STOP_REASONS.get(finish, "end_turn") if isinstance(finish, str) else "end_turn"
    # Some OpenAI-compatible servers finish a tool call with "stop": the client must still run it.
    return "tool_use" if has_tool_use and reason == "end_turn" else reason


def tool_input(arguments: Any) -> Any:
    """Tool-call arguments (a JSON string) as a `tool_use` input; unreadable ones are kept raw."""
    if isinstance(arguments, dict):
        return arguments
    try:
        value = orjson.loads(arguments) if isinstance(arguments, str) and arguments.strip() else {}
    except orjson.JSONDecodeError:
        return {"_raw_arguments": arguments}
    return value if isinstance(value, dict) else {"_raw_arguments": arguments}


def content_of(message: dict[str, Any]) -> list[dict[str, Any]]:
    """A chat reply message as content blocks: thinking first, then text, then tool uses."""
    blocks: list[dict[str, Any]] = []
    for block in message.get("thinking_blocks") or ():
        if isinstance(block, dict) and block.get("type") == "thinking":
            blocks.append({"type": "thinking", "thinking": block.get("thinking") or "",
                           "signature": block.get("signature") or ""})
        elif isinstance(block, dict) and block.get("type") == "redacted_thinking":
            blocks.append({"type": "redacted_thinking", "data": block.get("data") or ""})
    reasoning = message.get("reasoning_content")
    if not blocks and isinstance(reasoning, str) and reasoning:
        blocks.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(p.get("text") or "" for p in content if isinstance(p, dict) and p.get("type") == "text")
    if not content and isinstance(message.get("refusal"), str):
        content = message["refusal"]
    if isinstance(content, str) and content:
        blocks.append({"type": "text", "text": content})
    for call in message.get("tool_calls") or ():
        fn = call.get("function") or {}
        blocks.append({"type": "tool_use", "id": call.get("id") or f"toolu_{uuid.uuid4().hex[:24]}",
                       "name": fn.get("name") or "", "input": tool_input(fn.get("arguments"))})
    return blocks


def from_chat(reply: dict[str, Any], model: str) -> dict[str, Any]:
    choices = reply.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    content = content_of(choice.get("message") or {})
    has_tools = any(b["type"] == "tool_use" for b in content)
    sequence = choice.get("stop_sequence") if isinstance(choice.get("stop_sequence"), str) else None
    return {"id": message_id(reply.get("id")), "type": "message", "role": "assistant",
            "model": reply.get("model") or model, "content": content,
            "stop_reason": stop_reason(choice.get("finish_reason"), has_tools, sequence), "stop_sequence": sequence,
            "usage": usage_of(reply.get("usage"))}


def error_body(err: GatewayError) -> dict[str, Any]:
    """Anthropic's envelope, keeping the gateway's `error.message` / `error.type` (and param, code)."""
    return {"type": "error", "error": {"type": err.type, "message": err.message, "param": err.param,
                                       "code": str(err.status)}}


class AnthropicMessages:
    """The /v1/messages adapter (gateway/core/apis). `native`: the model's deployments are Claude."""

    api = API

    def __init__(self, native: bool = False) -> None:
        self.native = native

    async def to_chat(self, body: dict[str, Any], principal: Principal) -> dict[str, Any]:
        return to_chat(body, self.native)

    def from_chat(self, reply: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        return from_chat(reply, ctx.model)

    def encoder(self, ctx: RequestContext) -> "MessageStream":
        return MessageStream(ctx.model, estimate_tokens(ctx.body))

    def error_body(self, err: GatewayError) -> dict[str, Any]:
        return error_body(err)


# -- streams -----------------------------------------------------------------------------------
def sse(event: dict[str, Any]) -> bytes:
    return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


class MessageStream:
    """Chat chunks -> Anthropic's events: `message_start` (and a `ping`) on the first chunk; one
    content block at a time (thinking, text, each tool use) with its deltas; `message_delta` (stop
    reason and the usage, which comes after the finish chunk) and `message_stop` at the end.

    `message_start` carries an estimate of the input tokens (the upstream counts them only at the
    end); `message_delta` carries the counts, which clients take over the estimate."""

    def __init__(self, model: str, input_estimate: int) -> None:
        self.model = model
        self.input_estimate = input_estimate
        self.started = False
        self.blocks = 0  # content blocks opened so far: the next one's index
        self.open: tuple[str, int] | None = None  # (kind, index) of the block being streamed
        self.tools: dict[int, int] = {}  # chat tool_calls index -> content block index
        self.finish: Any = None
        self.sequence: str | None = None  # the stop sequence that matched, when the provider says
        self.usage: dict[str, Any] | None = None
        self.reply_id: str | None = None  # the message id the client saw (its spend row carries it)

    def _start(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        self.started = True
        self.reply_id = message_id(chunk.get("id"))
        message = {"id": self.reply_id, "type": "message", "role": "assistant",
                   "model": chunk.get("model") or self.model, "content": [], "stop_reason": None,
                   "stop_sequence": None, "usage": {"input_tokens": self.input_estimate, "output_tokens": 0}}
        return [{"type": "message_start", "message": message}, {"type": "ping"}]

    def _close(self, out: list[dict[str, Any]]) -> None:
        if self.open is not None:
            out.append({"type": "content_block_stop", "index": self.open[1]})
            self.open = None

    def _block(self, kind: str, block: dict[str, Any], out: list[dict[str, Any]]) -> int:
        """The block of `kind` being streamed, or a new one (closing the one before)."""
        if self.open is not None and self.open[0] == kind and kind != "tool_use":
            return self.open[1]
        self._close(out)
        index, self.blocks = self.blocks, self.blocks + 1
        out.append({"type": "content_block_start", "index": index, "content_block": block})
        self.open = (kind, index)
        return index

    def _delta(self, kind: str, start: dict[str, Any], delta: dict[str, Any], out: list[dict[str, Any]]) -> None:
        out.append({"type": "content_block_delta", "index": self._block(kind, start, out), "delta": delta})

    def _thinking(self, delta: dict[str, Any], out: list[dict[str, Any]]) -> None:
        start = {"type": "thinking", "thinking": "", "signature": ""}
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            self._delta("thinking", start, {"type": "thinking_delta", "thinking": reasoning}, out)
        for block in delta.get("thinking_blocks") or ():
            if not isinstance(block, dict):
                continue
            if block.get("type") == "redacted_thinking":
                self._block("redacted_thinking", {"type": "redacted_thinking", "data": block.get("data") or ""}, out)
                self._close(out)
                continue
            text = block.get("thinking")
            if text and not reasoning:  # the same text as reasoning_content, when both came
                self._delta("thinking", start, {"type": "thinking_delta", "thinking": text}, out)
            if block.get("signature"):
                self._delta("thinking", start, {"type": "signature_delta", "signature": block["signature"]}, out)

    def _tool_calls(self, calls: list[Any], out: list[dict[str, Any]]) -> None:
        for call in calls:
            if not isinstance(call, dict):
                continue
            fn = call.get("function") if isinstance(call.get("function"), dict) else {}
            n = call.get("index", 0)
            if n not in self.tools:
                start = {"type": "tool_use", "id": call.get("id") or f"toolu_{uuid.uuid4().hex[:24]}",
                         "name": fn.get("name") or "", "input": {}}
                self.tools[n] = self._block("tool_use", start, out)
            arguments = fn.get("arguments")
            if isinstance(arguments, str) and arguments:
                out.append({"type": "content_block_delta", "index": self.tools[n],
                            "delta": {"type": "input_json_delta", "partial_json": arguments}})

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        out = [] if self.started else self._start(chunk)
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue  # one message: the first choice
            delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
            self._thinking(delta, out)
            if isinstance(delta.get("content"), str) and delta["content"]:
                self._delta("text", {"type": "text", "text": ""}, {"type": "text_delta", "text": delta["content"]}, out)
            if delta.get("tool_calls"):
                self._tool_calls(delta["tool_calls"], out)
            if choice.get("finish_reason"):
                self.finish = choice["finish_reason"]
                if isinstance(choice.get("stop_sequence"), str):
                    self.sequence = choice["stop_sequence"]
                self._close(out)
        return b"".join(sse(e) for e in out)

    def done(self) -> bytes:
        out = [] if self.started else self._start({})
        self._close(out)
        # No usage came: say nothing of the input, so clients keep message_start's estimate.
        usage = usage_of(self.usage) if self.usage is not None else {"output_tokens": 0}
        reason = stop_reason(self.finish, bool(self.tools), self.sequence)
        out.append({"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": self.sequence},
                    "usage": usage})
        out.append({"type": "message_stop"})
        return b"".join(sse(e) for e in out)

    def error(self, err: GatewayError) -> bytes:
        return sse(error_body(err))
