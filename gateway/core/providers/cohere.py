"""The native `cohere/` provider: OpenAI chat and embedding calls, and rerank, over Cohere's API v2.

- chat -> `POST {api_base}/v2/chat` (`stream: true` for streams: SSE events, one JSON object each);
- embeddings -> `POST {api_base}/v2/embed`;
- rerank -> `POST {api_base}/v2/rerank` (`cohere_rerank.py`).

`cohere_chat/` (the prefix LiteLLM's own docs use for Cohere's v2 chat) is the same provider, and
`cohere_chat/v1/<model>` (LiteLLM's way to ask for the v1 API) is served through v2 too. The key
goes as `Authorization: Bearer`, from the deployment's `api_key`, else `COHERE_API_KEY`, else
`CO_API_KEY` (the official SDK's variable). `api_base` defaults to `https://api.cohere.com`; a base
written with a trailing `/v1`, `/v2` or a whole endpoint path (`.../v1/chat`) means the same host.

The translation is in cohere_request.py (requests, docs/providers/cohere.md lists every field) and
cohere_reply.py (replies, usage and streams); rerank is cohere_rerank.py's.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import orjson

from gateway.core.providers import cohere_rerank
from gateway.core.providers.cohere_reply import CohereStream, translate_embeddings, translate_reply
from gateway.core.providers.cohere_request import NATIVE_CHAT, NATIVE_EMBED, SAMPLING, translate_chat, translate_embed
from gateway.provider import Provider, ProviderError, UpstreamRequest

PATHS = {"acompletion": "/v2/chat", "aembedding": "/v2/embed", "arerank": cohere_rerank.PATH}
#: What users append to the base URL, all meaning Cohere's root.
BASE_SUFFIXES = ("/v2/chat", "/v1/chat", "/v2/embed", "/v1/embed", "/v2/rerank", "/v1/rerank", "/v2", "/v1")
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "insufficient_quota",
               403: "permission_error", 404: "not_found_error", 422: "invalid_request_error",
               429: "rate_limit_error", 498: "authentication_error", 504: "timeout"}


@lru_cache(maxsize=256)
def base_url(api_base: str) -> str:
    """The deployment's base as Cohere's root: `https://api.cohere.com/v2/chat` -> `https://api.cohere.com`."""
    base = api_base.rstrip("/")
    for suffix in BASE_SUFFIXES:
        if base.endswith(suffix):
            return base[: -len(suffix)]
    return base


def _error_text(body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    message = body.get("message")
    if isinstance(message, str) and message:
        return message
    err = body.get("error")
    if isinstance(err, dict) and isinstance(err.get("message"), str) and err["message"]:
        return err["message"]
    if isinstance(err, str) and err:
        return err
    return None


def _model_of(dep: Any) -> str:
    model = dep.upstream_model
    return model[3:] if model.startswith("v1/") else model


# -- the provider -----------------------------------------------------------------------------
#: The request fields translated to v2 chat / embed (and Cohere's own, passed as they are).
SUPPORTED = {
    "acompletion": frozenset({s for s, _ in SAMPLING} | set(NATIVE_CHAT) | {
        "stop", "n", "tools", "functions", "tool_choice", "response_format", "reasoning_effort", "thinking"}),
    "aembedding": frozenset({"dimensions", *NATIVE_EMBED}),
    "arerank": cohere_rerank.SUPPORTED,
}


class Cohere(Provider):
    name = "cohere"
    aliases = ("cohere_chat",)
    display_name = "Cohere"
    default_api_base = "https://api.cohere.com"
    api_key_env = ("COHERE_API_KEY", "CO_API_KEY")
    api_base_env = ("COHERE_API_BASE",)  # as LiteLLM reads it
    call_types = frozenset(PATHS)
    supported_params = SUPPORTED
    passthrough = False

    def build_request(self, dep: Any, call_type: str, body: dict[str, Any], stream: bool) -> UpstreamRequest:
        if call_type == "acompletion":
            if body["model"].startswith("v1/"):  # LiteLLM's `cohere_chat/v1/<model>`: the same model, via v2
                body = {**body, "model": body["model"][3:]}
            payload = translate_chat(dep, body, stream)
        elif call_type == "arerank":
            payload = cohere_rerank.translate_request(body)
        else:
            payload = translate_embed(dep, body)
        if dep.extra_body:  # LiteLLM sends a deployment's extra_body to the provider as it is
            payload.update(dep.extra_body)
        headers = {"content-type": "application/json",
                   "accept": "text/event-stream" if stream and call_type == "acompletion" else "application/json"}
        if dep.api_key:
            headers["authorization"] = f"Bearer {dep.api_key}"
        if dep.basic_auth:  # userinfo in api_base: a reverse proxy's credentials
            headers["authorization"] = dep.basic_auth
        if dep.extra_headers:
            headers.update(dep.extra_headers)
        return UpstreamRequest(base_url(dep.api_base) + PATHS[call_type], headers, orjson.dumps(payload))

    def parse_reply(self, dep: Any, call_type: str, data: bytes) -> dict[str, Any]:
        reply = orjson.loads(data)
        if not isinstance(reply, dict):
            raise ValueError("not a JSON object")
        model = _model_of(dep)
        if call_type == "arerank":
            return cohere_rerank.translate_reply(reply)
        if call_type == "aembedding":
            return translate_embeddings(reply, model)
        return translate_reply(reply, model)

    def parse_error(self, dep: Any, status: int, data: bytes) -> ProviderError:
        try:
            message = _error_text(orjson.loads(data))
        except orjson.JSONDecodeError:
            message = None
        if message is None:
            message = data.decode(errors="replace").strip()[:500] or f"upstream returned HTTP {status}"
        default = "api_error" if status >= 500 else "invalid_request_error"
        return ProviderError(message, ERROR_TYPES.get(status, default))

    def stream(self, dep: Any, call_type: str) -> CohereStream:
        return CohereStream(_model_of(dep))


def providers() -> list[Provider]:
    return [Cohere()]
