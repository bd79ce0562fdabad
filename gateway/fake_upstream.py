"""A model provider on loopback for tests and demos: a real HTTP server speaking the OpenAI wire format.

It answers chat, completions and embeddings (JSON, and SSE for streams), images, speech,
transcriptions (multipart form data), moderations and a Cohere-shaped `/rerank` (as vLLM and Jina
serve it), and can be told what to reply, how to cut a stream into chunks, how long to wait, which
error to answer and which usage to report. It records every request, so tests check what an
upstream received.

Three ways to script it (docs/testing-a-plugin.md has the details):

- from Python, for every reply: `upstream.reply = "..."`, `upstream.reply_chunks = [...]`, ...;
- from Python, for the next replies in order: `upstream.script(reply=..., chunks=..., status=...)`;
- from the client, for one request: a JSON object in the `x-fake-upstream` request header, or in a
  `fake_upstream` field of the request body (which passes through a gateway: with the `openai` SDK,
  `extra_body={"fake_upstream": {...}}`).

Run it on its own: `python -m gateway.fake_upstream --port 8900` prints where it listens.
Used by the `fake_upstream` fixture of `gateway.testing`, and by benchmarks.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import io
import json as jsonlib
import re
import sys
import threading
import time
import uuid
import wave
from email.parser import BytesParser
from email.policy import HTTP
from collections import deque
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["FakeUpstream", "Headers", "RecordedRequest", "Script", "ScriptError", "main"]

#: The request header that carries a per-request script (a JSON object; see `Script`).
SCRIPT_HEADER = "x-fake-upstream"
#: The request body field that carries a per-request script (it passes through a gateway).
SCRIPT_FIELD = "fake_upstream"


class Headers(dict):
    """The request headers as received (names as the client spelled them), looked up case-insensitively:
    `headers["authorization"]` and `headers["Authorization"]` both work."""

    def _key(self, name: Any) -> Any:
        if isinstance(name, str) and not dict.__contains__(self, name):
            lowered = name.lower()
            for key in self:
                if key.lower() == lowered:
                    return key
        return name

    def __getitem__(self, name: Any) -> str:
        return dict.__getitem__(self, self._key(name))

    def __contains__(self, name: object) -> bool:
        return dict.__contains__(self, self._key(name))

    def get(self, name: Any, default: Any = None) -> Any:
        return dict.get(self, self._key(name), default)


@dataclass
class RecordedRequest:
    """One request the fake upstream received (an object, not a dict).

    - `method`, `path` (e.g. "/v1/chat/completions"), `query` (dict of str)
    - `headers`: a `Headers` dict, case-insensitive lookups
    - `json`: the parsed JSON body (None when the body was not JSON; for multipart form data, the
      text fields, `name[]` fields as lists); `body`: the raw bytes
    - `files`: the files of a multipart body, `{name: {"filename", "content_type", "content"}}`
    - `stream`: True when the body asked for a stream
    - `text`: the client text of the call (message contents, `prompt`, `input`), joined by newlines
    """

    method: str
    path: str
    query: dict[str, str]
    headers: Headers
    json: Any
    body: bytes = b""
    files: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def stream(self) -> bool:
        return isinstance(self.json, dict) and self.json.get("stream") is True

    @property
    def text(self) -> str:
        from gateway.context import iter_request_text

        return "\n".join(iter_request_text(self.json)) if isinstance(self.json, dict) else ""


class ScriptError(ValueError):
    """A script with an unknown key or a value of the wrong type."""


@dataclass
class Script:
    """What to answer to one request. Every field is optional; unset fields fall back to the
    server's defaults (its attributes), and those to an echo of the last message.

    - `reply`: the reply text. `chunks`: the reply as exactly these stream pieces, one SSE chunk
      each (a JSON reply is their concatenation); wins over `reply`.
    - `delay`: seconds to wait before answering. `chunk_interval`: seconds between streamed chunks.
    - `status`: answer this HTTP error status instead, with an OpenAI error body of `message` and
      `type` (default "upstream exploded", "server_error").
    - `usage`: the usage to report, e.g. `{"prompt_tokens": 3, "completion_tokens": 5}`
      (`total_tokens` is added when missing); `false` to report none at all. Images and
      transcriptions report it as given (`{"type": "duration", "seconds": 3}` by default for
      transcriptions); for rerank it is the reply's `meta.billed_units` (default
      `{"search_units": 1}`).
    - `stream_error_after`: after N streamed chunks, send an SSE `error` event and end the stream.
    - `break_stream_after`: after N streamed chunks, close the connection (an upstream dying).
    """

    reply: str | None = None
    chunks: list[str] | None = None
    delay: float | None = None
    chunk_interval: float | None = None
    status: int | None = None
    message: str = "upstream exploded"
    type: str = "server_error"
    usage: dict[str, Any] | bool | None = None
    stream_error_after: int | None = None
    break_stream_after: int | None = None

    @classmethod
    def parse(cls, data: Any) -> "Script":
        """A script from its JSON form, checked: a mistake answers 400 instead of being ignored."""
        if isinstance(data, str):
            try:
                data = jsonlib.loads(data)
            except ValueError as exc:
                raise ScriptError(f"not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ScriptError("must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ScriptError(f"unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        checks: dict[str, tuple[type, ...]] = {
            "reply": (str,), "chunks": (list,), "delay": (int, float), "chunk_interval": (int, float),
            "status": (int,), "message": (str,), "type": (str,), "usage": (dict, bool),
            "stream_error_after": (int,), "break_stream_after": (int,),
        }
        for key, value in data.items():
            kinds = checks[key]
            if value is None:
                continue
            if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
                raise ScriptError(f"{key} must be {' or '.join(t.__name__ for t in kinds)}")
        if data.get("chunks") is not None and not all(isinstance(c, str) for c in data["chunks"]):
            raise ScriptError("chunks must be a list of strings")
        if data.get("usage") is True:
            raise ScriptError("usage must be an object, or false for no usage")
        status = data.get("status")
        if status is not None and not 400 <= status <= 599:
            raise ScriptError("status must be an HTTP error status (400-599)")
        return cls(**data)


class LoopThread:
    """An event loop in a daemon thread, for servers that must outlive one test's loop."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclass
