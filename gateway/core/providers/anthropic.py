"""The native `anthropic/` provider: OpenAI chat calls over Anthropic's Messages API (`POST /v1/messages`).

Requests are translated as LiteLLM's Anthropic config translates them (docs/providers/anthropic.md
lists what is and is not): system messages become the top-level `system`, tool calls and results
become `tool_use` / `tool_result` blocks, `max_tokens` defaults to 4096 because Anthropic requires
it, and what a model accepts follows its generation, read off its id as LiteLLM's version gate reads
it: before Claude 4.6 `reasoning_effort` is a thinking budget and a JSON `response_format` is one
forced tool (`json_tool_call`) whose input comes back as the reply's text; from 4.6 they are
adaptive thinking with `output_config.effort` and native `output_config.format`; from 4.7 sampling
parameters are not sent (the API refuses them). OpenAI parameters Anthropic has no use for (`n`,
penalties, `seed`, `logprobs`, `stream_options`, ...) are never sent.

Replies come back as `chat.completion`s whose usage counts cache reads and writes in
`prompt_tokens` (`prompt_tokens_details.cached_tokens` = the reads), as LiteLLM counts them;
thinking blocks surface as `reasoning_content` and `thinking_blocks`. Streams are Anthropic's SSE
events, turned into `chat.completion.chunk`s as the bytes arrive, ending with a finish chunk and a
usage chunk (`choices: []`) so the call is billed.
"""

from __future__ import annotations

import re
import time
from functools import lru_cache
from typing import Any

import orjson

from gateway.errors import BadRequestError
from gateway.provider import Provider, ProviderError, UpstreamRequest

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096  # LiteLLM's DEFAULT_ANTHROPIC_CHAT_MAX_TOKENS, and its DEFAULT_MAX_TOKENS
# LiteLLM's DEFAULT_REASONING_EFFORT_*_THINKING_BUDGET (Anthropic's minimum budget is 1024), for
# models before 4.6; from 4.6 on, reasoning_effort is `output_config.effort` with adaptive thinking.
THINKING_BUDGETS = {"minimal": 1024, "low": 1024, "medium": 2048, "high": 4096, "xhigh": 8192}
EFFORTS = {"minimal": "low", "low": "low", "medium": "medium", "high": "high", "xhigh": "xhigh", "max": "max"}
# `claude-3-5-sonnet-...`, `claude-sonnet-4-...`, `claude-opus-4-1-...`, `claude-sonnet-5-5`: (major, minor).
GENERATION = re.compile(r"claude-(?:[a-z]+-)?(\d{1,2})(?:-(\d{1,2}))?(?=-|$)")
UNVERSIONED_LINES = ("fable", "mythos")  # always-thinking lines, versioned or not
JSON_TOOL = "json_tool_call"  # LiteLLM's RESPONSE_FORMAT_TOOL_NAME
WEB_SEARCH_MAX_USES = {"low": 1, "medium": 5, "high": 10}
FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
          "pause_turn": "stop", "refusal": "content_filter", "model_context_window_exceeded": "length"}
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
               504: "timeout_error", 529: "overloaded_error"}
#: Messages API parameters with no OpenAI equivalent, sent as the client (or `extra_body`) gave them.
NATIVE_PARAMS = ("top_k", "container", "mcp_servers", "context_management", "inference_geo", "speed")
HOSTED_TOOLS = ("web_search", "bash", "text_editor", "code_execution", "computer_", "web_fetch", "memory")
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
# Anthropic refuses e-mail addresses and phone numbers as metadata.user_id (LiteLLM's _valid_user_id).
NOT_A_USER_ID = re.compile(r"^[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\.[a-zA-Z]{2,}$|^\+?[\d\s()-]{7,}$")
PREFIX = "AnthropicException - "


def _bad(message: str, param: str | None = None) -> BadRequestError:
    return BadRequestError(PREFIX + message, param=param)


def messages_url(base: str) -> str:
    """`https://api.anthropic.com`, `.../v1` and `.../v1/messages` all mean the same endpoint."""
    base = base.rstrip("/")
    if base.endswith("/v1/messages"):
        return base
    if base.endswith("/v1"):
        return base + "/messages"
    return base + "/v1/messages"


