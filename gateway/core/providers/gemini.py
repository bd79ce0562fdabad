"""The native `gemini/` provider: Google AI Studio's Gemini API (generateContent) with an API key.

    POST {base}/v1beta/models/{model}:generateContent                   a chat completion
    POST {base}/v1beta/models/{model}:streamGenerateContent?alt=sse     a streamed one (SSE events)
    POST {base}/v1beta/models/{model}:batchEmbedContents                embeddings

The key goes in the `x-goog-api-key` header, never in the URL, so no log line or error shows it.

The translation between OpenAI's shapes and generateContent's is in plain functions that know no
URL and no credentials (`chat_request` in gemini_request.py; `chat_reply`, `GeminiStream` and
`error_of` in gemini_reply.py; `embed_request`, `embed_reply` here), so that a Vertex AI provider
(same wire format, other URLs, OAuth) can reuse them as they are. `docs/providers/gemini.md` lists
what is translated.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import orjson

from gateway.core.providers.gemini_reply import GeminiStream, chat_reply, error_of, usage_of
from gateway.core.providers.gemini_request import chat_request, thinking_config
from gateway.errors import BadRequestError
from gateway.provider import Provider, ProviderError, UpstreamRequest

#: Names the translation modules define, used from here by tests and the Vertex AI provider.
__all__ = ["CHAT_PARAMS", "EMBED_PARAMS", "SUPPORTED", "Gemini", "GeminiStream", "chat_reply", "chat_request",
           "embed_reply", "embed_request", "error_of", "model_url", "providers", "thinking_config", "usage_of"]


# -- embeddings ---------------------------------------------------------------------------------

def embed_request(body: dict[str, Any], resource: str) -> dict[str, Any]:
    """An OpenAI embeddings request as a BatchEmbedContentsRequest; `resource` is `models/<model>`."""
    inputs = body["input"]
    items = [inputs] if isinstance(inputs, str) else inputs
    if not items or not all(isinstance(t, str) for t in items):
        raise BadRequestError("GeminiException - input must be a string or a non-empty list of strings "
                              "(Gemini embeds text, not token arrays)", param="input")
    extra: dict[str, Any] = {}
    if body.get("dimensions") is not None:
        extra["outputDimensionality"] = body["dimensions"]
    task = body.get("task_type") or body.get("taskType")
    if task:
        extra["taskType"] = task
    return {"requests": [{"model": resource, "content": {"parts": [{"text": t}]}, **extra} for t in items]}


def embed_reply(data: dict[str, Any], model: str) -> dict[str, Any]:
    """A BatchEmbedContentsResponse (or EmbedContentResponse) as an OpenAI embedding list. Gemini
    reports tokens only in newer replies (usageMetadata); without them the gateway estimates."""
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    items = data["embeddings"] if "embeddings" in data else [data["embedding"]]
    reply: dict[str, Any] = {"object": "list", "model": model,
                             "data": [{"object": "embedding", "index": i, "embedding": e["values"]}
                                      for i, e in enumerate(items)]}
    meta = data.get("usageMetadata")
    if isinstance(meta, dict) and meta.get("promptTokenCount") is not None:
        reply["usage"] = {"prompt_tokens": meta["promptTokenCount"],
                          "total_tokens": meta.get("totalTokenCount") or meta["promptTokenCount"]}
    return reply


# -- URLs ---------------------------------------------------------------------------------------

VERSION = re.compile(r"/v\d+(?:(?:alpha|beta)\d*)?$")
MODEL_PATH = re.compile(r"/(?:models|tunedModels)/([^/:]+)(?::[A-Za-z]+)?$")


def model_url(api_base: str, model: str) -> tuple[str, str | None]:
    """`{base}/.../models/{model}` (the methods are appended per call) from an api_base as users
    write it, and a key found in its query (moved to the header). Raises ValueError when the base
    names another model.

    - the host alone (Google's, a proxy's): `/v1beta` is added;
    - a base ending in a version (`/v1beta`, `/v1`) or in OpenAI-compatible `/v1beta/openai`;
    - a base that is already a models path (`.../models`, `.../models/<model>[:method]`), as older
      LiteLLM versions and Vertex express mode (`aiplatform.googleapis.com/v1/publishers/google/models`)
      are written;
    - any other path is a proxy's prefix that ends where Google's version ends (as LiteLLM reads it).
    """
    parts = urlsplit(api_base)
    query = parse_qsl(parts.query, keep_blank_values=True)
    key = next((v for k, v in query if k == "key"), None)
    query = [(k, v) for k, v in query if k not in ("key", "alt")]
    path = parts.path.rstrip("/")
    if path.endswith("/openai"):
        path = path[:-7]
    vertex = parts.hostname is not None and parts.hostname.endswith("aiplatform.googleapis.com")
    named = MODEL_PATH.search(path)
    if model.startswith("models/"):
        model = model[7:]
    if named:
        if named.group(1) != model:
            raise ValueError(f"api_base ends in a path for model {named.group(1)!r} but the deployment calls "
                             f"{model!r}: end api_base before /models/ (e.g. .../v1beta)")
        root = path[:named.start()]
    elif path.endswith("/models"):
        root = path[:-7]
    elif VERSION.search(path):
        root = path + "/publishers/google" if vertex else path
    elif path.endswith("/publishers/google"):
        root = path
    elif not path:
        root = "/v1/publishers/google" if vertex else "/v1beta"
    else:
        root = path
    suffix = model if model.startswith("tunedModels/") else "models/" + model
    url = urlunsplit((parts.scheme, parts.netloc, f"{root}/{quote(suffix)}", "", ""))
    return (url + ("?" + urlencode(query) if query else "")), key


# -- the provider -------------------------------------------------------------------------------

#: The request fields translated to generateContent / embedContent (and Gemini's own).
CHAT_PARAMS = frozenset({"temperature", "top_p", "top_k", "n", "seed", "presence_penalty", "frequency_penalty",
                         "logprobs", "top_logprobs", "max_tokens", "max_completion_tokens", "stop",
                         "response_format", "thinking", "reasoning_effort", "tools", "functions", "tool_choice",
                         "safety_settings", "safetySettings", "cached_content", "cachedContent"})
EMBED_PARAMS = frozenset({"dimensions", "task_type"})
SUPPORTED = {"acompletion": CHAT_PARAMS, "aembedding": EMBED_PARAMS}


class Gemini(Provider):
    name = "gemini"
    display_name = "Gemini"
    default_api_base = "https://generativelanguage.googleapis.com"
    api_key_env = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    api_base_env = ("GEMINI_API_BASE",)
    call_types = frozenset({"acompletion", "aembedding"})
    passthrough = False
    supported_params = SUPPORTED

    def __init__(self) -> None:
        self._urls: dict[int, tuple[Any, str, str]] = {}  # id(dep) -> (dep, model URL, query)

    def _url(self, dep: Any) -> tuple[str, str]:
        cached = self._urls.get(id(dep))
        if cached is None or cached[0] is not dep:
            self.check(dep)
            cached = self._urls[id(dep)]
        return cached[1], cached[2]

    def check(self, dep: Any) -> None:
        url, key = model_url(dep.api_base, dep.upstream_model)
        if key and not dep.api_key:
            dep.api_key = key  # `?key=` in api_base goes in the header instead, never in a URL
        base, _, query = url.partition("?")
        self._urls[id(dep)] = (dep, base, query)

    def headers(self, dep: Any) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if dep.api_key:
            headers["x-goog-api-key"] = dep.api_key
        if dep.basic_auth:
            headers["authorization"] = dep.basic_auth
        if dep.extra_headers:
            headers.update(dep.extra_headers)
        return headers

    def build_request(self, dep: Any, call_type: str, body: dict[str, Any], stream: bool) -> UpstreamRequest:
        url, query = self._url(dep)
        if call_type == "aembedding":
            model = dep.upstream_model[7:] if dep.upstream_model.startswith("models/") else dep.upstream_model
            payload = embed_request(body, model if model.startswith("tunedModels/") else "models/" + model)
            url += ":batchEmbedContents"
        else:
            payload = chat_request(body, dep.upstream_model)
            url += ":streamGenerateContent?alt=sse" if stream else ":generateContent"
        if query:
            url += ("&" if stream and call_type != "aembedding" else "?") + query
        return UpstreamRequest(url, self.headers(dep), orjson.dumps(payload))

    def parse_reply(self, dep: Any, call_type: str, data: bytes) -> dict[str, Any]:
        if call_type == "aembedding":
            return embed_reply(orjson.loads(data), dep.upstream_model)
        return chat_reply(orjson.loads(data), dep.upstream_model)

    def parse_error(self, dep: Any, status: int, data: bytes) -> ProviderError:
        return error_of(status, data)

    def stream(self, dep: Any, call_type: str) -> GeminiStream:
        return GeminiStream(dep.upstream_model)


def providers() -> list[Provider]:
    return [Gemini()]
