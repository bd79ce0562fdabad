"""A fake Gemini API (Google AI Studio) on loopback: a real HTTP server speaking generateContent.

    POST /{v1|v1beta|v1alpha}/models/{model}:generateContent          a GenerateContentResponse
    POST /{version}/models/{model}:streamGenerateContent?alt=sse      SSE, `data: {...}\\r\\n\\r\\n` events
         (without alt=sse: one JSON array of responses, as Google answers)
    POST /{version}/models/{model}:batchEmbedContents | :embedContent
    (also under /{version}/publishers/google/models/..., the shape of Vertex AI express mode)

It checks requests as the real API does, for what a translator can get wrong: the API key (the
`x-goog-api-key` header, or `?key=`: missing is 403 PERMISSION_DENIED, wrong is 400
INVALID_ARGUMENT with reason API_KEY_INVALID), unknown fields anywhere (`Invalid JSON payload
received. Unknown name "x" at 'generation_config': Cannot find field.`; snake_case and camelCase
both accepted, as proto JSON is), roles, one datum per part, base64 inline data, Gemini's Schema
subset in function declarations and responseSchema, an OBJECT schema without properties, function
responses that answer the previous turn's calls one for one, embedding requests naming the model of
the path. Errors are Google's `{"error": {"code", "message", "status", "details"}}`. Every request is
recorded. tests/test_provider_gemini.py checks this fake against the official `google-genai` SDK.

Script it for every reply (`api.default = Reply(...)`) or for the next ones in order
(`api.script(Reply(...), ...)`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.peers.served import ServedInThread

PATH = re.compile(r"^/(v1|v1beta|v1alpha)/(?:publishers/google/)?(models|tunedModels)/([^/:]+):([A-Za-z]+)$")
METHODS = frozenset({"generateContent", "streamGenerateContent", "batchEmbedContents", "embedContent"})

# The fields of each message the API knows (camelCase; snake_case is accepted too).
FIELDS: dict[str, frozenset[str]] = {
    "GenerateContentRequest": frozenset({"model", "contents", "tools", "toolConfig", "safetySettings",
                                         "systemInstruction", "generationConfig", "cachedContent"}),
    "Content": frozenset({"role", "parts"}),
    "Part": frozenset({"text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode",
                       "codeExecutionResult", "thought", "thoughtSignature", "videoMetadata", "partMetadata",
                       "mediaResolution"}),
    "Blob": frozenset({"mimeType", "data"}),
    "FileData": frozenset({"mimeType", "fileUri"}),
    "FunctionCall": frozenset({"id", "name", "args"}),
    "FunctionResponse": frozenset({"id", "name", "response", "willContinue", "scheduling", "parts"}),
    "GenerationConfig": frozenset({"stopSequences", "responseMimeType", "responseSchema", "responseJsonSchema",
                                   "responseModalities", "candidateCount", "maxOutputTokens", "temperature", "topP",
                                   "topK", "seed", "presencePenalty", "frequencyPenalty", "responseLogprobs",
                                   "logprobs", "enableEnhancedCivicAnswers", "speechConfig", "thinkingConfig",
                                   "imageConfig", "mediaResolution"}),
    "ThinkingConfig": frozenset({"includeThoughts", "thinkingBudget", "thinkingLevel"}),
    "Tool": frozenset({"functionDeclarations", "googleSearchRetrieval", "codeExecution", "googleSearch",
                       "urlContext", "computerUse", "fileSearch", "googleMaps"}),
    "FunctionDeclaration": frozenset({"name", "description", "parameters", "parametersJsonSchema", "response",
                                      "responseJsonSchema", "behavior"}),
    "ToolConfig": frozenset({"functionCallingConfig", "retrievalConfig"}),
    "FunctionCallingConfig": frozenset({"mode", "allowedFunctionNames"}),
    "Schema": frozenset({"type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems",
                         "properties", "required", "minProperties", "maxProperties", "minLength", "maxLength",
                         "pattern", "example", "anyOf", "propertyOrdering", "default", "items", "minimum",
                         "maximum"}),
    "SafetySetting": frozenset({"category", "threshold"}),
    "BatchEmbedContentsRequest": frozenset({"requests"}),
    "EmbedContentRequest": frozenset({"model", "content", "taskType", "title", "outputDimensionality"}),
}
DATA_FIELDS = frozenset({"text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode",
                         "codeExecutionResult"})
SCHEMA_TYPES = frozenset({"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL", "TYPE_UNSPECIFIED"})
MODES = frozenset({"AUTO", "ANY", "NONE", "VALIDATED", "MODE_UNSPECIFIED"})
STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


class Invalid(Exception):
    """A request the real API refuses with 400 INVALID_ARGUMENT; the message is Google's kind of message."""


