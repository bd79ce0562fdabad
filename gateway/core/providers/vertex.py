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
translation is the `gemini` and `anthropic` providers' own functions; only URLs and auth are here.

Auth is an OAuth2 bearer token from google-auth credentials (scope cloud-platform): a service-account
JSON given as `vertex_credentials` (a path, or the JSON itself), else GOOGLE_APPLICATION_CREDENTIALS
or application default credentials. google-auth refreshes synchronously (an HTTP call to the token
endpoint), and a provider does no I/O while it builds a request, so tokens are fetched in a worker
thread: once at start-up (`check`), and again in the background when the token in hand nears its
expiry (the last quarter of its life, at most 5 minutes), while calls go on with the one in hand.
`prepare(dep)` is an async hook that waits, off the event loop, for a token when none is usable (the
first call, or the first after an idle hour); a core that awaits it before `build_request` never
blocks. Without it, `build_request` falls back to waiting for that refresh itself, bounded by
TOKEN_TIMEOUT, which blocks the loop for that one call.

google-auth is imported lazily, so the core imports without it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import orjson

from gateway.core.providers import anthropic, gemini
from gateway.errors import BadRequestError, GatewayError
from gateway.provider import Provider, ProviderError, UpstreamRequest

log = logging.getLogger("gateway.providers.vertex")

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
ANTHROPIC_VERSION = "vertex-2023-10-16"
DEFAULT_LOCATION = "us-central1"
PREFIX = "VertexAIException - "
#: The longest a token fetch may take (the token endpoint's connect + read).
TOKEN_TIMEOUT = 10.0
#: Refresh ahead of expiry: the last quarter of a token's life, at most this many seconds.
REFRESH_AHEAD = 300.0
#: A token this close to its expiry is not sent.
EXPIRY_SKEW = 10.0
PROJECT_ENV = ("VERTEXAI_PROJECT", "VERTEX_PROJECT", "GOOGLE_CLOUD_PROJECT")
LOCATION_ENV = ("VERTEXAI_LOCATION", "VERTEX_LOCATION")
ENDPOINT_ID = re.compile(r"^\d+$")
VERSION_PATH = re.compile(r"/v\d+(?:(?:alpha|beta)\d*)?$")

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="vertex-token")
        return _executor


_tls_context: Any = None


def _tls() -> Any:
    """One TLS context for every token fetch (building one costs tens of milliseconds)."""
    global _tls_context
    if _tls_context is None:
        import ssl

        _tls_context = ssl.create_default_context()
    return _tls_context


def _env(names: tuple[str, ...]) -> str | None:
    return next((os.environ[n] for n in names if os.environ.get(n)), None)


# -- tokens -------------------------------------------------------------------------------------

