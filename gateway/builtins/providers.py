"""The core's model providers, offered through the `providers` hook like any plugin's."""

from __future__ import annotations

from typing import Any

from gateway.builtins import AlwaysOn
from gateway.core.providers import anthropic, azure, cohere, gemini, ollama, openai_family, vertex
from gateway.plugin import PluginConfig, hookimpl


class BuiltinProvidersConfig(PluginConfig):
    """No settings: each provider is configured by the `model_list` entries that use its prefix."""


class BuiltinProviders(AlwaysOn):
    name = "builtin_providers"
    priority = 0
    Config = BuiltinProvidersConfig

    @hookimpl
    def providers(self, gateway: Any) -> list[Any]:
        # The native providers come last: where one serves a prefix of the OpenAI-compatible
        # family (anthropic, gemini, ollama), it replaces the family's member.
        return [*openai_family.family(), *azure.providers(), *anthropic.providers(), *ollama.providers(),
                *gemini.providers(), *cohere.providers(), *vertex.providers()]
