"""Anthropic's Messages requests as OpenAI chat requests (gateway/core/apis/anthropic_messages.py
serves the API; this is its request half).

`system` -> a system message, `tool_use` blocks -> `tool_calls`, `tool_result` blocks -> tool
messages, images -> `image_url` data URLs, ... so every hook sees chat.

What only Claude understands (`thinking`, `cache_control`, `output_config`, Anthropic-defined tools
such as `bash_*`) is kept as it is when the model's deployments are Claude (`native`), for the
`anthropic/` provider (or a Claude-serving one) to send on; for any other model, `thinking` becomes
`reasoning_effort` and Claude's hints (`cache_control`, `context_management`, ...) are dropped,
as LiteLLM's adapter does. What cannot be carried and would change the answer (server tools, an
unknown block type) is refused with a 400 naming the field (`tools[1].type`). The messages and
their content blocks are anthropic_blocks.py's; the rest of the request is here.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from gateway.core.apis.anthropic_blocks import cached, chat_messages, system_messages
from gateway.errors import BadRequestError

#: Request fields translated here; every other field (temperature, top_p, top_k, stream, the
#: gateway's own `tags`, `guardrails`, ...) is passed on as it is.
TRANSLATED = frozenset({"model", "messages", "system", "max_tokens", "stop_sequences", "tools", "tool_choice",
                        "thinking", "metadata", "litellm_metadata", "output_config", "output_format", "cache_control"})
#: Anthropic-only hints with nothing to apply them elsewhere: sent to Claude, dropped for other
#: models (whose reply then reports none applied: no `context_management` edits, no diagnostics).
CLAUDE_HINTS = frozenset({"context_management", "speed", "diagnostics", "anthropic_beta"})
#: Anthropic-defined tools the client runs: the model calls them with `tool_use` blocks, so they
#: round-trip through chat, but only Claude knows their schemas.
CLIENT_TOOLS = ("bash_", "text_editor_", "computer_", "memory_")
#: LiteLLM's thinking budgets per reasoning effort (the anthropic provider's THINKING_BUDGETS).
EFFORT_BUDGETS = (("high", 4096), ("medium", 2048), ("low", 1024))
WEB_SEARCH_SIZES = ((1, "low"), (5, "medium"))  # max_uses -> search_context_size (else "high")
IMAGE_TOKENS = 1600  # an estimate for one image: about what Anthropic charges for ~1.15 megapixels


def _bad(message: str, param: str) -> BadRequestError:
    return BadRequestError(f"{param}: {message}", param=param)


def is_claude(dep: Any) -> bool:
    """A deployment that takes Anthropic's own fields: the anthropic provider, or a Claude model
    behind another one (LiteLLM's `is_anthropic_claude_model` test)."""
    model = str(getattr(dep, "upstream_model", "")).lower()
    return getattr(dep, "provider", None) == "anthropic" or "claude" in model or "anthropic" in model


def _web_search(tool: dict[str, Any], at: str) -> dict[str, Any]:
    """Anthropic's web search as OpenAI's `web_search_options` (what the anthropic provider reads back)."""
    for name in ("allowed_domains", "blocked_domains"):
        if tool.get(name):
            raise _bad("cannot be honoured by this model (OpenAI's web search has no domain filter)", f"{at}.{name}")
    options: dict[str, Any] = {}
    uses = tool.get("max_uses")
    if isinstance(uses, int):
        options["search_context_size"] = next((size for limit, size in WEB_SEARCH_SIZES if uses <= limit), "high")
    place = tool.get("user_location")
    if isinstance(place, dict):
        options["user_location"] = {"type": "approximate",
                                    "approximate": {k: v for k, v in place.items() if k != "type"}}
    return options


def _tools(tools: Any, native: bool, chat: dict[str, Any]) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise _bad("must be a list of tools", "tools")
    out: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        at = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise _bad("a tool must be an object", at)
        kind = tool.get("type")
        if kind in (None, "custom"):
            if not isinstance(tool.get("name"), str) or not tool["name"]:
                raise _bad("a custom tool needs a `name`", f"{at}.name")
            if not isinstance(tool.get("input_schema"), dict):
                raise _bad("a custom tool needs an `input_schema` object", f"{at}.input_schema")
            fn: dict[str, Any] = {"name": tool["name"], "parameters": tool["input_schema"]}
            if isinstance(tool.get("description"), str):
                fn["description"] = tool["description"]
            if isinstance(tool.get("strict"), bool):
                fn["strict"] = tool["strict"]
            out.append(cached(tool, {"type": "function", "function": fn}, native))
        elif native and isinstance(kind, str) and kind.startswith((*CLIENT_TOOLS, "web_search_")):
            out.append(tool)  # the anthropic provider sends Anthropic's own tools as they are
        elif isinstance(kind, str) and kind.startswith("web_search_"):
            chat["web_search_options"] = _web_search(tool, at)
        elif isinstance(kind, str) and kind.startswith(CLIENT_TOOLS):
            raise _bad(f"{kind!r} is an Anthropic-defined tool only Claude models know; for this model, "
                       "describe it as a custom tool (name, description, input_schema)", f"{at}.type")
        else:
            raise _bad(f"tool type {kind!r} is not supported through the gateway: a server tool Anthropic runs "
                       "itself returns results the gateway cannot carry; use custom tools", f"{at}.type")
    return out


def _tool_choice(choice: Any, chat: dict[str, Any]) -> None:
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind not in ("auto", "any", "tool", "none"):
        raise _bad("must be one of auto, any, tool, none", "tool_choice.type")
    if kind == "tool":
        if not isinstance(choice.get("name"), str) or not choice["name"]:
            raise _bad("tool_choice of type tool needs the tool's `name`", "tool_choice.name")
        chat["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        chat["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[kind]
    if isinstance(choice.get("disable_parallel_tool_use"), bool) and kind != "none":
        chat["parallel_tool_calls"] = not choice["disable_parallel_tool_use"]


def _thinking(body: dict[str, Any], native: bool, chat: dict[str, Any]) -> None:
    """`thinking` for Claude as it is; for other models as `reasoning_effort` (LiteLLM's budgets)."""
    thinking = body.get("thinking")
    if thinking is None:
        return
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind not in ("enabled", "disabled", "adaptive"):
        raise _bad("must be one of enabled, disabled, adaptive", "thinking.type")
    budget = thinking.get("budget_tokens")
    if kind == "enabled" and (isinstance(budget, bool) or not isinstance(budget, int)):
        raise _bad("thinking of type enabled needs an integer `budget_tokens`", "thinking.budget_tokens")
    if native:
        chat["thinking"] = thinking
    elif kind == "enabled":
        chat["reasoning_effort"] = next((effort for effort, least in EFFORT_BUDGETS if budget >= least), "minimal")
    elif kind == "adaptive":
        chat["reasoning_effort"] = "medium"


def _output(body: dict[str, Any], native: bool, chat: dict[str, Any]) -> None:
    """`output_config` (effort, format) and the older `output_format`: as they are for Claude, else
    `reasoning_effort` and a JSON-schema `response_format`."""
    config = body.get("output_config")
    if config is not None and not isinstance(config, dict):
        raise _bad("must be an object", "output_config")
    config = dict(config or {})
    if body.get("output_format") is not None and "format" not in config:
        config["format"] = body["output_format"]
    if not config:
        return
    if native:
        chat["output_config"] = config
        return
    if isinstance(config.get("effort"), str):
        chat["reasoning_effort"] = config["effort"]
    fmt = config.get("format")
    if fmt is not None:
        if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
            raise _bad("must be {type: json_schema, schema: {...}}", "output_config.format")
        chat["response_format"] = {"type": "json_schema", "json_schema": {"name": "output", "schema": fmt["schema"]}}


def _metadata(body: dict[str, Any], chat: dict[str, Any]) -> None:
    """Anthropic's `metadata.user_id` is the end user (chat `user`); any other key, and LiteLLM's
    `litellm_metadata`, is the gateway's request metadata (tags, spend_logs_metadata, ...)."""
    meta = body.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        raise _bad("must be an object", "metadata")
    extra = body.get("litellm_metadata")
    if extra is not None and not isinstance(extra, dict):
        raise _bad("must be an object", "litellm_metadata")
    meta = dict(meta or {})
    user = meta.pop("user_id", None)
    if user is not None and not isinstance(user, str):
        raise _bad("must be a string", "metadata.user_id")
    if user:
        chat["user"] = user
    if meta or extra:
        chat["metadata"] = {**meta, **(extra or {})}


def _cache_last(messages: list[dict[str, Any]], cache_control: Any) -> None:
    """Top-level `cache_control`: the marker on the last cacheable block, as Anthropic applies it
    (where the anthropic provider reads it: the last part, or the message for plain text and tool results)."""
    if not isinstance(cache_control, dict):
        raise _bad("must be an object such as {type: ephemeral}", "cache_control")
    last = messages[-1] if messages else None
    if last is None:
        return
    content = last.get("content")
    if isinstance(content, list) and content:
        content[-1] = {**content[-1], "cache_control": content[-1].get("cache_control", cache_control)}
    elif isinstance(content, str) and last["role"] == "user":
        last["content"] = [{"type": "text", "text": content, "cache_control": cache_control}]
    else:
        last.setdefault("cache_control", cache_control)


def to_chat(body: dict[str, Any], native: bool, need_max_tokens: bool = True) -> dict[str, Any]:
    """A Messages API request as an OpenAI chat request (BadRequestError naming the field)."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("a model name is required", "model")
    max_tokens = body.get("max_tokens")
    if max_tokens is None and need_max_tokens:
        raise _bad("Field required (the Messages API requires max_tokens)", "max_tokens")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise _bad("must be a positive integer", "max_tokens")
    chat = {k: v for k, v in body.items() if k not in TRANSLATED and (native or k not in CLAUDE_HINTS)}
    chat["model"] = model
    chat["messages"] = [*system_messages(body.get("system"), native), *chat_messages(body.get("messages"), native)]
    if max_tokens is not None:
        chat["max_tokens"] = max_tokens
    if native and body.get("cache_control") is not None:  # for other models: a caching hint, dropped
        _cache_last(chat["messages"], body["cache_control"])
    stops = body.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise _bad("must be a list of strings", "stop_sequences")
        if stops:
            chat["stop"] = stops
    if body.get("tools") is not None:
        tools = _tools(body["tools"], native, chat)
        if tools:
            chat["tools"] = tools
    if body.get("tool_choice") is not None:
        _tool_choice(body["tool_choice"], chat)
        if "tools" not in chat:  # nothing left to choose from (web search became an option)
            chat.pop("tool_choice")
            chat.pop("parallel_tool_calls", None)
    _thinking(body, native, chat)
    _output(body, native, chat)
    _metadata(body, chat)
    return chat


def estimate_tokens(chat: dict[str, Any]) -> int:
    """About four characters a token (the fake provider's estimate) over the text of a chat
    request's messages and the JSON of its tools, plus a flat amount per image."""
    chars = len(orjson.dumps(chat["tools"], default=str)) if chat.get("tools") else 0
    images = 0
    for message in chat.get("messages") or ():  # as the hooks left it: anything may be odd
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        for part in [content] if isinstance(content, str) else content if isinstance(content, list) else ():
            if isinstance(part, str):
                chars += len(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                chars += len(part["text"])
            elif isinstance(part, dict) and part.get("type") in ("image_url", "image", "file", "document"):
                images += 1
        for item in (*(message.get("tool_calls") or ()), *(message.get("thinking_blocks") or ())):
            if isinstance(item, dict):
                fn = item.get("function") if isinstance(item.get("function"), dict) else item
                chars += sum(len(fn[k]) for k in ("name", "arguments", "thinking") if isinstance(fn.get(k), str))
    return math.ceil(chars / 4) + images * IMAGE_TOKENS
