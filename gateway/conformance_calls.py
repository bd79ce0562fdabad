"""One call of the plugin conformance check (conformance.py): POST a route, streamed or not, and
read back the reply's text or its error, in any of the APIs' shapes (OpenAI's, Anthropic's
Messages, OpenAI's Responses, a transcription), including a stream's SSE error event.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterator

from gateway.conformance_shapes import AUDIO, TRANSCRIPTION_PATHS


def _sse_events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    for line in lines:
        if line.startswith("data:"):
            data = line[5:].strip()
            if data and data != "[DONE]":
                try:
                    event = json.loads(data)
                except ValueError:
                    continue
                if isinstance(event, dict):
                    yield event


def _reply_text(data: dict[str, Any]) -> str:
    """The text of a reply or of one stream event, in any of the APIs' shapes."""
    parts = []
    for choice in data.get("choices") or ():  # OpenAI: a reply or a chunk
        if not isinstance(choice, dict):
            continue
        message = choice.get("message") or choice.get("delta") or {}
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            parts.append(content)
        if isinstance(choice.get("text"), str):
            parts.append(choice["text"])
    kind = data.get("type")
    if kind == "message":  # Anthropic's reply
        parts += [b.get("text") or "" for b in data.get("content") or () if isinstance(b, dict) and b.get("type") == "text"]
    elif kind == "content_block_delta":  # Anthropic's stream
        delta = data.get("delta") or {}
        if delta.get("type") == "text_delta":
            parts.append(delta.get("text") or "")
    elif kind == "response.output_text.delta":  # Responses' stream
        parts.append(data.get("delta") or "")
    if isinstance(data.get("text"), str) and not {"choices", "type", "object"} & set(data):  # a transcription
        parts.append(data["text"])
    if data.get("object") == "response":  # Responses' reply
        for item in data.get("output") or ():
            for part in (item.get("content") or ()) if isinstance(item, dict) else ():
                if isinstance(part, dict) and part.get("type") == "output_text":
                    parts.append(part.get("text") or "")
    return "".join(parts)


def _stream_error(event: dict[str, Any]) -> str | None:
    """The error a stream event carries, in any of the APIs' shapes (None: not an error)."""
    if "error" in event and event.get("type") != "response.failed":
        return _error_message(event, str(event["error"]))
    if event.get("type") == "error":  # Responses' error event: code and message at the top
        return str(event.get("message") or event)[:200]
    if event.get("type") == "response.failed":
        failed = event.get("response") or {}
        return _error_message(failed, str(failed.get("error") or event))
    return None


@dataclass
class CallResult:
    """What one call came back with: its status, and its text or its error."""

    status: int
    text: str = ""
    error: str = ""
    sse_error: bool = False

    @property
    def failed(self) -> bool:
        return self.status >= 400 or bool(self.error)

    def __str__(self) -> str:
        if self.sse_error:
            return f"the stream ended with an SSE error event: {self.error}"
        return f"HTTP {self.status}: {self.error}"


def _error_message(data: Any, raw: str) -> str:
    error = data.get("error") if isinstance(data, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return str(message if message is not None else raw)[:200]


def call(http: Any, url: str, body: dict[str, Any], headers: dict[str, str], stream: bool) -> CallResult:
    """POST one call; the reply's text, or its error (status, or the stream's SSE error event).
    A transcription goes as multipart form data, with an audio file."""
    if url.endswith(TRANSCRIPTION_PATHS):
        sent: dict[str, Any] = {"data": {k: str(v) for k, v in body.items()},
                                "files": {"file": ("conformance.wav", AUDIO, "audio/wav")}}
    else:
        sent = {"json": body}
    with http.stream("POST", url, headers=headers, **sent) as resp:
        if resp.status_code >= 400 or not stream:
            resp.read()
            try:
                data = resp.json()
            except ValueError:
                data = None
            if resp.status_code >= 400:
                return CallResult(resp.status_code, error=_error_message(data, resp.text) or "not a JSON reply")
            if not isinstance(data, dict):  # audio: no text
                return CallResult(resp.status_code)
            return CallResult(resp.status_code, text=_reply_text(data))
        text: list[str] = []
        for event in _sse_events(resp.iter_lines()):
            error = _stream_error(event)
            if error is not None:
                return CallResult(resp.status_code, error=error, sse_error=True)
            text.append(_reply_text(event))
        return CallResult(resp.status_code, text="".join(text))


def split_reply(text: str) -> tuple[str, list[str]]:
    """A reply with `text` inside, and its stream pieces: `text` cut in the middle, across two chunks."""
    cut = max(1, len(text) // 2)
    pieces = ["Here it is: ", text[:cut], text[cut:], " and that is all."]
    return "".join(pieces), pieces
