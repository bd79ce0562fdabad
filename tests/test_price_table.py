"""The shipped price table (`gateway/core/spend/prices.json`): every row is a valid price, every
provider that bills per token has rows, lookups land on the vendor's own row (not a cheaper or
dearer namesake found by prefix), and a call through the gateway bills what the table says.

The numbers below are copied from LiteLLM's model map, the table's source for these rows:
BerriAI/litellm model_prices_and_context_window.json at commit 00035b69f416be24e2e323c13198d9b7d2d1bdf9
(the same values as litellm 1.94.0 and 1.95.0's model_prices_and_context_window_backup.json).
"""

from __future__ import annotations

import json
import math
import time
from importlib import resources
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from gateway.core.providers.openai_family import FAMILY
from gateway.core.spend.pricing import SAME_PRICES_AS, PriceTable

ADMIN = {"Authorization": "Bearer sk-1234"}
# Providers with their own wire format that bill per token (the OpenAI family comes from FAMILY).
NATIVE = ("anthropic", "gemini", "cohere", "azure_ai", "bedrock")


def raw_rows() -> dict[str, dict[str, Any]]:
    return json.loads(resources.files("gateway.core.spend").joinpath("prices.json").read_text())["models"]


def deployment(provider: str, model: str) -> SimpleNamespace:
    return SimpleNamespace(id=f"{provider}/{model}", provider=provider, upstream_model=model,
                           input_cost_per_token=None, output_cost_per_token=None)


def test_every_row_is_a_price_with_sane_numbers():
    table = PriceTable()  # builds a `Price` from every row: an unknown field or a missing price fails here
    assert len(table.prices) == len(raw_rows()) > 300
    for name, price in table.prices.items():
        for field in ("input_cost_per_token", "output_cost_per_token", "cache_read_input_token_cost",
                      "cache_creation_input_token_cost"):
            value = getattr(price, field)
            assert value is None or (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0), \
                (name, field, value)
        # A cached read is never dearer than the same token uncached.
        if price.cache_read_input_token_cost is not None:
            assert price.cache_read_input_token_cost <= price.input_cost_per_token, name
        assert price.mode in ("chat", "completion", "embedding", "responses"), (name, price.mode)
        for field in ("max_tokens", "max_input_tokens", "max_output_tokens"):
            value = getattr(price, field)
            assert value is None or (type(value) is int and value > 0), (name, field, value)
        for field in ("supports_function_calling", "supports_vision"):
            assert getattr(price, field) in (None, True, False), (name, field)


def test_every_provider_that_bills_per_token_has_rows():
    names = set(PriceTable().prices)
    # Members of the family with no default endpoint (custom_openai, openai_like, vllm, hosted_vllm)
    # serve whatever the operator runs: they have no list price.
    listed = [p for p, (base, _, _) in FAMILY.items() if base is not None]
    assert {"xai", "perplexity", "fireworks_ai", "deepinfra", "cerebras", "openrouter", "together_ai"} <= set(listed)
    missing = []
    for prefix in [*listed, *NATIVE]:
        own = any(n.startswith(prefix + "/") for n in names)
        shared = prefix in SAME_PRICES_AS and any("/" not in n for n in names)
        if not (own or shared):
            missing.append(prefix)
    assert missing == []


@pytest.mark.parametrize(("provider", "model", "inp", "out", "cached", "max_input"), [
    ("xai", "grok-3", 3e-06, 1.5e-05, 7.5e-07, 131072),
    ("xai", "grok-4-1-fast-reasoning", 2e-07, 5e-07, 5e-08, 2000000),  # by prefix: xai/grok-4-1-fast
    ("perplexity", "sonar-pro", 3e-06, 1.5e-05, None, 200000),
    ("perplexity", "sonar-reasoning-pro", 2e-06, 8e-06, None, 128000),
    ("cerebras", "llama3.1-8b", 1e-07, 1e-07, None, 128000),
    ("fireworks_ai", "accounts/fireworks/models/llama-v3p3-70b-instruct", 9e-07, 9e-07, None, 131072),
    ("deepinfra", "meta-llama/Llama-3.3-70B-Instruct-Turbo", 1.3e-07, 3.9e-07, None, 131072),
    ("openrouter", "anthropic/claude-3.5-sonnet", 3e-06, 1.5e-05, None, 200000),
    ("azure_ai", "mistral-large-2407", 2e-06, 6e-06, None, 128000),
    ("azure_ai", "Phi-4-mini-instruct", 7.5e-08, 3e-07, None, 131072),
    ("gemini", "gemini-2.0-flash-lite", 7.5e-08, 3e-07, 1.875e-08, 1048576),
    ("gemini", "gemini-2.5-flash-lite", 1e-07, 4e-07, 1e-08, 1048576),
    ("mistral", "pixtral-large-latest", 2e-06, 6e-06, None, 128000),
    ("groq", "openai/gpt-oss-120b", 1.5e-07, 6e-07, 7.5e-08, 131072),
    ("deepseek", "deepseek-reasoner", 2.8e-07, 4.2e-07, 2.8e-08, 131072),
    ("together_ai", "deepseek-ai/DeepSeek-V3", 1.25e-06, 1.25e-06, None, 65536),
    ("openai", "gpt-5", 1.25e-06, 1e-05, 1.25e-07, 272000),
    # Azure sells gpt-4o-mini dearer than OpenAI: its own row wins over the OpenAI name.
    ("azure", "gpt-4o-mini", 1.65e-07, 6.6e-07, 7.5e-08, 128000),
    ("openai", "gpt-4o-mini", 1.5e-07, 6e-07, None, 128000),
])
def test_lookups_return_litellms_numbers(provider, model, inp, out, cached, max_input):
    price = PriceTable().lookup(provider, model)
    assert price is not None
    assert (price.input_cost_per_token, price.output_cost_per_token) == (inp, out)
    assert (price.cache_read_input_token_cost, price.max_input_tokens) == (cached, max_input)


