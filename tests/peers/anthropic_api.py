"""A fake Anthropic Messages API on loopback: a real HTTP server speaking Anthropic's wire format.

`POST /v1/messages` answers a `message` (JSON) or Anthropic's SSE event stream (`message_start`,
`content_block_start/delta/stop`, `message_delta`, `message_stop`, `ping`, `error`), and checks the
request as the real API does: `x-api-key` and `anthropic-version` headers, required fields, no
parameter the API does not know ("Extra inputs are not permitted"), block shapes, tool results that
answer the previous turn's tool uses. Every request is recorded. tests/test_provider_anthropic.py
checks it against the official `anthropic` SDK, so it cannot drift from the real protocol.

Script it for every reply (`api.default = Reply(...)`) or for the next ones in order
(`api.script(Reply(...), ...)`). A `Reply` is content blocks (default: an echo of the last user
text), a stop reason, usage, or an error (status + Anthropic error type), a raw body, a stream
cut into small byte pieces, an in-stream error event.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.peers.served import ServedInThread

ALLOWED_PARAMS = frozenset({"model", "messages", "max_tokens", "system", "metadata", "stop_sequences", "stream",
                            "temperature", "top_p", "top_k", "tools", "tool_choice", "thinking", "service_tier",
                            "container", "mcp_servers", "context_management", "output_config", "inference_geo",
                            "speed"})
USER_BLOCKS = frozenset({"text", "image", "document", "tool_result", "search_result"})
ASSISTANT_BLOCKS = frozenset({"text", "tool_use", "thinking", "redacted_thinking", "server_tool_use",
                              "web_search_tool_result"})
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
MODEL_VERSION = re.compile(r"claude-(?:[a-z]+-)?(\d{1,2})(?:-(\d{1,2}))?(?=-|$)")
VERSION = re.compile(r"^20\d\d-\d\d-\d\d$")
HOSTED_TOOL = re.compile(r"^(web_search|bash|text_editor|code_execution|computer|web_fetch|memory)_\d{8}$")


class Invalid(Exception):
    """The request is one the real API refuses (400 invalid_request_error); the message says why."""


@dataclass
class Reply:
    """What the fake answers to one request.

    - `content`: Anthropic content blocks (text, tool_use, thinking, redacted_thinking); default: one
      text block `anthropic says: <last user text>`. `text` is a shortcut for one text block.
    - `stop_reason`: default `tool_use` when a tool_use block is there, else `end_turn`.
    - `usage`: merged over the counted defaults (input_tokens, output_tokens, cache fields).
    - `status` + `error_type` + `error_message`: an Anthropic error reply instead.
    - `raw`: this body as it is (with `status` and `content_type`), e.g. malformed JSON.
    - `stream_piece`: send the SSE bytes in pieces of this many bytes (a parser must not care).
    - `stream_error`: (type, message) of an `error` event sent after the first content block.
    """

    content: list[dict[str, Any]] | None = None
    text: str | None = None
    stop_reason: str | None = None
    usage: dict[str, Any] | None = None
    status: int = 200
    error_type: str | None = None
    error_message: str = "error"
    raw: bytes | None = None
    content_type: str = "application/json"
    stream_piece: int | None = None
    stream_error: tuple[str, str] | None = None


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    json: Any


@dataclass
class FakeAnthropic:
    """The fake API. `keys`: the accepted `x-api-key` values (None: any non-empty key)."""

    keys: set[str] | None = None
    default: Reply = field(default_factory=Reply)
    requests: list[Recorded] = field(default_factory=list)
    queue: deque[Reply] = field(default_factory=deque)
    port: int = 0

    @property
    def url(self) -> str:
        """The API's root, as Anthropic's is written (`https://api.anthropic.com`): no /v1."""
        return f"http://127.0.0.1:{self.port}"

    def script(self, *replies: Reply) -> None:
        self.queue.extend(replies)

    @property
    def last(self) -> Recorded:
        return self.requests[-1]

    # -- serving --------------------------------------------------------------------------------
    def start(self) -> "FakeAnthropic":
        self._served = ServedInThread("fake-anthropic", self._handle)
        self.port = self._served.start()
        return self

    def stop(self) -> None:
        self._served.stop()

    def __enter__(self) -> "FakeAnthropic":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            parsed = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            parsed = None
        self.requests.append(Recorded(request.method, request.path, {k.lower(): v for k, v in request.headers.items()},
                                      raw, parsed))
        if request.method != "POST" or request.path != "/v1/messages":
            return error(404, "not_found_error", f"Not found: {request.method} {request.path}")
        # The key comes as `x-api-key` (LiteLLM, curl examples) or `Authorization: Bearer` (the
        # official SDK since 2.x); both are the API's.
        bearer = request.headers.get("authorization", "")
        key = request.headers.get("x-api-key") or (bearer[7:] if bearer.startswith("Bearer ") else None)
        if not key:
            return error(401, "authentication_error", "x-api-key header is required")
        if self.keys is not None and key not in self.keys:
            return error(401, "authentication_error", "invalid x-api-key")
        version = request.headers.get("anthropic-version")
        if not version:
            return error(400, "invalid_request_error", "anthropic-version: header is required")
        if not VERSION.match(version):
            return error(400, "invalid_request_error", f"anthropic-version: {version!r} is not a valid version")
        if not isinstance(parsed, dict):
            return error(400, "invalid_request_error", "There was an issue with your request body: not a JSON object")
        try:
            check_request(parsed)
        except Invalid as exc:
            return error(400, "invalid_request_error", str(exc))
        reply = self.queue.popleft() if self.queue else self.default
        if reply.raw is not None:
            return web.Response(body=reply.raw, status=reply.status, content_type=reply.content_type)
        if reply.error_type is not None:
            return error(reply.status, reply.error_type, reply.error_message)
        message = build_message(parsed, reply)
        if parsed.get("stream"):
            return await self._stream(request, message, reply)
        return web.Response(body=orjson.dumps(message), content_type="application/json",
                            headers={"request-id": "req_fake"})

    async def _stream(self, request: web.Request, message: dict[str, Any], reply: Reply) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream; charset=utf-8",
                                           "cache-control": "no-cache", "request-id": "req_fake"})
        await resp.prepare(request)
        data = b"".join(sse(kind, ev) for kind, ev in stream_events(message, reply.stream_error))
        step = reply.stream_piece or len(data)
        for i in range(0, len(data), step):
            await resp.write(data[i:i + step])
        await resp.write_eof()
        return resp


def error(status: int, kind: str, message: str) -> web.Response:
    body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_fake"}
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def sse(kind: str, event: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


# -- what the real API checks ---------------------------------------------------------------------
def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return " ".join(b.get("text", "") for b in content or () if isinstance(b, dict) and b.get("type") == "text")


def check_request(body: dict[str, Any]) -> None:
    """Raise Invalid as the real API would answer 400 (a subset of its checks, the ones a translator trips)."""
    for name in body:
        if name not in ALLOWED_PARAMS:
            raise Invalid(f"{name}: Extra inputs are not permitted")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise Invalid("model: Field required")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise Invalid("max_tokens: Field required" if max_tokens is None else "max_tokens: must be a positive integer")
    system = body.get("system")
    if system is not None and not isinstance(system, str):
        if not isinstance(system, list) or not all(isinstance(b, dict) and b.get("type") == "text"
                                                   and isinstance(b.get("text"), str) and b["text"] for b in system):
            raise Invalid("system: Input should be a valid string or a list of non-empty text blocks")
    tools = body.get("tools")
    names = set()
    if tools is not None:
        if not isinstance(tools, list):
            raise Invalid("tools: Input should be a valid list")
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str) or not TOOL_NAME.match(tool["name"]):
                raise Invalid(f"tools.{i}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'")
            kind = tool.get("type", "custom")
            if kind == "custom":
                schema = tool.get("input_schema")
                if not isinstance(schema, dict) or schema.get("type") != "object":
                    raise Invalid(f"tools.{i}.custom.input_schema.type: Input should be 'object'")
                extra = set(tool) - {"type", "name", "description", "input_schema", "cache_control"}
                if extra:
                    raise Invalid(f"tools.{i}.custom.{sorted(extra)[0]}: Extra inputs are not permitted")
            elif not HOSTED_TOOL.match(kind):
                raise Invalid(f"tools.{i}: Input tag '{kind}' found using 'type' does not match any of the expected tags")
            names.add(tool["name"])
    choice = body.get("tool_choice")
    if choice is not None:
        if not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none"):
            raise Invalid("tool_choice: Input tag found using 'type' does not match any of the expected tags")
        if choice["type"] == "tool" and choice.get("name") not in names:
            raise Invalid(f"tool_choice.tool.name: tool {choice.get('name')!r} is not in tools")
        if not tools:
            raise Invalid("tool_choice: may only be specified while providing tools")
    # What each generation accepts (platform docs): before 4.6 manual budgets only; 4.6 both; from
    # 4.7 (and the Fable/Mythos lines) adaptive only, no sampling parameters, no forced tools.
    match = MODEL_VERSION.search(body["model"])
    version = (int(match.group(1)), int(match.group(2) or 0)) if match else (0, 0)
    unversioned = any(line in body["model"] for line in ("fable", "mythos"))
    adaptive, adaptive_only = unversioned or version >= (4, 6), unversioned or version >= (4, 7)
    thinking = body.get("thinking")
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if thinking is not None:
        if kind not in ("enabled", "disabled", "adaptive", "between_tools"):
            raise Invalid("thinking: Input tag found using 'type' does not match any of the expected tags")
        if kind == "enabled":
            if adaptive_only:
                raise Invalid("thinking.type.enabled is not supported for this model. Use thinking.type.adaptive "
                              "and output_config.effort to control thinking behavior.")
            budget = thinking.get("budget_tokens")
            if not isinstance(budget, int) or budget < 1024:
                raise Invalid("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
            if budget >= max_tokens:
                raise Invalid("`max_tokens` must be greater than `thinking.budget_tokens`")
        if kind == "adaptive" and not adaptive:
            raise Invalid("adaptive thinking is not supported on this model")
        if kind == "disabled" and unversioned:
            raise Invalid("thinking cannot be disabled for this model")
    thinks = kind in ("enabled", "adaptive") or (adaptive_only and kind != "disabled")
    if choice is not None and choice.get("type") in ("any", "tool") and thinks:
        raise Invalid("Thinking may not be enabled when tool_choice forces tool use.")
    if adaptive_only:
        for name in ("temperature", "top_p", "top_k"):
            if name in body:
                raise Invalid(f"{name}: sampling parameters are not supported for this model")
    config = body.get("output_config")
    if config is not None:
        if not isinstance(config, dict) or set(config) - {"effort", "format"}:
            raise Invalid("output_config: Extra inputs are not permitted")
        effort = config.get("effort")
        if effort is not None and (not adaptive or effort not in ("low", "medium", "high", "xhigh", "max")
                                   or (effort == "xhigh" and not adaptive_only)):
            raise Invalid(f"output_config.effort: {effort!r} is not supported on this model")
        fmt = config.get("format")
        if fmt is not None and (not adaptive or not isinstance(fmt, dict) or fmt.get("type") != "json_schema"
                                or not isinstance(fmt.get("schema"), dict)):
            raise Invalid("output_config.format: a json_schema format with a schema is required")
    stops = body.get("stop_sequences")
    if stops is not None and (not isinstance(stops, list) or not all(isinstance(s, str) and s.strip() for s in stops)):
        raise Invalid("stop_sequences: each stop sequence must contain non-whitespace")
    metadata = body.get("metadata")
    if metadata is not None and (not isinstance(metadata, dict) or set(metadata) - {"user_id"}):
        raise Invalid("metadata: Extra inputs are not permitted")
    for name, low, high in (("temperature", 0, 1), ("top_p", 0, 1)):
        value = body.get(name)
        if value is not None and (not isinstance(value, (int, float)) or not low <= value <= high):
            raise Invalid(f"{name}: Input should be between {low} and {high}")
    _check_messages(body.get("messages"), bool(tools))


def _check_messages(messages: Any, has_tools: bool) -> None:
    if not isinstance(messages, list) or not messages:
        raise Invalid("messages: at least one message is required")
    previous_uses: set[str] = set()
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in ("user", "assistant"):
            raise Invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        extra = set(msg) - {"role", "content"}
        if extra:
            raise Invalid(f"messages.{i}.{sorted(extra)[0]}: Extra inputs are not permitted")
        role, content = msg["role"], msg.get("content")
        if isinstance(content, str):
            if not content and not (role == "assistant" and i == len(messages) - 1):
                raise Invalid(f"messages.{i}: all messages must have non-empty content")
            blocks: list[Any] = []
        elif isinstance(content, list) and content:
            blocks = content
        else:
            raise Invalid(f"messages.{i}: all messages must have non-empty content")
        allowed = USER_BLOCKS if role == "user" else ASSISTANT_BLOCKS
        uses: set[str] = set()
        results_done = False
        for j, block in enumerate(blocks):
            where = f"messages.{i}.content.{j}"
            kind = block.get("type") if isinstance(block, dict) else None
            if kind not in allowed:
                raise Invalid(f"{where}: Input tag '{kind}' found using 'type' does not match any of the expected tags")
            if kind == "text":
                if not isinstance(block.get("text"), str) or not block["text"]:
                    raise Invalid(f"{where}.text: text content blocks must be non-empty")
                if set(block) - {"type", "text", "cache_control", "citations"}:
                    raise Invalid(f"{where}.text: Extra inputs are not permitted")
                results_done = results_done or role == "user"
            elif kind in ("image", "document"):
                _check_source(block.get("source"), kind, where)
            elif kind == "tool_use":
                if not has_tools:
                    raise Invalid("Requests which include `tool_use` or `tool_result` blocks must define tools.")
                if not isinstance(block.get("id"), str) or not isinstance(block.get("input"), dict):
                    raise Invalid(f"{where}.tool_use: id (string) and input (object) are required")
                uses.add(block["id"])
            elif kind == "tool_result":
                if not has_tools:
                    raise Invalid("Requests which include `tool_use` or `tool_result` blocks must define tools.")
                if results_done:
                    raise Invalid(f"{where}: tool_result blocks must come first in a user message")
                if block.get("tool_use_id") not in previous_uses:
                    raise Invalid(f"{where}: unexpected `tool_use_id` found in `tool_result` blocks: "
                                  f"{block.get('tool_use_id')}. Each `tool_result` block must have a corresponding "
                                  "`tool_use` block in the previous message.")
                inner = block.get("content")
                if inner is not None and not isinstance(inner, (str, list)):
                    raise Invalid(f"{where}.content: Input should be a valid string or list")
                for k, part in enumerate(inner if isinstance(inner, list) else ()):
                    if not isinstance(part, dict) or part.get("type") not in ("text", "image", "document", "search_result"):
                        raise Invalid(f"{where}.content.{k}: Input tag does not match any of the expected tags")
            elif kind == "thinking":
                if not isinstance(block.get("signature"), str) or not isinstance(block.get("thinking"), str):
                    raise Invalid(f"{where}.thinking.signature: Field required")
        if previous_uses and role == "user":
            answered = {b.get("tool_use_id") for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result"}
            if answered != previous_uses:
                raise Invalid(f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately "
                              f"after: {', '.join(sorted(previous_uses - answered))}")
        if role == "assistant" and i == len(messages) - 1:
            for block in blocks:
                if block.get("type") == "text" and block["text"] != block["text"].rstrip():
                    raise Invalid("messages: final assistant content cannot end with trailing whitespace")
        previous_uses = uses


def _check_source(source: Any, kind: str, where: str) -> None:
    if not isinstance(source, dict):
        raise Invalid(f"{where}.{kind}.source: Field required")
    if source.get("type") == "base64":
        media = source.get("media_type")
        if kind == "image" and media not in IMAGE_TYPES:
            raise Invalid(f"{where}.image.source.base64.media_type: Input should be 'image/jpeg', 'image/png', "
                          "'image/gif' or 'image/webp'")
        if kind == "document" and media != "application/pdf":
            raise Invalid(f"{where}.document.source.base64.media_type: Input should be 'application/pdf'")
        try:
            base64.b64decode(source.get("data") or "", validate=True)
        except (binascii.Error, ValueError):
            raise Invalid(f"{where}.{kind}.source.base64.data: invalid base64 data") from None
    elif source.get("type") == "url":
        if not isinstance(source.get("url"), str) or not source["url"].startswith(("http://", "https://")):
            raise Invalid(f"{where}.{kind}.source.url.url: must be an http(s) URL")
    elif source.get("type") != "file":
        raise Invalid(f"{where}.{kind}.source: Input tag does not match any of the expected tags")


# -- replies ------------------------------------------------------------------------------------
def _words(text: str) -> int:
    return len(text.split())


def build_message(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    """The `message` object the API returns for this request."""
    if reply.content is not None:
        content = [dict(b) for b in reply.content]
    else:
        last_user = next((m for m in reversed(body["messages"]) if m["role"] == "user"), None)
        text = reply.text if reply.text is not None else f"anthropic says: {_text_of(last_user['content']) if last_user else ''}"
        content = [{"type": "text", "text": text}]
    stop = reply.stop_reason or ("tool_use" if any(b["type"] == "tool_use" for b in content) else "end_turn")
    prompt = _text_of(body.get("system")) + " " + " ".join(_text_of(m["content"]) for m in body["messages"])
    output = " ".join(b.get("text") or b.get("thinking") or orjson.dumps(b.get("input", "")).decode() for b in content)
    usage = {"input_tokens": max(1, _words(prompt)), "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
             "output_tokens": max(1, _words(output))}
    usage.update(reply.usage or {})
    return {"id": "msg_01FakeAnthropic", "type": "message", "role": "assistant", "model": body["model"],
            "content": content, "stop_reason": stop, "stop_sequence": None, "usage": usage}


def _pieces(text: str, size: int = 8) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def stream_events(message: dict[str, Any], fail: tuple[str, str] | None = None) -> list[tuple[str, dict[str, Any]]]:
    """The SSE events the API streams for `message`, in order, as (event name, data)."""
    usage = message["usage"]
    start_usage = {k: v for k, v in usage.items() if k != "output_tokens"} | {"output_tokens": 1}
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": {**message, "content": [], "stop_reason": None,
                                                                 "stop_sequence": None, "usage": start_usage}}),
        ("ping", {"type": "ping"}),
    ]
    for index, block in enumerate(message["content"]):
        kind = block["type"]
        if kind == "text":
            start, deltas = {"type": "text", "text": ""}, [{"type": "text_delta", "text": p} for p in _pieces(block["text"])]
        elif kind == "tool_use":
            start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": ""}] + [
                {"type": "input_json_delta", "partial_json": p} for p in _pieces(orjson.dumps(block["input"]).decode(), 5)]
        elif kind == "thinking":
            start = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": p} for p in _pieces(block["thinking"])]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        else:  # redacted_thinking and the rest arrive whole
            start, deltas = block, []
        events.append(("content_block_start", {"type": "content_block_start", "index": index, "content_block": start}))
        events.extend(("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d}) for d in deltas)
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
        if fail is not None:
            events.append(("error", {"type": "error", "error": {"type": fail[0], "message": fail[1]}}))
            return events
    events.append(("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                                     "usage": {k: v for k, v in usage.items()
                                               if k in ("output_tokens", "output_tokens_details")}}))
    events.append(("message_stop", {"type": "message_stop"}))
    return events
