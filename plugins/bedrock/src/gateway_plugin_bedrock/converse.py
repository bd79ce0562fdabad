"""OpenAI chat <-> Bedrock Converse / ConverseStream, as LiteLLM's Converse config translates them.

Requests (`translate_request`):
- `system` / `developer` messages -> top-level `system` text blocks;
- user content: text, images (`data:` URLs -> `image.source.bytes`, base64 in the JSON; `s3://` URLs ->
  `s3Location`), files (`file.file_data` data URLs -> `document` blocks);
- assistant `tool_calls` -> `toolUse` blocks, `thinking_blocks` -> `reasoningContent` blocks (first);
- `tool` messages -> `toolResult` blocks in a user turn; consecutive turns of one role are merged;
- `cache_control` on a message, part or tool -> a `cachePoint` block after it;
- `tools` -> `toolConfig.tools[].toolSpec` (`inputSchema.json`); `tool_choice` auto / required / a
  function -> `toolChoice` auto / any / tool; `none` -> no tools offered (unless the history holds
  tool blocks, which Bedrock only accepts with a `toolConfig`: then no `toolChoice`);
- `max_tokens` / `max_completion_tokens`, `temperature`, `top_p`, `stop` -> `inferenceConfig`;
- `reasoning_effort` / `thinking` -> `additionalModelRequestFields.thinking` for Anthropic models
  (`reasoningConfig` for Amazon Nova), `top_k` -> `additionalModelRequestFields` likewise;
- a JSON `response_format` -> one forced tool (`json_tool_call`) whose input is the reply's text;
- Converse's own fields given in the body (e.g. through `extra_body`) or the deployment's
  `litellm_params` pass as they are: `additionalModelRequestFields`, `guardrailConfig`,
  `performanceConfig`, `requestMetadata`, `promptVariables`, `additionalModelResponseFieldPaths`,
  `outputConfig`, `serviceTier`.

Replies become `chat.completion`s; the usage counts cache reads and writes in `prompt_tokens`
(`prompt_tokens_details.cached_tokens` = the reads), as LiteLLM counts them. Streams become
`chat.completion.chunk`s, then a finish chunk and a usage chunk (`choices: []`).
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

import orjson

from gateway import BadRequestError

from gateway_plugin_bedrock.eventstream import EventStreamDecoder, EventStreamError

PREFIX = "BedrockException - "
JSON_TOOL = "json_tool_call"  # LiteLLM's RESPONSE_FORMAT_TOOL_NAME
DEFAULT_MAX_TOKENS = 4096  # added to a thinking budget when the request names no max_tokens (LiteLLM)
THINKING_BUDGETS = {"minimal": 1024, "low": 1024, "medium": 2048, "high": 4096}  # LiteLLM's
FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
          "guardrail_intervened": "content_filter", "content_filtered": "content_filter",
          "model_context_window_exceeded": "length", "malformed_model_output": "stop",
          "malformed_tool_use": "stop"}
IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/gif": "gif",
                 "image/webp": "webp"}
DOCUMENT_FORMATS = {
    "application/pdf": "pdf", "text/csv": "csv", "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.ms-excel": "xls", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "text/html": "html", "text/plain": "txt", "text/markdown": "md",
}
#: Converse request fields with no OpenAI equivalent: passed as given (body first, then litellm_params).
NATIVE_FIELDS = ("guardrailConfig", "performanceConfig", "requestMetadata", "promptVariables",
                 "additionalModelResponseFieldPaths", "outputConfig")
NATIVE_KEYS = frozenset(NATIVE_FIELDS)
#: The chat request fields translated to Converse (and its own): the gateway refuses others with a
#: 400 naming them, or drops them with `drop_params`.
CHAT_PARAMS = frozenset({"max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "stop", "tools",
                         "tool_choice", "response_format", "reasoning_effort", "thinking", "service_tier",
                         "anthropic_beta", "n", "additionalModelRequestFields", *NATIVE_FIELDS})
SERVICE_TIERS = frozenset({"default", "flex", "priority", "reserved"})
#: Region prefixes of cross-region inference profiles (`us.anthropic.claude-...`).
PROFILE_PREFIXES = ("us.", "eu.", "apac.", "jp.", "au.", "ca.", "us-gov.", "global.")
_DOC_NAME = re.compile(r"[^A-Za-z0-9()\[\] -]+")
CACHE_POINT = {"cachePoint": {"type": "default"}}


def _bad(message: str, param: str | None = "messages") -> BadRequestError:
    return BadRequestError(PREFIX + message, param=param)


def family_of(model_id: str) -> str:
    """The model's vendor as Bedrock names it (`anthropic`, `meta`, `mistral`, `amazon`, ...)."""
    model = model_id.lower()
    if model.startswith("arn:"):
        for vendor in ("anthropic", "amazon.nova", "meta", "mistral", "cohere", "deepseek", "openai"):
            if vendor in model:
                return vendor.split(".")[0]
        return ""
    for prefix in PROFILE_PREFIXES:
        if model.startswith(prefix):
            model = model[len(prefix):]
            break
    return model.split(".", 1)[0]