@dataclass
class Reply:
    """What the fake answers to one request.

    - `text`: the reply text (default: `gemini says: <last user text>`); `parts`: the candidate's parts
      as they are (function calls, thought parts, ...), wins over `text`.
    - `finish`: the finishReason (default STOP). `candidates`: this many candidates (candidateCount).
    - `usage`: merged over the counted usageMetadata (promptTokenCount, candidatesTokenCount, ...).
    - `response`: this whole GenerateContentResponse as it is. `events`: these responses as the
      stream's SSE events, as they are.
    - `status` + `message` (+ `status_name`, `reason`): a Google error reply instead.
    - `raw`: this body as it is (with `status` and `content_type`), e.g. malformed JSON.
    - `stream_piece`: send the stream's bytes in pieces of this many bytes (a parser must not care).
    - `cut_stream`: end the stream before the event that carries the finishReason.
    - `stream_error`: after the first event, send this Google error as an SSE event.
    - `embed_usage`: report usageMetadata on embedding replies (newer API versions do).
    """

    text: str | None = None
    parts: list[dict[str, Any]] | None = None
    finish: str = "STOP"
    candidates: int | None = None
    usage: dict[str, Any] | None = None
    response: dict[str, Any] | None = None
    events: list[dict[str, Any]] | None = None
    status: int = 200
    message: str = "error"
    status_name: str | None = None
    reason: str | None = None
    raw: bytes | None = None
    content_type: str = "application/json"
    stream_piece: int | None = None
    cut_stream: bool = False
    stream_error: tuple[int, str] | None = None
    embed_usage: bool = False


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    body: bytes
    json: Any
    url: str = ""  # path and query, as received

    @property
    def model(self) -> str | None:
        m = PATH.match(self.path)
        return m.group(3) if m else None

    @property
    def method_name(self) -> str | None:
        m = PATH.match(self.path)
        return m.group(4) if m else None


