"""A fake Cohere API v2 on loopback: a real HTTP server speaking Cohere's wire format.

It serves `POST /v2/chat` (one JSON reply, or with `"stream": true` an SSE stream of typed events),
`POST /v2/embed` and `POST /v2/rerank`, shaped as the official `cohere` SDK's types read them (cohere 7.x,
`cohere.v2.types`; tests/peers/cohere_sdk_check.py has the SDK talk to this fake and parse every
reply and event). Like Cohere:

- a request needs `Authorization: Bearer <key>`: without one it is 401 `no api key supplied`, with
  a key other than `api_key` (when set) 401 `invalid api token`;
- errors are `{"id": ..., "message": ...}` with the status (400, 401, 404, 429, 500, ...); an
  unknown model is 404 `model '<name>' not found, make sure the correct model ID was used and that
  you have access to the model.`;
- a reply has `message.content` as a list of blocks (`text`, `thinking`), `tool_plan`, `tool_calls`
  (arguments a JSON string), `finish_reason` (COMPLETE, MAX_TOKENS, TOOL_CALL, ERROR, ...) and
  `usage` with `billed_units` and `tokens`;
- a stream is `event: <type>` / `data: <json>` pairs: `message-start`, `content-start`,
  `content-delta`, `content-end`, `tool-plan-delta`, `tool-call-start`, `tool-call-delta`,
  `tool-call-end`, `message-end` (finish reason and usage), then `data: [DONE]`;
- `/v2/embed` needs `embedding_types` and `input_type`, and answers `embeddings_by_type` with
  `meta.billed_units.input_tokens`;
- `/v2/rerank` takes documents as strings only (v2 has no `return_documents`), and answers
  `results` (`index`, `relevance_score`, best first, `top_n` of them) with
  `meta.billed_units.search_units` (one per 100 documents).

Stricter than Cohere, to catch translation mistakes: unknown fields (top-level, in messages, in
tools) are 400, and so is a tool result whose `tool_call_id` no earlier assistant call carries.

Script it from Python: attributes set defaults (`api_key`, `models`, `reply`), and `script(...)`
queues what the next requests answer, in order (see `Script`). `requests` records every request
(path, headers with lower-case names, parsed JSON, raw bytes).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

DEFAULT_MODELS = ("command-r", "command-r-plus", "command-r-08-2024", "command-r-plus-08-2024", "command-r7b-12-2024",
                  "command-a-03-2025", "command-a-vision-07-2025", "command-a-reasoning-08-2025",
                  "embed-english-v3.0", "embed-multilingual-v3.0", "embed-v4.0", "rerank-v3.5",
                  "rerank-english-v3.0", "rerank-multilingual-v3.0")
CHAT_FIELDS = {"model", "messages", "tools", "strict_tools", "documents", "citation_options", "response_format",
               "safety_mode", "max_tokens", "stop_sequences", "temperature", "seed", "frequency_penalty",
               "presence_penalty", "k", "p", "logprobs", "tool_choice", "thinking", "priority", "stream"}
EMBED_FIELDS = {"model", "texts", "images", "inputs", "input_type", "embedding_types", "output_dimension",
                "max_tokens", "truncate", "priority"}
MESSAGE_FIELDS = {"system": {"role", "content"}, "user": {"role", "content"},
                  "assistant": {"role", "content", "tool_calls", "tool_plan", "citations"},
                  "tool": {"role", "content", "tool_call_id"}}
CONTENT_TYPES = {"system": {"text"}, "user": {"text", "image_url"}, "assistant": {"text", "thinking"},
                 "tool": {"text", "document"}}
RERANK_FIELDS = {"model", "query", "documents", "top_n", "max_tokens_per_doc", "priority"}
INPUT_TYPES = {"search_document", "search_query", "classification", "clustering", "image"}


@dataclass
class Recorded:
    """One request as received: `path`, `headers` (names lower-cased), `json` (parsed body or None), `body`."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any
    body: bytes