class FakeUpstream:
    """An OpenAI-compatible upstream on 127.0.0.1. Program it, then point a deployment at `url`.

    Defaults for every reply (attributes; a per-request or queued `Script` overrides them):

    - `reply`: a fixed reply text (default: `upstream says: <last message>`).
    - `reply_chunks`: a fixed reply streamed as exactly these pieces, one chunk each (a JSON reply
      is their concatenation); for text split mid-word across chunks. Wins over `reply`.
    - `usage`: the usage to report (default: counted from the words); `False` for none.
    - `delay`: seconds to wait before answering (for timeouts).
    - `chunk_interval`: seconds to wait between streamed content chunks (a slow upstream).
    - `break_stream_after`: close the connection after N streamed chunks.
    - `stream_error_after`: after N streamed chunks, send an SSE `error` event and end the stream.
    - `stream_usage`: False to never send usage in streams (like some vLLM builds).
    - `endless`: True to stream the reply's pieces over and over, forever: no finish chunk, no
      usage, no `[DONE]` (with `chunk_interval`, an upstream that trickles forever). It ends when
      its reader goes away or the server stops.
    - `basic_auth`: `(user, password)`: calls without that HTTP basic auth get 401, as a reverse
      proxy in front of a model server answers.

    One-shot: `fail_next(status, times)` and `script(...)` queue what the next calls answer, in order.
    `requests` lists every request received, as `RecordedRequest` objects.
    """

    delay: float = 0.0
    break_stream_after: int | None = None
    stream_usage: bool = True
    reply: str | None = None
    reply_chunks: list[str] | None = None
    usage: dict[str, Any] | bool | None = None
    basic_auth: tuple[str, str] | None = None
    chunk_interval: float = 0.0
    endless: bool = False
    stream_error_after: int | None = None
    requests: list[RecordedRequest] = field(default_factory=list)
    scripts: deque[Script] = field(default_factory=deque)
    host: str = "127.0.0.1"
    port: int = 0

    @property
    def url(self) -> str:
        """The base URL to use as a deployment's `api_base` (OpenAI style, with /v1)."""
        return f"{self.root}/v1"

    @property
    def root(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    def fail_next(self, status: int = 500, times: int = 1, message: str = "upstream exploded",
                  type: str = "server_error") -> None:
        """The next `times` calls answer `status` with an OpenAI error body."""
        for _ in range(times):
            self.scripts.append(Script(status=status, message=message, type=type))

    def script(self, **kwargs: Any) -> Script:
        """Queue what the next call answers (the fields of `Script`); calls take queued scripts in
        order, then fall back to the defaults. A script sent with a request wins over the queue and
        leaves it as it is."""
        item = Script(**kwargs)
        self.scripts.append(item)
        return item

    # -- the server --------------------------------------------------------------------------
    def start(self, port: int | None = None, host: str | None = None) -> "FakeUpstream":
        """Listen (on a free port unless `port` is given) in a background thread; returns self."""
        from aiohttp import web

        if host is not None:
            self.host = host
        self._stopping = False
        self._thread = LoopThread("fake-upstream")
        app = web.Application()
        for prefix in ("/v1", "", "/openai/deployments/{deployment}", "/openai/v1", "/engines/{deployment}"):
            app.router.add_post(f"{prefix}/chat/completions", self._handle)
            app.router.add_post(f"{prefix}/completions", self._handle)
            app.router.add_post(f"{prefix}/embeddings", self._handle)
            for path in ("images/generations", "audio/speech", "audio/transcriptions", "moderations", "rerank"):
                app.router.add_post(f"{prefix}/{path}", self._media)
        app.router.add_post("/v2/rerank", self._media)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/models", self._models)

        async def boot() -> int:
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.host, port or 0)
            await site.start()
            return self._runner.addresses[0][1]

        try:
            self.port = self._thread.run(boot())
        except BaseException:
            self._thread.close()
            del self._runner
            raise
        return self

    def stop(self) -> None:
        self._stopping = True  # ends endless streams, so that the server can shut down
        if hasattr(self, "_runner"):
            self._thread.run(self._runner.cleanup())
            self._thread.close()
            del self._runner

    def __enter__(self) -> "FakeUpstream":
        return self.start() if not hasattr(self, "_runner") else self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    async def _models(self, request: Any) -> Any:
        from aiohttp import web

        return web.json_response({"object": "list", "data": [{"id": "upstream-model", "object": "model"}]})

    def _request_script(self, request: Any, body: Any) -> Script | None:
        """The script sent with this request (header, then body field), if any."""
        raw = request.headers.get(SCRIPT_HEADER)
        if raw is not None:
            return Script.parse(raw)
        if isinstance(body, dict) and body.get(SCRIPT_FIELD) is not None:
            return Script.parse(body[SCRIPT_FIELD])
        return None

    def _text_for(self, body: dict[str, Any], s: Script) -> str:
        chunks = s.chunks if s.chunks is not None else (None if s.reply is not None else self.reply_chunks)
        if chunks is not None:
            return "".join(chunks)
        reply = s.reply if s.reply is not None else self.reply
        if reply is not None:
            return reply
        last = ""
        for m in body.get("messages") or ():
            if isinstance(m, dict) and isinstance(m.get("content"), str):
                last = m["content"]
        if isinstance(body.get("prompt"), str):
            last = body["prompt"]
        return f"upstream says: {last}"

    def _usage(self, s: Script, computed: dict[str, Any]) -> dict[str, Any] | None:
        usage = s.usage if s.usage is not None else self.usage
        if usage is False:
            return None
        if not isinstance(usage, dict):
            return computed
        out = dict(usage)
        if "total_tokens" not in out:
            out["total_tokens"] = int(out.get("prompt_tokens") or 0) + int(out.get("completion_tokens") or 0)
        return out

    async def _handle(self, request: Any) -> Any:
        from aiohttp import web

        raw = await request.read()
        try:
            body = jsonlib.loads(raw) if raw else None
        except ValueError:
            body = None
        self.requests.append(RecordedRequest(request.method, request.path, dict(request.query),
                                             Headers(request.headers), body, raw))
        if self.basic_auth is not None:
            expected = "Basic " + base64.b64encode(":".join(self.basic_auth).encode()).decode()
            if request.headers.get("Authorization") != expected:
                return web.json_response({"error": {"message": "basic auth required", "type": "auth_error"}},
                                         status=401)
        try:
            s = self._request_script(request, body)
        except ScriptError as exc:
            return web.json_response({"error": {
                "message": f"fake upstream: bad script in {SCRIPT_HEADER} header / {SCRIPT_FIELD} field: {exc}",
                "type": "invalid_request_error", "param": SCRIPT_FIELD, "code": None}}, status=400)
        if s is None:
            s = self.scripts.popleft() if self.scripts else Script()
        delay = s.delay if s.delay is not None else self.delay
        if delay:
            await asyncio.sleep(delay)
        if s.status is not None:
            return web.json_response({"error": {"message": s.message, "type": s.type, "param": None,
                                                "code": None}}, status=s.status)
        if not isinstance(body, dict):
            return web.json_response({"error": {"message": "invalid JSON", "type": "invalid_request_error"}}, status=400)
        model = body.get("model", "unknown")
        path = request.path
        if path.endswith("/embeddings"):
            inputs = body.get("input")
            items = [inputs] if isinstance(inputs, str) else list(inputs or [])
            data = [{"object": "embedding", "index": i,
                     "embedding": [b / 255 for b in hashlib.sha256(str(t).encode()).digest()[:4]]}
                    for i, t in enumerate(items)]
            tokens = sum(len(str(t).split()) for t in items)
            out: dict[str, Any] = {"object": "list", "data": data, "model": model}
            usage = self._usage(s, {"prompt_tokens": tokens, "total_tokens": tokens})
            if usage is not None:
                out["usage"] = usage
            return web.json_response(out)
        chat = path.endswith("/chat/completions")
        text = self._text_for(body, s)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body.get("messages") or ()
                            if isinstance(m, dict)) or len(str(body.get("prompt", "")).split())
        usage = self._usage(s, {"prompt_tokens": prompt_tokens, "completion_tokens": len(text.split()),
                                "total_tokens": prompt_tokens + len(text.split())})
        ident = ("chatcmpl-" if chat else "cmpl-") + hashlib.sha256(repr(time.time_ns()).encode()).hexdigest()[:20]
        created = int(time.time())
        if not body.get("stream"):
            if chat:
                choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                out = {"id": ident, "object": "chat.completion", "created": created, "model": model,
                       "choices": [choice]}
            else:
                out = {"id": ident, "object": "text_completion", "created": created, "model": model,
                       "choices": [{"index": 0, "text": text, "finish_reason": "stop"}]}
            if usage is not None:
                out["usage"] = usage
            return web.json_response(out)
        return await self._stream(request, body, s, chat, ident, created, model, text, usage)

    # -- images, audio, moderations, rerank -------------------------------------------------------
    async def _media(self, request: Any) -> Any:
        from aiohttp import web

        raw = await request.read()
        files: dict[str, dict[str, Any]] = {}
        if request.content_type == "multipart/form-data":
            body, files = _form(request.headers.get("Content-Type", ""), raw)
        else:
            try:
                body = jsonlib.loads(raw) if raw else None
            except ValueError:
                body = None
        self.requests.append(RecordedRequest(request.method, request.path, dict(request.query),
                                             Headers(request.headers), body, raw, files))
        try:
            s = self._request_script(request, body)
        except ScriptError as exc:
            return web.json_response({"error": {"message": f"fake upstream: bad script: {exc}",
                                                "type": "invalid_request_error", "param": SCRIPT_FIELD}}, status=400)
        if s is None:
            s = self.scripts.popleft() if self.scripts else Script()
        delay = s.delay if s.delay is not None else self.delay
        if delay:
            await asyncio.sleep(delay)
        if s.status is not None:
            return web.json_response({"error": {"message": s.message, "type": s.type, "param": None,
                                                "code": None}}, status=s.status)
        if not isinstance(body, dict):
            return web.json_response({"error": {"message": "invalid body", "type": "invalid_request_error"}},
                                     status=400)
        kind = request.path.rsplit("/", 2)
        handler = {"generations": self._images, "speech": self._speech, "transcriptions": self._transcription,
                   "moderations": self._moderations, "rerank": self._rerank}[kind[-1]]
        return handler(body, files, s)

    def _given_usage(self, s: Script, default: dict[str, Any] | None) -> dict[str, Any] | None:
        usage = s.usage if s.usage is not None else self.usage
        if usage is False:
            return None
        return dict(usage) if isinstance(usage, dict) else default

    def _images(self, body: dict[str, Any], files: Any, s: Script) -> Any:
        from aiohttp import web

        n = body.get("n") or 1
        prompt = str(body.get("prompt") or "")
        item: dict[str, Any] = {"revised_prompt": s.reply if s.reply is not None else f"upstream drew: {prompt}"}
        if body.get("response_format") == "b64_json":
            item["b64_json"] = base64.b64encode(hashlib.sha256(prompt.encode()).digest()).decode()
        else:
            item["url"] = f"{self.root}/images/{hashlib.sha256(prompt.encode()).hexdigest()[:16]}.png"
        out: dict[str, Any] = {"created": int(time.time()), "data": [dict(item) for _ in range(int(n))]}
        usage = self._given_usage(s, None)
        if usage is not None:
            out["usage"] = usage
        return web.json_response(out)

    def _speech(self, body: dict[str, Any], files: Any, s: Script) -> Any:
        from aiohttp import web

        fmt = body.get("response_format") or "mp3"
        samples = hashlib.sha256(str(body.get("input") or "").encode()).digest() * 50  # 1600 bytes: 0.1 s
        if fmt == "wav":
            buffer = io.BytesIO()
            with wave.open(buffer, "wb") as out:
                out.setnchannels(1)
                out.setsampwidth(2)
                out.setframerate(8000)
                out.writeframes(samples)
            data = buffer.getvalue()
        else:
            data = samples
        kinds = {"mp3": "audio/mpeg", "opus": "audio/opus", "aac": "audio/aac", "flac": "audio/flac",
                 "wav": "audio/wav", "pcm": "audio/pcm"}
        return web.Response(body=data, content_type=kinds.get(fmt, "application/octet-stream"))

    def _transcription(self, body: dict[str, Any], files: dict[str, dict[str, Any]], s: Script) -> Any:
        from aiohttp import web

        upload = files.get("file")
        if upload is None:
            return web.json_response({"error": {"message": "file is required", "type": "invalid_request_error",
                                                "param": "file"}}, status=400)
        try:
            with wave.open(io.BytesIO(upload["content"])) as audio:
                seconds = audio.getnframes() / audio.getframerate()
        except (wave.Error, EOFError):
            seconds = 1.0
        chunks = s.chunks if s.chunks is not None else (None if s.reply is not None else self.reply_chunks)
        text = "".join(chunks) if chunks is not None else s.reply if s.reply is not None else \
            self.reply if self.reply is not None else f"upstream heard {upload['filename']}"
        fmt = body.get("response_format") or "json"
        usage = self._given_usage(s, {"type": "duration", "seconds": max(1, round(seconds + 0.4999))})
        if fmt in ("text", "srt", "vtt"):
            from gateway.core.providers.fake import subtitles

            return web.Response(text=subtitles(fmt, text, seconds), content_type="text/plain")
        out: dict[str, Any] = {"text": text}
        if fmt == "verbose_json":
            out = {"task": "transcribe", "language": body.get("language") or "english", "duration": seconds,
                   "text": text, "segments": [{"id": 0, "start": 0.0, "end": seconds, "text": text}]}
        if usage is not None:
            out["usage"] = usage
        return web.json_response(out)

    def _moderations(self, body: dict[str, Any], files: Any, s: Script) -> Any:
        from aiohttp import web

        inputs = body.get("input")
        items = [inputs] if isinstance(inputs, str) else list(inputs or [])
        results = []
        for item in items:
            violent = bool(set(re.findall(r"[a-z]+", str(item).lower())) & {"kill", "hurt", "attack"})
            categories = {c: c == "violence" and violent for c in ("harassment", "hate", "self-harm", "sexual",
                                                                     "violence")}
            results.append({"flagged": violent, "categories": categories,
                            "category_scores": {c: 0.97 if v else 0.01 for c, v in categories.items()}})
        return web.json_response({"id": "modr-" + uuid.uuid4().hex[:20], "model": body.get("model"),
                                  "results": results})

    def _rerank(self, body: dict[str, Any], files: Any, s: Script) -> Any:
        from aiohttp import web

        query = set(re.findall(r"\w+", str(body.get("query") or "").lower()))
        documents = [d if isinstance(d, str) else str((d or {}).get("text", "")) for d in body.get("documents") or []]
        scores = [(len(query & set(re.findall(r"\w+", d.lower()))) / (len(query) or 1), i)
                  for i, d in enumerate(documents)]
        scores.sort(key=lambda x: (-x[0], x[1]))
        results = []
        for score, i in scores[: body.get("top_n") or len(scores)]:
            result: dict[str, Any] = {"index": i, "relevance_score": round(score, 4)}
            if body.get("return_documents"):
                result["document"] = {"text": documents[i]}
            results.append(result)
        out: dict[str, Any] = {"id": str(uuid.uuid4()), "model": body.get("model"), "results": results}
        billed = self._given_usage(s, {"search_units": 1})
        if billed is not None:
            out["meta"] = {"billed_units": billed}
        return web.json_response(out)

    async def _stream(self, request: Any, body: dict[str, Any], s: Script, chat: bool, ident: str,
                      created: int, model: str, text: str, usage: dict[str, Any] | None) -> Any:
        from aiohttp import web

        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        obj = "chat.completion.chunk" if chat else "text_completion"

        def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            payload = {"id": ident, "object": obj, "created": created, "model": model, "choices": choices, **extra}
            return b"data: " + jsonlib.dumps(payload).encode() + b"\n\n"

        pieces = s.chunks if s.chunks is not None else (None if s.reply is not None else self.reply_chunks)
        if pieces is None:  # word by word, each with its leading space
            pieces = [word if i == 0 else " " + word for i, word in enumerate(text.split(" "))]
        break_after = s.break_stream_after if s.break_stream_after is not None else self.break_stream_after
        error_after = s.stream_error_after if s.stream_error_after is not None else self.stream_error_after
        interval = s.chunk_interval if s.chunk_interval is not None else self.chunk_interval
        sent = 0
        try:
            while True:
                for piece in pieces:
                    if break_after is not None and sent >= break_after:
                        request.transport.close()  # the upstream dies mid-stream
                        return resp
                    if error_after is not None and sent >= error_after:
                        await resp.write(b"data: " + jsonlib.dumps({"error": {
                            "message": s.message, "type": s.type}}).encode() + b"\n\n")
                        await resp.write_eof()
                        return resp
                    if interval and sent:
                        await asyncio.sleep(interval)
                    if self._stopping:
                        return resp
                    await resp.write(event([{"index": 0, "delta": {"content": piece}, "finish_reason": None} if chat
                                            else {"index": 0, "text": piece, "finish_reason": None}]))
                    sent += 1
                if not self.endless:
                    break
            await resp.write(event([{"index": 0, "delta": {}, "finish_reason": "stop"} if chat
                                    else {"index": 0, "text": "", "finish_reason": "stop"}]))
            if (usage is not None and self.stream_usage
                    and (body.get("stream_options") or {}).get("include_usage")):
                await resp.write(event([], usage=usage))
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
        except ConnectionResetError:  # the reader (the gateway) went away mid-stream
            pass
        return resp


