"""The native `ollama/` and `ollama_chat/` providers: Ollama's own API, where users point LiteLLM.

LiteLLM users write `api_base: http://host:11434` (no `/v1`) for both prefixes: Ollama serves its
OpenAI-compatible routes only under `/v1`, so the OpenAI wire format cannot be used there. This
provider speaks Ollama's native API instead:

- chat (both prefixes) -> `POST /api/chat`. LiteLLM's `ollama/` once flattened the messages into a
  prompt for `/api/generate`, losing roles, tools and images; its own docs recommend `ollama_chat/`.
  Both prefixes here use `/api/chat`, so both get the model's chat template, tools and images.
- text completions -> `POST /api/generate` (one prompt per call).
- embeddings -> `POST /api/embed` (a string or a list of strings).

`stream` is always sent explicitly (Ollama streams unless told not to). Streams are NDJSON, one
JSON object per line, the last with `done: true` and the token counts; they become
`chat.completion.chunk` (or `text_completion`) chunks, a finish chunk and a usage chunk.

A base ending in `/v1` (configs written for the OpenAI-compatible route) is accepted: the `/v1` is
dropped. `api_key`, when set, goes as `Authorization: Bearer` (Ollama behind an authenticating
proxy); Ollama itself needs none, and no environment variable is read for it.

The translation is in ollama_request.py (requests) and ollama_reply.py (replies and streams).
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.core.providers.ollama_reply import OllamaStream, error_text, translate_reply
from gateway.core.providers.ollama_request import OPTION_OF, PASS, PREFIX, translate_request
from gateway.errors import GatewayError
from gateway.provider import Provider, ProviderError, UpstreamRequest

PATHS = {"acompletion": "/api/chat", "atext_completion": "/api/generate", "aembedding": "/api/embed"}
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 429: "rate_limit_error"}


def base_url(api_base: str) -> str:
    """The deployment's base as Ollama's root: without a trailing `/` or `/v1`."""
    base = api_base.rstrip("/")
    if base.endswith("/v1"):
        base = base[:-3]
    return base


# -- the provider -----------------------------------------------------------------------------
_TRANSLATED = {"format", "options", "response_format", "reasoning_effort", "thinking", *OPTION_OF}
#: The request fields translated to /api/chat, /api/generate and /api/embed (and Ollama's own).
SUPPORTED = {
    "acompletion": frozenset({*_TRANSLATED, "tools", "functions", "tool_choice", *PASS["acompletion"]}),
    "atext_completion": frozenset({*_TRANSLATED, *PASS["atext_completion"]}),
    "aembedding": frozenset({"options", *PASS["aembedding"]}),
}


class Ollama(Provider):
    """Ollama's native API, for `ollama/` and `ollama_chat/` (one instance per prefix)."""

    display_name = "Ollama"
    default_api_base = "http://localhost:11434"
    api_key_env = ()
    call_types = frozenset(PATHS)
    supported_params = SUPPORTED
    passthrough = False

    def __init__(self, name: str) -> None:
        self.name = name  # type: ignore[misc]  # per instance: one class serves both prefixes

    def build_request(self, dep: Any, call_type: str, body: dict[str, Any], stream: bool) -> UpstreamRequest:
        out = translate_request(dep, call_type, body, stream)
        headers = {"content-type": "application/json", "accept": "application/json"}
        if dep.api_key:
            headers["authorization"] = f"Bearer {dep.api_key}"
        if dep.basic_auth:  # userinfo in api_base wins, as LiteLLM's HTTP client does
            headers["authorization"] = dep.basic_auth
        if dep.extra_headers:
            headers.update(dep.extra_headers)
        return UpstreamRequest(base_url(dep.api_base) + PATHS[call_type], headers, orjson.dumps(out))

    def parse_reply(self, dep: Any, call_type: str, data: bytes) -> dict[str, Any]:
        reply = orjson.loads(data)
        if not isinstance(reply, dict):
            raise ValueError("not a JSON object")
        if "error" in reply:
            raise GatewayError(PREFIX + dep.redact(error_text(reply["error"])), status=502, type="api_error")
        return translate_reply(call_type, reply, dep.upstream_model)

    def parse_error(self, dep: Any, status: int, data: bytes) -> ProviderError:
        message: str | None = None
        try:
            reply = orjson.loads(data)
        except orjson.JSONDecodeError:
            message = data.decode(errors="replace").strip()[:500] or None
        else:
            if isinstance(reply, dict) and reply.get("error"):
                message = error_text(reply["error"])
        return ProviderError(message or f"upstream returned HTTP {status}", ERROR_TYPES.get(status, "api_error"))

    def stream(self, dep: Any, call_type: str) -> OllamaStream:
        return OllamaStream(dep.upstream_model, call_type == "acompletion")


def providers() -> list[Provider]:
    return [Ollama("ollama"), Ollama("ollama_chat")]
