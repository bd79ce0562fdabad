"""OpenAI chat requests as Gemini's GenerateContentRequest: messages as `contents`, tools as
functionDeclarations, JSON schemas cleaned to Gemini's Schema subset, sampling and thinking as
`generationConfig`. Plain functions with no URL and no credentials, so that the `gemini/` and
`vertex_ai/` providers (same wire format, other URLs and auth) share them.
"""

from __future__ import annotations

import mimetypes
from typing import Any
from urllib.parse import urlsplit

import orjson

from gateway.errors import BadRequestError

TOOL_CHOICE = {"auto": "AUTO", "none": "NONE", "required": "ANY", "any": "ANY"}
# reasoning_effort -> thinkingConfig, as LiteLLM maps it (its DEFAULT_REASONING_EFFORT_*_THINKING_BUDGET).
EFFORT_BUDGET = {"low": 1024, "medium": 2048, "high": 4096}
EFFORT_LEVEL = {"minimal": "low", "low": "low", "medium": "high", "high": "high"}  # Gemini 3 and later
#: Gemini's Schema (an OpenAPI subset): any other JSON-Schema key is refused with a 400, so it is dropped.
SCHEMA_KEYS = frozenset({"type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems",
                         "properties", "required", "minProperties", "maxProperties", "minLength", "maxLength",
                         "pattern", "example", "anyOf", "propertyOrdering", "default", "items", "minimum",
                         "maximum"})
STRING_FORMATS = frozenset({"enum", "date-time"})
#: A Gemini thought signature rides in the tool call id, as LiteLLM carries it: `call_<id>__thought__<sig>`.
SIGNATURE = "__thought__"
NATIVE_TOOLS = {"googleSearch": "googleSearch", "google_search": "googleSearch", "codeExecution": "codeExecution",
                "code_execution": "codeExecution", "urlContext": "urlContext", "url_context": "urlContext",
                "googleSearchRetrieval": "googleSearchRetrieval",
                "google_search_retrieval": "googleSearchRetrieval"}
AUDIO_MIME = {"wav": "audio/wav", "mp3": "audio/mp3", "flac": "audio/flac", "ogg": "audio/ogg", "aac": "audio/aac"}


def _data_url(url: str, where: str) -> dict[str, Any]:
    head, sep, data = url.partition(",")
    if not sep or not head.endswith(";base64"):
        raise BadRequestError(f"GeminiException - {where}: a data: URL must be base64 (data:<mime>;base64,...)")
    return {"inlineData": {"mimeType": head[5:-7] or "application/octet-stream", "data": data}}


def _file_uri(uri: str, mime: str | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"fileUri": uri}
    mime = mime or mimetypes.guess_type(urlsplit(uri).path)[0]
    if mime:
        ref["mimeType"] = mime
    return {"fileData": ref}


