"""An OpenAI chat body as a Messages API body (the `anthropic/` provider's request side): tools,
tool choice, thinking and effort by model generation, JSON output, web search, max_tokens and the
native parameters passed through. The messages themselves are anthropic_content.py's.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from gateway.core.providers.anthropic_content import PREFIX, translate_messages
from gateway.errors import BadRequestError

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
#: Messages API parameters with no OpenAI equivalent, sent as the client (or `extra_body`) gave them.
NATIVE_PARAMS = ("top_k", "container", "mcp_servers", "context_management", "inference_geo", "speed")
HOSTED_TOOLS = ("web_search", "bash", "text_editor", "code_execution", "computer_", "web_fetch", "memory")
# Anthropic refuses e-mail addresses and phone numbers as metadata.user_id (LiteLLM's _valid_user_id).
NOT_A_USER_ID = re.compile(r"^[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\.[a-zA-Z]{2,}$|^\+?[\d\s()-]{7,}$")


def _bad(message: str, param: str | None = None) -> BadRequestError:
    return BadRequestError(PREFIX + message, param=param)


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
    """An OpenAI chat body as a Messages API body (anthropic.py's docstring says how)."""
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