def _form(content_type: str, raw: bytes) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """A multipart/form-data body: its text fields (`name[]` ones as lists) and its files."""
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw)
    fields: dict[str, Any] = {}
    files: dict[str, dict[str, Any]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition") or ""
        content = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            files[name] = {"filename": filename, "content_type": part.get_content_type(), "content": content}
        elif name.endswith("[]"):
            fields.setdefault(name[:-2], []).append(content.decode())
        else:
            fields[name] = content.decode()
    return fields, files


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m gateway.fake_upstream",
        description="A fake OpenAI-compatible model server on loopback (chat, completions, embeddings; "
                    "JSON and SSE; images, speech, transcriptions, moderations, rerank). Point a deployment's api_base at the printed URL. Any request may "
                    f"carry its own script in the {SCRIPT_HEADER} header or a {SCRIPT_FIELD} body field.")
    p.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--reply", help="reply text (default: 'upstream says: <last message>')")
    p.add_argument("--chunk", action="append", dest="chunks", metavar="TEXT",
                   help="stream the reply as these pieces, one chunk each (repeat the flag; wins over --reply)")
    p.add_argument("--delay", type=float, default=0.0, help="seconds to wait before each answer")
    p.add_argument("--chunk-interval", type=float, default=0.0, help="seconds between streamed chunks")
    p.add_argument("--usage", help='usage to report, as JSON, e.g. \'{"prompt_tokens": 3, "completion_tokens": 5}\'')
    p.add_argument("--no-usage", action="store_true", help="report no usage at all")
    p.add_argument("--log-requests", action="store_true", help="print one line per request received")
    return p


