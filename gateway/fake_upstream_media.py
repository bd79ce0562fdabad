"""The fake upstream's other routes: images, speech, transcriptions (multipart form data),
moderations and a Cohere-shaped rerank (fake_upstream.py's `FakeUpstream` mixes this in).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json as jsonlib
import re
import time
import uuid
import wave
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from gateway.fake_upstream_script import SCRIPT_FIELD, Headers, RecordedRequest, Script, ScriptError


class MediaHandlers:
    """`/images/generations`, `/audio/speech`, `/audio/transcriptions`, `/moderations` and `/rerank`.
    A mixin: it uses the server's defaults (`reply`, `usage`, `delay`, ...), its `requests` and
    `scripts`, its `root`, and `_request_script`."""

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
        s, failure = await self._scripted(s)
        if failure is not None:
            return failure
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