@dataclass
class Script:
    """What one request is answered with; every field is optional.

    - `reply`: the text (default `cohere says: <last user text>`); `chunks`: the text as stream pieces.
    - `thinking`: a thinking block before the text; `tool_plan`: the plan before tool calls.
    - `tool_calls`: `[{"name", "arguments": {...} or "json", "id"?}]` (finish_reason TOOL_CALL).
    - `finish_reason`: Cohere's (default COMPLETE, or TOOL_CALL with tool calls); `error`: the
      message-end's `error` (with ERROR), or the body's message with `status`.
    - `input_tokens`, `output_tokens`: billed units; `raw_input_tokens`, `raw_output_tokens`: the
      `tokens` counts (default: billed + 60 input, the prompt template Cohere does not bill);
      `cached_tokens`; `usage=False` leaves usage out.
    - `embeddings`: the vectors `/v2/embed` returns.
    - `scores`: the relevance score of each document `/v2/rerank` ranks (default: shared words);
      `search_units`: the billed search units it reports.
    - `status`: answer this HTTP status with `{"id", "message": error}`; `raw`: these bytes as the
      body (with `status`, default 200); `cut`: end the stream before `message-end`;
      `done_marker=False`: no `data: [DONE]` at the end; `delay`: seconds to wait first.
    - `citations`: the reply message's citations (non-streamed replies).
    """

    reply: str | None = None
    chunks: list[str] | None = None
    thinking: str | None = None
    tool_plan: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    finish_reason: str | None = None
    error: str = "internal server error, this has been reported to our developers"
    input_tokens: int | None = None
    output_tokens: int | None = None
    raw_input_tokens: int | None = None
    raw_output_tokens: int | None = None
    cached_tokens: int | None = None
    usage: bool = True
    embeddings: list[list[float]] | None = None
    scores: list[float] | None = None
    search_units: int | None = None
    status: int | None = None
    raw: bytes | None = None
    cut: bool = False
    done_marker: bool = True
    delay: float = 0.0
    citations: list[dict[str, Any]] | None = None


def _tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4)) if text else 0


def _vector(text: str, dims: int) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round((digest[i % 32] - 128) / 128, 6) for i in range(dims)]


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"id": str(uuid.uuid4()), "message": message}, status=status)


