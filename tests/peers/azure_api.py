"""A fake Azure on loopback: Azure OpenAI, Azure AI Foundry model inference and Entra ID's token
endpoint, as a real HTTP server speaking their wire formats.

    POST /openai/deployments/{deployment}/chat/completions|embeddings?api-version=YYYY-MM-DD[-preview]
    POST /openai/v1/chat/completions|embeddings[?api-version=preview|latest]     (model in the body)
    POST /openai/responses?api-version=...   and   /openai/v1/responses        (Responses API, + SSE)
    POST /models/chat/completions|embeddings, /chat/completions, /v1/chat/completions, /embeddings
                                                                                 (azure_ai endpoints)
    POST /{tenant}/oauth2/v2.0/token                    (client credentials: form-encoded, Entra's errors)

It checks what the real services check: the credential (`api-key` in `keys`, or `Authorization:
Bearer` with a token it issued and that has not expired, or one of `static_tokens`), api-version on
the dated API, the Responses API's request shape (known fields, item and part types, function tools'
`strict` schemas, tool outputs answering earlier calls, max_output_tokens >= 16). Every request is
recorded. tests/test_provider_azure.py checks it against the official `openai` SDK's `AzureOpenAI`.

Script the next replies with `api.script(Reply(...))` (else `api.default`): text, tool calls,
reasoning, usage, an error (status + code + message, as Azure words them), a raw body, an in-stream
failure. `api.token_error = (status, error, description)` makes the token endpoint refuse.
"""

from __future__ import annotations

import re
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson
from aiohttp import web

from tests.peers.served import ServedInThread

ROUTE = re.compile(r"^(/openai/deployments/([^/]+)|/openai/v1|/openai|/models|/v1|)/(chat/completions|embeddings|responses)$")
DATED = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")
RESPONSES_PARAMS = frozenset({
    "model", "input", "instructions", "max_output_tokens", "max_tool_calls", "metadata", "parallel_tool_calls",
    "previous_response_id", "reasoning", "store", "stream", "stream_options", "temperature", "text", "tool_choice",
    "tools", "top_logprobs", "top_p", "truncation", "user", "include", "service_tier", "prompt_cache_key",
    "safety_identifier", "background", "conversation", "prompt"})
INPUT_PARTS = frozenset({"input_text", "input_image", "input_file"})
OUTPUT_PARTS = frozenset({"output_text", "refusal"})
EFFORTS = frozenset({"none", "minimal", "low", "medium", "high", "xhigh"})
UNAUTHORIZED = ("Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
                "valid key for an active subscription and use a correct regional API endpoint for your resource.")


class Invalid(Exception):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass
class Reply:
    """One scripted answer. `calls`: [(name, arguments JSON)] as function calls / tool_calls;
    `reasoning`: a reasoning summary (Responses); `usage`: merged over counted defaults;
    `status` + `code` + `message`: an Azure error instead; `raw`: this body as is;
    `incomplete`: a Responses `incomplete_details.reason`; `fail`: (code, message) of a
    `response.failed` event after the first text delta."""

    text: str | None = None
    calls: list[tuple[str, str]] = field(default_factory=list)
    reasoning: str | None = None
    usage: dict[str, Any] | None = None
    status: int = 200
    code: str | None = None
    message: str = "error"
    raw: bytes | None = None
    content_type: str = "application/json"
    incomplete: str | None = None
    fail: tuple[str, str] | None = None


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    body: bytes
    json: Any
    form: dict[str, str]


