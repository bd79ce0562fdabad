"""What the fake upstream records and what it can be told: `RecordedRequest` (one request received,
with case-insensitive `Headers`) and `Script` (what to answer to one request, checked when it comes
as JSON with the request). The server is fake_upstream.py's `FakeUpstream`.
"""

from __future__ import annotations

import json as jsonlib
from dataclasses import dataclass, field, fields
from typing import Any

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
