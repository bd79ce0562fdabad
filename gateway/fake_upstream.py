"""A model provider on loopback for tests: a real HTTP server speaking the OpenAI wire format.

It answers chat, completions and embeddings (JSON, and SSE for streams) and can be told to fail,
stall or break a stream; it records every request, so tests check what an upstream received.
Used by the `fake_upstream` fixture of `gateway.testing`, and by benchmarks.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any


@dataclass
class Failure:
    status: int
    message: str
    type: str


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

    - `fail_next(status, times)`: the next calls answer with an OpenAI error body.
    - `delay`: seconds to wait before answering (for timeouts).
    - `break_stream_after`: close the connection after N streamed chunks.
    - `stream_usage`: False to never send usage in streams (like some vLLM builds).
    - `reply`: a fixed reply text (default: an echo of the last message).
    - `basic_auth`: `(user, password)`: calls without that HTTP basic auth get 401, as a reverse
      proxy in front of a model server answers.
    - `reply_chunks`: a fixed reply streamed as exactly these pieces, one chunk each (a JSON reply
      is their concatenation); for text split mid-word across chunks. Wins over `reply`.
    - `chunk_interval`: seconds to wait between streamed content chunks (a slow upstream).
    - `endless`: True to stream the reply's pieces over and over, forever: no finish chunk, no
      usage, no `[DONE]` (with `chunk_interval`, an upstream that trickles forever). It ends when
      its reader goes away or the server stops.
    - `stream_error_after`: after N streamed chunks, send an SSE `error` event (`fail_next`'s
      default message and type) and end the stream, as an upstream failing mid-stream does.
    """

    delay: float = 0.0
    break_stream_after: int | None = None
    stream_usage: bool = True
    reply: str | None = None
    reply_chunks: list[str] | None = None
    basic_auth: tuple[str, str] | None = None
    chunk_interval: float = 0.0
    endless: bool = False
    stream_error_after: int | None = None
    requests: list[RecordedRequest] = field(default_factory=list)
    failures: deque[Failure] = field(default_factory=deque)
    port: int = 0

    @property
    def url(self) -> str:
        """The base URL to use as a deployment's `api_base` (OpenAI style, with /v1)."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fail_next(self, status: int = 500, times: int = 1, message: str = "upstream exploded",
                  type: str = "server_error") -> None:
        for _ in range(times):
            self.failures.append(Failure(status, message, type))

    # -- the server --------------------------------------------------------------------------
    def start(self) -> "FakeUpstream":
        from aiohttp import web

        self._stopping = False
        self._thread = LoopThread("fake-upstream")
        app = web.Application()
        for prefix in ("/v1", "", "/openai/deployments/{deployment}", "/openai/v1"):
            app.router.add_post(f"{prefix}/chat/completions", self._handle)
            app.router.add_post(f"{prefix}/completions", self._handle)
            app.router.add_post(f"{prefix}/embeddings", self._handle)
        app.router.add_get("/v1/models", self._models)

        async def boot() -> int:
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            return self._runner.addresses[0][1]

        self.port = self._thread.run(boot())
        return self

    def stop(self) -> None:
        self._stopping = True  # ends endless streams, so that the server can shut down
        if hasattr(self, "_runner"):
            self._thread.run(self._runner.cleanup())
            self._thread.close()

    async def _models(self, request: Any) -> Any:
        from aiohttp import web

        return web.json_response({"object": "list", "data": [{"id": "upstream-model", "object": "model"}]})

    def _text_for(self, body: dict[str, Any]) -> str:
        if self.reply_chunks is not None:
            return "".join(self.reply_chunks)
        if self.reply is not None:
            return self.reply
        last = ""
        for m in body.get("messages") or ():
            if isinstance(m.get("content"), str):
                last = m["content"]
        if isinstance(body.get("prompt"), str):
            last = body["prompt"]
        return f"upstream says: {last}"

    async def _handle(self, request: Any) -> Any:
        from aiohttp import web

        try:
            body = await request.json()
        except ValueError:
            body = None
        self.requests.append(RecordedRequest(request.method, request.path, dict(request.query),
                                             dict(request.headers), body))
        if self.basic_auth is not None:
            expected = "Basic " + base64.b64encode(":".join(self.basic_auth).encode()).decode()
            if request.headers.get("Authorization") != expected:
                return web.json_response({"error": {"message": "basic auth required", "type": "auth_error"}},
                                         status=401)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.failures:
            f = self.failures.popleft()
            return web.json_response({"error": {"message": f.message, "type": f.type, "param": None,
                                                "code": None}}, status=f.status)
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
            return web.json_response({"object": "list", "data": data, "model": model,
                                      "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})
        chat = path.endswith("/chat/completions")
        text = self._text_for(body)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body.get("messages") or ()) or \
            len(str(body.get("prompt", "")).split())
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(text.split()),
                 "total_tokens": prompt_tokens + len(text.split())}
        ident = ("chatcmpl-" if chat else "cmpl-") + hashlib.sha256(repr(time.time_ns()).encode()).hexdigest()[:20]
        created = int(time.time())
        if not body.get("stream"):
            if chat:
                choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                out = {"id": ident, "object": "chat.completion", "created": created, "model": model,
                       "choices": [choice], "usage": usage}
            else:
                out = {"id": ident, "object": "text_completion", "created": created, "model": model,
                       "choices": [{"index": 0, "text": text, "finish_reason": "stop"}], "usage": usage}
            return web.json_response(out)
        return await self._stream(request, body, chat, ident, created, model, text, usage)

    async def _stream(self, request: Any, body: dict[str, Any], chat: bool, ident: str, created: int,
                      model: str, text: str, usage: dict[str, Any]) -> Any:
        import json

        from aiohttp import web

        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        obj = "chat.completion.chunk" if chat else "text_completion"

        def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            payload = {"id": ident, "object": obj, "created": created, "model": model, "choices": choices, **extra}
            return b"data: " + json.dumps(payload).encode() + b"\n\n"

        pieces = self.reply_chunks
        if pieces is None:  # word by word, each with its leading space
            pieces = [word if i == 0 else " " + word for i, word in enumerate(text.split(" "))]
        sent = 0
        try:
            while True:
                for piece in pieces:
                    if self.break_stream_after is not None and sent >= self.break_stream_after:
                        request.transport.close()  # the upstream dies mid-stream
                        return resp
                    if self.stream_error_after is not None and sent >= self.stream_error_after:
                        await resp.write(b"data: " + json.dumps({"error": {
                            "message": "upstream exploded", "type": "server_error"}}).encode() + b"\n\n")
                        await resp.write_eof()
                        return resp
                    if self.chunk_interval and sent:
                        await asyncio.sleep(self.chunk_interval)
                    if self._stopping:
                        return resp
                    await resp.write(event([{"index": 0, "delta": {"content": piece}, "finish_reason": None} if chat
                                            else {"index": 0, "text": piece, "finish_reason": None}]))
                    sent += 1
                if not self.endless:
                    break
            await resp.write(event([{"index": 0, "delta": {}, "finish_reason": "stop"} if chat
                                    else {"index": 0, "text": "", "finish_reason": "stop"}]))
            if self.stream_usage and (body.get("stream_options") or {}).get("include_usage"):
                await resp.write(event([], usage=usage))
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
        except ConnectionResetError:  # the reader (the gateway) went away mid-stream
            pass
        return resp