# -- requests ----------------------------------------------------------------------------------
def _media(url: str, fmt: str | None, where: str) -> dict[str, Any]:
    """An OpenAI image/file URL as an Anthropic block: data URLs inline (PDFs as documents)."""
    if url.startswith("data:"):
        head, sep, data = url[5:].partition(",")
        if not sep or not head.endswith(";base64"):
            raise _bad(f"{where}: a data URL must be base64 (data:<media type>;base64,<data>)", "messages")
        media_type = fmt or head[:-7]
        if media_type == "image/jpg":  # a common misspelling Anthropic refuses
            media_type = "image/jpeg"
        kind = "document" if media_type == "application/pdf" else "image"
        if kind == "image" and media_type not in IMAGE_TYPES:
            raise _bad(f"{where}: image type {media_type!r} is not supported; use one of "
                       f"{', '.join(sorted(IMAGE_TYPES))}", "messages")
        return {"type": kind, "source": {"type": "base64", "media_type": media_type, "data": data}}
    if url.startswith(("http://", "https://")):
        kind = "document" if fmt == "application/pdf" else "image"
        return {"type": kind, "source": {"type": "url", "url": url}}
    raise _bad(f"{where}: an image URL must be a data: or http(s) URL", "messages")


def _part(part: Any, where: str, betas: set[str]) -> dict[str, Any] | None:
    """One OpenAI content part of a user (or tool) message as an Anthropic block (None: nothing)."""
    if not isinstance(part, dict):
        raise _bad(f"{where}: content parts must be objects", "messages")
    kind = part.get("type")
    if kind == "text":
        text = part.get("text")
        if not isinstance(text, str):
            raise _bad(f"{where}.text must be a string", "messages")
        if not text:
            return None  # Anthropic refuses empty text blocks
        block: dict[str, Any] = {"type": "text", "text": text}
    elif kind == "image_url":
        image = part.get("image_url")
        url, fmt = (image, None) if isinstance(image, str) else (
            (image.get("url"), image.get("format")) if isinstance(image, dict) else (None, None))
        if not isinstance(url, str):
            raise _bad(f"{where}.image_url.url must be a string", "messages")
        block = _media(url, fmt, where)
    elif kind == "file":
        file = part.get("file") if isinstance(part.get("file"), dict) else {}
        if isinstance(file.get("file_data"), str):
            block = _media(file["file_data"], file.get("format"), where)
        elif isinstance(file.get("file_id"), str):
            betas.add("files-api-2025-04-14")
            block = {"type": "document", "source": {"type": "file", "file_id": file["file_id"]}}
        else:
            raise _bad(f"{where}.file needs file_data or file_id", "messages")
    elif kind in ("document", "image", "search_result"):  # already Anthropic-shaped (LiteLLM passes these)
        return part
    else:
        raise _bad(f"{where}: content type {kind!r} is not supported by Anthropic", "messages")
    if "cache_control" in part:
        block["cache_control"] = part["cache_control"]
    return block


def _tool_result(msg: dict[str, Any], where: str, betas: set[str]) -> dict[str, Any]:
    call_id = msg.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise _bad(f"{where}.tool_call_id is required for a tool message", "messages")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": call_id}
    if msg.get("is_error") is True:  # an Anthropic client's failed tool run (/v1/messages), kept for Claude
        block["is_error"] = True
    content = msg.get("content")
    if isinstance(content, list):
        parts = [b for i, p in enumerate(content) if (b := _part(p, f"{where}.content.{i}", betas))]
        if parts:
            block["content"] = parts
    elif isinstance(content, str):
        if content:
            block["content"] = content
    elif content is not None:
        block["content"] = orjson.dumps(content).decode()
    if "cache_control" in msg:
        block["cache_control"] = msg["cache_control"]
    return block


def _assistant(msg: dict[str, Any], where: str) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    thinking = msg.get("thinking_blocks")
    if isinstance(thinking, list):  # first, or Anthropic refuses the turn
        blocks.extend(b for b in thinking if isinstance(b, dict) and b.get("type") in ("thinking", "redacted_thinking"))
    content = msg.get("content")
    if isinstance(content, str):
        if content:
            block: dict[str, Any] = {"type": "text", "text": content}
            if "cache_control" in msg:
                block["cache_control"] = msg["cache_control"]
            blocks.append(block)
    elif isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                continue
            kind = part.get("type")
            if kind == "text" and isinstance(part.get("text"), str) and part["text"]:
                block = {"type": "text", "text": part["text"]}
                if "cache_control" in part:
                    block["cache_control"] = part["cache_control"]
                blocks.append(block)
            elif kind in ("thinking", "redacted_thinking"):
                blocks.append(part)
    for i, call in enumerate(msg.get("tool_calls") or ()):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise _bad(f"{where}.tool_calls.{i}.function.name is required", "messages")
        args = fn.get("arguments")
        try:
            arguments = orjson.loads(args) if isinstance(args, str) and args.strip() else (args or {})
        except orjson.JSONDecodeError:
            raise _bad(f"{where}.tool_calls.{i}.function.arguments is not valid JSON", "messages") from None
        if not isinstance(arguments, dict):
            raise _bad(f"{where}.tool_calls.{i}.function.arguments must be a JSON object", "messages")
        blocks.append({"type": "tool_use", "id": call.get("id"), "name": fn["name"], "input": arguments})
    return blocks


