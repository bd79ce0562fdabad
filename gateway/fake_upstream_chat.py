"""The fake upstream's OpenAI routes: chat completions, completions and embeddings, answered as JSON
or as an SSE stream cut as the script says (fake_upstream.py's `FakeUpstream` mixes this in).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json as jsonlib
import time
from typing import Any

from gateway.fake_upstream_script import SCRIPT_FIELD, SCRIPT_HEADER, Headers, RecordedRequest, Script, ScriptError


class ChatHandlers:
    """`/chat/completions`, `/completions` and `/embeddings`. A mixin: it uses the server's
    defaults (`reply`, `usage`, `delay`, ...), its `requests` and `scripts`, and `_request_script`."""

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
        s, failure = await self._scripted(s)
        if failure is not None:
            return failure
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