class _Loop:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fake-cohere", daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclass
class FakeCohere:
    """A Cohere API on 127.0.0.1; `url` is what users write as `api_base`."""

    api_key: str | None = None  # None: any bearer key is accepted
    models: set[str] = field(default_factory=lambda: set(DEFAULT_MODELS))
    reply: str | None = None
    requests: list[Recorded] = field(default_factory=list)
    scripts: deque[Script] = field(default_factory=deque)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, **kwargs: Any) -> Script:
        item = Script(**kwargs)
        self.scripts.append(item)
        return item

    def start(self) -> "FakeCohere":
        app = web.Application()
        app.router.add_post("/v2/chat", self._chat)
        app.router.add_post("/v2/embed", self._embed)
        app.router.add_post("/v2/rerank", self._rerank)
        self._loop = _Loop()

        async def boot() -> int:
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            return self._runner.addresses[0][1]

        self.port = self._loop.run(boot())
        return self

    def stop(self) -> None:
        if hasattr(self, "_runner"):
            self._loop.run(self._runner.cleanup())
            self._loop.close()
            del self._runner

    def __enter__(self) -> "FakeCohere":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- helpers ------------------------------------------------------------------------------
    async def _read(self, request: web.Request, allowed: set[str]) -> tuple[Any, Script, web.Response | None]:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        self.requests.append(Recorded(request.method, request.path,
                                      {k.lower(): v for k, v in request.headers.items()}, body, raw))
        s = self.scripts.popleft() if self.scripts else Script()
        if s.delay:
            await asyncio.sleep(s.delay)
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return body, s, _error(401, "no api key supplied")
        if self.api_key is not None and token.strip() != self.api_key:
            return body, s, _error(401, "invalid api token")
        if s.raw is not None:
            return body, s, web.Response(body=s.raw, status=s.status or 200, content_type="application/json")
        if s.status is not None:
            return body, s, _error(s.status, s.error)
        if not isinstance(body, dict):
            return body, s, _error(400, "invalid request: could not parse the request body as JSON")
        unknown = sorted(set(body) - allowed)
        if unknown:
            return body, s, _error(400, f"invalid request: unknown field(s) {unknown} (fake cohere)")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return body, s, _error(400, "invalid request: model must be specified")
        if model not in self.models:
            return body, s, _error(404, f"model '{model}' not found, make sure the correct model ID was used and "
                                        "that you have access to the model.")
        return body, s, None

    def _pieces(self, s: Script, fallback: str) -> list[str]:
        if s.chunks is not None:
            return list(s.chunks)
        text = s.reply if s.reply is not None else self.reply if self.reply is not None else fallback
        words = text.split(" ")
        return [w if i == 0 else " " + w for i, w in enumerate(words)] if text else []

    def _usage(self, s: Script, prompt_text: str, reply_text: str) -> dict[str, Any]:
        billed_in = s.input_tokens if s.input_tokens is not None else _tokens(prompt_text)
        billed_out = s.output_tokens if s.output_tokens is not None else _tokens(reply_text)
        usage: dict[str, Any] = {
            "billed_units": {"input_tokens": billed_in, "output_tokens": billed_out},
            "tokens": {"input_tokens": s.raw_input_tokens if s.raw_input_tokens is not None else billed_in + 60,
                       "output_tokens": s.raw_output_tokens if s.raw_output_tokens is not None else billed_out},
        }
        if s.cached_tokens is not None:
            usage["cached_tokens"] = s.cached_tokens
        return usage

    # -- routes -------------------------------------------------------------------------------
    async def _chat(self, request: web.Request) -> Any:
        body, s, early = await self._read(request, CHAT_FIELDS)
        if early is not None:
            return early
        problem = _check_chat(body)
        if problem:
            return _error(400, f"invalid request: {problem}")
        messages = body["messages"]
        last_user = next((_text(m.get("content")) for m in reversed(messages) if m.get("role") in ("user", "tool")), "")
        calls = [_tool_call(c) for c in s.tool_calls or ()]
        pieces = [] if calls and s.reply is None and s.chunks is None else self._pieces(s, f"cohere says: {last_user}")
        text = "".join(pieces)
        plan = s.tool_plan if s.tool_plan is not None else ("I will call the tool." if calls else None)
        finish = s.finish_reason or ("TOOL_CALL" if calls else "COMPLETE")
        prompt_text = "".join(_text(m.get("content")) for m in messages)
        usage = self._usage(s, prompt_text, text + (s.thinking or "") + (plan or "") +
                            "".join(c["function"]["arguments"] for c in calls))
        ident = str(uuid.uuid4())
        if not body.get("stream"):
            content: list[dict[str, Any]] = []
            if s.thinking:
                content.append({"type": "thinking", "thinking": s.thinking})
            if text or not calls:
                content.append({"type": "text", "text": text})
            message: dict[str, Any] = {"role": "assistant"}
            if plan:
                message["tool_plan"] = plan
            if calls:
                message["tool_calls"] = calls
            if content:
                message["content"] = content
            if s.citations:
                message["citations"] = s.citations
            out: dict[str, Any] = {"id": ident, "message": message, "finish_reason": finish}
            if s.usage:
                out["usage"] = usage
            return web.json_response(out)
        events: list[dict[str, Any]] = [{"id": ident, "type": "message-start", "delta": {"message": {
            "role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}}]
        index = 0
        if s.thinking:
            events.append({"type": "content-start", "index": index,
                           "delta": {"message": {"content": {"type": "thinking", "thinking": ""}}}})
            for piece in _split(s.thinking):
                events.append({"type": "content-delta", "index": index,
                               "delta": {"message": {"content": {"thinking": piece}}}})
            events.append({"type": "content-end", "index": index})
            index += 1
        if calls:
            for piece in _split(plan or ""):
                events.append({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": piece}}})
            for i, call in enumerate(calls):
                events.append({"type": "tool-call-start", "index": i, "delta": {"message": {"tool_calls": {
                    "id": call["id"], "type": "function",
                    "function": {"name": call["function"]["name"], "arguments": ""}}}}})
                for piece in _split(call["function"]["arguments"], 8):
                    events.append({"type": "tool-call-delta", "index": i, "delta": {"message": {
                        "tool_calls": {"function": {"arguments": piece}}}}})
                events.append({"type": "tool-call-end", "index": i})
        if pieces:
            events.append({"type": "content-start", "index": index,
                           "delta": {"message": {"content": {"type": "text", "text": ""}}}})
            for piece in pieces:
                events.append({"type": "content-delta", "index": index,
                               "delta": {"message": {"content": {"text": piece}}}, "logprobs": None})
            events.append({"type": "content-end", "index": index})
        end: dict[str, Any] = {"finish_reason": finish}
        if finish == "ERROR":
            end["error"] = s.error
        if s.usage:
            end["usage"] = usage
        if not s.cut:
            events.append({"type": "message-end", "delta": end})
        resp = web.StreamResponse(headers={"content-type": "text/event-stream", "cache-control": "no-cache"})
        await resp.prepare(request)
        for event in events:
            await resp.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
        if s.done_marker and not s.cut:
            await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def _embed(self, request: web.Request) -> Any:
        body, s, early = await self._read(request, EMBED_FIELDS)
        if early is not None:
            return early
        texts = body.get("texts")
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts) or not texts:
            return _error(400, "invalid request: texts must be a non-empty list of strings")
        if len(texts) > 96:
            return _error(400, "invalid request: texts must contain at most 96 items")
        if body.get("input_type") not in INPUT_TYPES:
            return _error(400, "invalid request: valid input_type must be provided with the provided model")
        types = body.get("embedding_types")
        if not isinstance(types, list) or not types:
            return _error(400, "invalid request: embedding_types must be specified")
        if any(t not in ("float", "int8", "uint8", "binary", "ubinary", "base64") for t in types):
            return _error(400, f"invalid request: invalid embedding_types {types}")
        dims = body.get("output_dimension") or 8
        vectors = s.embeddings if s.embeddings is not None else [_vector(t, dims) for t in texts]
        embeddings: dict[str, Any] = {}
        for kind in types:
            embeddings[kind] = vectors if kind == "float" else [[int(x * 127) for x in v] for v in vectors]
        meta: dict[str, Any] = {"api_version": {"version": "2"}}
        if s.usage:
            billed = s.input_tokens if s.input_tokens is not None else sum(_tokens(t) for t in texts)
            meta["billed_units"] = {"input_tokens": billed}
        return web.json_response({"id": str(uuid.uuid4()), "embeddings": embeddings, "texts": texts, "meta": meta,
                                  "response_type": "embeddings_by_type"})


    async def _rerank(self, request: web.Request) -> Any:
        body, s, early = await self._read(request, RERANK_FIELDS)
        if early is not None:
            return early
        query, documents, top_n = body.get("query"), body.get("documents"), body.get("top_n")
        if not isinstance(query, str) or not query:
            return _error(400, "invalid request: query must be a non-empty string")
        if not isinstance(documents, list) or not documents or not all(isinstance(d, str) for d in documents):
            return _error(400, "invalid request: documents must be a non-empty list of strings")
        if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1):
            return _error(400, "invalid request: top_n must be a positive integer")
        words = set(query.lower().split())
        scores = s.scores if s.scores is not None else [
            round(len(words & set(d.lower().split())) / len(words), 4) for d in documents]
        ranked = sorted(range(len(documents)), key=lambda i: (-scores[i], i))[: top_n or len(documents)]
        meta: dict[str, Any] = {"api_version": {"version": "2"}}
        if s.usage:
            units = s.search_units if s.search_units is not None else math.ceil(len(documents) / 100)
            meta["billed_units"] = {"search_units": units}
        return web.json_response({"id": str(uuid.uuid4()), "meta": meta,
                                  "results": [{"index": i, "relevance_score": scores[i]} for i in ranked]})


# -- what Cohere's request types refuse --------------------------------------------------------
def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text") or "" for b in content if isinstance(b, dict))
    return ""


def _split(text: str, size: int = 0) -> list[str]:
    if not text:
        return []
    if size:
        return [text[i:i + size] for i in range(0, len(text), size)]
    words = text.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


def _tool_call(call: dict[str, Any]) -> dict[str, Any]:
    args = call.get("arguments", {})
    return {"id": call.get("id") or f"{call['name']}_{uuid.uuid4().hex[:12]}", "type": "function",
            "function": {"name": call["name"], "arguments": args if isinstance(args, str) else json.dumps(args)}}


def _check_content(role: str, content: Any, where: str) -> str | None:
    if isinstance(content, str):
        return None
    if not isinstance(content, list):
        return f"{where}.content must be a string or a list of content blocks"
    for k, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind not in CONTENT_TYPES[role]:
            return f"{where}.content[{k}]: type {kind!r} is not valid for a {role} message"
        if kind == "text" and not isinstance(block.get("text"), str):
            return f"{where}.content[{k}].text must be a string"
        if kind == "image_url":
            image = block.get("image_url")
            if not isinstance(image, dict) or not isinstance(image.get("url"), str) or set(image) - {"url", "detail"}:
                return f"{where}.content[{k}].image_url must be an object with a url (and a detail)"
    return None


def _check_chat(body: dict[str, Any]) -> str | None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages must be a non-empty list"
    call_ids: set[str] = set()
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        role = m.get("role") if isinstance(m, dict) else None
        if role not in MESSAGE_FIELDS:
            return f"{where}: role must be one of system, user, assistant, tool"
        unknown = sorted(set(m) - MESSAGE_FIELDS[role])
        if unknown:
            return f"{where}: unknown field(s) {unknown} for a {role} message (fake cohere)"
        if role != "assistant" and "content" not in m:
            return f"{where}.content is required"
        if "content" in m:
            problem = _check_content(role, m["content"], where)
            if problem:
                return problem
        if role == "assistant":
            for j, call in enumerate(m.get("tool_calls") or ()):
                fn = call.get("function") if isinstance(call, dict) else None
                if not isinstance(call.get("id"), str) or call.get("type", "function") != "function" \
                        or not isinstance(fn, dict) or not isinstance(fn.get("name"), str) \
                        or not isinstance(fn.get("arguments", ""), str):
                    return (f"{where}.tool_calls[{j}] must be {{id, type: function, function: {{name, "
                            "arguments: a JSON string}}}}")
                call_ids.add(call["id"])
            if "tool_plan" in m and not isinstance(m["tool_plan"], str):
                return f"{where}.tool_plan must be a string"
        if role == "tool":
            if m.get("tool_call_id") not in call_ids:
                return f"{where}.tool_call_id {m.get('tool_call_id')!r} matches no earlier tool call"
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            return "tools must be a list"
        for i, tool in enumerate(tools):
            fn = tool.get("function") if isinstance(tool, dict) else None
            if tool.get("type") != "function" or not isinstance(fn, dict) or set(tool) - {"type", "function"}:
                return f"tools[{i}] must be {{type: function, function: {{...}}}}"
            if not isinstance(fn.get("name"), str) or not isinstance(fn.get("parameters"), dict) \
                    or set(fn) - {"name", "description", "parameters"}:
                return f"tools[{i}].function must have a name and parameters (a JSON schema), and nothing else"
    choice = body.get("tool_choice")
    if choice is not None:
        if choice not in ("REQUIRED", "NONE"):
            return "tool_choice must be REQUIRED or NONE"
        if not tools:
            return "tool_choice can only be used with tools"
    fmt = body.get("response_format")
    if fmt is not None:
        if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_object") or set(fmt) - {"type", "json_schema"}:
            return "response_format must be {type: text} or {type: json_object, json_schema?}"
        if "json_schema" in fmt and (fmt["type"] != "json_object" or not isinstance(fmt["json_schema"], dict)):
            return "response_format.json_schema must be an object, with type json_object"
    stops = body.get("stop_sequences")
    if stops is not None and not (isinstance(stops, list) and all(isinstance(x, str) for x in stops)):
        return "stop_sequences must be a list of strings"
    for name in ("max_tokens", "seed", "k"):
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            return f"{name} must be an integer"
    for name in ("temperature", "p", "frequency_penalty", "presence_penalty"):
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            return f"{name} must be a number"
    p = body.get("p")
    if p is not None and not 0 <= p <= 1:
        return "p must be between 0 and 1"
    thinking = body.get("thinking")
    if thinking is not None:
        if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "disabled") \
                or set(thinking) - {"type", "token_budget"}:
            return "thinking must be {type: enabled|disabled, token_budget?}"
    if "stream" in body and not isinstance(body["stream"], bool):
        return "stream must be a boolean"
    return None