@dataclass
class FakeAzure:
    keys: set[str] = field(default_factory=set)
    static_tokens: set[str] = field(default_factory=set)
    apps: dict[tuple[str, str], str] = field(default_factory=dict)  # (tenant, client id) -> secret
    token_ttl: float = 3600.0
    token_error: tuple[int, str, str] | None = None
    default: Reply = field(default_factory=Reply)
    queue: deque[Reply] = field(default_factory=deque)
    requests: list[Recorded] = field(default_factory=list)
    token_requests: list[Recorded] = field(default_factory=list)
    tokens: dict[str, float] = field(default_factory=dict)  # issued token -> expiry (time.time)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def last(self) -> Recorded:
        return self.requests[-1]

    def script(self, *replies: Reply) -> None:
        self.queue.extend(replies)

    def start(self) -> "FakeAzure":
        self._served = ServedInThread("fake-azure", self._handle, max_body=32 * 1024 * 1024)
        self.port = self._served.start()
        return self

    def stop(self) -> None:
        self._served.stop()

    def __enter__(self) -> "FakeAzure":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- serving --------------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            parsed = orjson.loads(raw) if raw and "json" in request.content_type else None
        except orjson.JSONDecodeError:
            parsed = None
        form = dict(parse_qsl(raw.decode(errors="replace"))) if "form" in request.content_type else {}
        rec = Recorded(request.method, request.path, dict(request.query),
                       {k.lower(): v for k, v in request.headers.items()}, raw, parsed, form)
        path = request.path
        token_path = re.match(r"^/([^/]+)/oauth2/v2\.0/token$", path)
        if token_path:
            self.token_requests.append(rec)
            return self._token(token_path.group(1), form)
        self.requests.append(rec)
        if request.method != "POST":
            return error(404, "404", f"Resource not found: {request.method} {path}")
        if not self._authorized(rec.headers):
            return error(401, "401", UNAUTHORIZED)
        route = ROUTE.match(path)
        if not route or (route.group(3) == "responses") != (route.group(1) in ("/openai", "/openai/v1")):
            return error(404, "404", "Resource not found")
        prefix, dated, op = route.groups()
        version = rec.query.get("api-version")
        if dated or prefix == "/openai":
            if not version:
                return error(404, "404", "Resource not found")  # Azure's answer without api-version
            if not DATED.match(version):
                return error(400, "BadRequest", f"API version not supported: {version}")
        elif prefix == "/openai/v1" and version not in (None, "preview", "latest"):
            return error(400, "BadRequest", f"API version not supported: {version}")
        if not isinstance(parsed, dict):
            return error(400, "BadRequest", "The request body is not valid JSON")
        op = "chat" if op == "chat/completions" else op
        model = dated or parsed.get("model")
        reply = self.queue.popleft() if self.queue else self.default
        if reply.raw is not None:
            return web.Response(body=reply.raw, status=reply.status, content_type=reply.content_type)
        if reply.status >= 400:
            return error(reply.status, reply.code or str(reply.status), reply.message)
        try:
            if op == "responses":
                check_responses(parsed)
                resp = build_response(parsed, reply)
                if parsed.get("stream"):
                    return await self._sse(request, response_events(resp, reply.fail))
                return json_reply(resp)
            if op == "embeddings":
                return json_reply(embeddings(parsed, model))
            if not isinstance(parsed.get("messages"), list) or not parsed["messages"]:
                raise Invalid("'messages' is a required property", "messages")
            chat = build_chat(parsed, reply, model)
            if parsed.get("stream"):
                usage = (parsed.get("stream_options") or {}).get("include_usage")
                return await self._sse(request, [(None, c) for c in chat_chunks(chat, usage)] + [(None, None)])
            return json_reply(chat)
        except Invalid as exc:
            return web.Response(body=orjson.dumps({"error": {"message": str(exc), "type": "invalid_request_error",
                                                             "param": exc.param, "code": None}}),
                                status=400, content_type="application/json")

    def _authorized(self, headers: dict[str, str]) -> bool:
        if "api-key" in headers:
            return headers["api-key"] in self.keys
        bearer = headers.get("authorization", "")
        if not bearer.startswith("Bearer "):
            return False
        token = bearer[7:]
        return token in self.keys or token in self.static_tokens or self.tokens.get(token, 0) > time.time()

    def _token(self, tenant: str, form: dict[str, str]) -> web.Response:
        def refuse(status: int, code: str, description: str) -> web.Response:
            return web.Response(body=orjson.dumps({
                "error": code, "error_description": f"{description}\r\nTrace ID: {uuid.uuid4()}\r\nTimestamp: now",
                "error_codes": [int(description[6:13]) if description.startswith("AADSTS") else 0],
                "trace_id": str(uuid.uuid4())}), status=status, content_type="application/json")

        if self.token_error is not None:
            return refuse(*self.token_error)
        if form.get("grant_type") != "client_credentials":
            return refuse(400, "unsupported_grant_type", "AADSTS70003: The app requested an unsupported grant type.")
        if form.get("scope") != "https://cognitiveservices.azure.com/.default":
            return refuse(400, "invalid_scope", "AADSTS70011: The provided value for the input parameter 'scope' "
                                                "is not valid.")
        secret = self.apps.get((tenant, form.get("client_id", "")))
        if secret is None:
            return refuse(400, "unauthorized_client", f"AADSTS700016: Application with identifier "
                                                      f"'{form.get('client_id')}' was not found in the directory.")
        if form.get("client_secret") != secret:
            return refuse(401, "invalid_client", "AADSTS7000215: Invalid client secret provided. Ensure the "
                                                 "secret being sent in the request is the client secret value.")
        token = "eyJ0eXAiOiJKV1Qi." + uuid.uuid4().hex
        self.tokens[token] = time.time() + self.token_ttl
        return web.Response(body=orjson.dumps({"token_type": "Bearer", "expires_in": int(self.token_ttl),
                                               "ext_expires_in": int(self.token_ttl), "access_token": token}),
                            content_type="application/json")

    async def _sse(self, request: web.Request, events: list[tuple[str | None, Any]]) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream; charset=utf-8"})
        await resp.prepare(request)
        for name, data in events:
            head = f"event: {name}\n".encode() if name else b""
            await resp.write(head + b"data: " + (orjson.dumps(data) if data is not None else b"[DONE]") + b"\n\n")
        await resp.write_eof()
        return resp


