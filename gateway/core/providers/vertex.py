"""The native `vertex_ai/` provider: Google Vertex AI, Gemini and Vertex-hosted Claude, with OAuth2.

    {host}/v1/projects/{project}/locations/{location}/publishers/google/models/{model}:generateContent
        :streamGenerateContent?alt=sse (streams), :predict (embeddings: text-embedding-*, gemini-embedding-*)
    {host}/v1/projects/{project}/locations/{location}/publishers/anthropic/models/{model}:rawPredict
        :streamRawPredict (streams): the Messages API body minus `model`, plus
        `anthropic_version: "vertex-2023-10-16"`
    {host}/v1/projects/{project}/locations/{location}/endpoints/{id}:generateContent   (a numeric model id:
        a tuned Gemini's endpoint)

`{host}` is `https://{location}-aiplatform.googleapis.com` (`https://aiplatform.googleapis.com` for
`location: global`); an `api_base` replaces it (docs/providers/vertex_ai.md lists its forms). The
translation is the `gemini` and `anthropic` providers' own functions; only URLs are here, and the
OAuth2 bearer tokens come from vertex_auth.py's `TokenSource`.
"""

from __future__ import annotations

import os
import re
import threading
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import orjson

from gateway.core.providers import anthropic, gemini
from gateway.core.providers.vertex_auth import PREFIX, SCOPE, TokenSource, load_credentials
from gateway.errors import BadRequestError
from gateway.provider import Provider, ProviderError, UpstreamRequest

#: Names vertex_auth.py defines, used from here by the tests.
__all__ = ["SCOPE", "VertexAI", "model_url", "providers"]

ANTHROPIC_VERSION = "vertex-2023-10-16"
DEFAULT_LOCATION = "us-central1"
PROJECT_ENV = ("VERTEXAI_PROJECT", "VERTEX_PROJECT", "GOOGLE_CLOUD_PROJECT")
LOCATION_ENV = ("VERTEXAI_LOCATION", "VERTEX_LOCATION")
ENDPOINT_ID = re.compile(r"^\d+$")
VERSION_PATH = re.compile(r"/v\d+(?:(?:alpha|beta)\d*)?$")


def _env(names: tuple[str, ...]) -> str | None:
    return next((os.environ[n] for n in names if os.environ.get(n)), None)


# -- URLs ---------------------------------------------------------------------------------------

def vertex_host(location: str) -> str:
    return "https://aiplatform.googleapis.com" if location == "global" else f"https://{location}-aiplatform.googleapis.com"


def model_path(project: str, location: str, model: str) -> tuple[str, str]:
    """(`projects/.../models/{model}` or `.../endpoints/{id}`, the kind: gemini | anthropic | endpoint)."""
    root = f"projects/{quote(project, safe='')}/locations/{quote(location, safe='')}"
    if ENDPOINT_ID.match(model):
        return f"{root}/endpoints/{model}", "endpoint"
    if model.startswith("claude"):
        return f"{root}/publishers/anthropic/models/{quote(model, safe='@.-_')}", "anthropic"
    return f"{root}/publishers/google/models/{quote(model, safe='@.-_')}", "gemini"


def model_url(api_base: str | None, project: str, location: str, model: str) -> tuple[str, str]:
    """The URL to which `:method` is appended, and the model's kind. `api_base` (as written; None:
    Google's host for the location) may be a host (the standard path is added), end in a version
    (`/v1`, `/v1beta1`: `projects/...` is added), be the whole model path (as LiteLLM appends
    `:method` to it), or be a proxy's prefix (`/v1/projects/...` is added after it)."""
    path, kind = model_path(project, location, model)
    if not api_base:
        return f"{vertex_host(location)}/v1/{path}", kind
    parts = urlsplit(api_base)
    base = parts.path.rstrip("/")
    if re.search(r"/(models|endpoints)/[^/]+$", base):
        root = base.split(":", 1)[0]
    elif VERSION_PATH.search(base):
        root = f"{base}/{path}"
    else:
        root = f"{base}/v1/{path}"
    return urlunsplit((parts.scheme, parts.netloc, root, "", "")), kind


