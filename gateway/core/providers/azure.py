"""Azure's providers: Azure OpenAI (`azure/`, `azure_text/`) and Azure AI Foundry model inference
(`azure_ai/`). Both speak OpenAI's wire format (`passthrough`), except `azure/responses/<deployment>`
deployments, which `check` hands to a `responses_bridge.ResponsesBridge`.

Azure OpenAI serves chat, completions, embeddings, image generation and audio (transcription and
speech) at the same deployment paths as OpenAI's (`images/generations`, `audio/transcriptions`,
`audio/speech`). URLs: `{base}/openai/deployments/{deployment}/{path}?api-version={version}`; with
`api_version: preview | latest | v1`, the v1 API `{base}/openai/v1/{path}` (the deployment in the
body's `model`; `?api-version=preview` for preview). Responses: `{base}/openai/responses?api-version=...`
or `{base}/openai/v1/responses`.

Azure OpenAI credentials, in LiteLLM's order (a deployment's own settings before the environment's):
`api_key` -> `api-key` header; `azure_ad_token` -> `Authorization: Bearer` (a static token);
`tenant_id` + `client_id` + `client_secret` (each also from AZURE_TENANT_ID / AZURE_CLIENT_ID /
AZURE_CLIENT_SECRET) -> a bearer token from Entra ID's client-credentials flow (`entra.py`, fetched in
`prepare`, off the request path); then AZURE_API_KEY, then AZURE_AD_TOKEN.

Azure AI Foundry (`azure_ai/`): `{api_base}/chat/completions` and `/embeddings`, under `/models` for a
`*.services.ai.azure.com` resource (as LiteLLM builds them), with `?api-version=` when the deployment
sets `api_version`; the key as `api-key` for `*.services.ai.azure.com` and `*.openai.azure.com` hosts,
else as `Authorization: Bearer` (serverless `*.models.ai.azure.com` endpoints). Key and base from
AZURE_AI_API_KEY and AZURE_AI_API_BASE when the deployment names none.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from gateway.core.providers import entra, responses_bridge
from gateway.core.providers.openai_family import ALL_CALLS, PATHS, OpenAICompatible
from gateway.core.providers.responses_bridge import RESPONSES_PREFIX
from gateway.provider import Provider

#: `api_version` values that select Azure OpenAI's v1 API (`<base>/openai/v1/<path>`, the model in
#: the body) instead of the dated deployments API, as Azure documents them.
AZURE_V1_VERSIONS = ("preview", "latest", "v1")
#: Hosts whose key goes in `api-key` (LiteLLM's rule for `azure_ai/`); others get a bearer key.
API_KEY_HOSTS = (".services.ai.azure.com", ".openai.azure.com")


class _Auth:
    """How one deployment authenticates: "key" (api-key), "token" (a static bearer token), "entra"
    (a bearer token from `source`), or None (no credentials: extra_headers may carry them)."""

    __slots__ = ("dep", "kind", "token", "source")

    def __init__(self, dep: Any, kind: str | None, token: str | None = None,
                 source: entra.EntraToken | None = None) -> None:
        self.dep, self.kind, self.token, self.source = dep, kind, token, source


class Azure(OpenAICompatible):
    """Azure OpenAI: deployments API or v1 API, api keys or Entra ID tokens."""

    api_base_env = ("AZURE_API_BASE",)
    call_types = ALL_CALLS | {"aimage_generation", "atranscription", "aspeech"}

    def __init__(self, name: str) -> None:
        super().__init__(name, None, ("AZURE_API_KEY",), "Azure")
        self._auths: dict[int, _Auth] = {}
        self._tokens = entra.EntraTokens()
        self._responses = responses_bridge.ResponsesBridge(self, self.responses_url)

    # -- set-up ---------------------------------------------------------------------------------
    def check(self, dep: Any) -> None:
        if not dep.api_version:
            raise ValueError("azure deployments need an api_version")
        auth = self._resolve(dep)
        if auth.kind == "entra":
            self.prepare = self._prepare  # type: ignore[method-assign]  # only once a deployment needs it
        if self.name == "azure" and dep.upstream_model.startswith(RESPONSES_PREFIX):
            if not responses_bridge.model_of(dep):
                raise ValueError(f"model: {dep.provider}/{dep.upstream_model} names no deployment after responses/")
            dep.handler = self._responses

    def _resolve(self, dep: Any) -> _Auth:
        params = dep.params or {}
        ad_token = params.get("azure_ad_token")
        if isinstance(ad_token, str) and ad_token.startswith("oidc/"):
            raise ValueError("azure_ad_token: oidc/ tokens are not supported; give the token itself, or "
                             "tenant_id, client_id and client_secret")
        named = [k for k in ("tenant_id", "client_id", "client_secret") if params.get(k)]
        if params.get("api_key"):
            auth = _Auth(dep, "key")
        elif ad_token:
            auth = _Auth(dep, "token", str(ad_token))
        else:
            creds = entra.credentials_of(params, has_key=bool(dep.api_key) and not named)
            if named and creds is None:
                missing = [k for k in ("tenant_id", "client_id", "client_secret") if k not in named]
                raise ValueError(f"{', '.join(named)} given without {', '.join(missing)} (Entra ID client "
                                 "credentials need tenant_id, client_id and client_secret; each may also come "
                                 "from AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET)")
            if creds is not None:
                auth = _Auth(dep, "entra", source=self._tokens.get(*creds, entra.scope_of(params)))
            elif dep.api_key:
                auth = _Auth(dep, "key")
            elif os.environ.get("AZURE_AD_TOKEN"):
                auth = _Auth(dep, "token", os.environ["AZURE_AD_TOKEN"])
            else:
                auth = _Auth(dep, None)
        self._auths[id(dep)] = auth
        return auth

    def _auth(self, dep: Any) -> _Auth:
        auth = self._auths.get(id(dep))
        if auth is None or auth.dep is not dep:
            auth = self._resolve(dep)
        return auth

    async def _prepare(self, dep: Any, call_type: str | None = None) -> None:
        """Awaited by the core before `build_request`: an Entra ID token in hand, fetched without
        blocking the loop when there is none usable."""
        source = self._auth(dep).source
        if source is not None:
            await source.ready()

    def secrets(self, dep: Any) -> list[str]:
        """The bearer token(s) a deployment sends, to mask where an upstream echoes them."""
        auth = self._auth(dep)
        return [t for t in (auth.token, auth.source.token if auth.source else None) if t]

    # -- requests -------------------------------------------------------------------------------
    def headers(self, dep: Any) -> dict[str, str]:
        headers = {"content-type": "application/json", "accept": "application/json"}
        auth = self._auth(dep)
        if auth.kind == "key":
            headers["api-key"] = dep.api_key
        elif auth.kind == "token":
            headers["authorization"] = f"Bearer {auth.token}"
        elif auth.kind == "entra":
            assert auth.source is not None
            token = auth.source.token  # `prepare` made sure it is usable, just before
            if token is None:  # `prepare` was not awaited (a core without the hook)
                raise entra.TokenError(f"{entra.PREFIX}no Entra ID token in hand for {auth.source.label}",
                                       status=401, type="authentication_error")
            headers["authorization"] = f"Bearer {token}"
        return headers

    def base(self, dep: Any) -> str:
        base = dep.api_base.rstrip("/")
        if base.endswith("/openai/v1") or base.endswith("/openai"):
            base = base.rsplit("/openai", 1)[0]  # a base copied from Azure's portal with the path
        return base

    def url(self, dep: Any, call_type: str) -> str:
        return self._url(dep, PATHS[call_type], f"deployments/{dep.upstream_model}/{PATHS[call_type]}")

    def responses_url(self, dep: Any) -> str:
        return self._url(dep, "responses", "responses")

    def _url(self, dep: Any, v1_path: str, dated_path: str) -> str:
        if dep.api_version in AZURE_V1_VERSIONS:
            query = "?api-version=preview" if dep.api_version == "preview" else ""
            return f"{self.base(dep)}/openai/v1/{v1_path}{query}"
        return f"{self.base(dep)}/openai/{dated_path}?api-version={dep.api_version}"


def _join(path: str, ending: str) -> str:
    """`path` + `ending`, without repeating what `path` already ends with (`/models` + `/models/x`)."""
    path = path.rstrip("/")
    if path.endswith(ending):
        return path
    for size in range(len(ending), 0, -1):
        if path.endswith(ending[:size]) and ending[size:size + 1] in ("/", ""):
            return path + ending[size:]
    return path + ending


class AzureAI(OpenAICompatible):
    """Azure AI Foundry / serverless model inference (`azure_ai/`): OpenAI's wire format."""

    call_types = frozenset({"acompletion", "aembedding"})
    api_base_env = ("AZURE_AI_API_BASE",)

    def __init__(self) -> None:
        super().__init__("azure_ai", None, ("AZURE_AI_API_KEY",), "Azure_ai")

    def headers(self, dep: Any) -> dict[str, str]:
        headers = {"content-type": "application/json", "accept": "application/json"}
        if dep.api_key:
            host = (urlsplit(dep.api_base).hostname or "").lower()
            if host.endswith(API_KEY_HOSTS):
                headers["api-key"] = dep.api_key
            else:
                headers["authorization"] = f"Bearer {dep.api_key}"
        return headers

    def url(self, dep: Any, call_type: str) -> str:
        parts = urlsplit(dep.api_base)
        host = (parts.hostname or "").lower()
        ending = ("/models/" if host.endswith(".services.ai.azure.com") else "/") + PATHS[call_type]
        query = dict(parse_qsl(parts.query))
        version = (dep.params or {}).get("api_version")  # only the deployment's own, as LiteLLM sends it
        if version and "api-version" not in query:
            query["api-version"] = str(version)
        return urlunsplit((parts.scheme, parts.netloc, _join(parts.path, ending), urlencode(query), ""))


def providers() -> list[Provider]:
    return [Azure("azure"), Azure("azure_text"), AzureAI()]

