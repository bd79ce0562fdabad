"""Prompt-cache tokens are priced apart where the table knows their price (Anthropic's models):
`prompt_tokens` counts cache reads and writes too, as LiteLLM's usage does."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from gateway.core.spend.pricing import PriceTable


def deployment(provider: str, model: str) -> SimpleNamespace:
    return SimpleNamespace(id=f"{provider}-{model}", provider=provider, upstream_model=model,
                           input_cost_per_token=None, output_cost_per_token=None)


def test_cache_reads_and_writes_are_priced_apart():
    table = PriceTable()
    dep = deployment("anthropic", "claude-sonnet-4-5-20250929")  # a dated name finds its base model
    usage = {"prompt_tokens": 1000, "completion_tokens": 100, "cache_read_input_tokens": 600,
             "cache_creation_input_tokens": 300, "prompt_tokens_details": {"cached_tokens": 600}}
    expected = 100 * 3e-06 + 600 * 3e-07 + 300 * 3.75e-06 + 100 * 1.5e-05
    assert table.cost(dep, usage) == pytest.approx(expected)
    # Without cache tokens the price is the plain one.
    assert table.cost(dep, {"prompt_tokens": 1000, "completion_tokens": 100}) == pytest.approx(1000 * 3e-06 + 100 * 1.5e-05)


def test_openai_cached_tokens_cost_the_input_price_when_the_table_has_no_cache_price():
    table = PriceTable()
    dep = deployment("openai", "gpt-4o")
    price = table.price_for(dep)
    usage = {"prompt_tokens": 1000, "completion_tokens": 10, "prompt_tokens_details": {"cached_tokens": 800}}
    assert table.cost(dep, usage) == pytest.approx(1000 * price.input_cost_per_token + 10 * price.output_cost_per_token)


def test_newer_claude_models_are_not_priced_as_their_prefix():
    table = PriceTable()
    opus, haiku = deployment("anthropic", "claude-opus-4-5-20251101"), deployment("anthropic", "claude-haiku-4-5")
    assert table.price_for(opus).input_cost_per_token == 5e-06  # not claude-opus-4's 1.5e-05
    assert table.price_for(haiku).output_cost_per_token == 5e-06


def test_bedrock_and_vertex_ids_find_their_vendors_list_prices():
    table = PriceTable()
    claude = deployment("bedrock", "us.anthropic.claude-3-5-sonnet-20240620-v1:0")
    nova = deployment("bedrock", "amazon.nova-lite-v1:0")
    vertex_claude = deployment("vertex_ai", "claude-3-5-sonnet@20240620")
    assert table.price_for(claude).input_cost_per_token == 3e-06
    assert table.price_for(nova).input_cost_per_token == 6e-08
    assert table.price_for(vertex_claude).output_cost_per_token == 1.5e-05
