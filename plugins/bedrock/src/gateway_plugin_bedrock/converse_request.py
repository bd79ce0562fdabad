"""An OpenAI chat body as a Converse body (the request side): tools and tool choice, inference
settings, thinking per model family, JSON output as a forced tool, and Converse's own fields passed
through. The messages are converse_content.py's; converse.py's docstring lists the whole translation.
"""

from __future__ import annotations

from typing import Any

from gateway import BadRequestError

from gateway_plugin_bedrock.converse_content import CACHE_POINT, PREFIX, translate_messages

JSON_TOOL = "json_tool_call"  # LiteLLM's RESPONSE_FORMAT_TOOL_NAME
DEFAULT_MAX_TOKENS = 4096  # added to a thinking budget when the request names no max_tokens (LiteLLM)
THINKING_BUDGETS = {"minimal": 1024, "low": 1024, "medium": 2048, "high": 4096}  # LiteLLM's
#: Converse request fields with no OpenAI equivalent: passed as given (body first, then litellm_params).
NATIVE_FIELDS = ("guardrailConfig", "performanceConfig", "requestMetadata", "promptVariables",
                 "additionalModelResponseFieldPaths", "outputConfig")
NATIVE_KEYS = frozenset(NATIVE_FIELDS)
SERVICE_TIERS = frozenset({"default", "flex", "priority", "reserved"})


def _bad(message: str, param: str | None = "messages") -> BadRequestError:
    return BadRequestError(PREFIX + message, param=param)