@pytest.mark.parametrize(("provider", "model", "inp"), [
    # Each name starts with a cheaper or dearer model's name: the longest-prefix rule must not
    # price it as that one (the table carries the longer name's own row).
    ("openai", "gpt-5-pro", 1.5e-05),                   # not gpt-5's 1.25e-06
    ("openai", "o1-pro", 0.00015),                      # not o1's 1.5e-05
    ("openai", "gpt-5.1-codex-mini", 2.5e-07),          # not gpt-5.1-codex's 1.25e-06
    ("xai", "grok-3-mini-fast-beta", 6e-07),            # grok-3-mini-fast, not grok-3 or grok-3-mini
    ("fireworks_ai", "accounts/fireworks/models/deepseek-r1-distill-llama-70b", 9e-07),  # not deepseek-r1's 3e-06
    ("deepinfra", "deepseek-ai/DeepSeek-R1-0528-Turbo", 1e-06),  # not DeepSeek-R1-0528's 5e-07
    ("azure_ai", "grok-4-1-fast-reasoning", 2e-07),     # not grok-4's 3e-06
    ("together_ai", "meta-llama/Llama-3.3-70B-Instruct-Turbo-Free", 0),
])
def test_longer_names_are_not_priced_as_their_prefix(provider, model, inp):
    assert PriceTable().lookup(provider, model).input_cost_per_token == inp


def test_a_cached_prompt_is_billed_at_the_cache_price():
    table = PriceTable()
    usage = {"prompt_tokens": 1000, "completion_tokens": 200, "prompt_tokens_details": {"cached_tokens": 400}}
    # Both kept alive: the table remembers prices per deployment object, as the router keeps them.
    grok, flash = deployment("xai", "grok-3"), deployment("vertex_ai", "gemini-2.0-flash-lite@001")
    assert table.cost(grok, usage) == pytest.approx(600 * 3e-06 + 400 * 7.5e-07 + 200 * 1.5e-05)
    # Vertex resells Gemini at the Gemini API's prices, cached reads included.
    assert table.cost(flash, usage) == pytest.approx(600 * 7.5e-08 + 400 * 1.875e-08 + 200 * 3e-07)


@pytest.mark.db
def test_a_call_through_the_gateway_bills_the_tables_price(gateway_server, fake_upstream):
    gw = gateway_server({
        "model_list": [{"model_name": "grok", "litellm_params": {"model": "xai/grok-3", "api_base": fake_upstream.url,
                                                                 "api_key": "xai-upstream-key"}}],
        "router_settings": {"num_retries": 0},
        "general_settings": {"spend_flush_interval_s": 0.05},
    })
    fake_upstream.script(usage={"prompt_tokens": 1000, "completion_tokens": 200,
                                "prompt_tokens_details": {"cached_tokens": 400}})
    reply = gw.client().chat.completions.create(model="grok", messages=[{"role": "user", "content": "hi grok"}])
    assert fake_upstream.requests[-1].json["model"] == "grok-3"
    assert reply.usage.prompt_tokens == 1000

    writer = gw.gateway.spend_writer
    deadline = time.monotonic() + 15
    while (writer.written < 1 or writer.queue) and time.monotonic() < deadline:
        time.sleep(0.02)
    rows = httpx.get(gw.url + "/spend/logs", params={"request_id": reply.id}, headers=ADMIN, timeout=10).json()
    assert len(rows) == 1, rows
    row = rows[0]
    assert (row["model"], row["prompt_tokens"], row["completion_tokens"]) == ("grok-3", 1000, 200)
    # 600 uncached and 400 cached prompt tokens, 200 completion tokens, at xai/grok-3's row.
    assert row["spend"] == pytest.approx(600 * 3e-06 + 400 * 7.5e-07 + 200 * 1.5e-05)
    assert "xai-upstream-key" not in json.dumps(row)


def test_deepseek_cache_hits_are_priced_as_cache_reads():
    from gateway.core.spend.pricing import PriceTable
    from types import SimpleNamespace

    table = PriceTable()
    dep = SimpleNamespace(provider="deepseek", upstream_model="deepseek-chat", input_cost_per_token=None,
                          output_cost_per_token=None, id="ds")
    price = table.price_for(dep)
    usage = {"prompt_tokens": 1000, "completion_tokens": 0, "prompt_cache_hit_tokens": 600,
             "prompt_cache_miss_tokens": 400}
    expected = 400 * price.input_cost_per_token + 600 * price.cache_read_input_token_cost
    assert table.cost(dep, usage) == pytest.approx(expected)
    assert expected < 1000 * price.input_cost_per_token