# -- requests ----------------------------------------------------------------------------------
def _data_url(url: str, where: str) -> tuple[str, str]:
    """`data:<media type>;base64,<data>` -> (media type, base64 data)."""
    head, sep, data = url[5:].partition(",")
    if not sep or not head.endswith(";base64"):
        raise _bad(f"{where}: a data URL must be base64 (data:<media type>;base64,<data>)")
    if not data:
        raise _bad(f"{where}: the data URL carries no data")
    return head[:-7].lower(), data


def _image(part: dict[str, Any], where: str) -> dict[str, Any]:
    ref = part.get("image_url")
    url, fmt = (ref, None) if isinstance(ref, str) else (
        (ref.get("url"), ref.get("format")) if isinstance(ref, dict) else (None, None))
    if not isinstance(url, str) or not url:
        raise _bad(f"{where}.image_url.url must be a string")
    if url.startswith("data:"):
        media, data = _data_url(url, where)
        image_format = IMAGE_FORMATS.get(fmt or media)
        if image_format is None:
            raise _bad(f"{where}: image type {fmt or media!r} is not supported by Bedrock; use png, jpeg, gif or webp")
        return {"image": {"format": image_format, "source": {"bytes": data}}}
    if url.startswith("s3://"):
        ext = (fmt or url.rsplit(".", 1)[-1]).lower().rpartition("/")[2]
        image_format = IMAGE_FORMATS.get(ext) or ("jpeg" if ext == "jpg" else ext)
        if image_format not in ("png", "jpeg", "gif", "webp"):
            raise _bad(f"{where}: cannot tell the image format of {url!r}; set image_url.format (e.g. image/png)")
        return {"image": {"format": image_format, "source": {"s3Location": {"uri": url}}}}
    if url.startswith(("http://", "https://")):
        raise _bad(f"{where}: Bedrock takes images inline or from S3, and the gateway fetches no URLs; send the "
                   "image as a data: URL (data:image/png;base64,...) or an s3:// URL")
    raise _bad(f"{where}: an image URL must be a data: or s3:// URL")


def _document(part: dict[str, Any], where: str, names: set[str]) -> dict[str, Any]:
    file = part.get("file") if isinstance(part.get("file"), dict) else {}
    data_url = file.get("file_data")
    if not isinstance(data_url, str) or not data_url.startswith("data:"):
        raise _bad(f"{where}.file needs file_data as a data: URL (Bedrock cannot read file_id)")
    media, data = _data_url(data_url, where)
    media = (file.get("format") or media).lower()
    if media in IMAGE_FORMATS:
        return {"image": {"format": IMAGE_FORMATS[media], "source": {"bytes": data}}}
    doc_format = DOCUMENT_FORMATS.get(media)
    if doc_format is None:
        raise _bad(f"{where}: file type {media!r} is not supported by Bedrock; use one of "
                   f"{', '.join(sorted(set(DOCUMENT_FORMATS.values())))}")
    # Bedrock: names of letters, digits, single spaces, hyphens, parentheses and brackets; unique.
    base = " ".join(_DOC_NAME.sub(" ", str(file.get("filename") or "").rsplit(".", 1)[0]).split())[:180]
    name, n = base or f"document {len(names) + 1}", 1
    while name in names:
        n += 1
        name = f"{base or 'document'} {n}"
    names.add(name)
    return {"document": {"format": doc_format, "name": name, "source": {"bytes": data}}}


def _user_blocks(content: Any, where: str, names: set[str]) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}] if content.strip() else []
    if content is None:
        return []
    if not isinstance(content, list):
        raise _bad(f"{where}.content must be a string or a list of parts")
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        at = f"{where}.content.{j}"
        if isinstance(part, str):
            part = {"type": "text", "text": part}
        if not isinstance(part, dict):
            raise _bad(f"{at}: content parts must be objects")
        kind = part.get("type")
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise _bad(f"{at}.text must be a string")
            if not text.strip():
                continue  # Bedrock refuses blank text blocks
            blocks.append({"text": text})
        elif kind == "image_url":
            blocks.append(_image(part, at))
        elif kind == "file":
            blocks.append(_document(part, at, names))
        else:
            raise _bad(f"{at}: content type {kind!r} is not supported by Bedrock (text, image_url and file are)")
        if part.get("cache_control"):
            blocks.append(CACHE_POINT)
    return blocks


