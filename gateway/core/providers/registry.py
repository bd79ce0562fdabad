"""Which provider serves a model prefix: collected from every plugin's `providers` hook (the core's
own come through the same hook, from the `builtin_providers` builtin)."""

from __future__ import annotations

from typing import Any

from gateway.provider import Provider

#: Prefixes served by a distribution we publish, for the "not installed" hint. Only distributions
#: that exist are named here: a hint never invents a package.
PROVIDER_DISTRIBUTIONS: dict[str, str] = {"bedrock": "gateway-plugin-bedrock", "sagemaker": "gateway-plugin-bedrock",
                                          "sagemaker_chat": "gateway-plugin-bedrock"}

#: Bare model names (no prefix) as LiteLLM's model map reads them: the first matching prefix wins;
#: anything else is an OpenAI model.
BARE_NAME_PROVIDERS: tuple[tuple[str, str], ...] = (
    ("claude-", "anthropic"),
    ("gemini-", "gemini"),
    ("command-", "cohere"),
    ("mistral-", "mistral"),
    ("codestral-", "mistral"),
    ("open-mistral-", "mistral"),
    ("open-mixtral-", "mistral"),
    ("grok-", "xai"),
    ("deepseek-", "deepseek"),
    ("sonar", "perplexity"),
)


class ProviderConfigError(ValueError):
    """Two plugins claim one prefix, or a provider is malformed; the message is one line."""


class Providers:
    """Prefix -> provider instance, and where each came from."""

    def __init__(self) -> None:
        self.by_prefix: dict[str, Provider] = {}
        self.owner: dict[str, str] = {}

    def add(self, provider: Provider, plugin: str) -> None:
        if not isinstance(provider, Provider) or not provider.name:
            raise ProviderConfigError(f"plugin {plugin!r}: providers() must return gateway.Provider instances with a name")
        for prefix in (provider.name, *provider.aliases):
            if prefix in self.by_prefix and self.owner[prefix] != plugin:
                raise ProviderConfigError(f"provider prefix {prefix!r} is claimed by both plugin {self.owner[prefix]!r} "
                                          f"and plugin {plugin!r}")
            self.by_prefix[prefix] = provider
            self.owner[prefix] = plugin

    def get(self, prefix: str) -> Provider | None:
        return self.by_prefix.get(prefix)

    def names(self) -> list[str]:
        return sorted(self.by_prefix)

    def split(self, model: str) -> tuple[str, str]:
        """`provider/model` -> (provider, model); a bare name -> the provider LiteLLM would pick."""
        if "/" in model:
            prefix, rest = model.split("/", 1)
            return prefix, rest
        for start, prefix in BARE_NAME_PROVIDERS:
            if model.startswith(start) and prefix in self.by_prefix:
                return prefix, model
        return "openai", model


def collect(host: Any, gateway: Any) -> Providers:
    """Every enabled plugin's providers (builtins included), checked for clashes."""
    providers = Providers()
    for impl in host.pm.hook.providers.get_hookimpls():
        result = impl.function(gateway=gateway) if "gateway" in impl.argnames else impl.function()
        for provider in result or ():
            providers.add(provider, impl.plugin_name)
    return providers