@dataclass
class FakeGemini:
    """The fake API. `keys`: the accepted API keys (None: any non-empty key)."""

    keys: set[str] | None = None
    default: Reply = field(default_factory=Reply)
    requests: list[Recorded] = field(default_factory=list)
    queue: deque[Reply] = field(default_factory=deque)
    port: int = 0

    @property
    def url(self) -> str:
        """The API's root, as Google's is written (`https://generativelanguage.googleapis.com`)."""
        return f"http://127.0.0.1:{self.port}"

    def script(self, *replies: Reply) -> None:
        self.queue.extend(replies)

    @property
    def last(self) -> Recorded:
        return self.requests[-1]

    # -- serving --------------------------------------------------------------------------------
    def start(self) -> "FakeGemini":
        self._served = ServedInThread("fake-gemini", self._handle)
        self.port = self._served.start()
        return self

    def stop(self) -> None:
        self._served.stop()

    def __enter__(self) -> "FakeGemini":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            parsed = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            parsed = None
        self.requests.append(Recorded(request.method, request.path, dict(request.query),
                                      {k.lower(): v for k, v in request.headers.items()}, raw, parsed,
                                      str(request.rel_url)))
        m = PATH.match(request.path)
        if request.method != "POST" or not m or m.group(4) not in METHODS:
            return error(404, f"Requested entity was not found: {request.method} {request.path}", "NOT_FOUND")
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if not key:
            return error(403, "Method doesn't allow unregistered callers (callers without established identity). "
                              "Please use API Key or other form of API consumer identity to call this API.",
                         "PERMISSION_DENIED")
        if self.keys is not None and key not in self.keys:
            return error(400, "API key not valid. Please pass a valid API key.", "INVALID_ARGUMENT",
                         reason="API_KEY_INVALID")
        if not isinstance(parsed, dict):
            return error(400, "Invalid JSON payload received. Expected an object.")
        method, model = m.group(4), m.group(3)
        try:
            if method in ("batchEmbedContents", "embedContent"):
                check_embed(parsed, method, f"{m.group(2)}/{model}")
            else:
                check_generate(parsed)
        except Invalid as exc:
            return error(400, str(exc))
        reply = self.queue.popleft() if self.queue else self.default
        if reply.raw is not None:
            return web.Response(body=reply.raw, status=reply.status, content_type=reply.content_type)
        if reply.status >= 400:
            return error(reply.status, reply.message, reply.status_name, reason=reply.reason)
        if method == "batchEmbedContents":
            return json_reply(embed_batch(parsed, reply))
        if method == "embedContent":
            return json_reply(embed_one(parsed, reply))
        if method == "streamGenerateContent":
            return await self._stream(request, parsed, reply, model)
        return json_reply(reply.response if reply.response is not None else build_response(parsed, reply, model))

    async def _stream(self, request: web.Request, body: dict[str, Any], reply: Reply, model: str) -> web.StreamResponse:
        events = reply.events if reply.events is not None else stream_responses(body, reply, model)
        if reply.cut_stream:
            events = [e for e in events if not any(c.get("finishReason") for c in e.get("candidates") or ())]
        sse = request.query.get("alt") == "sse"
        resp = web.StreamResponse(headers={"content-type": "text/event-stream" if sse else "application/json"})
        await resp.prepare(request)
        if sse:
            chunks = [b"data: " + orjson.dumps(e) + b"\r\n\r\n" for e in events]
            if reply.stream_error is not None:
                status, message = reply.stream_error
                err = {"error": {"code": status, "message": message, "status": STATUS_NAMES.get(status, "INTERNAL")}}
                chunks = [*chunks[:1], b"data: " + orjson.dumps(err) + b"\r\n\r\n"]
            data = b"".join(chunks)
        else:  # Google's answer without alt=sse: one JSON array, written as the responses come
            data = b"[" + b"\n,\r\n".join(orjson.dumps(e, option=orjson.OPT_INDENT_2) for e in events) + b"]"
        step = reply.stream_piece or len(data) or 1
        for i in range(0, len(data), step):
            await resp.write(data[i:i + step])
        await resp.write_eof()
        return resp


