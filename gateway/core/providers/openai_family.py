"""The providers that speak OpenAI's wire format (OpenAI, Azure, Groq, vLLM, ...): requests go out as
they are, and replies, streams and errors come back untouched (`passthrough`)."""

from __future__ import annotations

from typing import Any

import orjson

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
        if name in ("openai", "text-completion-openai"):
            self.api_base_env = ("OPENAI_API_BASE", "OPENAI_BASE_URL")  # type: ignore[misc]

    def headers(self, dep: Any) -> dict[str, str]:
        headers = {"content-type": "application/json", "accept": "application/json"}
        if dep.api_key:
            headers["authorization"] = f"Bearer {dep.api_key}"
        return headers

    def url(self, dep: Any, call_type: str) -> str:
        return f"{dep.api_base.rstrip('/')}/{PATHS[call_type]}"

    def build_request(self, dep: Any, call_type: str, body: dict[str, Any], stream: bool) -> UpstreamRequest:
        headers = self.headers(dep)
        if dep.basic_auth:  # as LiteLLM's HTTP client does, userinfo in api_base wins over a bearer key
            headers["authorization"] = dep.basic_auth
        headers.update(dep.extra_headers)
        return UpstreamRequest(self.url(dep, call_type), headers, orjson.dumps(body))


#: `api_version` values that select Azure OpenAI's v1 API (`<base>/openai/v1/<path>`, the model in
#: the body) instead of the dated deployments API, as Azure documents them.
AZURE_V1_VERSIONS = ("preview", "latest", "v1")


class Azure(OpenAICompatible):
    """Azure OpenAI: `<base>/openai/deployments/<deployment>/<path>?api-version=...`, key in `api-key`;
    with `api_version: preview | latest | v1`, the v1 API `<base>/openai/v1/<path>`."""

    api_base_env = ("AZURE_API_BASE",)

    def headers(self, dep: Any) -> dict[str, str]:
        headers = {"content-type": "application/json", "accept": "application/json"}
        if dep.api_key:
            headers["api-key"] = dep.api_key
        return headers

    def url(self, dep: Any, call_type: str) -> str:
        base = dep.api_base.rstrip("/")
        if base.endswith("/openai/v1") or base.endswith("/openai"):
            base = base.rsplit("/openai", 1)[0]  # a base copied from Azure's portal with the path
        if dep.api_version in AZURE_V1_VERSIONS:
            query = "?api-version=preview" if dep.api_version == "preview" else ""
            return f"{base}/openai/v1/{PATHS[call_type]}{query}"
        return f"{base}/openai/deployments/{dep.upstream_model}/{PATHS[call_type]}?api-version={dep.api_version}"

    def check(self, dep: Any) -> None:
        if not dep.api_version:
            raise ValueError("azure deployments need an api_version")


def family() -> list[Provider]:
    providers: list[Provider] = [OpenAICompatible(name, *spec) for name, spec in FAMILY.items()]
    providers.append(Azure("azure", None, ("AZURE_API_KEY",), "Azure"))
    providers.append(Azure("azure_text", None, ("AZURE_API_KEY",), "Azure"))
    return providers