def _system_blocks(msg: dict[str, Any]) -> list[dict[str, Any]]:
    content = msg.get("content")
    if isinstance(content, str):
        if not content:
            return []
        block: dict[str, Any] = {"type": "text", "text": content}
        if "cache_control" in msg:
            block["cache_control"] = msg["cache_control"]
        return [block]
    out = []
    for part in content or ():
        if isinstance(part, dict) and part.get("type") == "text" and part.get("text"):
            block = {"type": "text", "text": part["text"]}
            if "cache_control" in part:
                block["cache_control"] = part["cache_control"]
            out.append(block)
    return out


def translate_messages(messages: Any, betas: set[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """OpenAI messages -> (Anthropic `system` blocks, `messages`), consecutive turns of one role merged."""
    if not isinstance(messages, list):
        raise _bad("messages must be a list", "messages")
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise _bad(f"messages.{i} must be an object", "messages")
        role = msg.get("role")
        where = f"messages.{i}"
        if role == "user":
            content = msg.get("content")
            if isinstance(content, str):
                block: dict[str, Any] = {"type": "text", "text": content}
                if "cache_control" in msg:
                    block["cache_control"] = msg["cache_control"]
                blocks = [block] if content else []
            elif isinstance(content, list):
                blocks = [b for j, p in enumerate(content) if (b := _part(p, f"{where}.content.{j}", betas))]
            else:
                raise _bad(f"{where}.content must be a string or a list of parts", "messages")
            turn = "user"
        elif role == "tool":
            blocks, turn = [_tool_result(msg, where, betas)], "user"
        elif role == "assistant":
            blocks, turn = _assistant(msg, where), "assistant"
        elif role in ("system", "developer"):
            system.extend(_system_blocks(msg))
            continue
        else:
            raise _bad(f"{where}.role {role!r} is not supported (use system, user, assistant or tool)", "messages")
        if not blocks:
            continue
        if out and out[-1]["role"] == turn:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": turn, "content": blocks})
    if out and out[-1]["role"] == "assistant":  # a prefill may not end in whitespace
        for block in out[-1]["content"]:
            if block.get("type") == "text":
                block["text"] = block["text"].rstrip()
    return system, out


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise _bad("tools must be a list", "tools")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise _bad(f"tools.{i} must be an object", "tools")
        kind = tool.get("type")
        if "input_schema" in tool or (isinstance(kind, str) and kind.startswith(HOSTED_TOOLS)):
            out.append(tool)  # already Anthropic-shaped, or one of Anthropic's hosted tools
            continue
        fn = tool.get("function")
        if kind not in ("function", None) or not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise _bad(f"tools.{i}: only function tools are supported (type 'function' with function.name)", "tools")
        schema = fn.get("parameters")
        schema = {"type": "object", **schema} if isinstance(schema, dict) else {"type": "object", "properties": {}}
        out_tool: dict[str, Any] = {"name": fn["name"], "input_schema": schema}
        if fn.get("description"):
            out_tool["description"] = fn["description"]
        cache = tool.get("cache_control") or fn.get("cache_control")
        if cache:
            out_tool["cache_control"] = cache
        out.append(out_tool)
    return out


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    result: dict[str, Any] | None = None
    if choice == "auto":
        result = {"type": "auto"}
    elif choice == "required":
        result = {"type": "any"}
    elif choice == "none":
        return {"type": "none"}
    elif isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name") if isinstance(choice.get("function"), dict) else None
        result = {"type": "tool", "name": name} if name else (
            choice if choice.get("type") in ("auto", "any", "tool", "none") else None)
    if isinstance(parallel, bool):
        result = dict(result) if result else {"type": "auto"}
        result["disable_parallel_tool_use"] = not parallel
    return result


class Generation:
    """What a model's generation accepts, read off its id as LiteLLM's version gate reads it:
    from 4.6, adaptive thinking and `output_config` (effort, format); from 4.7 (and Fable/Mythos),
    adaptive only: manual thinking budgets, sampling parameters and forced tool use are refused."""

    __slots__ = ("adaptive", "adaptive_only", "always_thinks")

    def __init__(self, model: str) -> None:
        line = next((name for name in UNVERSIONED_LINES if name in model), None)
        match = GENERATION.search(model)
        version = (int(match.group(1)), int(match.group(2) or 0)) if match else (0, 0)
        self.adaptive = line is not None or version >= (4, 6)
        self.adaptive_only = line is not None or version >= (4, 7)
        self.always_thinks = line is not None


generation = lru_cache(maxsize=512)(Generation)


def _thinking(body: dict[str, Any], gen: Generation, out: dict[str, Any]) -> dict[str, Any] | None:
    """`thinking` (and `output_config.effort`) from the request's `thinking` or `reasoning_effort`."""
    thinking = body.get("thinking")
    if isinstance(thinking, dict):
        kind = thinking.get("type")
        if kind == "enabled" and gen.adaptive_only:  # a budget the model would refuse
            return {"type": "adaptive"}
        if kind == "adaptive" and not gen.adaptive:  # a mode the model does not have
            return {"type": "enabled", "budget_tokens": THINKING_BUDGETS["medium"]}
        return thinking
    effort = body.get("reasoning_effort")
    if effort is None:
        return None
    if effort == "none":
        return {"type": "disabled"} if gen.adaptive and not gen.always_thinks else None
    if effort not in EFFORTS or (not gen.adaptive and effort not in THINKING_BUDGETS):
        raise _bad(f"reasoning_effort {effort!r} is not supported; use one of: none, "
                   f"{', '.join(EFFORTS if gen.adaptive else THINKING_BUDGETS)}", "reasoning_effort")
    if not gen.adaptive:
        return {"type": "enabled", "budget_tokens": THINKING_BUDGETS[effort]}
    level = EFFORTS[effort]
    if level == "xhigh" and not gen.adaptive_only:
        level = "high"
    out["output_config"] = {**(out.get("output_config") or {}), "effort": level}
    return {"type": "adaptive"}


def translate_request(body: dict[str, Any], stream: bool, betas: set[str]) -> dict[str, Any]:
    """An OpenAI chat body as a Messages API body (see the module docstring)."""
    system, messages = translate_messages(body.get("messages"), betas)
    out: dict[str, Any] = {"model": body["model"], "messages": messages}
    if system:
        out["system"] = system
    gen = generation(body["model"])
    if isinstance(body.get("output_config"), dict):
        out["output_config"] = dict(body["output_config"])
    thinking = _thinking(body, gen, out)
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens is None:
        budget = thinking.get("budget_tokens") if thinking and thinking.get("type") == "enabled" else None
        max_tokens = DEFAULT_MAX_TOKENS + budget if isinstance(budget, int) else DEFAULT_MAX_TOKENS
    out["max_tokens"] = max_tokens
    if thinking is not None:
        out["thinking"] = thinking
    if not gen.adaptive_only:  # from 4.7 the API refuses sampling parameters
        for name in ("temperature", "top_p"):
            if body.get(name) is not None:
                out[name] = body[name]
    stop = body.get("stop")
    if isinstance(stop, (str, list)):
        stops = [s for s in ([stop] if isinstance(stop, str) else stop) if isinstance(s, str) and s.strip()]
        if stops:
            out["stop_sequences"] = stops
    tools = _tools(body["tools"]) if body.get("tools") else []
    choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
    options = body.get("web_search_options")
    if isinstance(options, dict):
        search: dict[str, Any] = {"type": "web_search_20250305", "name": "web_search"}
        size = options.get("search_context_size")
        if size in WEB_SEARCH_MAX_USES:
            search["max_uses"] = WEB_SEARCH_MAX_USES[size]
        place = (options.get("user_location") or {}).get("approximate")
        if isinstance(place, dict):
            search["user_location"] = {"type": "approximate", **{k: v for k, v in place.items() if k != "type"}}
        tools.append(search)
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
        spec = fmt.get("json_schema") if isinstance(fmt.get("json_schema"), dict) else {}
        schema = spec.get("schema") or fmt.get("response_schema")
        thinks = gen.adaptive_only or bool(thinking and thinking.get("type") in ("enabled", "adaptive"))
        if isinstance(schema, dict) and gen.adaptive:  # native structured outputs: the text is the JSON
            out["output_config"] = {**(out.get("output_config") or {}),
                                    "format": {"type": "json_schema", "schema": schema}}
        else:  # LiteLLM's way: one tool whose input is the answer, forced unless the model thinks
            input_schema = {"type": "object", **schema} if isinstance(schema, dict) else {
                "type": "object", "additionalProperties": True, "properties": {}}
            tools.append({"name": JSON_TOOL, "input_schema": input_schema})
            if not thinks:  # thinking cannot be forced onto a tool
                choice = {"type": "tool", "name": JSON_TOOL}
    if tools:
        out["tools"] = tools
        if choice is not None:
            out["tool_choice"] = choice
    user = body.get("user")
    if isinstance(user, str) and user and not NOT_A_USER_ID.match(user):
        out["metadata"] = {"user_id": user}
    for name in NATIVE_PARAMS:
        if body.get(name) is not None and not (name == "top_k" and gen.adaptive_only):
            out[name] = body[name]
    if "mcp_servers" in out:
        betas.add("mcp-client-2025-04-04")
    if body.get("service_tier") in ("auto", "standard_only"):
        out["service_tier"] = body["service_tier"]
    if stream:
        out["stream"] = True
    return out


# -- replies -----------------------------------------------------------------------------------
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


# -- the provider ------------------------------------------------------------------------------
#: The chat request fields translated to the Messages API (and Anthropic's own, passed as they are).
def _requested_betas(value: Any) -> set[str]:
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list):
        return set()
    return {b.strip() for b in value if isinstance(b, str) and b.strip() and "\r" not in b and "\n" not in b}


CHAT_PARAMS = frozenset({"max_tokens", "max_completion_tokens", "temperature", "top_p", "stop", "tools",
                         "tool_choice", "parallel_tool_calls", "web_search_options", "response_format",
                         "service_tier", "thinking", "reasoning_effort", "output_config", "anthropic_beta",
                         *NATIVE_PARAMS})


class Anthropic(Provider):
    name = "anthropic"
    display_name = "Anthropic"
    default_api_base = "https://api.anthropic.com"
    api_key_env = ("ANTHROPIC_API_KEY",)
    api_base_env = ("ANTHROPIC_API_BASE", "ANTHROPIC_BASE_URL")  # as LiteLLM reads them
    call_types = frozenset({"acompletion"})
    passthrough = False
    supported_params = {"acompletion": CHAT_PARAMS}

    def build_request(self, dep: Any, call_type: str, body: dict[str, Any], stream: bool) -> UpstreamRequest:
        # `anthropic_beta`: betas the client asked for (the `anthropic-beta` header on /v1/messages,
        # or the field), sent with the ones the request's features need
        betas = _requested_betas(body.get("anthropic_beta"))
        payload = translate_request(body, stream, betas)
        extra_body = getattr(dep, "extra_body", None)
        if extra_body:  # LiteLLM sends a deployment's extra_body to the provider as it is
            payload.update(extra_body)
        headers = {"content-type": "application/json", "accept": "application/json", "anthropic-version": API_VERSION}
        if dep.api_key:
            headers["x-api-key"] = dep.api_key
        if dep.basic_auth:  # userinfo in api_base: a reverse proxy's credentials, as LiteLLM's client sends them
            headers["authorization"] = dep.basic_auth
        if betas:
            headers["anthropic-beta"] = ",".join(sorted(betas))
        if dep.extra_headers:
            headers.update(dep.extra_headers)
        return UpstreamRequest(messages_url(dep.api_base), headers, orjson.dumps(payload))

    def parse_reply(self, dep: Any, call_type: str, data: bytes) -> dict[str, Any]:
        return translate_reply(orjson.loads(data))

    def parse_error(self, dep: Any, status: int, data: bytes) -> ProviderError:
        default = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        try:
            body = orjson.loads(data)
        except orjson.JSONDecodeError:
            body = None
        if isinstance(body, dict):
            err = body.get("error")
            if isinstance(err, dict) and isinstance(err.get("message"), str) and err["message"]:
                etype = err.get("type")
                return ProviderError(err["message"], etype if isinstance(etype, str) and etype else default)
            if isinstance(err, str) and err:
                return ProviderError(err, default)
            if isinstance(body.get("message"), str) and body["message"]:
                return ProviderError(body["message"], default)
        text = data.decode(errors="replace").strip()[:500]
        return ProviderError(text or f"upstream returned HTTP {status}", default)

    def stream(self, dep: Any, call_type: str) -> AnthropicStream:
        return AnthropicStream()


def providers() -> list[Provider]:
    return [Anthropic()]