def json_reply(body: dict[str, Any]) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def error(status: int, message: str, status_name: str | None = None, reason: str | None = None) -> web.Response:
    err: dict[str, Any] = {"code": status, "message": message,
                           "status": status_name or STATUS_NAMES.get(status, "UNKNOWN")}
    if reason:
        err["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
                           "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}}]
    return web.Response(body=orjson.dumps({"error": err}), status=status, content_type="application/json")


# -- what the real API checks ---------------------------------------------------------------------
def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def _snake(name: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def _fields(obj: Any, message: str, where: str) -> dict[str, Any]:
    """`obj` with camelCase keys, or Invalid naming the first unknown field as Google does."""
    if not isinstance(obj, dict):
        raise Invalid(f"Invalid value at '{where}' ({message}), expected an object")
    out = {}
    for name, value in obj.items():
        camel = _camel(name)
        if camel not in FIELDS[message]:
            at = f" at '{where}'" if where else ""
            raise Invalid(f'Invalid JSON payload received. Unknown name "{name}"{at}: Cannot find field.')
        out[camel] = value
    return out


def check_schema(schema: Any, where: str) -> None:
    s = _fields(schema, "Schema", where)
    kind = s.get("type")
    if kind is not None and (not isinstance(kind, str) or kind.upper() not in SCHEMA_TYPES):
        raise Invalid(f"Invalid value at '{where}.type' (type.googleapis.com/google.ai.generativelanguage.v1beta.Type)"
                      f", {orjson.dumps(kind).decode()}")
    if isinstance(kind, str) and kind.upper() == "OBJECT" and "properties" in s and not s["properties"]:
        raise Invalid(f"* GenerateContentRequest.{where}.properties: should be non-empty for OBJECT type")
    for name, prop in (s.get("properties") or {}).items():
        check_schema(prop, f"{where}.properties[{name}].value")
    if "items" in s:
        check_schema(s["items"], f"{where}.items")
    for i, variant in enumerate(s.get("anyOf") or ()):
        check_schema(variant, f"{where}.any_of[{i}]")


def _check_part(part: Any, where: str) -> dict[str, Any]:
    p = _fields(part, "Part", where)
    data = [k for k in p if k in DATA_FIELDS]
    if len(data) != 1:
        raise Invalid(f"Invalid value at '{where}' (oneof field 'data' is {'already set' if data else 'not set'}): "
                      "a part holds exactly one of text, inlineData, fileData, functionCall, functionResponse")
    if "inlineData" in p:
        blob = _fields(p["inlineData"], "Blob", f"{where}.inline_data")
        if not blob.get("mimeType"):
            raise Invalid(f"* GenerateContentRequest.{where}.inline_data.mime_type: a mime type is required")
        try:
            base64.b64decode(blob.get("data") or "", validate=True)
        except (binascii.Error, ValueError):
            raise Invalid(f"Invalid value at '{where}.inline_data.data' (TYPE_BYTES), Base64 decoding failed") from None
    if "fileData" in p:
        ref = _fields(p["fileData"], "FileData", f"{where}.file_data")
        if not ref.get("fileUri"):
            raise Invalid(f"* GenerateContentRequest.{where}.file_data.file_uri: a file uri is required")
    if "functionCall" in p:
        call = _fields(p["functionCall"], "FunctionCall", f"{where}.function_call")
        if not call.get("name"):
            raise Invalid(f"* GenerateContentRequest.{where}.function_call.name: Name cannot be empty.")
        if "args" in call and not isinstance(call["args"], dict):
            raise Invalid(f"Invalid value at '{where}.function_call.args' (type.googleapis.com/google.protobuf.Struct)")
    if "functionResponse" in p:
        res = _fields(p["functionResponse"], "FunctionResponse", f"{where}.function_response")
        if not res.get("name"):
            raise Invalid(f"* GenerateContentRequest.{where}.function_response.name: Name cannot be empty.")
        if not isinstance(res.get("response"), dict):
            raise Invalid(f"Invalid value at '{where}.function_response.response' "
                          "(type.googleapis.com/google.protobuf.Struct)")
    return p


def check_generate(body: dict[str, Any]) -> None:
    """Raise Invalid as the real API would answer 400 (the checks a translator can trip)."""
    b = _fields(body, "GenerateContentRequest", "")
    contents = b.get("contents")
    if not isinstance(contents, list) or not contents:
        raise Invalid("* GenerateContentRequest.contents: contents is not specified")
    calls_before = 0
    for i, content in enumerate(contents):
        c = _fields(content, "Content", f"contents[{i}]")
        role = c.get("role", "user")
        if role not in ("user", "model", "function"):
            raise Invalid(f"Please use a valid role: user, model. (contents[{i}].role = {role!r})")
        parts = c.get("parts")
        if not isinstance(parts, list) or not parts:
            raise Invalid(f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.")
        checked = [_check_part(p, f"contents[{i}].parts[{j}]") for j, p in enumerate(parts)]
        responses = sum(1 for p in checked if "functionResponse" in p)
        if responses and responses != calls_before:
            raise Invalid("Please ensure that the number of function response parts is equal to the number of "
                          "function call parts of the function call turn.")
        calls_before = sum(1 for p in checked if "functionCall" in p) if role == "model" else 0
    if "systemInstruction" in b:
        system = _fields(b["systemInstruction"], "Content", "system_instruction")
        for j, p in enumerate(system.get("parts") or ()):
            if "text" not in _check_part(p, f"system_instruction.parts[{j}]"):
                raise Invalid("system_instruction: only text parts are supported")
    names = set()
    for i, tool in enumerate(b.get("tools") or ()):
        t = _fields(tool, "Tool", f"tools[{i}]")
        for j, decl in enumerate(t.get("functionDeclarations") or ()):
            d = _fields(decl, "FunctionDeclaration", f"tools[{i}].function_declarations[{j}]")
            if not re.match(r"^[a-zA-Z_][a-zA-Z0-9_.:-]{0,63}$", str(d.get("name", ""))):
                raise Invalid(f"* GenerateContentRequest.tools[{i}].function_declarations[{j}].name: "
                              "Invalid function name.")
            names.add(d["name"])
            if "parameters" in d:
                check_schema(d["parameters"], f"tools[{i}].function_declarations[{j}].parameters")
    if "toolConfig" in b:
        tc = _fields(b["toolConfig"], "ToolConfig", "tool_config")
        if "functionCallingConfig" in tc:
            fc = _fields(tc["functionCallingConfig"], "FunctionCallingConfig", "tool_config.function_calling_config")
            if fc.get("mode", "AUTO") not in MODES:
                raise Invalid(f"Invalid value at 'tool_config.function_calling_config.mode', {fc.get('mode')!r}")
            for name in fc.get("allowedFunctionNames") or ():
                if name not in names:
                    raise Invalid(f"* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names"
                                  f": function {name!r} is not declared")
    for i, setting in enumerate(b.get("safetySettings") or ()):
        _fields(setting, "SafetySetting", f"safety_settings[{i}]")
    if "generationConfig" in b:
        g = _fields(b["generationConfig"], "GenerationConfig", "generation_config")
        if "thinkingConfig" in g:
            tc = _fields(g["thinkingConfig"], "ThinkingConfig", "generation_config.thinking_config")
            if "thinkingBudget" in tc and "thinkingLevel" in tc:
                raise Invalid("thinking_budget and thinking_level are not supported together.")
        if "responseSchema" in g:
            if g.get("responseMimeType") not in ("application/json", "text/x.enum"):
                raise Invalid("* GenerateContentRequest.generation_config.response_mime_type: allowed mimetypes are "
                              "`application/json` and `text/x.enum` when response_schema is set.")
            check_schema(g["responseSchema"], "generation_config.response_schema")
        if "stopSequences" in g and not isinstance(g["stopSequences"], list):
            raise Invalid("Invalid value at 'generation_config.stop_sequences', expected a list")


def check_embed(body: dict[str, Any], method: str, resource: str) -> None:
    if method == "embedContent":
        items = [body]
    else:
        b = _fields(body, "BatchEmbedContentsRequest", "")
        items = b.get("requests")
        if not isinstance(items, list) or not items:
            raise Invalid("* BatchEmbedContentsRequest.requests: requests is not specified")
        if len(items) > 100:
            raise Invalid("* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch")
    for i, item in enumerate(items):
        where = f"requests[{i}]" if method == "batchEmbedContents" else ""
        r = _fields(item, "EmbedContentRequest", where)
        if method == "batchEmbedContents" and r.get("model") != resource:
            raise Invalid(f"* BatchEmbedContentsRequest.model: unexpected model name format; requests[{i}].model "
                          f"{r.get('model')!r} must be {resource!r}")
        content = _fields(r.get("content"), "Content", f"{where}.content")
        if not content.get("parts"):
            raise Invalid(f"* {where}.content.parts: must not be empty")
        for j, p in enumerate(content["parts"]):
            _check_part(p, f"{where}.content.parts[{j}]")


# -- replies --------------------------------------------------------------------------------------
def _words(text: str) -> int:
    return len(text.split())


def _text_of(body: dict[str, Any]) -> tuple[str, int]:
    """The last user text, and all text words (the counted prompt tokens)."""
    last, words = "", 0
    contents = [*(body.get("contents") or ()), *([body["systemInstruction"]] if body.get("systemInstruction") else [])]
    for content in contents:
        for part in content.get("parts") or ():
            if isinstance(part.get("text"), str):
                words += _words(part["text"])
                if content.get("role", "user") == "user" and content is not body.get("systemInstruction"):
                    last = part["text"]
    return last, max(words, 1)


def _parts(body: dict[str, Any], reply: Reply) -> list[dict[str, Any]]:
    if reply.parts is not None:
        return reply.parts
    return [{"text": reply.text if reply.text is not None else f"gemini says: {_text_of(body)[0]}"}]


def _usage(body: dict[str, Any], parts: list[dict[str, Any]], reply: Reply, count: int = 1) -> dict[str, Any]:
    prompt = _text_of(body)[1]
    out_words = sum(_words(p.get("text", "")) for p in parts if not p.get("thought")) * count or 1
    usage = {"promptTokenCount": prompt, "candidatesTokenCount": out_words, **(reply.usage or {})}
    usage.setdefault("totalTokenCount", usage["promptTokenCount"] + usage["candidatesTokenCount"]
                     + usage.get("thoughtsTokenCount", 0) + usage.get("toolUsePromptTokenCount", 0))
    usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": usage["promptTokenCount"]}]
    return usage


def _response_id(body: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(body) + str(id(body)).encode()).hexdigest()[:22]


def build_response(body: dict[str, Any], reply: Reply, model: str) -> dict[str, Any]:
    parts = _parts(body, reply)
    count = reply.candidates or int((body.get("generationConfig") or {}).get("candidateCount") or 1)
    candidates = [{"content": {"parts": parts, "role": "model"}, "finishReason": reply.finish, "index": i,
                   "safetyRatings": [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"}]}
                  for i in range(count)]
    return {"candidates": candidates, "usageMetadata": _usage(body, parts, reply, count),
            "modelVersion": model, "responseId": _response_id(body)}


def _pieces(text: str) -> list[str]:
    words = text.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


def stream_responses(body: dict[str, Any], reply: Reply, model: str) -> list[dict[str, Any]]:
    """The stream's events as Google sends them: text in pieces, function calls whole, usage on
    every event (the prompt's from the first, the totals on the last, with the finishReason)."""
    parts = _parts(body, reply)
    rid = _response_id(body)
    pieces: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part.get("text"), str) and not part.get("thought"):
            pieces.extend({"text": t} for t in _pieces(part["text"]))
        else:
            pieces.append(part)
    usage = _usage(body, parts, reply)
    events = []
    for i, piece in enumerate(pieces):
        cand: dict[str, Any] = {"content": {"parts": [piece], "role": "model"}, "index": 0}
        last = i == len(pieces) - 1
        if last:
            cand["finishReason"] = reply.finish
        meta = usage if last else {"promptTokenCount": usage["promptTokenCount"],
                                   "totalTokenCount": usage["promptTokenCount"]}
        events.append({"candidates": [cand], "usageMetadata": meta, "modelVersion": model, "responseId": rid})
    return events


def _vector(text: str, dims: int) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round(digest[i % 32] / 255, 6) for i in range(dims)]


def _embedding(item: dict[str, Any]) -> list[float]:
    text = " ".join(p.get("text", "") for p in (item.get("content") or {}).get("parts") or ())
    dims = item.get("outputDimensionality") or item.get("output_dimensionality") or 8
    return _vector(text, int(dims))


def _embed_usage(items: list[dict[str, Any]]) -> dict[str, Any]:
    words = sum(_words(p.get("text", "")) for i in items for p in (i.get("content") or {}).get("parts") or ())
    return {"promptTokenCount": words, "totalTokenCount": words}


def embed_batch(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    out: dict[str, Any] = {"embeddings": [{"values": _embedding(r)} for r in body["requests"]]}
    if reply.embed_usage:
        out["usageMetadata"] = _embed_usage(body["requests"])
    return out


def embed_one(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    out: dict[str, Any] = {"embedding": {"values": _embedding(body)}}
    if reply.embed_usage:
        out["usageMetadata"] = _embed_usage([body])
    return out
