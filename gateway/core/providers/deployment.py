"""A deployment: one entry of `model_list`, resolved to a provider, a URL and credentials."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Protocol

from gateway.core.providers.urls import safe_url, split_credentials

# Providers that speak the OpenAI wire format, with their default base URL and key variable.
OPENAI_COMPATIBLE: dict[str, tuple[str | None, str | None]] = {
    "openai": ("https://api.openai.com/v1", "OPENAI_API_KEY"),
    "text-completion-openai": ("https://api.openai.com/v1", "OPENAI_API_KEY"),
    "custom_openai": (None, "OPENAI_API_KEY"),
    "openai_like": (None, None),
    "azure": (None, "AZURE_API_KEY"),
    "azure_text": (None, "AZURE_API_KEY"),
    "groq": ("https://api.groq.com/openai/v1", "GROQ_API_KEY"),
    "mistral": ("https://api.mistral.ai/v1", "MISTRAL_API_KEY"),
    "deepseek": ("https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"),
    "together_ai": ("https://api.together.xyz/v1", "TOGETHERAI_API_KEY"),
    "fireworks_ai": ("https://api.fireworks.ai/inference/v1", "FIREWORKS_AI_API_KEY"),
    "openrouter": ("https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
    "perplexity": ("https://api.perplexity.ai", "PERPLEXITYAI_API_KEY"),
    "xai": ("https://api.x.ai/v1", "XAI_API_KEY"),
    "anthropic": ("https://api.anthropic.com/v1", "ANTHROPIC_API_KEY"),
    "gemini": ("https://generativelanguage.googleapis.com/v1beta/openai", "GEMINI_API_KEY"),
    "hosted_vllm": (None, None),
    "vllm": (None, None),
    "ollama": ("http://localhost:11434/v1", None),
    "ollama_chat": ("http://localhost:11434/v1", None),
    "lm_studio": ("http://localhost:1234/v1", None),
}
DISPLAY_NAMES = {"openai": "OpenAI", "azure": "Azure", "fake": "Fake", "text-completion-openai": "OpenAI"}
SUPPORTED_PROVIDERS = sorted([*OPENAI_COMPATIBLE, "fake"])
DEFAULT_AZURE_API_VERSION = "2024-10-21"
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

    @property
    def provider_display(self) -> str:
        return DISPLAY_NAMES.get(self.provider, self.provider.replace("_", " ").title().replace(" ", ""))

    def redact(self, text: str) -> str:
        """Upstream text with this deployment's key masked: some upstreams echo the key in errors."""
        if self.api_key and self.api_key in text:
            text = text.replace(self.api_key, self.api_key[:4] + "*" * 12)
        if self.basic_auth and self.basic_auth[6:] in text:
            text = text.replace(self.basic_auth[6:], "*" * 12)
        return text

    def describe(self) -> dict[str, Any]:
        """A safe description (no key) for logs, errors and `/model/info`."""
        return {"id": self.id, "model_name": self.model_name, "provider": self.provider,
                "model": self.upstream_model, "api_base": self.display_base}


def resolve(index: int, entry: Any, default_timeout: float,
            default_stream_total: float = DEFAULT_STREAM_TOTAL_TIMEOUT) -> Deployment:
    """Turn a validated `ModelEntry` into a Deployment, or raise DeploymentError naming the key."""
    params = entry.litellm_params
    where = f"model_list.{index}.litellm_params.model"
    model = params.model
    if "/" in model:
        provider, upstream = model.split("/", 1)
    else:
        provider, upstream = ("openai", model)
    if provider not in OPENAI_COMPATIBLE and provider != "fake":
        raise DeploymentError(
            f"{where}: provider {provider!r} is not supported; use one of: {', '.join(SUPPORTED_PROVIDERS)}"
        )
    if not upstream:
        raise DeploymentError(f"{where}: {model!r} names no model after the provider")
    api_base = params.api_base
    api_key = params.api_key
    basic_auth = None
    if provider != "fake":
        default_base, key_var = OPENAI_COMPATIBLE[provider]
        if provider.startswith("azure"):
            api_base = api_base or os.environ.get("AZURE_API_BASE")
        elif provider in ("openai", "text-completion-openai"):
            api_base = api_base or os.environ.get("OPENAI_API_BASE") or os.environ.get("OPENAI_BASE_URL")
        api_base = api_base or default_base
        if not api_base:
            raise DeploymentError(
                f"model_list.{index}.litellm_params.api_base: provider {provider!r} needs an api_base"
            )
        if not api_base.startswith(("http://", "https://")):
            raise DeploymentError(f"model_list.{index}.litellm_params.api_base: must start with http:// or https://")
        api_base, basic_auth = split_credentials(api_base)
        if api_key is None and key_var:
            api_key = os.environ.get(key_var)
    api_version = params.api_version
    if provider.startswith("azure"):
        api_version = api_version or os.environ.get("AZURE_API_VERSION") or DEFAULT_AZURE_API_VERSION
    timeout = params.timeout or default_timeout
    info = dict(entry.model_info)
    return Deployment(
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
    )


class UpstreamReply(Protocol):
    """What a provider returns: a status, headers, and a body read whole or as a byte stream."""

    status: int
    headers: Any

    async def read(self) -> bytes: ...

    def iter_bytes(self) -> AsyncIterator[bytes]: ...

    async def close(self) -> None: ...
