"""The built-in `fake/<name>` provider: answers in-process, deterministically, with usage.

It lets the quickstart and the tests run with no network. It speaks the same wire format as a real
upstream (JSON, or SSE for streams), so its replies take exactly the path real replies take.

It answers every call type: images (a 1x1 PNG whose colour follows the prompt, as a `data:` URL or
`b64_json`; `gpt-image*` models also report token usage), speech (a short WAV tone, `audio/wav`
whatever `response_format` asks, or raw samples for `pcm`), transcriptions (a sentence naming the
file, with the audio's duration when its WAV header tells it), moderations (flagged when a word of
`FLAGGED_WORDS` appears) and rerank (scores from the words a document shares with the query).
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import struct
import time
import uuid
import zlib
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

    def __init__(self, status: int, body: bytes | None = None, chunks: list[bytes] | None = None,
                 content_type: str | None = None) -> None:
        self.status = status
        self.headers = {"content-type": content_type or ("text/event-stream" if chunks is not None else "application/json")}
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
    if call_type in MEDIA_REPLIES:
        return MEDIA_REPLIES[call_type](dep, body)
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


# -- images, audio, moderations, rerank ---------------------------------------------------------
#: Words the fake moderation flags, by OpenAI category.
FLAGGED_WORDS = {"violence": ("kill", "attack"), "harassment": ("idiot", "stupid"), "hate": ("hate",),
                 "self-harm": ("suicide",), "illicit": ("steal",)}
MODERATION_CATEGORIES = ("harassment", "harassment/threatening", "hate", "hate/threatening", "illicit",
                         "illicit/violent", "self-harm", "self-harm/instructions", "self-harm/intent", "sexual",
                         "sexual/minors", "violence", "violence/graphic")
SPEECH_RATE = 8000  # samples a second: 16-bit mono


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def png(rgb: bytes) -> bytes:
    """A valid 1x1 PNG of one colour."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" + rgb[:3]))
            + chunk(b"IEND", b""))


def wav(samples: bytes, rate: int = SPEECH_RATE) -> bytes:
    """16-bit mono PCM samples in a WAV file."""
    return (b"RIFF" + struct.pack("<I", 36 + len(samples)) + b"WAVEfmt " +
            struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16) + b"data" + struct.pack("<I", len(samples))
            + samples)


def _count(value: Any, default: int, top: int, name: str) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
        raise BadRequestError(f"{name} must be a whole number from 1 to {top}", param=name)
    return value


def _image(dep: Deployment, body: dict[str, Any]) -> StaticReply:
    prompt = str(body.get("prompt") or "")
    n = _count(body.get("n"), 1, 10, "n")
    token_model = dep.upstream_model.startswith("gpt-image")
    picture = base64.b64encode(png(_digest(prompt))).decode()
    item: dict[str, Any] = ({"b64_json": picture} if token_model or body.get("response_format") == "b64_json"
                            else {"url": "data:image/png;base64," + picture})
    if dep.upstream_model.startswith("dall-e-3"):
        item["revised_prompt"] = prompt
    out: dict[str, Any] = {"created": int(time.time()), "data": [dict(item) for _ in range(n)]}
    if token_model:  # gpt-image models bill tokens: text in, image tokens out
        text_tokens = count_tokens(prompt)
        out["usage"] = {"input_tokens": text_tokens, "output_tokens": 272 * n, "total_tokens": text_tokens + 272 * n,
                        "input_tokens_details": {"text_tokens": text_tokens, "image_tokens": 0}}
    return StaticReply(200, orjson.dumps(out))


def _speech(dep: Deployment, body: dict[str, Any]) -> StaticReply:
    text = str(body.get("input") or "")
    seconds = min(2.0, 0.1 + 0.01 * len(text))
    pitch = 220 + _digest(text)[0] * 2
    count = int(SPEECH_RATE * seconds)
    samples = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * pitch * i / SPEECH_RATE)))
                       for i in range(count))
    raw = body.get("response_format") == "pcm"
    reply = StaticReply(200, samples if raw else wav(samples))
    reply.headers["content-type"] = "audio/pcm" if raw else "audio/wav"
    return reply


SUBTITLES = ("srt", "vtt")


