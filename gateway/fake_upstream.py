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

The server is here; its routes are fake_upstream_chat.py's (chat, completions, embeddings) and
fake_upstream_media.py's (images, audio, moderations, rerank); `Script` and `RecordedRequest` are
fake_upstream_script.py's.
"""

from __future__ import annotations

import argparse
import asyncio
import json as jsonlib
import sys
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from gateway.fake_upstream_chat import ChatHandlers
from gateway.fake_upstream_media import MediaHandlers
from gateway.fake_upstream_script import SCRIPT_FIELD, SCRIPT_HEADER, Headers, RecordedRequest, Script, ScriptError

__all__ = ["FakeUpstream", "Headers", "RecordedRequest", "Script", "ScriptError", "main"]


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
class FakeUpstream(ChatHandlers, MediaHandlers):
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

    async def _scripted(self, s: Script | None) -> tuple[Script, Any]:
        """The script that answers a request (the one sent with it, else the next queued one, else
        the defaults), once its delay has passed; and the error response it asks for, if any."""
        from aiohttp import web

        if s is None:
            s = self.scripts.popleft() if self.scripts else Script()
        delay = s.delay if s.delay is not None else self.delay
        if delay:
            await asyncio.sleep(delay)
        if s.status is not None:
            return s, web.json_response({"error": {"message": s.message, "type": s.type, "param": None,
                                                   "code": None}}, status=s.status)
        return s, None


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
