"""The native `gemini/` provider: Google AI Studio's Gemini API (generateContent) with an API key.

    POST {base}/v1beta/models/{model}:generateContent                   a chat completion
    POST {base}/v1beta/models/{model}:streamGenerateContent?alt=sse     a streamed one (SSE events)
    POST {base}/v1beta/models/{model}:batchEmbedContents                embeddings

The key goes in the `x-goog-api-key` header, never in the URL, so no log line or error shows it.

The translation between OpenAI's shapes and generateContent's is in plain functions that know no
URL and no credentials (`chat_request`, `chat_reply`, `GeminiStream`, `embed_request`,
`embed_reply`, `error_of`), so that a Vertex AI provider (same wire format, other URLs, OAuth)
can reuse them as they are. `docs/providers/gemini.md` lists what is translated.
"""

from __future__ import annotations

import mimetypes
import os
import re
import time
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import orjson

from gateway.errors import BadRequestError
from gateway.provider import Provider, ProviderError, UpstreamRequest

# -- OpenAI -> generateContent ------------------------------------------------------------------

FINISH = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter", "RECITATION": "content_filter",
          "LANGUAGE": "content_filter", "OTHER": "content_filter", "BLOCKLIST": "content_filter",
          "PROHIBITED_CONTENT": "content_filter", "SPII": "content_filter", "IMAGE_SAFETY": "content_filter",
          "MALFORMED_FUNCTION_CALL": "stop", "FINISH_REASON_UNSPECIFIED": "stop"}
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


def _new_id(prefix: str) -> str:
    return prefix + os.urandom(12).hex()


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


# -- generateContent -> OpenAI ------------------------------------------------------------------

def usage_of(meta: dict[str, Any]) -> dict[str, Any]:
    """Gemini's usageMetadata as OpenAI's usage: thoughts are completion tokens (reasoning_tokens),
    cached content is part of the prompt (cached_tokens), as Gemini bills them."""
    prompt = (meta.get("promptTokenCount") or 0) + (meta.get("toolUsePromptTokenCount") or 0)
    candidates = meta.get("candidatesTokenCount") or 0
    thoughts = meta.get("thoughtsTokenCount") or 0
    total = meta.get("totalTokenCount") or prompt + candidates + thoughts
    # Some Vertex versions counted thoughts inside candidatesTokenCount (as LiteLLM checks).
    completion = candidates if prompt + candidates == total else candidates + thoughts
    usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}
    if thoughts:
        usage["completion_tokens_details"] = {"reasoning_tokens": thoughts}
    if meta.get("cachedContentTokenCount"):
        usage["prompt_tokens_details"] = {"cached_tokens": meta["cachedContentTokenCount"]}
    return usage