def _tool_specs(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise _bad("tools must be a list", "tools")
    out: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise _bad(f"tools.{i} must be an object", "tools")
        if "toolSpec" in tool or "cachePoint" in tool or "systemTool" in tool:
            out.append(tool)  # already Converse-shaped
            continue
        fn = tool.get("function")
        if tool.get("type", "function") != "function" or not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise _bad(f"tools.{i}: only function tools are supported (type 'function' with function.name)", "tools")
        schema = fn.get("parameters")
        schema = {"type": "object", **schema} if isinstance(schema, dict) else {"type": "object", "properties": {}}
        spec: dict[str, Any] = {"name": fn["name"], "inputSchema": {"json": schema}}
        if fn.get("description"):
            spec["description"] = fn["description"]
        if fn.get("strict") is True:
            spec["strict"] = True
        out.append({"toolSpec": spec})
        if tool.get("cache_control") or fn.get("cache_control"):
            out.append(CACHE_POINT)
    return out


def _tool_choice(choice: Any) -> dict[str, Any] | None | str:
    """OpenAI's tool_choice as Converse's; the string "none" means: offer no tools."""
    if choice is None or choice == "auto":
        return {"auto": {}} if choice == "auto" else None
    if choice == "required" or choice == "any":
        return {"any": {}}
    if choice == "none":
        return "none"
    if isinstance(choice, dict):
        fn = choice.get("function")
        name = fn.get("name") if isinstance(fn, dict) else choice.get("name")
        if isinstance(name, str) and name:
            return {"tool": {"name": name}}
        if set(choice) <= {"auto", "any", "tool"} and choice:
            return choice  # already Converse-shaped
    raise _bad("tool_choice must be 'auto', 'required', 'none' or {'type': 'function', 'function': {'name': ...}}",
               "tool_choice")


def _thinking(body: dict[str, Any], family: str) -> tuple[str, Any] | None:
    """(additionalModelRequestFields key, value) for the request's reasoning settings."""
    thinking = body.get("thinking")
    effort = body.get("reasoning_effort")
    if family == "anthropic":
        if isinstance(thinking, dict):
            return "thinking", thinking
        if effort is None or effort == "none":
            return None
        if effort not in THINKING_BUDGETS:
            raise _bad(f"reasoning_effort {effort!r} is not supported; use one of: none, "
                       f"{', '.join(THINKING_BUDGETS)}", "reasoning_effort")
        return "thinking", {"type": "enabled", "budget_tokens": THINKING_BUDGETS[effort]}
    if family == "amazon" and isinstance(effort, str) and effort != "none":
        level = "low" if effort == "minimal" else effort
        return "reasoningConfig", {"type": "enabled", "maxReasoningEffort": level}
    return None


def translate_request(body: dict[str, Any], family: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """An OpenAI chat body as a Converse body (converse.py's docstring lists how). `family`: converse.py's `family_of`."""
    system, messages, used_tools = translate_messages(body.get("messages"))
    out: dict[str, Any] = {"messages": messages}
    if system:
        out["system"] = system
    n = body.get("n")
    if n not in (None, 1):
        raise _bad("Bedrock returns one choice per call: n must be 1", "n")
    additional: dict[str, Any] = {}
    thinking = _thinking(body, family)
    thinking_on = False
    if thinking is not None:
        additional[thinking[0]] = thinking[1]
        thinking_on = thinking[0] == "thinking" and isinstance(thinking[1], dict) and thinking[1].get("type") == "enabled"
    inference: dict[str, Any] = {}
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens is None and thinking_on:
        budget = thinking[1].get("budget_tokens")  # type: ignore[index]
        if isinstance(budget, int):
            max_tokens = budget + DEFAULT_MAX_TOKENS  # maxTokens must exceed the budget
    if max_tokens is not None:
        inference["maxTokens"] = max_tokens
    if body.get("temperature") is not None:
        inference["temperature"] = body["temperature"]
    if body.get("top_p") is not None:
        inference["topP"] = body["top_p"]
    stop = body.get("stop")
    if stop is not None:
        stops = [s for s in ([stop] if isinstance(stop, str) else stop) if isinstance(s, str) and s]
        if stops:
            inference["stopSequences"] = stops
    if inference:
        out["inferenceConfig"] = inference
    top_k = body.get("top_k")
    if top_k is not None:
        if family == "anthropic":
            additional["top_k"] = top_k
        elif family == "amazon":
            additional["inferenceConfig"] = {"topK": top_k}

    tools = _tool_specs(body["tools"]) if body.get("tools") else []
    choice = _tool_choice(body.get("tool_choice"))
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
        spec = fmt.get("json_schema") if isinstance(fmt.get("json_schema"), dict) else {}
        schema = spec.get("schema") or fmt.get("response_schema")
        input_schema = {"type": "object", **schema} if isinstance(schema, dict) else {
            "type": "object", "additionalProperties": True, "properties": {}}
        tool_spec: dict[str, Any] = {"name": JSON_TOOL, "inputSchema": {"json": input_schema}}
        if spec.get("description"):
            tool_spec["description"] = spec["description"]
        tools.append({"toolSpec": tool_spec})
        # Forcing a tool is refused with thinking on, and by models without toolChoice.tool support.
        if not thinking_on and family in ("anthropic", "mistral", "amazon"):
            choice = {"tool": {"name": JSON_TOOL}}
    if choice == "none":
        choice = None
        if not used_tools:
            tools = []
    if not tools and used_tools:
        # Bedrock refuses toolUse/toolResult blocks without a toolConfig: declare the tools the
        # history used (LiteLLM adds a dummy tool instead).
        tools = [{"toolSpec": {"name": name, "inputSchema": {"json": {"type": "object", "properties": {}}}}}
                 for name in sorted(used_tools)]
    if tools:
        config: dict[str, Any] = {"tools": tools}
        if isinstance(choice, dict):
            config["toolChoice"] = choice
        out["toolConfig"] = config

    params = params or {}
    if NATIVE_KEYS.intersection(body) or NATIVE_KEYS.intersection(params):
        for name in NATIVE_FIELDS:
            value = body.get(name, params.get(name))
            if value is not None:
                out[name] = value
    tier = body.get("serviceTier", params.get("serviceTier"))
    if tier is None and body.get("service_tier") in SERVICE_TIERS:
        tier = {"type": body["service_tier"]}
    if tier is not None:
        out["serviceTier"] = tier
    if body.get("anthropic_beta") and family == "anthropic":
        additional["anthropic_beta"] = body["anthropic_beta"]
    extra = body.get("additionalModelRequestFields", params.get("additionalModelRequestFields"))
    if isinstance(extra, dict):
        additional.update(extra)
    if additional:
        out["additionalModelRequestFields"] = additional
    return out
