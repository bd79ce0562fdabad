"""A key is only ever sent to its own provider: one gateway with a deployment of every provider
prefix that has a fake here, each with its own key, called through the `openai` SDK (JSON and
streams); then every fake's recorded requests are searched for every other provider's key.
A provider that resolves to the wrong host, or a key variable read for the wrong provider, fails
here."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

PEERS = Path(__file__).parent / "peers"


def load(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"{name}_keys_peer", PEERS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


KEYS = {"anthropic": "sk-ant-only-for-anthropic-1", "gemini": "AIza-only-for-gemini-22", "cohere": "co-only-for-cohere-333",
        "ollama": "ollama-proxy-only-4444", "azure": "azure-only-55555", "openai": "sk-openai-only-666666",
        "groq": "gsk-groq-only-7777777"}


@pytest.fixture
def fakes(fake_upstream):
    anthropic, gemini = load("anthropic_api"), load("gemini_api")
    cohere, ollama, azure = load("cohere_api"), load("ollama_api"), load("azure_api")
    with FakeGroq() as groq, anthropic.FakeAnthropic(keys={KEYS["anthropic"]}) as a, \
            gemini.FakeGemini(keys={KEYS["gemini"]}) as g, cohere.FakeCohere() as c, ollama.FakeOllama() as o, \
            azure.FakeAzure(keys={KEYS["azure"]}) as z:
        yield {"anthropic": a, "gemini": g, "cohere": c, "ollama": o, "azure": z, "openai": fake_upstream, "groq": groq}


class FakeGroq:
    """A second OpenAI-compatible upstream, for the `groq/` prefix."""

    def __enter__(self) -> Any:
        from gateway.fake_upstream import FakeUpstream

        self.upstream = FakeUpstream().start()
        return self.upstream

    def __exit__(self, *exc: Any) -> None:
        self.upstream.stop()


def models(fakes: dict[str, Any]) -> list[dict[str, Any]]:
    def entry(name: str, model: str, base: str, **extra: Any) -> dict[str, Any]:
        return {"model_name": name, "litellm_params": {"model": model, "api_base": base, "api_key": KEYS[name],
                                                       "input_cost_per_token": 0, "output_cost_per_token": 0, **extra}}
    return [
        entry("anthropic", "anthropic/claude-3-5-sonnet-20240620", fakes["anthropic"].url),
        entry("gemini", "gemini/gemini-1.5-flash", fakes["gemini"].url),
        entry("cohere", "cohere/command-r", fakes["cohere"].url),
        entry("ollama", "ollama_chat/llama3", fakes["ollama"].url),
        entry("azure", "azure/gpt-4o", fakes["azure"].url, api_version="2024-10-21"),
        entry("openai", "openai/gpt-4o", fakes["openai"].url),
        entry("groq", "groq/llama-3.3-70b-versatile", fakes["groq"].url),
    ]


def test_every_key_reaches_only_its_own_provider(gateway_server, fakes, monkeypatch):
    # Every provider's key variable is set too, to a value no fake accepts: a provider that read
    # another's variable would send it, and be caught below.
    for var in ("ANTHROPIC_API_KEY", "GEMINI_API_KEY", "COHERE_API_KEY", "AZURE_API_KEY", "OPENAI_API_KEY",
                "GROQ_API_KEY"):
        monkeypatch.setenv(var, f"env-{var.lower()}-must-not-travel")
    server = gateway_server({"model_list": models(fakes), "router_settings": {"num_retries": 0}})
    client = server.client()
    for name in KEYS:
        reply = client.chat.completions.create(model=name, messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content, name
        chunks = list(client.chat.completions.create(model=name, messages=[{"role": "user", "content": "hi"}],
                                                     stream=True))
        assert chunks, name
    for name, fake in fakes.items():
        assert len(fake.requests) == 2, (name, len(fake.requests))
        seen = " ".join(repr(r) for r in fake.requests)
        assert KEYS[name] in seen, f"the {name} upstream never got its own key"
        for other, key in KEYS.items():
            if other != name:
                assert key not in seen, f"{other}'s key reached the {name} upstream"
        assert "must-not-travel" not in seen, f"an environment key reached the {name} upstream"