def error(status: int, code: str, message: str) -> web.Response:
    return web.Response(body=orjson.dumps({"error": {"code": code, "message": message}}), status=status,
                        content_type="application/json")


def json_reply(body: dict[str, Any]) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json",
                        headers={"apim-request-id": str(uuid.uuid4())})


def _words(text: str) -> int:
    return max(1, len(text.split()))


# -- chat completions and embeddings ---------------------------------------------------------------
def _chat_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return " ".join(p.get("text", "") for p in content or () if isinstance(p, dict))


def build_chat(body: dict[str, Any], reply: Reply, model: str | None) -> dict[str, Any]:
    last = next((m for m in reversed(body["messages"]) if m.get("role") == "user"), {})
    text = reply.text if reply.text is not None else f"azure says: {_chat_text(last.get('content'))}"
    message: dict[str, Any] = {"role": "assistant", "content": None if reply.calls else text}
    if reply.calls:
        message["tool_calls"] = [{"id": f"call_{i}", "type": "function", "function": {"name": n, "arguments": a}}
                                 for i, (n, a) in enumerate(reply.calls)]
    prompt = _words(" ".join(_chat_text(m.get("content")) for m in body["messages"]))
    usage = {"prompt_tokens": prompt, "completion_tokens": _words(text), "total_tokens": prompt + _words(text)}
    usage.update(reply.usage or {})
    return {"id": "chatcmpl-fakeazure", "object": "chat.completion", "created": int(time.time()),
            "model": model or "gpt-4o", "choices": [{"index": 0, "message": message, "logprobs": None,
                                                     "finish_reason": "tool_calls" if reply.calls else "stop"}],
            "usage": usage}


