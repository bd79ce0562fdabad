"""A fake Ollama server on loopback: a real HTTP server speaking Ollama's native API.

It serves `POST /api/chat`, `POST /api/generate` (NDJSON streams, or one JSON object with
`"stream": false`) and `POST /api/embed`, plus `GET /`, `GET /api/version` and `GET /api/tags`,
shaped as Ollama answers them (docs/api.md of ollama/ollama; checked against the official `ollama`
Python client in tests/test_provider_ollama.py). Like Ollama:

- a request without `"stream": false` is answered as a stream (Ollama streams by default);
- an unknown model is 404 `{"error": "model \"<name>\" not found, try pulling it first"}`;
- a body Ollama's Go types cannot read is 400 `{"error": "json: cannot unmarshal ..."}`: content
  that is not a string, images that are not base64, tool-call arguments that are not an object;
- a streamed reply ends with a line `"done": true` carrying `done_reason` and the token counts
  (`prompt_eval_count`, `eval_count`); an error after the stream began is a line `{"error": ...}`.

Stricter than Ollama, to catch translation mistakes: a message role other than system, user,
assistant or tool is 400 (Ollama would pass it to the template), and so is an unknown top-level field.

Script it from Python: attributes set defaults for every reply (`reply`, `chunks`, `models`), and
`script(...)` queues what the next requests answer, in order (see `Script`). `requests` records
every request (path, headers with lower-case names, parsed JSON, raw bytes).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import math
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

DEFAULT_MODELS = ("llama3", "llama3:latest", "llama3.2", "llava", "qwen3", "nomic-embed-text", "all-minilm")
ROLES = ("system", "user", "assistant", "tool")
CHAT_FIELDS = {"model", "messages", "tools", "stream", "format", "options", "keep_alive", "think", "logprobs",
               "top_logprobs"}
GENERATE_FIELDS = {"model", "prompt", "suffix", "system", "template", "context", "stream", "raw", "format",
                   "images", "options", "keep_alive", "think", "logprobs", "top_logprobs"}
EMBED_FIELDS = {"model", "input", "truncate", "options", "keep_alive", "dimensions"}


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
    """What the next request answers (unset fields: the server's defaults, then an echo).

    - `reply`: the reply text; `chunks`: the reply as exactly these streamed pieces (wins).
    - `thinking`: reasoning text sent before the reply (in `message.thinking`).
    - `tool_calls`: calls the model makes, as `{"name": ..., "arguments": {...}}` (optionally `"id"`).
    - `done_reason`: "stop" (default) or "length".
    - `prompt_eval_count`, `eval_count`: the counts to report (default: about four characters a
      token); `counts=False` reports none.
    - `embeddings`: the vectors `/api/embed` answers (default: derived from each input).
    - `status` + `error`: answer this HTTP error with `{"error": error}` instead.
    - `raw`: answer these bytes as they are (with `status`, default 200): a malformed reply.
    - `stream_error`: after the streamed pieces, send `{"error": stream_error}` instead of the last line.
    - `delay`: seconds to wait before answering.
    """

    reply: str | None = None
    chunks: list[str] | None = None
    thinking: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    done_reason: str = "stop"
    prompt_eval_count: int | None = None
    eval_count: int | None = None
    counts: bool = True
    embeddings: list[list[float]] | None = None
    status: int | None = None
    error: str = "something went wrong"
    raw: bytes | None = None
    stream_error: str | None = None
    delay: float = 0.0


def _tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4)) if text else 0


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


def _vector(text: str, dims: int) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round((digest[i % 32] - 128) / 128, 6) for i in range(dims)]


class _Loop:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fake-ollama", daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclass
class FakeOllama:
    """An Ollama server on 127.0.0.1; `url` is what users write as `api_base` (no /v1)."""

    models: set[str] = field(default_factory=lambda: set(DEFAULT_MODELS))
    reply: str | None = None
    chunks: list[str] | None = None
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

    def start(self) -> "FakeOllama":
        app = web.Application()
        app.router.add_post("/api/chat", self._chat)
        app.router.add_post("/api/generate", self._generate)
        app.router.add_post("/api/embed", self._embed)
        app.router.add_get("/api/version", self._version)
        app.router.add_get("/api/tags", self._tags)
        app.router.add_get("/", self._root)
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

    def __enter__(self) -> "FakeOllama":
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
        if s.raw is not None:
            return body, s, web.Response(body=s.raw, status=s.status or 200, content_type="application/json")
        if s.status is not None:
            return body, s, web.json_response({"error": s.error}, status=s.status)
        if not isinstance(body, dict):
            return body, s, web.json_response({"error": "invalid character in request body"}, status=400)
        unknown = sorted(set(body) - allowed)
        if unknown:
            return body, s, web.json_response({"error": f"fake ollama: unknown field(s) {unknown}"}, status=400)
        model = body.get("model")
        if not model:
            return body, s, web.json_response({"error": "model is required"}, status=400)
        if model not in self.models:
            return body, s, web.json_response({"error": f'model "{model}" not found, try pulling it first'},
                                              status=404)
        problem = _check_options(body) or _check_format(body)
        if problem:
            return body, s, web.json_response({"error": problem}, status=400)
        return body, s, None

    def _pieces(self, s: Script, fallback: str) -> list[str]:
        if s.chunks is not None:
            return list(s.chunks)
        if s.reply is not None:
            text = s.reply
        elif self.chunks is not None:
            return list(self.chunks)
        else:
            text = self.reply if self.reply is not None else fallback
        words = text.split(" ")
        return [w if i == 0 else " " + w for i, w in enumerate(words)] if text else []

    def _counts(self, s: Script, prompt_text: str, reply_text: str) -> dict[str, Any]:
        if not s.counts:
            return {}
        prompt = s.prompt_eval_count if s.prompt_eval_count is not None else _tokens(prompt_text)
        completion = s.eval_count if s.eval_count is not None else _tokens(reply_text)
        return {"total_duration": 123456789, "load_duration": 1234567, "prompt_eval_count": prompt,
                "prompt_eval_duration": 2345678, "eval_count": completion, "eval_duration": 3456789}

    async def _ndjson(self, request: web.Request, lines: list[dict[str, Any]], s: Script, last: dict[str, Any]) -> Any:
        resp = web.StreamResponse(headers={"content-type": "application/x-ndjson"})
        await resp.prepare(request)
        for line in lines:
            await resp.write(json.dumps(line).encode() + b"\n")
        if s.stream_error is not None:
            await resp.write(json.dumps({"error": s.stream_error}).encode() + b"\n")
        else:
            await resp.write(json.dumps(last).encode() + b"\n")
        await resp.write_eof()
        return resp

    # -- routes -------------------------------------------------------------------------------
    async def _chat(self, request: web.Request) -> Any:
        body, s, early = await self._read(request, CHAT_FIELDS)
        if early is not None:
            return early
        messages = body.get("messages") or []
        problem = _check_messages(messages)
        if problem:
            return web.json_response({"error": problem}, status=400)
        last_user = next((m.get("content") or "" for m in reversed(messages) if m.get("role") in ("user", "tool")), "")
        calls = [_tool_call(c, i) for i, c in enumerate(s.tool_calls or ())]
        pieces = [] if calls and s.reply is None and s.chunks is None else self._pieces(s, f"ollama says: {last_user}")
        text = "".join(pieces)
        prompt_text = "".join(str(m.get("content") or "") for m in messages)
        model = body["model"]
        counts = self._counts(s, prompt_text, text + (s.thinking or "") + json.dumps([c["function"] for c in calls]))
        final = {"model": model, "created_at": _now(), "message": {"role": "assistant", "content": ""},
                 "done_reason": s.done_reason, "done": True, **counts}
        if body.get("stream", True) is False:
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if s.thinking:
                message["thinking"] = s.thinking
            if calls:
                message["tool_calls"] = calls
            return web.json_response({**final, "message": message})
        lines = []
        if s.thinking:
            lines.append({"model": model, "created_at": _now(),
                          "message": {"role": "assistant", "content": "", "thinking": s.thinking}, "done": False})
        for piece in pieces:
            lines.append({"model": model, "created_at": _now(), "message": {"role": "assistant", "content": piece},
                          "done": False})
        if calls:
            lines.append({"model": model, "created_at": _now(),
                          "message": {"role": "assistant", "content": "", "tool_calls": calls}, "done": False})
        return await self._ndjson(request, lines, s, final)

    async def _generate(self, request: web.Request) -> Any:
        body, s, early = await self._read(request, GENERATE_FIELDS)
        if early is not None:
            return early
        prompt = body.get("prompt", "")
        if not isinstance(prompt, str):
            return web.json_response({"error": "json: cannot unmarshal array into Go struct field "
                                      "GenerateRequest.prompt of type string"}, status=400)
        problem = _check_images(body.get("images"), "GenerateRequest.images")
        if problem:
            return web.json_response({"error": problem}, status=400)
        pieces = self._pieces(s, f"ollama says: {prompt}")
        text = "".join(pieces)
        model = body["model"]
        final = {"model": model, "created_at": _now(), "response": "", "done": True, "done_reason": s.done_reason,
                 "context": [1, 2, 3], **self._counts(s, prompt, text)}
        if body.get("stream", True) is False:
            return web.json_response({**final, "response": text})
        lines = [{"model": model, "created_at": _now(), "response": p, "done": False} for p in pieces]
        return await self._ndjson(request, lines, s, final)

    async def _embed(self, request: web.Request) -> Any:
        body, s, early = await self._read(request, EMBED_FIELDS)
        if early is not None:
            return early
        value = body.get("input")
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(t, str) for t in items):
            return web.json_response({"error": "invalid input type"}, status=400)
        dims = body.get("dimensions") or 4
        vectors = s.embeddings if s.embeddings is not None else [_vector(t, dims) for t in items]
        out: dict[str, Any] = {"model": body["model"], "embeddings": vectors, "total_duration": 1234567,
                               "load_duration": 12345}
        if s.counts:
            out["prompt_eval_count"] = (s.prompt_eval_count if s.prompt_eval_count is not None
                                        else sum(_tokens(t) for t in items))
        return web.json_response(out)

    async def _version(self, request: web.Request) -> Any:
        return web.json_response({"version": "0.12.6"})

    async def _tags(self, request: web.Request) -> Any:
        return web.json_response({"models": [{"name": m, "model": m, "modified_at": _now(), "size": 1,
                                              "digest": hashlib.sha256(m.encode()).hexdigest(), "details": {}}
                                             for m in sorted(self.models)]})

    async def _root(self, request: web.Request) -> Any:
        return web.Response(text="Ollama is running")


# -- what Ollama's Go types refuse -----------------------------------------------------------
def _tool_call(call: dict[str, Any], index: int) -> dict[str, Any]:
    out: dict[str, Any] = {"function": {"index": index, "name": call["name"], "arguments": call.get("arguments", {})}}
    if call.get("id"):
        out["id"] = call["id"]
    return out


def _check_images(images: Any, where: str) -> str | None:
    if images is None:
        return None
    if not isinstance(images, list):
        return f"json: cannot unmarshal {type(images).__name__} into Go struct field {where} of type []api.ImageData"
    for image in images:
        if not isinstance(image, str):
            return f"json: cannot unmarshal value into Go struct field {where} of type api.ImageData"
        try:
            base64.b64decode(image, validate=True)
        except (binascii.Error, ValueError):
            return "illegal base64 data at input byte 0"
    return None


def _check_messages(messages: Any) -> str | None:
    if not isinstance(messages, list):
        return "json: cannot unmarshal value into Go struct field ChatRequest.messages of type []api.Message"
    for m in messages:
        if not isinstance(m, dict):
            return "json: cannot unmarshal value into Go struct field ChatRequest.messages of type api.Message"
        if m.get("role") not in ROLES:
            return f"fake ollama: unknown role {m.get('role')!r} (Ollama's roles: {', '.join(ROLES)})"
        content = m.get("content")
        if content is not None and not isinstance(content, str):
            return ("json: cannot unmarshal array into Go struct field Message.messages.content of type string"
                    if isinstance(content, list) else "json: cannot unmarshal value into Message.content")
        problem = _check_images(m.get("images"), "Message.messages.images")
        if problem:
            return problem
        for call in m.get("tool_calls") or ():
            fn = call.get("function") if isinstance(call, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                return "json: cannot unmarshal value into Go struct field Message.messages.tool_calls of type api.ToolCall"
            if not isinstance(fn.get("arguments"), dict):
                return ("json: cannot unmarshal string into Go struct field ToolCallFunction.messages.tool_calls."
                        "function.arguments of type api.ToolCallFunctionArguments")
    return None


def _check_options(body: dict[str, Any]) -> str | None:
    options = body.get("options")
    if options is None:
        return None
    if not isinstance(options, dict):
        return "json: cannot unmarshal value into Go struct field of type map[string]interface {}"
    stop = options.get("stop")
    if stop is not None and not (isinstance(stop, list) and all(isinstance(x, str) for x in stop)):
        return 'option "stop" must be of an array of strings'
    for name in ("num_predict", "top_k", "seed", "num_ctx"):
        value = options.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            return f'option "{name}" must be of type integer'
    return None


def _check_format(body: dict[str, Any]) -> str | None:
    fmt = body.get("format")
    if fmt in (None, "", "json") or isinstance(fmt, dict):
        return None
    return f'invalid format: "{fmt}"; expected "json" or a valid JSON Schema'
