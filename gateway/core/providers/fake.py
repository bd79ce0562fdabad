"""The built-in `fake/<name>` provider: answers in-process, deterministically, with usage.

It lets the quickstart and the tests run with no network. It speaks the same wire format as a real
upstream (JSON, or SSE for streams), so its replies take exactly the path real replies take.
"""

from __future__ import annotations

import hashlib
import math
import struct
import time
import uuid
from typing import Any, AsyncIterator

import orjson

from gateway.context import iter_request_text
from gateway.core.providers.deployment import Deployment
from gateway.errors import BadRequestError

MAX_DIMENSIONS = 4096  # OpenAI's largest embedding has 3072; more only blocks the event loop


def count_tokens(text: str) -> int:
    """A stable, cheap token estimate: about four characters a token."""
    return max(1, math.ceil(len(text) / 4)) if text else 0


def reply_text(dep: Deployment, body: dict[str, Any]) -> str:
    if dep.mock_response is not None:
        return dep.mock_response
    texts = list(iter_request_text(body))
    last = texts[-1] if texts else ""
    snippet = " ".join(last.split())[:120]
    return f"This is a fake reply from {dep.upstream_model} to: {snippet}" if snippet else f"This is a fake reply from {dep.upstream_model}."


def _ident(prefix: str) -> str:
    """Content is deterministic; ids are not, so that every call has its own spend-log row."""
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


class StaticReply:
    """A reply that is already in memory (or generated), shaped like an HTTP reply."""

    def __init__(self, status: int, body: bytes | None = None, chunks: list[bytes] | None = None) -> None:
        self.status = status
        self.headers = {"content-type": "text/event-stream" if chunks is not None else "application/json"}
        self._body = body or b""
        self._chunks = chunks

    async def read(self) -> bytes:
        if self._chunks is not None:
            return b"".join(self._chunks)
        return self._body

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        for c in (self._chunks if self._chunks is not None else [self._body]):
            yield c

    async def close(self) -> None:
        return None


def _embedding(text: str, dims: int) -> list[float]:
    raw = b""
    counter = 0
    while len(raw) < dims * 4:
        raw += hashlib.sha256(f"{counter}:{text}".encode()).digest()
        counter += 1
    values = [v / 2**31 for v in struct.unpack(f"<{dims}i", raw[: dims * 4])]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 6) for v in values]


def _sse(obj: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


async def send(dep: Deployment, call_type: str, body: dict[str, Any], stream: bool) -> StaticReply:
    created = int(time.time())
    model = dep.upstream_model
    prompt_text = "\n".join(iter_request_text(body))
    prompt_tokens = count_tokens(prompt_text)
    if call_type == "aembedding":
        inputs = body.get("input")
        items = [inputs] if isinstance(inputs, str) else list(inputs or [])
        dims = body.get("dimensions") or 8
        if isinstance(dims, bool) or not isinstance(dims, int) or not 1 <= dims <= MAX_DIMENSIONS:
            raise BadRequestError(f"dimensions must be a whole number from 1 to {MAX_DIMENSIONS}", param="dimensions")
        data = [
            {"object": "embedding", "index": i, "embedding": _embedding(str(t), dims)}
            for i, t in enumerate(items)
        ]
        out = {"object": "list", "data": data, "model": model,
               "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}}
        return StaticReply(200, orjson.dumps(out))

    text = reply_text(dep, body)
    completion_tokens = count_tokens(text)
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
             "total_tokens": prompt_tokens + completion_tokens}
    chat = call_type == "acompletion"
    ident = _ident("chatcmpl" if chat else "cmpl")
    if not stream:
        if chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop", "logprobs": None}
            out = {"id": ident, "object": "chat.completion", "created": created, "model": model,
                   "choices": [choice], "usage": usage, "system_fingerprint": None}
        else:
            out = {"id": ident, "object": "text_completion", "created": created, "model": model,
                   "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}], "usage": usage}
        return StaticReply(200, orjson.dumps(out))

    words = text.split(" ")
    pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
    obj = "chat.completion.chunk" if chat else "text_completion"
    chunks: list[bytes] = []
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    for i, piece in enumerate(pieces):
        if chat:
            delta: dict[str, Any] = {"content": piece}
            if i == 0:
                delta["role"] = "assistant"
            choice = {"index": 0, "delta": delta, "finish_reason": None, "logprobs": None}
        else:
            choice = {"index": 0, "text": piece, "finish_reason": None, "logprobs": None}
        chunks.append(_sse({"id": ident, "object": obj, "created": created, "model": model, "choices": [choice]}))
    final_choice = ({"index": 0, "delta": {}, "finish_reason": "stop", "logprobs": None} if chat
                    else {"index": 0, "text": "", "finish_reason": "stop", "logprobs": None})
    chunks.append(_sse({"id": ident, "object": obj, "created": created, "model": model, "choices": [final_choice]}))
    if include_usage:
        chunks.append(_sse({"id": ident, "object": obj, "created": created, "model": model, "choices": [], "usage": usage}))
    chunks.append(b"data: [DONE]\n\n")
    return StaticReply(200, chunks=chunks)
