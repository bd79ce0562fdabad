"""A deployment: one entry of `model_list`, resolved to a provider, a URL and credentials."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from gateway.core.providers.urls import safe_url, split_credentials

DEFAULT_AZURE_API_VERSION = "2024-10-21"
#: Request parameters a deployment may set in its `litellm_params`, as LiteLLM applies them: they
#: are defaults, and a request that sends the same parameter wins.
REQUEST_DEFAULTS = ("temperature", "top_p", "top_k", "max_tokens", "max_completion_tokens", "n", "stop",
                    "presence_penalty", "frequency_penalty", "logit_bias", "seed", "response_format",
                    "reasoning_effort", "thinking", "parallel_tool_calls", "logprobs", "top_logprobs",
                    "service_tier", "tool_choice", "modalities", "dimensions", "encoding_format")
# A stream may last an hour unless configured otherwise: long enough for any honest generation,
# short enough that a stream trickling forever is cut.
DEFAULT_STREAM_TOTAL_TIMEOUT = 3600.0


class DeploymentError(ValueError):
    """A model_list entry that cannot be served; the message names the problem."""


@dataclass(slots=True, eq=False)
class Deployment:
    """One callable deployment. `api_key` is a secret: never log it, never return it."""

    id: str
    model_name: str
    provider: str
    upstream_model: str
    api_base: str | None  # never with credentials: see `basic_auth`
    api_key: str | None = field(repr=False)
    api_version: str | None
    timeout: float
    stream_timeout: float  # the longest wait for the upstream's next bytes (its first included)
    stream_total_timeout: float  # the longest a stream may last
    weight: float
    input_cost_per_token: float | None
    output_cost_per_token: float | None
    mock_response: str | None
    extra_headers: dict[str, str]
    model_info: dict[str, Any]
    basic_auth: str | None = field(default=None, repr=False)  # `Basic ...` from userinfo in api_base
    display_base: str | None = None  # api_base as it may be written anywhere (`urls.safe_url`)
    cooldown_until: float = 0.0
    #: Request parameters set on the deployment (`REQUEST_DEFAULTS`); the request's own win.
    defaults: dict[str, Any] = field(default_factory=dict)
    #: Merged into every upstream body last (LiteLLM's `extra_body`).
    extra_body: dict[str, Any] = field(default_factory=dict)
    #: Never sent upstream (LiteLLM's `additional_drop_params`).
    drop_params: tuple[str, ...] = ()
    #: Drop the request fields its provider does not honour instead of refusing them (LiteLLM's
    #: `drop_params`: the deployment's, else `litellm_settings.drop_params`).
    drop_unsupported: bool = False
    #: TLS verification: None (default), False (`ssl_verify: false`), or a CA bundle path.
    ssl_verify: bool | str | None = None
    #: The whole `litellm_params` entry, for providers' own keys (`vertex_project`, `aws_region_name`).
    params: dict[str, Any] = field(default_factory=dict, repr=False)
    #: The `gateway.Provider` that serves it (None for the built-in `fake/`).
    handler: Any = field(default=None, repr=False)

    @property
    def provider_display(self) -> str:
        if self.handler is not None and self.handler.display_name:
            return self.handler.display_name
        return "Fake" if self.provider == "fake" else self.provider.replace("_", " ").title().replace(" ", "")

    def redact(self, text: str) -> str:
        """Upstream text with this deployment's key masked: some upstreams echo the key in errors."""
        for secret in getattr(self.handler, "secrets", lambda d: ())(self):  # e.g. Azure's Entra token
            if secret and secret in text:
                text = text.replace(secret, "***")
        if self.api_key and self.api_key in text:
            text = text.replace(self.api_key, self.api_key[:4] + "*" * 12)
        if self.basic_auth and self.basic_auth[6:] in text:
            text = text.replace(self.basic_auth[6:], "*" * 12)
        return text

    def describe(self) -> dict[str, Any]:
        """A safe description (no key) for logs, errors and `/model/info`."""
        return {"id": self.id, "model_name": self.model_name, "provider": self.provider,
                "model": self.upstream_model, "api_base": self.display_base}