def main(argv: list[str] | None = None) -> int:
    """`python -m gateway.fake_upstream`: serve until Ctrl-C or SIGTERM."""
    import signal

    args = _parser().parse_args(argv)
    usage: Any = None
    if args.no_usage:
        usage = False
    elif args.usage:
        try:
            usage = jsonlib.loads(args.usage)
        except ValueError as exc:
            print(f"fake upstream: error: --usage is not JSON: {exc}", file=sys.stderr)
            return 2
        if not isinstance(usage, dict):
            print("fake upstream: error: --usage must be a JSON object", file=sys.stderr)
            return 2
    upstream = FakeUpstream(reply=args.reply, reply_chunks=args.chunks, delay=args.delay,
                            chunk_interval=args.chunk_interval, usage=usage)
    try:
        upstream.start(port=args.port, host=args.host)
    except OSError as exc:
        print(f"fake upstream: error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    print(f"fake upstream listening on {upstream.root} (api_base: {upstream.url})", flush=True)
    seen = 0
    try:
        while not done.wait(0.2):
            if args.log_requests:
                for r in upstream.requests[seen:]:
                    print(f"{r.method} {r.path} {jsonlib.dumps(r.json)[:200]}", flush=True)
                seen = len(upstream.requests)
    finally:
        upstream.stop()
    print("fake upstream stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