def _arguments(value: Any, where: str) -> Any:
    if isinstance(value, str):
        if not value.strip():
            return {}
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise _bad(f"{where}.function.arguments is not valid JSON") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _bad(f"{where}.function.arguments must be a JSON object")
    return value


def _assistant_blocks(msg: dict[str, Any], where: str) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for block in msg.get("thinking_blocks") or ():  # first, or Anthropic refuses the turn
        if not isinstance(block, dict):
            continue
        if block.get("type") == "thinking" and isinstance(block.get("thinking"), str):
            text: dict[str, Any] = {"text": block["thinking"]}
            if block.get("signature"):
                text["signature"] = block["signature"]
            blocks.append({"reasoningContent": {"reasoningText": text}})
        elif block.get("type") == "redacted_thinking" and block.get("data"):
            blocks.append({"reasoningContent": {"redactedContent": block["data"]}})
    content = msg.get("content")
    if isinstance(content, str):
        if content.strip():
            blocks.append({"text": content})
            if msg.get("cache_control"):
                blocks.append(CACHE_POINT)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                if part["text"].strip():
                    blocks.append({"text": part["text"]})
                    if part.get("cache_control"):
                        blocks.append(CACHE_POINT)
    for k, call in enumerate(msg.get("tool_calls") or ()):
        at = f"{where}.tool_calls.{k}"
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise _bad(f"{at}.function.name is required")
        call_id = call.get("id")
        if not isinstance(call_id, str) or not call_id:
            raise _bad(f"{at}.id is required")
        blocks.append({"toolUse": {"toolUseId": call_id, "name": fn["name"],
                                   "input": _arguments(fn.get("arguments"), at)}})
    return blocks


def _tool_result(msg: dict[str, Any], where: str, names: set[str]) -> dict[str, Any]:
    call_id = msg.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise _bad(f"{where}.tool_call_id is required for a tool message")
    content = msg.get("content")
    if isinstance(content, list):
        parts = [b for b in _user_blocks(content, where, names) if "cachePoint" not in b]
    elif isinstance(content, str):
        parts = [{"text": content}] if content.strip() else []
    elif content is None:
        parts = []
    else:
        parts = [{"json": content}]
    # Bedrock requires content and refuses blank text: an empty result is said in words.
    return {"toolResult": {"toolUseId": call_id, "content": parts or [{"text": "(empty result)"}]}}


def _system_blocks(msg: dict[str, Any], where: str) -> list[dict[str, Any]]:
    content = msg.get("content")
    if isinstance(content, str):
        if not content.strip():
            return []
        return [{"text": content}, CACHE_POINT] if msg.get("cache_control") else [{"text": content}]
    if not isinstance(content, list):
        raise _bad(f"{where}.content must be a string or a list of text parts")
    out: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
            if part["text"].strip():
                out.append({"text": part["text"]})
                if part.get("cache_control"):
                    out.append(CACHE_POINT)
    return out


def translate_messages(messages: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]], set[str]]:
    """OpenAI messages -> (Converse `system`, `messages`, tool names used in the history)."""
    if not isinstance(messages, list) or not messages:
        raise _bad("messages must be a non-empty list")
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    used_tools: set[str] = set()
    names: set[str] = set()  # document names, unique per request
    for i, msg in enumerate(messages):
        where = f"messages.{i}"
        if not isinstance(msg, dict):
            raise _bad(f"{where} must be an object")
        role = msg.get("role")
        if role == "user":
            blocks = _user_blocks(msg.get("content"), where, names)
            if msg.get("cache_control") and blocks and isinstance(msg.get("content"), str):
                blocks.append(CACHE_POINT)
            turn = "user"
        elif role == "assistant":
            blocks = _assistant_blocks(msg, where)
            used_tools.update(b["toolUse"]["name"] for b in blocks if "toolUse" in b)
            turn = "assistant"
        elif role in ("tool", "function"):
            if role == "function":
                raise _bad(f"{where}: role 'function' is not supported; use 'tool' with tool_call_id")
            blocks, turn = [_tool_result(msg, where, names)], "user"
        elif role in ("system", "developer"):
            system.extend(_system_blocks(msg, where))
            continue
        else:
            raise _bad(f"{where}.role {role!r} is not supported (use system, user, assistant or tool)")
        if not blocks:
            continue
        if out and out[-1]["role"] == turn:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": turn, "content": blocks})
    if out and out[-1]["role"] == "assistant":  # a prefill may not end in whitespace
        for block in out[-1]["content"]:
            if "text" in block:
                block["text"] = block["text"].rstrip()
    if not out:
        raise _bad("messages hold no user or assistant content (Bedrock needs at least one user message)")
    return system, out, used_tools


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
    """An OpenAI chat body as a Converse body (see the module docstring). `family`: `family_of`."""
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


# -- replies -----------------------------------------------------------------------------------
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