def _first_env(names: tuple[str, ...]) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def resolve(index: int, entry: Any, default_timeout: float,
            default_stream_total: float = DEFAULT_STREAM_TOTAL_TIMEOUT, providers: Any = None,
            default_drop: bool = False) -> Deployment:
    """Turn a validated `ModelEntry` into a Deployment, or raise DeploymentError naming the key.
    `providers` (a `registry.Providers`) says which provider serves the model's prefix."""
    from gateway.core.providers.registry import PROVIDER_DISTRIBUTIONS

    params = entry.litellm_params
    where = f"model_list.{index}.litellm_params.model"
    model = params.model
    if providers is None:
        provider, upstream = model.split("/", 1) if "/" in model else ("openai", model)
    else:
        provider, upstream = providers.split(model)
    handler = providers.get(provider) if providers is not None else None
    if handler is None and provider != "fake":
        if provider in PROVIDER_DISTRIBUTIONS:
            raise DeploymentError(f"{where}: provider {provider!r} is not installed; install it with: "
                                  f"pip install {PROVIDER_DISTRIBUTIONS[provider]}")
        known = ", ".join([*(providers.names() if providers is not None else ()), "fake"])
        raise DeploymentError(f"{where}: provider {provider!r} is not supported; use one of: {known}")
    if not upstream:
        raise DeploymentError(f"{where}: {model!r} names no model after the provider")
    api_base = params.api_base
    api_key = params.api_key
    basic_auth = None
    if handler is not None:
        api_base = api_base or _first_env(handler.api_base_env) or handler.default_api_base
        if not api_base:
            raise DeploymentError(
                f"model_list.{index}.litellm_params.api_base: provider {provider!r} needs an api_base"
            )
        if not api_base.startswith(("http://", "https://")):
            raise DeploymentError(f"model_list.{index}.litellm_params.api_base: must start with http:// or https://")
        api_base, basic_auth = split_credentials(api_base)
        if api_key is None:
            api_key = _first_env(handler.api_key_env)
    api_version = params.api_version
    if provider.startswith("azure"):
        api_version = api_version or os.environ.get("AZURE_API_VERSION") or DEFAULT_AZURE_API_VERSION
    timeout = params.timeout or default_timeout
    info = dict(entry.model_info)
    extra = params.model_extra or {}
    extra_body = extra.get("extra_body") or {}
    if not isinstance(extra_body, dict):
        raise DeploymentError(f"model_list.{index}.litellm_params.extra_body: must be a mapping")
    drop = extra.get("additional_drop_params") or []
    if not (isinstance(drop, list) and all(isinstance(d, str) for d in drop)):
        raise DeploymentError(f"model_list.{index}.litellm_params.additional_drop_params: must be a list of names")
    drop_unsupported = extra.get("drop_params", default_drop)
    if not isinstance(drop_unsupported, bool):
        raise DeploymentError(f"model_list.{index}.litellm_params.drop_params: must be true or false")
    ssl_verify = extra.get("ssl_verify")
    if isinstance(ssl_verify, str) and ssl_verify.strip().lower() in ("false", "0", "no", "true", "1", "yes"):
        ssl_verify = ssl_verify.strip().lower() in ("true", "1", "yes")
    if isinstance(ssl_verify, str) and not os.path.isfile(ssl_verify):
        raise DeploymentError(f"model_list.{index}.litellm_params.ssl_verify: {ssl_verify!r} is neither true, "
                              "false nor an existing CA bundle file")
    if ssl_verify is True:
        ssl_verify = None
    defaults = {k: v for k, v in extra.items() if k in REQUEST_DEFAULTS and v is not None}
    dep = Deployment(
        id=str(info.get("id") or f"{entry.model_name}-{index}"),
        model_name=entry.model_name,
        provider=provider,
        upstream_model=upstream,
        api_base=api_base,
        api_key=api_key,
        api_version=api_version,
        timeout=timeout,
        stream_timeout=params.stream_timeout or timeout,
        stream_total_timeout=params.stream_total_timeout or default_stream_total,
        weight=float(params.weight if params.weight is not None else (params.rpm or 1)),
        input_cost_per_token=params.input_cost_per_token,
        output_cost_per_token=params.output_cost_per_token,
        mock_response=params.mock_response,
        extra_headers=dict(params.extra_headers or {}),
        model_info=info,
        basic_auth=basic_auth,
        display_base=safe_url(api_base),
        params=params.model_dump(exclude_none=True),
        handler=handler,
        defaults=defaults,
        extra_body=dict(extra_body),
        drop_params=tuple(drop),
        drop_unsupported=drop_unsupported,
        ssl_verify=ssl_verify,
    )
    if handler is not None:
        try:
            handler.check(dep)
        except ValueError as exc:
            raise DeploymentError(f"model_list.{index}.litellm_params: {exc}") from None
    return dep