# -- embeddings (:predict) ----------------------------------------------------------------------

def predict_embed_request(body: dict[str, Any]) -> dict[str, Any]:
    inputs = body["input"]
    items = [inputs] if isinstance(inputs, str) else inputs
    if not items or not all(isinstance(t, str) for t in items):
        raise BadRequestError(f"{PREFIX}input must be a string or a non-empty list of strings", param="input")
    task = body.get("task_type") or body.get("taskType")
    instances = [{"content": t, **({"task_type": task} if task else {})} for t in items]
    out: dict[str, Any] = {"instances": instances}
    if body.get("dimensions") is not None:
        out["parameters"] = {"outputDimensionality": body["dimensions"]}
    return out


def predict_embed_reply(data: dict[str, Any], model: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    tokens = 0
    out = []
    for i, p in enumerate(data["predictions"]):
        emb = p["embeddings"]
        tokens += int((emb.get("statistics") or {}).get("token_count") or 0)
        out.append({"object": "embedding", "index": i, "embedding": emb["values"]})
    return {"object": "list", "model": model, "data": out,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


# -- the provider -------------------------------------------------------------------------------

class _Settings:
    __slots__ = ("dep", "url", "kind", "project", "location", "source")

    def __init__(self, dep: Any, url: str, kind: str, project: str, location: str, source: TokenSource) -> None:
        self.dep, self.url, self.kind, self.project, self.location, self.source = dep, url, kind, project, location, source


def _rebrand(exc: BadRequestError) -> BadRequestError:
    """A translator's refusal, with Vertex's prefix instead of Gemini's or Anthropic's."""
    for old in ("GeminiException - ", "AnthropicException - "):
        if exc.message.startswith(old):
            exc.message = PREFIX + exc.message[len(old):]
            exc.args = (exc.message,)
    return exc


class VertexAI(Provider):
    name = "vertex_ai"
    aliases = ("vertex_ai_beta",)
    display_name = "VertexAI"
    # A placeholder that satisfies `resolve`: the real host depends on the location (see `model_url`).
    default_api_base = "https://aiplatform.googleapis.com"
    call_types = frozenset({"acompletion", "aembedding"})
    passthrough = False

    def __init__(self) -> None:
        self._deps: dict[int, _Settings] = {}
        self._sources: dict[str, TokenSource] = {}
        self._lock = threading.Lock()

    # -- set-up ---------------------------------------------------------------------------------
    def check(self, dep: Any) -> None:
        params = dep.params or {}
        creds_value = params.get("vertex_credentials")
        if creds_value is None:
            path = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
            creds_value = path or None
        key = creds_value if isinstance(creds_value, str) else (
            orjson.dumps(creds_value, option=orjson.OPT_SORT_KEYS).decode() if creds_value is not None else "adc")
        with self._lock:
            source = self._sources.get(key)
        if source is None:
            creds, cred_project, label = load_credentials(creds_value, "vertex_credentials")
            source = TokenSource(creds, label)
            source.project = cred_project
            with self._lock:
                source = self._sources.setdefault(key, source)
        project = (params.get("vertex_project") or params.get("vertex_ai_project") or _env(PROJECT_ENV)
                   or source.project)
        if not project:
            raise ValueError("vertex_project: no project given; set vertex_project (or VERTEXAI_PROJECT), "
                             "or use credentials that name one")
        location = (params.get("vertex_location") or params.get("vertex_ai_location") or _env(LOCATION_ENV)
                    or DEFAULT_LOCATION)
        if not re.match(r"^[a-z0-9-]+$", str(location)):
            raise ValueError(f"vertex_location: {location!r} is not a Google Cloud location (e.g. us-central1)")
        api_base = params.get("api_base") and dep.api_base  # the user's (credentials split off), or Google's
        url, kind = model_url(api_base, str(project), str(location), dep.upstream_model)
        if not api_base:
            dep.display_base = vertex_host(str(location))
        self._deps[id(dep)] = _Settings(dep, url, kind, str(project), str(location), source)
        if source.token is None:
            source.refresh()  # at start-up, in a worker thread: the first call usually finds it ready

    def _settings(self, dep: Any) -> _Settings:
        s = self._deps.get(id(dep))
        if s is None or s.dep is not dep:
            self.check(dep)
            s = self._deps[id(dep)]
        return s

    def params_for(self, dep: Any, call_type: str) -> frozenset[str] | None:
        kind = self._settings(dep).kind
        if kind == "anthropic":
            return anthropic.CHAT_PARAMS if call_type == "acompletion" else None
        return gemini.SUPPORTED.get(call_type) if kind == "gemini" else None

    async def prepare(self, dep: Any, call_type: str | None = None) -> None:
        """PROPOSED contract extension: awaited by the core before `build_request`, so that a token
        fetch never blocks the event loop. Waits (off the loop) only when no usable token is in hand."""
        await self._settings(dep).source.ready()

    # -- requests -------------------------------------------------------------------------------
    def build_request(self, dep: Any, call_type: str, body: dict[str, Any], stream: bool) -> UpstreamRequest:
        s = self._settings(dep)
        token = s.source.get()
        if token is None:  # no prepare() awaited and no token yet: wait for it here (bounded)
            token = s.source.wait()
        headers = {"content-type": "application/json", "authorization": f"Bearer {token}"}
        if dep.extra_headers:
            headers.update(dep.extra_headers)
        model = dep.upstream_model
        try:
            if call_type == "aembedding":
                if s.kind == "anthropic":
                    raise BadRequestError(f"{PREFIX}{model} does not serve embeddings")
                return UpstreamRequest(s.url + ":predict", headers, orjson.dumps(predict_embed_request(body)))
            if s.kind == "anthropic":
                betas: set[str] = set()
                payload = anthropic.translate_request(body, stream, betas)
                payload.pop("model", None)
                payload["anthropic_version"] = ANTHROPIC_VERSION
                if betas:
                    headers["anthropic-beta"] = ",".join(sorted(betas))
                method = ":streamRawPredict" if stream else ":rawPredict"
                return UpstreamRequest(s.url + method, headers, orjson.dumps(payload))
            payload = gemini.chat_request(body, model)
            method = ":streamGenerateContent?alt=sse" if stream else ":generateContent"
            return UpstreamRequest(s.url + method, headers, orjson.dumps(payload))
        except BadRequestError as exc:
            raise _rebrand(exc) from None

    def parse_reply(self, dep: Any, call_type: str, data: bytes) -> dict[str, Any]:
        s = self._settings(dep)
        if call_type == "aembedding":
            return predict_embed_reply(orjson.loads(data), dep.upstream_model)
        if s.kind == "anthropic":
            reply = anthropic.translate_reply(orjson.loads(data))
            reply["model"] = reply.get("model") or dep.upstream_model
            return reply
        return gemini.chat_reply(orjson.loads(data), dep.upstream_model)

    def parse_error(self, dep: Any, status: int, data: bytes) -> ProviderError:
        s = self._settings(dep)
        err: ProviderError | None = None
        if s.kind == "anthropic":  # the model's own errors are Anthropic's; Vertex's front end's are Google's
            try:
                body = orjson.loads(data)
            except orjson.JSONDecodeError:
                body = None
            inner = body.get("error") if isinstance(body, dict) else None
            if isinstance(inner, dict) and isinstance(inner.get("type"), str) and isinstance(inner.get("message"), str):
                err = ProviderError(inner["message"], inner["type"])
        if err is None:
            err = gemini.error_of(status, data)
        token = s.source.token
        if token and token in err.message:
            err.message = err.message.replace(token, "***")
        return err

    def stream(self, dep: Any, call_type: str) -> Any:
        if self._settings(dep).kind == "anthropic":
            return anthropic.AnthropicStream()
        return gemini.GeminiStream(dep.upstream_model)


def providers() -> list[Provider]:
    return [VertexAI()]