def _parts(content: Any, where: str) -> list[dict[str, Any]]:
    """OpenAI message content (a string or a list of parts) as Gemini parts."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise BadRequestError(f"GeminiException - {where}.content must be a string or a list of parts")
    parts: list[dict[str, Any]] = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if part.get("text"):
                parts.append({"text": part["text"]})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str):
                raise BadRequestError(f"GeminiException - {where}.content[{i}].image_url needs a url")
            parts.append(_data_url(url, f"{where}.content[{i}]") if url.startswith("data:") else _file_uri(url))
        elif kind == "input_audio":
            audio = part.get("input_audio") or {}
            parts.append({"inlineData": {"mimeType": AUDIO_MIME.get(audio.get("format"), "audio/wav"),
                                         "data": audio.get("data", "")}})
        elif kind == "file":
            file = part.get("file") or {}
            if isinstance(file.get("file_data"), str):
                parts.append(_data_url(file["file_data"], f"{where}.content[{i}]"))
            elif isinstance(file.get("file_id"), str):
                parts.append(_file_uri(file["file_id"], file.get("format")))
        elif kind != "refusal":
            raise BadRequestError(f"GeminiException - {where}.content[{i}]: part type {kind!r} is not supported")
    return parts


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return "" if content is None else str(content)


def _args(arguments: Any, where: str) -> Any:
    if isinstance(arguments, dict):
        return arguments
    if not arguments:
        return {}
    try:
        return orjson.loads(arguments)
    except (orjson.JSONDecodeError, TypeError):
        raise BadRequestError(f"GeminiException - {where}.function.arguments is not JSON") from None


def contents_of(messages: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """OpenAI `messages` as Gemini's `systemInstruction` and `contents`. Consecutive messages of one
    role become one turn (Gemini wants every result of a turn's function calls in one turn)."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool call id -> function name, for the results
    last = None  # "user", "model" or "tool": the kind of the last turn, merged into when repeated
    for i, m in enumerate(messages):
        role, where = m.get("role"), f"messages[{i}]"
        if role in ("system", "developer"):
            system.extend(_parts(m.get("content"), where))
            continue
        if role == "user":
            kind, parts = "user", _parts(m.get("content"), where)
        elif role == "assistant":
            kind, parts = "model", _parts(m.get("content"), where)
            for j, call in enumerate(m.get("tool_calls") or ()):
                fn = call.get("function") or {}
                cid = call.get("id") or ""
                names[cid] = fn.get("name", "")
                args = _args(fn.get("arguments"), f"{where}.tool_calls[{j}]")
                part: dict[str, Any] = {"functionCall": {"name": fn.get("name", ""), "args": args}}
                if SIGNATURE in cid:
                    part["thoughtSignature"] = cid.split(SIGNATURE, 1)[1]
                parts.append(part)
            if m.get("function_call"):  # the legacy single call
                fn = m["function_call"]
                parts.append({"functionCall": {"name": fn.get("name", ""), "args": _args(fn.get("arguments"), where)}})
        elif role in ("tool", "function"):
            name = names.get(m.get("tool_call_id") or "") or m.get("name")
            if not name:
                raise BadRequestError(f"GeminiException - {where}: a tool result must follow the assistant tool "
                                      "call it answers (its tool_call_id names no earlier call)", param=where)
            result = {"name": name, "response": {"content": _text(m.get("content"))}}
            kind, parts = "tool", [{"functionResponse": result}]
        else:
            raise BadRequestError(f"GeminiException - {where}: role {role!r} is not supported", param=where)
        if not parts:
            continue
        if kind == last:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": "model" if kind == "model" else "user", "parts": parts})
            last = kind
    return ({"parts": system} if system else None), contents


def clean_schema(schema: Any, defs: dict[str, Any] | None = None, depth: int = 0) -> Any:
    """A JSON Schema as Gemini's Schema: `$ref`s inlined, `type: [x, "null"]` as nullable, unknown keys dropped."""
    if not isinstance(schema, dict):
        return schema
    if depth > 32:
        raise BadRequestError("GeminiException - a schema nests deeper than 32 levels (a recursive $ref?); "
                              "Gemini's schemas cannot recurse")
    if defs is None:
        defs = {**(schema.get("definitions") or {}), **(schema.get("$defs") or {})}
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = defs.get(ref.rsplit("/", 1)[-1])
        if not isinstance(target, dict):
            raise BadRequestError(f"GeminiException - schema $ref {ref!r} names no definition")
        return clean_schema({**target, **{k: v for k, v in schema.items() if k != "$ref"}}, defs, depth + 1)
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, list):
            types = [t for t in value if t != "null"]
            if len(types) < len(value):
                out["nullable"] = True
            if len(types) == 1:
                out["type"] = types[0]
            elif types:
                out["anyOf"] = [{"type": t} for t in types]
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: clean_schema(p, defs, depth + 1) for name, p in value.items()}
        elif key == "items":
            out[key] = clean_schema(value, defs, depth + 1)
        elif key in ("anyOf", "oneOf") and isinstance(value, list):
            variants = [clean_schema(v, defs, depth + 1) for v in value
                        if not (isinstance(v, dict) and v.get("type") == "null")]
            if len(variants) < len(value):
                out["nullable"] = True
            if len(variants) == 1 and isinstance(variants[0], dict):
                out.update(variants[0])
            elif variants:
                out["anyOf"] = variants
        elif key == "const":
            out["enum"] = [value]
        elif key == "format":
            if schema.get("type") != "string" or value in STRING_FORMATS:
                out[key] = value
        elif key in SCHEMA_KEYS:
            out[key] = value
    return out


def _declaration(tool: dict[str, Any], where: str) -> dict[str, Any]:
    fn = tool.get("function") if tool.get("type", "function") == "function" else None
    if not isinstance(fn, dict) or not fn.get("name"):
        raise BadRequestError(f"GeminiException - {where}: only function tools are supported, each with a name")
    decl: dict[str, Any] = {"name": fn["name"]}
    if fn.get("description"):
        decl["description"] = fn["description"]
    params = clean_schema(fn.get("parameters")) if isinstance(fn.get("parameters"), dict) else None
    if params and (params.get("properties") or str(params.get("type", "object")).lower() != "object"):
        decl["parameters"] = params  # Gemini refuses an OBJECT without properties: a call with no arguments
    return decl