class _HttpxRequest:
    """google-auth's transport interface (`google.auth.transport.Request`) over a sync httpx client,
    so the core needs no `requests`; every call is bounded by TOKEN_TIMEOUT. One per refresh (an
    hourly call needs no pooled connection), closed when it is done."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __call__(self, url: str, method: str = "GET", body: Any = None, headers: Any = None,
                 timeout: Any = None, **kwargs: Any) -> Any:
        import httpx
        from google.auth import exceptions

        try:
            r = self._client.request(method, url, content=body, headers=headers,
                                     timeout=min(float(timeout or TOKEN_TIMEOUT), TOKEN_TIMEOUT))
        except httpx.HTTPError as exc:
            raise exceptions.TransportError(f"{type(exc).__name__} calling {urlsplit(url).netloc}") from None

        class Response:
            status = r.status_code
            headers = r.headers
            data = r.content

        return Response()


class TokenError(GatewayError):
    """No access token could be had; the message names why and never carries a credential."""


class TokenSource:
    """One set of google-auth credentials and the access token they last gave."""

    def __init__(self, credentials: Any, label: str) -> None:
        self.credentials = credentials
        self.label = label  # says which credentials, never what they hold
        self.project: str | None = None  # the project the credentials name
        self.token: str | None = None
        self.refresh_at = 0.0  # monotonic: refresh in the background from here
        self.expires_at = 0.0  # monotonic: never sent from here
        self.error: TokenError | None = None
        self.refreshes = 0
        self._future: Future[None] | None = None
        self._lock = threading.Lock()

    def usable(self) -> str | None:
        return self.token if time.monotonic() < self.expires_at else None

    def refresh(self) -> Future[None]:
        """The refresh under way, or a new one in a worker thread."""
        with self._lock:
            if self._future is None or self._future.done():
                self._future = _pool().submit(self._refresh)
            return self._future

    def _refresh(self) -> None:
        import httpx
        from google.auth import exceptions

        started = time.monotonic()
        try:
            with httpx.Client(timeout=TOKEN_TIMEOUT, trust_env=True, verify=_tls()) as client:
                self.credentials.refresh(_HttpxRequest(client))
        except exceptions.RefreshError as exc:
            self.error = TokenError(f"{PREFIX}could not get an access token for {self.label}: "
                                    f"{_refresh_reason(exc)}", status=401, type="authentication_error")
            raise self.error from None
        except (exceptions.TransportError, OSError) as exc:
            self.error = TokenError(f"{PREFIX}could not reach Google's token endpoint for {self.label}: "
                                    f"{type(exc).__name__}", status=502, type="api_connection_error")
            raise self.error from None
        except Exception as exc:  # google-auth's other failures: say what kind, not what it held
            self.error = TokenError(f"{PREFIX}could not get an access token for {self.label}: "
                                    f"{type(exc).__name__}", status=401, type="authentication_error")
            raise self.error from None
        expiry = getattr(self.credentials, "expiry", None)  # naive UTC datetime, or None
        life = 3600.0
        if expiry is not None:
            from datetime import datetime, timezone

            life = max((expiry.replace(tzinfo=timezone.utc) - datetime.now(timezone.utc)).total_seconds(), 0.0)
        now = time.monotonic()
        with self._lock:
            self.token = self.credentials.token
            self.expires_at = started + life - min(EXPIRY_SKEW, life / 10)
            self.refresh_at = started + life - min(REFRESH_AHEAD, life / 4)
            self.error = None
            self.refreshes += 1
        log.debug("vertex_ai: new access token for %s, valid %.0f s (fetched in %.0f ms)", self.label, life,
                  (now - started) * 1000)

    def get(self) -> str | None:
        """The token to send now, refreshing in the background when it nears its expiry; None
        when there is none usable (wait for `refresh()`)."""
        now = time.monotonic()
        token = self.token
        if token is not None and now < self.refresh_at:
            return token
        self.refresh()
        return token if now < self.expires_at else None

    async def ready(self) -> str:
        """A usable token, waiting for a refresh off the event loop if need be."""
        token = self.get()
        if token is not None:
            return token
        try:
            await asyncio.wait_for(asyncio.wrap_future(self.refresh()), TOKEN_TIMEOUT + 1)
        except TokenError:
            raise
        except (asyncio.TimeoutError, FutureTimeout):
            raise TokenError(f"{PREFIX}timed out getting an access token for {self.label}", status=504,
                             type="timeout") from None
        return self._after_wait()

    def wait(self) -> str:
        """As `ready`, blocking: the fallback when the core did not await `prepare`."""
        token = self.get()
        if token is not None:
            return token
        try:
            self.refresh().result(TOKEN_TIMEOUT + 1)
        except TokenError:
            raise
        except FutureTimeout:
            raise TokenError(f"{PREFIX}timed out getting an access token for {self.label}", status=504,
                             type="timeout") from None
        return self._after_wait()

    def _after_wait(self) -> str:
        token = self.usable()
        if token is None:
            raise self.error or TokenError(f"{PREFIX}Google gave an access token for {self.label} that has "
                                           "already expired", status=401, type="authentication_error")
        return token


def _refresh_reason(exc: Exception) -> str:
    """google-auth's RefreshError as `error: description` from the token endpoint's reply."""
    args = getattr(exc, "args", ())
    if len(args) > 1 and isinstance(args[1], dict):
        body = args[1]
        reason = str(body.get("error") or "")
        if body.get("error_description"):
            reason += f": {body['error_description']}"
        if reason:
            return reason[:300]
    text = str(args[0]) if args else type(exc).__name__
    return text.split("\n")[0][:300]


def _from_info(info: Any, where: str) -> tuple[Any, str | None, str]:
    """Credentials of the types a `vertex_credentials` JSON may hold (each through its own loader,
    as google-auth recommends for configurations it did not validate)."""
    if not isinstance(info, dict):
        raise ValueError(f"{where}: must be a JSON object")
    kind = info.get("type")
    try:
        if kind == "service_account":
            from google.oauth2 import service_account

            creds = service_account.Credentials.from_service_account_info(info, scopes=[SCOPE])
            return creds, info.get("project_id"), _label(info)
        if kind == "authorized_user":
            from google.oauth2 import credentials

            creds = credentials.Credentials.from_authorized_user_info(info, scopes=[SCOPE])
            return creds, info.get("quota_project_id"), "authorized user credentials"
    except (ValueError, KeyError) as exc:  # a field missing or malformed: name it, never echo a value
        raise ValueError(f"{where}: {kind} credentials are malformed ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:120] if isinstance(exc, ValueError) else exc})") from None
    raise ValueError(f"{where}: credentials of type {kind!r} are not supported here; give a service_account or "
                     "authorized_user JSON, or point GOOGLE_APPLICATION_CREDENTIALS at the file (application "
                     "default credentials take every type)")


def _load_credentials(value: Any, where: str) -> tuple[Any, str | None, str]:
    """(credentials, their project, a label) from `vertex_credentials` as LiteLLM reads it: a dict,
    the JSON as a string, or a path to the JSON file; None: application default credentials
    (GOOGLE_APPLICATION_CREDENTIALS, gcloud's, the metadata server's)."""
    try:
        import google.auth
        from google.auth import exceptions
    except ImportError:
        raise ValueError("vertex_ai needs google-auth: pip install google-auth") from None
    if value is None:
        try:
            creds, project = google.auth.default(scopes=[SCOPE])
        except exceptions.DefaultCredentialsError as exc:
            raise ValueError(f"{where}: none given and no application default credentials found "
                             f"({str(exc).splitlines()[0][:200]})") from None
        return creds, project, "application default credentials"
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: is not valid JSON (line {exc.lineno}, column {exc.colno})") from None
    if isinstance(value, dict):
        return _from_info(value, where)
    if isinstance(value, str):
        path = os.path.expanduser(value)
        if not os.path.isfile(path):
            raise ValueError(f"{where}: no such file {value!r} (give a path to a service-account JSON file, "
                             "or the JSON itself)")
        try:
            with open(path, encoding="utf-8") as f:
                info = json.load(f)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: {value!r} is not valid JSON (line {exc.lineno})") from None
        return _from_info(info, where)
    raise ValueError(f"{where}: must be a path to a service-account JSON file, or the JSON itself")


def _label(info: dict[str, Any]) -> str:
    email = info.get("client_email")
    return f"service account {email}" if isinstance(email, str) else f"{info.get('type', 'unknown')} credentials"


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
            creds, cred_project, label = _load_credentials(creds_value, "vertex_credentials")
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