def subtitles(fmt: str, text: str, seconds: float) -> str:
    """A transcription as OpenAI's plain-text formats give it: the text, or one SRT / WebVTT cue."""
    if fmt == "text":
        return text + "\n"
    end = max(1, math.ceil(seconds))
    if fmt == "srt":
        return f"1\n00:00:00,000 --> 00:00:{end:02d},000\n{text}\n\n"
    return f"WEBVTT\n\n00:00:00.000 --> 00:00:{end:02d}.000\n{text}\n\n"


def _transcription(dep: Deployment, body: dict[str, Any]) -> StaticReply:
    upload = body.get("file")
    name = str(upload.get("filename") or "audio") if isinstance(upload, dict) else "audio"
    seconds = upload.get("duration_s") if isinstance(upload, dict) else None
    seconds = float(seconds) if isinstance(seconds, (int, float)) else 1.0
    text = dep.mock_response if dep.mock_response is not None else f"This is a fake transcription of {name}."
    fmt = body.get("response_format") or "json"
    usage = {"type": "duration", "seconds": max(1, math.ceil(seconds))}
    if fmt == "json":
        return StaticReply(200, orjson.dumps({"text": text, "usage": usage}))
    if fmt in SUBTITLES or fmt == "text":
        return StaticReply(200, subtitles(fmt, text, seconds).encode(), content_type="text/plain; charset=utf-8")
    if fmt != "verbose_json":
        raise BadRequestError(f"response_format {fmt!r}: the fake provider answers json, text, srt, vtt and "
                              "verbose_json", param="response_format")
    segment = {"id": 0, "seek": 0, "start": 0.0, "end": seconds, "text": text, "tokens": [], "temperature": 0.0,
               "avg_logprob": 0.0, "compression_ratio": 1.0, "no_speech_prob": 0.0}
    out = {"task": "transcribe", "language": body.get("language") or "english", "duration": seconds, "text": text,
           "segments": [segment], "usage": usage}
    return StaticReply(200, orjson.dumps(out))


def _moderation(dep: Deployment, body: dict[str, Any]) -> StaticReply:
    inputs = body.get("input")
    items = [inputs] if isinstance(inputs, str) else list(inputs or [])
    results = []
    for item in items:
        text = item if isinstance(item, str) else str((item or {}).get("text") or "") if isinstance(item, dict) else ""
        words = set(re.findall(r"[a-z-]+", text.lower()))
        hits = {cat for cat, flagged in FLAGGED_WORDS.items() if words & set(flagged)}
        results.append({
            "flagged": bool(hits),
            "categories": {c: c in hits for c in MODERATION_CATEGORIES},
            "category_scores": {c: 0.9 if c in hits else 0.001 for c in MODERATION_CATEGORIES},
            "category_applied_input_types": {c: ["text"] for c in MODERATION_CATEGORIES},
        })
    return StaticReply(200, orjson.dumps({"id": _ident("modr"), "model": dep.upstream_model, "results": results}))


def _rerank(dep: Deployment, body: dict[str, Any]) -> StaticReply:
    query = set(re.findall(r"\w+", str(body.get("query") or "").lower()))
    documents = body.get("documents") if isinstance(body.get("documents"), list) else []
    texts = [d.get("text", "") if isinstance(d, dict) else str(d) for d in documents]
    scored = []
    for i, text in enumerate(texts):
        words = set(re.findall(r"\w+", text.lower()))
        overlap = len(query & words) / (len(query) or 1)
        scored.append((round(min(0.999, 0.05 + 0.9 * overlap) - i * 1e-4, 6), i))
    scored.sort(key=lambda s: (-s[0], s[1]))
    top = min(_count(body.get("top_n"), len(scored) or 1, 10_000, "top_n"), len(scored))
    results = []
    for score, index in scored[:top]:
        result: dict[str, Any] = {"index": index, "relevance_score": score}
        if body.get("return_documents"):
            result["document"] = {"text": texts[index]}
        results.append(result)
    out = {"id": str(uuid.uuid4()), "results": results,
           "meta": {"billed_units": {"search_units": max(1, math.ceil(len(texts) / 100))}}}
    return StaticReply(200, orjson.dumps(out))


MEDIA_REPLIES = {"aimage_generation": _image, "aspeech": _speech, "atranscription": _transcription,
                 "amoderation": _moderation, "arerank": _rerank}