def _tool_call(call: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    cid = _new_id("call_")
    if part.get("thoughtSignature"):
        cid += SIGNATURE + part["thoughtSignature"]
    return {"id": cid, "type": "function",
            "function": {"name": call.get("name", ""), "arguments": orjson.dumps(call.get("args") or {}).decode()}}


def _split_parts(parts: Any) -> tuple[str | None, str | None, list[dict[str, Any]]]:
    """Candidate parts as (text, reasoning text, tool calls)."""
    text: list[str] = []
    thoughts: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in parts or ():
        if "text" in part:
            (thoughts if part.get("thought") else text).append(part["text"])
        elif "functionCall" in part:
            calls.append(_tool_call(part["functionCall"], part))
    return ("".join(text) if text else None), ("".join(thoughts) if thoughts else None), calls


def chat_reply(data: dict[str, Any], model: str) -> dict[str, Any]:
    """A GenerateContentResponse as an OpenAI chat.completion."""
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    try:
        choices = []
        for idx, cand in enumerate(data.get("candidates") or ()):
            text, reasoning, calls = _split_parts((cand.get("content") or {}).get("parts"))
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if reasoning is not None:
                message["reasoning_content"] = reasoning
            if calls:
                message["tool_calls"] = calls
            finish = "tool_calls" if calls else FINISH.get(cand.get("finishReason"), "stop")
            choices.append({"index": cand.get("index", idx), "message": message, "finish_reason": finish})
        if not choices:  # the prompt itself was blocked (promptFeedback.blockReason)
            choices.append({"index": 0, "message": {"role": "assistant", "content": None},
                            "finish_reason": "content_filter"})
        reply: dict[str, Any] = {"id": "chatcmpl-" + (data.get("responseId") or os.urandom(12).hex()),
                                 "object": "chat.completion", "created": int(time.time()), "model": model,
                                 "choices": choices}
        if isinstance(data.get("usageMetadata"), dict):
            reply["usage"] = usage_of(data["usageMetadata"])
        return reply
    except AttributeError as exc:  # a part or candidate that is not an object
        raise ValueError(str(exc)) from None


SSE_FIELDS = (b":", b"event:", b"id:", b"retry:")


class GeminiStream:
    """Gemini's SSE stream (`data: {GenerateContentResponse}` events) as OpenAI chunks. Finish
    reasons and usage are held until the stream ends: then one finish chunk per candidate and a
    usage chunk (`choices: []`)."""

    __slots__ = ("model", "id", "created", "buffer", "raw", "started", "finish", "calls", "usage", "failed")

    def __init__(self, model: str) -> None:
        self.model = model
        self.id: str | None = None
        self.created = int(time.time())
        self.buffer = b""
        self.raw: list[bytes] = []  # lines outside SSE events (a JSON reply when alt=sse was lost)
        self.started: set[int] = set()
        self.finish: dict[int, str] = {}
        self.calls: dict[int, int] = {}  # candidate -> tool calls so far
        self.usage: dict[str, Any] | None = None
        self.failed = False

    def _chunk(self, idx: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [{"index": idx, "delta": delta, "finish_reason": finish}]}

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        buffer = self.buffer + data if self.buffer else data
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
        events = buffer.split(b"\n\n")
        self.buffer = events.pop()  # an event not yet complete
        out: list[dict[str, Any]] = []
        for event in events:
            if self.failed:
                break
            if event.startswith(b"data:") and b"\n" not in event:  # what Gemini sends: one data line
                self._event(event[5:], out)
                continue
            payload = []
            for line in event.split(b"\n"):
                if line.startswith(b"data:"):
                    payload.append(line[5:])
                elif line and not line.startswith(SSE_FIELDS):
                    self.raw.append(line)
            if payload:
                self._event(b"\n".join(payload), out)
        return out

    def _event(self, payload: bytes, out: list[dict[str, Any]]) -> None:
        try:
            resp = orjson.loads(payload)
            if isinstance(resp, list):
                for item in resp:
                    self._response(item, out)
            else:
                self._response(resp, out)
        except (ValueError, TypeError, AttributeError, KeyError):
            self._fail(out, "Gemini sent a stream event that could not be read")

    def _fail(self, out: list[dict[str, Any]], message: str, kind: str = "api_error") -> None:
        self.failed = True
        out.append({"error": {"message": message, "type": kind}})

    def _response(self, resp: dict[str, Any], out: list[dict[str, Any]]) -> None:
        if "error" in resp:
            err = error_of(0, resp)
            self._fail(out, err.message, err.type)
            return
        if self.id is None:
            self.id = "chatcmpl-" + (resp.get("responseId") or os.urandom(12).hex())
        if resp.get("usageMetadata"):
            self.usage = resp["usageMetadata"]
        candidates = resp.get("candidates")
        if not candidates:
            if (resp.get("promptFeedback") or {}).get("blockReason"):
                self.finish.setdefault(0, "SAFETY")  # the prompt itself was blocked
            return
        for pos, cand in enumerate(candidates):
            idx = cand.get("index", pos)
            content = cand.get("content")
            parts = content.get("parts") if content else None
            if parts:
                first = parts[0]
                if len(parts) == 1 and len(first) == 1 and "text" in first:  # the usual event: a piece of text
                    delta: dict[str, Any] = {"content": first["text"]}
                else:
                    delta = self._delta(idx, parts)
                if idx not in self.started:
                    self.started.add(idx)
                    delta["role"] = "assistant"
                if delta:
                    out.append({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                                "model": self.model,
                                "choices": [{"index": idx, "delta": delta, "finish_reason": None}]})
            if cand.get("finishReason"):
                self.finish[idx] = cand["finishReason"]

    def _delta(self, idx: int, parts: list[dict[str, Any]]) -> dict[str, Any]:
        delta: dict[str, Any] = {}
        text, reasoning, calls = _split_parts(parts)
        if text is not None:
            delta["content"] = text
        if reasoning is not None:
            delta["reasoning_content"] = reasoning
        if calls:
            first = self.calls.get(idx, 0)
            delta["tool_calls"] = [{"index": first + i, **call} for i, call in enumerate(calls)]
            self.calls[idx] = first + len(calls)
        return delta

    def end(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        tail = b"\n".join([*self.raw, self.buffer.strip()]).strip()
        if tail and not self.failed:
            if tail.startswith(b"data:"):
                self._event(tail[5:], out)
            else:
                self._event(tail, out)
        if self.failed:
            return out
        if not self.finish:
            self._fail(out, "Gemini closed the stream before it finished")
            return out
        if self.id is None:
            self.id = _new_id("chatcmpl-")
        for idx in sorted(self.finish):
            reason = self.finish[idx]
            finish = "tool_calls" if self.calls.get(idx) else FINISH.get(reason, "stop")
            out.append(self._chunk(idx, {"role": "assistant"} if idx not in self.started else {}, finish))
        if self.usage is not None:
            out.append({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                        "model": self.model, "choices": [], "usage": usage_of(self.usage)})
        return out


# -- embeddings ---------------------------------------------------------------------------------

def embed_request(body: dict[str, Any], resource: str) -> dict[str, Any]:
    """An OpenAI embeddings request as a BatchEmbedContentsRequest; `resource` is `models/<model>`."""
    inputs = body["input"]
    items = [inputs] if isinstance(inputs, str) else inputs
    if not items or not all(isinstance(t, str) for t in items):
        raise BadRequestError("GeminiException - input must be a string or a non-empty list of strings "
                              "(Gemini embeds text, not token arrays)", param="input")
    extra: dict[str, Any] = {}
    if body.get("dimensions") is not None:
        extra["outputDimensionality"] = body["dimensions"]
    task = body.get("task_type") or body.get("taskType")
    if task:
        extra["taskType"] = task
    return {"requests": [{"model": resource, "content": {"parts": [{"text": t}]}, **extra} for t in items]}


def embed_reply(data: dict[str, Any], model: str) -> dict[str, Any]:
    """A BatchEmbedContentsResponse (or EmbedContentResponse) as an OpenAI embedding list. Gemini
    reports tokens only in newer replies (usageMetadata); without them the gateway estimates."""
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    items = data["embeddings"] if "embeddings" in data else [data["embedding"]]
    reply: dict[str, Any] = {"object": "list", "model": model,
                             "data": [{"object": "embedding", "index": i, "embedding": e["values"]}
                                      for i, e in enumerate(items)]}
    meta = data.get("usageMetadata")
    if isinstance(meta, dict) and meta.get("promptTokenCount") is not None:
        reply["usage"] = {"prompt_tokens": meta["promptTokenCount"],
                          "total_tokens": meta.get("totalTokenCount") or meta["promptTokenCount"]}
    return reply


# -- errors -------------------------------------------------------------------------------------

ERROR_TYPES = {"INVALID_ARGUMENT": "invalid_request_error", "FAILED_PRECONDITION": "invalid_request_error",
               "OUT_OF_RANGE": "invalid_request_error", "UNAUTHENTICATED": "authentication_error",
               "PERMISSION_DENIED": "permission_error", "NOT_FOUND": "not_found_error",
               "RESOURCE_EXHAUSTED": "rate_limit_error", "DEADLINE_EXCEEDED": "timeout",
               "UNAVAILABLE": "service_unavailable", "INTERNAL": "api_error", "UNKNOWN": "api_error"}
STATUS_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 429: "rate_limit_error", 503: "service_unavailable", 504: "timeout"}


def error_of(status: int, data: Any) -> ProviderError:
    """Google's `{"error": {"code", "message", "status", "details"}}` (or anything else) as a ProviderError."""
    if isinstance(data, (bytes, str)):
        try:
            data = orjson.loads(data)
        except orjson.JSONDecodeError:
            text = " ".join((data.decode(errors="replace") if isinstance(data, bytes) else data).split())
            return ProviderError(f"HTTP {status}: {text[:200]}" if text else f"HTTP {status} with an empty body",
                                 STATUS_TYPES.get(status, "api_error"))
    if isinstance(data, list) and data:
        data = data[0]
    err = data.get("error") if isinstance(data, dict) else None
    if not isinstance(err, dict):
        return ProviderError(f"HTTP {status}: unrecognised error body", STATUS_TYPES.get(status, "api_error"))
    message = err.get("message") if isinstance(err.get("message"), str) and err.get("message") else f"HTTP {status}"
    kind = ERROR_TYPES.get(err.get("status")) or STATUS_TYPES.get(status or err.get("code"), "api_error")
    for detail in err.get("details") or ():
        if isinstance(detail, dict) and detail.get("reason") in ("API_KEY_INVALID", "API_KEY_EXPIRED"):
            kind = "authentication_error"  # Google answers a bad key with 400 INVALID_ARGUMENT
    return ProviderError(message, kind, extra={"status": err.get("status")} if err.get("status") else {})


# -- URLs ---------------------------------------------------------------------------------------

VERSION = re.compile(r"/v\d+(?:(?:alpha|beta)\d*)?$")
MODEL_PATH = re.compile(r"/(?:models|tunedModels)/([^/:]+)(?::[A-Za-z]+)?$")


def model_url(api_base: str, model: str) -> tuple[str, str | None]:
    """`{base}/.../models/{model}` (the methods are appended per call) from an api_base as users
    write it, and a key found in its query (moved to the header). Raises ValueError when the base
    names another model.

    - the host alone (Google's, a proxy's): `/v1beta` is added;
    - a base ending in a version (`/v1beta`, `/v1`) or in OpenAI-compatible `/v1beta/openai`;
    - a base that is already a models path (`.../models`, `.../models/<model>[:method]`), as older
      LiteLLM versions and Vertex express mode (`aiplatform.googleapis.com/v1/publishers/google/models`)
      are written;
    - any other path is a proxy's prefix that ends where Google's version ends (as LiteLLM reads it).
    """
    parts = urlsplit(api_base)
    query = parse_qsl(parts.query, keep_blank_values=True)
    key = next((v for k, v in query if k == "key"), None)
    query = [(k, v) for k, v in query if k not in ("key", "alt")]
    path = parts.path.rstrip("/")
    if path.endswith("/openai"):
        path = path[:-7]
    vertex = parts.hostname is not None and parts.hostname.endswith("aiplatform.googleapis.com")
    named = MODEL_PATH.search(path)
    if model.startswith("models/"):
        model = model[7:]
    if named:
        if named.group(1) != model:
            raise ValueError(f"api_base ends in a path for model {named.group(1)!r} but the deployment calls "
                             f"{model!r}: end api_base before /models/ (e.g. .../v1beta)")
        root = path[:named.start()]
    elif path.endswith("/models"):
        root = path[:-7]
    elif VERSION.search(path):
        root = path + "/publishers/google" if vertex else path
    elif path.endswith("/publishers/google"):
        root = path
    elif not path:
        root = "/v1/publishers/google" if vertex else "/v1beta"
    else:
        root = path
    suffix = model if model.startswith("tunedModels/") else "models/" + model
    url = urlunsplit((parts.scheme, parts.netloc, f"{root}/{quote(suffix)}", "", ""))
    return (url + ("?" + urlencode(query) if query else "")), key


# -- the provider -------------------------------------------------------------------------------

#: The request fields translated to generateContent / embedContent (and Gemini's own).
CHAT_PARAMS = frozenset({"temperature", "top_p", "top_k", "n", "seed", "presence_penalty", "frequency_penalty",
                         "logprobs", "top_logprobs", "max_tokens", "max_completion_tokens", "stop",
                         "response_format", "thinking", "reasoning_effort", "tools", "functions", "tool_choice",
                         "safety_settings", "safetySettings", "cached_content", "cachedContent"})
EMBED_PARAMS = frozenset({"dimensions", "task_type"})
SUPPORTED = {"acompletion": CHAT_PARAMS, "aembedding": EMBED_PARAMS}


class Gemini(Provider):
    name = "gemini"
    display_name = "Gemini"
    default_api_base = "https://generativelanguage.googleapis.com"
    api_key_env = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    api_base_env = ("GEMINI_API_BASE",)
    call_types = frozenset({"acompletion", "aembedding"})
    passthrough = False
    supported_params = SUPPORTED

    def __init__(self) -> None:
        self._urls: dict[int, tuple[Any, str, str]] = {}  # id(dep) -> (dep, model URL, query)

    def _url(self, dep: Any) -> tuple[str, str]:
        cached = self._urls.get(id(dep))
        if cached is None or cached[0] is not dep:
            self.check(dep)
            cached = self._urls[id(dep)]
        return cached[1], cached[2]

    def check(self, dep: Any) -> None:
        url, key = model_url(dep.api_base, dep.upstream_model)
        if key and not dep.api_key:
            dep.api_key = key  # `?key=` in api_base goes in the header instead, never in a URL
        base, _, query = url.partition("?")
        self._urls[id(dep)] = (dep, base, query)

    def headers(self, dep: Any) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if dep.api_key:
            headers["x-goog-api-key"] = dep.api_key
        if dep.basic_auth:
            headers["authorization"] = dep.basic_auth
        if dep.extra_headers:
            headers.update(dep.extra_headers)
        return headers

    def build_request(self, dep: Any, call_type: str, body: dict[str, Any], stream: bool) -> UpstreamRequest:
        url, query = self._url(dep)
        if call_type == "aembedding":
            model = dep.upstream_model[7:] if dep.upstream_model.startswith("models/") else dep.upstream_model
            payload = embed_request(body, model if model.startswith("tunedModels/") else "models/" + model)
            url += ":batchEmbedContents"
        else:
            payload = chat_request(body, dep.upstream_model)
            url += ":streamGenerateContent?alt=sse" if stream else ":generateContent"
        if query:
            url += ("&" if stream and call_type != "aembedding" else "?") + query
        return UpstreamRequest(url, self.headers(dep), orjson.dumps(payload))

    def parse_reply(self, dep: Any, call_type: str, data: bytes) -> dict[str, Any]:
        if call_type == "aembedding":
            return embed_reply(orjson.loads(data), dep.upstream_model)
        return chat_reply(orjson.loads(data), dep.upstream_model)

    def parse_error(self, dep: Any, status: int, data: bytes) -> ProviderError:
        return error_of(status, data)

    def stream(self, dep: Any, call_type: str) -> GeminiStream:
        return GeminiStream(dep.upstream_model)


def providers() -> list[Provider]:
    return [Gemini()]
