"""The native `anthropic/` provider: OpenAI chat calls over Anthropic's Messages API (`POST /v1/messages`).

Requests are translated as LiteLLM's Anthropic config translates them (docs/providers/anthropic.md
lists what is and is not): system messages become the top-level `system`, tool calls and results
become `tool_use` / `tool_result` blocks, `max_tokens` defaults to 4096 because Anthropic requires
it, and what a model accepts follows its generation, read off its id as LiteLLM's version gate reads
it: before Claude 4.6 `reasoning_effort` is a thinking budget and a JSON `response_format` is one
forced tool (`json_tool_call`) whose input comes back as the reply's text; from 4.6 they are
adaptive thinking with `output_config.effort` and native `output_config.format`; from 4.7 sampling
parameters are not sent (the API refuses them). OpenAI parameters Anthropic has no use for (`n`,
penalties, `seed`, `logprobs`, `stream_options`, ...) are never sent.

Replies come back as `chat.completion`s whose usage counts cache reads and writes in
`prompt_tokens` (`prompt_tokens_details.cached_tokens` = the reads), as LiteLLM counts them;
thinking blocks surface as `reasoning_content` and `thinking_blocks`. Streams are Anthropic's SSE
events, turned into `chat.completion.chunk`s as the bytes arrive, ending with a finish chunk and a
usage chunk (`choices: []`) so the call is billed.

The translation is in anthropic_content.py (messages), anthropic_request.py (the rest of the body)
and anthropic_reply.py (replies and streams); this module is the endpoint, its headers and errors.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.core.providers.anthropic_reply import AnthropicStream, translate_reply
from gateway.core.providers.anthropic_request import NATIVE_PARAMS, translate_request
from gateway.provider import Provider, ProviderError, UpstreamRequest

#: Names the translation modules define, used from here by the Vertex AI provider and the tests.
__all__ = ["API_VERSION", "CHAT_PARAMS", "Anthropic", "AnthropicStream", "messages_url", "providers",
           "translate_reply", "translate_request"]

API_VERSION = "2023-06-01"
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
               504: "timeout_error", 529: "overloaded_error"}


def messages_url(base: str) -> str:
    """`https://api.anthropic.com`, `.../v1` and `.../v1/messages` all mean the same endpoint."""
    base = base.rstrip("/")
    if base.endswith("/v1/messages"):
        return base
    if base.endswith("/v1"):
        return base + "/messages"
    return base + "/v1/messages"


# -- the provider ------------------------------------------------------------------------------
def _requested_betas(value: Any) -> set[str]:
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list):
        return set()
    return {b.strip() for b in value if isinstance(b, str) and b.strip() and "\r" not in b and "\n" not in b}


#: The chat request fields translated to the Messages API (and Anthropic's own, passed as they are).
CHAT_PARAMS = frozenset({"max_tokens", "max_completion_tokens", "temperature", "top_p", "stop", "tools",
                         "tool_choice", "parallel_tool_calls", "web_search_options", "response_format",
                         "service_tier", "thinking", "reasoning_effort", "output_config", "anthropic_beta",
                         *NATIVE_PARAMS})


class Anthropic(Provider):
    name = "anthropic"
    display_name = "Anthropic"
    default_api_base = "https://api.anthropic.com"
    api_key_env = ("ANTHROPIC_API_KEY",)
    api_base_env = ("ANTHROPIC_API_BASE", "ANTHROPIC_BASE_URL")  # as LiteLLM reads them
    call_types = frozenset({"acompletion"})
    passthrough = False
    supported_params = {"acompletion": CHAT_PARAMS}

    def build_request(self, dep: Any, call_type: str, body: dict[str, Any], stream: bool) -> UpstreamRequest:
        # `anthropic_beta`: betas the client asked for (the `anthropic-beta` header on /v1/messages,
        # or the field), sent with the ones the request's features need
        betas = _requested_betas(body.get("anthropic_beta"))
        payload = translate_request(body, stream, betas)
        extra_body = getattr(dep, "extra_body", None)
        if extra_body:  # LiteLLM sends a deployment's extra_body to the provider as it is
            payload.update(extra_body)
        headers = {"content-type": "application/json", "accept": "application/json", "anthropic-version": API_VERSION}
        if dep.api_key:
            headers["x-api-key"] = dep.api_key
        if dep.basic_auth:  # userinfo in api_base: a reverse proxy's credentials, as LiteLLM's client sends them
            headers["authorization"] = dep.basic_auth
        if betas:
            headers["anthropic-beta"] = ",".join(sorted(betas))
        if dep.extra_headers:
            headers.update(dep.extra_headers)
        return UpstreamRequest(messages_url(dep.api_base), headers, orjson.dumps(payload))

    def parse_reply(self, dep: Any, call_type: str, data: bytes) -> dict[str, Any]:
        return translate_reply(orjson.loads(data))

    def parse_error(self, dep: Any, status: int, data: bytes) -> ProviderError:
        default = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        try:
            body = orjson.loads(data)
        except orjson.JSONDecodeError:
            body = None
        if isinstance(body, dict):
            err = body.get("error")
            if isinstance(err, dict) and isinstance(err.get("message"), str) and err["message"]:
                etype = err.get("type")
                return ProviderError(err["message"], etype if isinstance(etype, str) and etype else default)
            if isinstance(err, str) and err:
                return ProviderError(err, default)
            if isinstance(body.get("message"), str) and body["message"]:
                return ProviderError(body["message"], default)
        text = data.decode(errors="replace").strip()[:500]
        return ProviderError(text or f"upstream returned HTTP {status}", default)

    def stream(self, dep: Any, call_type: str) -> AnthropicStream:
        return AnthropicStream()


def providers() -> list[Provider]:
    return [Anthropic()]
