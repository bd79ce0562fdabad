"""The providers that speak OpenAI's wire format (OpenAI, Groq, vLLM, ...): requests go out as they
are, and replies, streams and errors come back untouched (`passthrough`). Azure's members live in
`azure.py`. `openai/responses/<model>` deployments are served by the Responses API through
`responses_bridge` instead (their `check` hands them to a `ResponsesBridge`)."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.core.providers import responses_bridge
from gateway.core.providers.responses_bridge import RESPONSES_PREFIX
from gateway.provider import Provider, UpstreamRequest

PATHS = {"acompletion": "chat/completions", "atext_completion": "completions", "aembedding": "embeddings"}
ALL_CALLS = frozenset(PATHS)

# prefix: (default base URL, key variables, display name)
FAMILY: dict[str, tuple[str | None, tuple[str, ...], str]] = {
    "openai": ("https://api.openai.com/v1", ("OPENAI_API_KEY",), "OpenAI"),
    "text-completion-openai": ("https://api.openai.com/v1", ("OPENAI_API_KEY",), "OpenAI"),
    "custom_openai": (None, ("OPENAI_API_KEY",), "CustomOpenai"),
    "openai_like": (None, (), "OpenaiLike"),
    "groq": ("https://api.groq.com/openai/v1", ("GROQ_API_KEY",), "Groq"),
    "mistral": ("https://api.mistral.ai/v1", ("MISTRAL_API_KEY",), "Mistral"),
    "deepseek": ("https://api.deepseek.com/v1", ("DEEPSEEK_API_KEY",), "Deepseek"),
    "together_ai": ("https://api.together.xyz/v1", ("TOGETHERAI_API_KEY", "TOGETHER_API_KEY"), "TogetherAi"),
    "fireworks_ai": ("https://api.fireworks.ai/inference/v1", ("FIREWORKS_AI_API_KEY", "FIREWORKS_API_KEY"),
                     "FireworksAi"),
    "openrouter": ("https://openrouter.ai/api/v1", ("OPENROUTER_API_KEY",), "Openrouter"),
    "perplexity": ("https://api.perplexity.ai", ("PERPLEXITYAI_API_KEY", "PERPLEXITY_API_KEY"), "Perplexity"),
    "xai": ("https://api.x.ai/v1", ("XAI_API_KEY",), "Xai"),
    "deepinfra": ("https://api.deepinfra.com/v1/openai", ("DEEPINFRA_API_KEY",), "Deepinfra"),
    "cerebras": ("https://api.cerebras.ai/v1", ("CEREBRAS_API_KEY",), "Cerebras"),
    "hosted_vllm": (None, (), "HostedVllm"),
    "vllm": (None, (), "Vllm"),
    "lm_studio": ("http://localhost:1234/v1", (), "LmStudio"),
}
ALIASES = {"mistral": ("mistralai",)}


class OpenAICompatible(Provider):
    """One member of the family: its prefix, default base URL and key variables."""

    passthrough = True
    call_types = ALL_CALLS

    def __init__(self, name: str, base: str | None, key_env: tuple[str, ...], display: str) -> None:
        self.name = name  # type: ignore[misc]  # per instance: one class serves the whole family
        self.aliases = ALIASES.get(name, ())  # type: ignore[misc]
        self.default_api_base = base  # type: ignore[misc]
        self.api_key_env = key_env  # type: ignore[misc]
        self.display_name = display  # type: ignore[misc]
        self._bridge: Provider | None = None
        if name in ("openai", "text-completion-openai"):
            self.api_base_env = ("OPENAI_API_BASE", "OPENAI_BASE_URL")  # type: ignore[misc]

    def headers(self, dep: Any) -> dict[str, str]:
        headers = {"content-type": "application/json", "accept": "application/json"}
        if dep.api_key:
            headers["authorization"] = f"Bearer {dep.api_key}"
        return headers

    def url(self, dep: Any, call_type: str) -> str:
        return f"{dep.api_base.rstrip('/')}/{PATHS[call_type]}"

    def request_headers(self, dep: Any) -> dict[str, str]:
        """Every header of a call: credentials, then the deployment's own `extra_headers`."""
        headers = self.headers(dep)
        if dep.basic_auth:  # as LiteLLM's HTTP client does, userinfo in api_base wins over a bearer key
            headers["authorization"] = dep.basic_auth
        headers.update(dep.extra_headers)
        return headers

    def check(self, dep: Any) -> None:
        if self.name == "openai" and dep.upstream_model.startswith(RESPONSES_PREFIX):
            # `openai/responses/<model>`: chat completions served by the Responses API (LiteLLM's bridge)
            if self._bridge is None:
                self._bridge = responses_bridge.ResponsesBridge(self, lambda d: f"{d.api_base.rstrip('/')}/responses")
            dep.handler = self._bridge

    def build_request(self, dep: Any, call_type: str, body: dict[str, Any], stream: bool) -> UpstreamRequest:
        return UpstreamRequest(self.url(dep, call_type), self.request_headers(dep), orjson.dumps(body))


def family() -> list[Provider]:
    """The family's members. Azure's (`azure`, `azure_text`, `azure_ai`) are in `azure.providers()`."""
    return [OpenAICompatible(name, *spec) for name, spec in FAMILY.items()]