def chat_chunks(chat: dict[str, Any], include_usage: bool) -> list[dict[str, Any]]:
    head = {k: chat[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}
    message = chat["choices"][0]["message"]
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
    text = message.get("content") or ""
    deltas += [{"content": text[i:i + 6]} for i in range(0, len(text), 6)]
    for i, call in enumerate(message.get("tool_calls") or ()):
        deltas.append({"tool_calls": [{"index": i, **call}]})
    chunks = [{**head, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
    chunks.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": chat["choices"][0]["finish_reason"]}]})
    if include_usage:
        chunks.append({**head, "choices": [], "usage": chat["usage"]})
    return chunks


def embeddings(body: dict[str, Any], model: str | None) -> dict[str, Any]:
    items = body.get("input")
    items = [items] if isinstance(items, str) else items
    if not isinstance(items, list) or not items:
        raise Invalid("'input' is a required property", "input")
    size = int(body.get("dimensions") or 8)
    data = [{"object": "embedding", "index": i, "embedding": [((len(str(t)) + j) % 7) / 7 for j in range(size)]}
            for i, t in enumerate(items)]
    tokens = sum(_words(str(t)) for t in items)
    return {"object": "list", "model": model, "data": data, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


# -- the Responses API ----------------------------------------------------------------------------
def check_responses(body: dict[str, Any]) -> None:
    """Raise Invalid as the Responses API answers 400 (the checks a translator can trip)."""
    for name in body:
        if name not in RESPONSES_PARAMS:
            raise Invalid(f"Unknown parameter: '{name}'.", name)
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise Invalid("Missing required parameter: 'model'.", "model")
    limit = body.get("max_output_tokens")
    if limit is not None and (not isinstance(limit, int) or limit < 16):
        raise Invalid("Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16.",
                      "max_output_tokens")
    effort = (body.get("reasoning") or {}).get("effort")
    if effort is not None and effort not in EFFORTS:
        raise Invalid(f"Invalid value: '{effort}'. Supported values are: 'low', 'medium', and 'high'.",
                      "reasoning.effort")
    fmt = (body.get("text") or {}).get("format")
    if fmt is not None and (fmt.get("type") == "json_schema" and not (fmt.get("name") and isinstance(fmt.get("schema"), dict))):
        raise Invalid("Missing required parameter: 'text.format.name'.", "text.format")
    names = set()
    for i, tool in enumerate(body.get("tools") or ()):
        if tool.get("type") != "function":
            continue
        if "function" in tool or not isinstance(tool.get("name"), str):
            raise Invalid(f"Missing required parameter: 'tools[{i}].name'.", f"tools[{i}].name")
        names.add(tool["name"])
        params = tool.get("parameters") or {}
        if tool.get("strict", True) and params.get("additionalProperties") is not False:
            raise Invalid(f"Invalid schema for function '{tool['name']}': In context=(), 'additionalProperties' "
                          "is required to be supplied and to be false.", f"tools[{i}].parameters")
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "function" and choice.get("name") not in names:
        raise Invalid(f"Tool choice '{choice.get('name')}' not found in 'tools' parameter.", "tool_choice")
    items = body.get("input")
    if isinstance(items, str):
        return
    if not isinstance(items, list):
        raise Invalid("Invalid type for 'input': expected a string or an array.", "input")
    calls: set[str] = set()
    for i, item in enumerate(items):
        kind = item.get("type", "message")
        where = f"input[{i}]"
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "system", "developer", "assistant"):
                raise Invalid(f"Invalid value: '{role}'. Supported values are: 'assistant', 'system', 'developer', "
                              "and 'user'.", f"{where}.role")
            content = item.get("content")
            allowed = OUTPUT_PARTS if role == "assistant" else INPUT_PARTS
            for j, part in enumerate([] if isinstance(content, str) else content or ()):
                if part.get("type") not in allowed:
                    raise Invalid(f"Invalid value: '{part.get('type')}'. Supported values are: "
                                  f"{', '.join(sorted(allowed))}.", f"{where}.content[{j}]")
        elif kind == "function_call":
            if not all(isinstance(item.get(k), str) for k in ("call_id", "name", "arguments")):
                raise Invalid(f"Missing required parameter: '{where}.call_id'.", where)
            calls.add(item["call_id"])
        elif kind == "function_call_output":
            if item.get("call_id") not in calls:
                raise Invalid(f"No tool call found for function call output with call_id {item.get('call_id')}.",
                              "input")
            if not isinstance(item.get("output"), (str, list)):
                raise Invalid(f"Invalid type for '{where}.output': expected a string.", f"{where}.output")
        else:
            raise Invalid(f"Invalid value: '{kind}'.", f"{where}.type")


def _input_text(body: dict[str, Any]) -> str:
    items = body["input"]
    if isinstance(items, str):
        return items
    last = ""
    for item in items:
        if item.get("type", "message") == "message" and item.get("role") == "user":
            content = item.get("content")
            last = content if isinstance(content, str) else " ".join(p.get("text", "") for p in content)
    return last


def build_response(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    output: list[dict[str, Any]] = []
    if reply.reasoning is not None:
        output.append({"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": reply.reasoning}]})
    text = reply.text if reply.text is not None else f"azure says: {_input_text(body)}"
    if not reply.calls:
        output.append({"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                       "content": [{"type": "output_text", "text": text, "annotations": []}]})
    for i, (name, args) in enumerate(reply.calls):
        output.append({"type": "function_call", "id": f"fc_{i}", "call_id": f"call_{i}", "name": name,
                       "arguments": args, "status": "completed"})
    prompt = _words(_input_text(body) + " " + (body.get("instructions") or ""))
    completion = _words(text)
    usage = {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": completion,
             "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": prompt + completion}
    usage.update(reply.usage or {})
    return {"id": "resp_fakeazure", "object": "response", "created_at": int(time.time()),
            "status": "incomplete" if reply.incomplete else "completed", "error": None,
            "incomplete_details": {"reason": reply.incomplete} if reply.incomplete else None,
            "instructions": body.get("instructions"), "max_output_tokens": body.get("max_output_tokens"),
            "model": body["model"], "output": output, "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": None, "reasoning": body.get("reasoning"), "store": True,
            "temperature": body.get("temperature", 1.0), "text": body.get("text") or {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools") or [],
            "top_p": body.get("top_p", 1.0), "truncation": "disabled", "usage": usage, "user": None, "metadata": {}}


def response_events(resp: dict[str, Any], fail: tuple[str, str] | None) -> list[tuple[str, dict[str, Any]]]:
    """The SSE events the Responses API streams for `resp`, in order, numbered."""
    start = {**resp, "status": "in_progress", "output": [], "usage": None, "incomplete_details": None}
    events: list[dict[str, Any]] = [{"type": "response.created", "response": start},
                                    {"type": "response.in_progress", "response": start}]
    for index, item in enumerate(resp["output"]):
        if item["type"] == "message":
            text = item["content"][0]["text"]
            events.append({"type": "response.output_item.added", "output_index": index,
                           "item": {**item, "status": "in_progress", "content": []}})
            base = {"item_id": item["id"], "output_index": index, "content_index": 0}
            events.append({"type": "response.content_part.added", **base,
                           "part": {"type": "output_text", "text": "", "annotations": []}})
            for i in range(0, len(text), 5):
                events.append({"type": "response.output_text.delta", **base, "delta": text[i:i + 5], "logprobs": []})
                if fail is not None:
                    events.append({"type": "response.failed", "response": {
                        **start, "status": "failed", "error": {"code": fail[0], "message": fail[1]}}})
                    return [(e["type"], {**e, "sequence_number": n}) for n, e in enumerate(events)]
            events.append({"type": "response.output_text.done", **base, "text": text, "logprobs": []})
            events.append({"type": "response.content_part.done", **base, "part": item["content"][0]})
        elif item["type"] == "function_call":
            events.append({"type": "response.output_item.added", "output_index": index,
                           "item": {**item, "arguments": "", "status": "in_progress"}})
            args = item["arguments"]
            for i in range(0, len(args), 4):
                events.append({"type": "response.function_call_arguments.delta", "item_id": item["id"],
                               "output_index": index, "delta": args[i:i + 4]})
            events.append({"type": "response.function_call_arguments.done", "item_id": item["id"],
                           "output_index": index, "arguments": args})
        else:
            events.append({"type": "response.output_item.added", "output_index": index, "item": item})
        events.append({"type": "response.output_item.done", "output_index": index, "item": item})
    events.append({"type": "response.incomplete" if resp["status"] == "incomplete" else "response.completed",
                   "response": resp})
    return [(e["type"], {**e, "sequence_number": n}) for n, e in enumerate(events)]