def tools_of(tools: list[Any]) -> list[dict[str, Any]]:
    """OpenAI function tools as one Tool of functionDeclarations; Google's own tools written the
    way LiteLLM accepts them (`{"googleSearch": {}}`, `{"code_execution": {}}`) each as a Tool."""
    declarations: list[dict[str, Any]] = []
    native: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        if isinstance(tool, dict) and len(tool) == 1 and next(iter(tool)) in NATIVE_TOOLS:
            name, value = next(iter(tool.items()))
            native.append({NATIVE_TOOLS[name]: value or {}})
        elif isinstance(tool, dict):
            declarations.append(_declaration(tool, f"tools[{i}]"))
        else:
            raise BadRequestError(f"GeminiException - tools[{i}] must be an object", param=f"tools[{i}]")
    return ([{"functionDeclarations": declarations}] if declarations else []) + native


def thinking_config(body: dict[str, Any], model: str) -> dict[str, Any] | None:
    """`reasoning_effort` or `thinking` (Anthropic's shape) as Gemini's thinkingConfig, as LiteLLM maps them."""
    effort, thinking = body.get("reasoning_effort"), body.get("thinking")
    if isinstance(effort, str):
        if effort in ("none", "disable"):
            return {"thinkingLevel": "low", "includeThoughts": False} if "gemini-3" in model else \
                {"thinkingBudget": 0, "includeThoughts": False}
        if "gemini-3" in model and effort in EFFORT_LEVEL:
            return {"thinkingLevel": EFFORT_LEVEL[effort], "includeThoughts": True}
        if effort == "minimal":
            budget = 512 if "2.5-flash-lite" in model else 1 if "2.5-flash" in model else 128
            return {"thinkingBudget": budget, "includeThoughts": True}
        if effort in EFFORT_BUDGET:
            return {"thinkingBudget": EFFORT_BUDGET[effort], "includeThoughts": True}
        raise BadRequestError(f"GeminiException - reasoning_effort {effort!r} is not one of none, minimal, low, "
                              "medium, high", param="reasoning_effort")
    if isinstance(thinking, dict):
        budget = thinking.get("budget_tokens")
        config: dict[str, Any] = {}
        if thinking.get("type") == "enabled" and budget != 0:
            config["includeThoughts"] = True
        if isinstance(budget, int) and not isinstance(budget, bool):
            config["thinkingBudget"] = budget
        return config or None
    return None


def generation_config(body: dict[str, Any], model: str) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for src, dst in (("temperature", "temperature"), ("top_p", "topP"), ("top_k", "topK"), ("n", "candidateCount"),
                     ("seed", "seed"), ("presence_penalty", "presencePenalty"),
                     ("frequency_penalty", "frequencyPenalty"), ("logprobs", "responseLogprobs"),
                     ("top_logprobs", "logprobs")):
        if body.get(src) is not None:
            config[dst] = body[src]
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens is not None:
        config["maxOutputTokens"] = max_tokens
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    fmt = body.get("response_format")
    if isinstance(fmt, dict):
        if fmt.get("type") == "json_object":
            config["responseMimeType"] = "application/json"
        elif fmt.get("type") == "json_schema":
            config["responseMimeType"] = "application/json"
            schema = (fmt.get("json_schema") or {}).get("schema")
            if isinstance(schema, dict):
                config["responseSchema"] = clean_schema(schema)
    thinking = thinking_config(body, model)
    if thinking:
        config["thinkingConfig"] = thinking
    return config


def chat_request(body: dict[str, Any], model: str) -> dict[str, Any]:
    """An OpenAI chat completion request as a GenerateContentRequest (no URL, no credentials)."""
    system, contents = contents_of(body["messages"])
    if not contents:
        raise BadRequestError("GeminiException - messages need at least one user or assistant message "
                              "(Gemini refuses a request of system messages only)", param="messages")
    out: dict[str, Any] = {"contents": contents}
    if system:
        out["systemInstruction"] = system
    tools = body.get("tools") or [{"type": "function", "function": f} for f in body.get("functions") or ()]
    if tools:
        out["tools"] = tools_of(tools)
    choice = body.get("tool_choice")
    if isinstance(choice, str) and choice in TOOL_CHOICE:
        out["toolConfig"] = {"functionCallingConfig": {"mode": TOOL_CHOICE[choice]}}
    elif isinstance(choice, dict) and (choice.get("function") or {}).get("name"):
        out["toolConfig"] = {"functionCallingConfig": {"mode": "ANY",
                                                       "allowedFunctionNames": [choice["function"]["name"]]}}
    config = generation_config(body, model)
    if config:
        out["generationConfig"] = config
    for src, dst in (("safety_settings", "safetySettings"), ("safetySettings", "safetySettings"),
                     ("cached_content", "cachedContent"), ("cachedContent", "cachedContent")):
        if body.get(src) is not None:
            out[dst] = body[src]
    return out
