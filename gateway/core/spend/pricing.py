"""What a call cost: tokens times the per-token price of the deployment's model.

Prices come from the shipped table (`prices.json`, with the date they were taken), overridable
per deployment. Unknown models cost 0 and say so once in the log, so spend is never invented.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any

log = logging.getLogger("gateway.spend")

# Providers that resell another vendor's models under the vendor's own prices.
SAME_PRICES_AS = {"azure": "", "azure_text": "", "openai": "", "text-completion-openai": "", "custom_openai": ""}
# Prefixes that are another's under a second name: priced from the same rows.
PRICE_PREFIX_ALIASES = {"cohere_chat": "cohere", "ollama_chat": "ollama", "mistralai": "mistral"}


@dataclass(frozen=True, slots=True)
class Price:
    input_cost_per_token: float
    output_cost_per_token: float
    mode: str = "chat"
    max_tokens: int | None = None
    # What the model hub shows; absent from the table means unknown (see prices.json "limits_source").
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None
    supports_function_calling: bool | None = None
    supports_vision: bool | None = None
    # Prompt-cache prices (Anthropic's): reads and writes of cached prompt tokens. None: the
    # cached tokens cost what other input tokens cost.
    cache_read_input_token_cost: float | None = None
    cache_creation_input_token_cost: float | None = None


class PriceTable:
    def __init__(self, table: dict[str, Any] | None = None) -> None:
        data = table if table is not None else json.loads(
            resources.files("gateway.core.spend").joinpath("prices.json").read_text())
        self.taken = data.get("prices_taken")
        self.prices = {name: Price(**p) for name, p in data["models"].items()}
        self._warned: set[str] = set()
        self._by_deployment: dict[tuple[Any, ...], Price | None] = {}

    def lookup(self, provider: str, model: str) -> Price | None:
        """Exact `provider/model`, then `model` for OpenAI-family providers, then a dated variant
        (`gpt-4o-2024-08-06` -> `gpt-4o`), then `provider/*`."""
        model = model[len("responses/"):] if model.startswith("responses/") else model  # the Responses bridge
        provider = PRICE_PREFIX_ALIASES.get(provider, provider)
        names = [f"{provider}/{model}"]
        if provider in ("vertex_ai", "vertex_ai_beta"):
            # Vertex resells Google's and Anthropic's models at their list prices; its ids carry
            # a version after `@` (`claude-3-5-sonnet@20240620`).
            base = model.split("@", 1)[0]
            names.append(f"anthropic/{base}" if base.startswith("claude") else f"gemini/{base}")
        elif provider == "bedrock":
            # `us.anthropic.claude-3-5-sonnet-20240620-v1:0`: a cross-region profile's prefix, then
            # the vendor; Claude on Bedrock costs Anthropic's list price.
            base = model.split("/")[-1]
            for region in ("us.", "eu.", "apac.", "global."):
                if base.startswith(region):
                    base = base[len(region):]
            names.append(f"bedrock/{base}")
            if base.startswith("anthropic."):
                names.append("anthropic/" + base[len("anthropic."):].split("-v1:")[0].split("-v2:")[0])
        if provider in SAME_PRICES_AS:
            names.append(model)
        for name in names:
            if name in self.prices:
                return self.prices[name]
        for name in names:  # longest known prefix, for dated or suffixed versions
            best = max((k for k in self.prices if name.startswith(k + "-")), key=len, default=None)
            if best is not None:
                return self.prices[best]
        return self.prices.get(f"{provider}/*")

    def price_for(self, deployment: Any) -> Price | None:
        """The deployment's price, worked out once per deployment (it is asked on every call)."""
        # Keyed by what decides the price, never by id(): ids of freed deployments are reused (a
        # config reload, wildcard deployments made and forgotten).
        key = (deployment.provider, deployment.upstream_model, deployment.input_cost_per_token,
               deployment.output_cost_per_token, getattr(deployment, "id", None))
        if key in self._by_deployment:
            return self._by_deployment[key]
        if len(self._by_deployment) > 50_000:  # wildcard routes take any name: stay bounded
            self._by_deployment.clear()
        price = self._by_deployment[key] = self._price_for(deployment)
        return price

    def _price_for(self, deployment: Any) -> Price | None:
        listed = self.lookup(deployment.provider, deployment.upstream_model)
        inp, out = deployment.input_cost_per_token, deployment.output_cost_per_token
        if inp is None and out is None:
            if listed is None and deployment.id not in self._warned:
                self._warned.add(deployment.id)
                log.warning("no price known for %s/%s (deployment %s): its spend is recorded as 0; set "
                            "litellm_params.input_cost_per_token and output_cost_per_token",
                            deployment.provider, deployment.upstream_model, deployment.id)
            return listed
        base = listed or Price(0.0, 0.0)
        return replace(base, input_cost_per_token=inp if inp is not None else base.input_cost_per_token,
                       output_cost_per_token=out if out is not None else base.output_cost_per_token)

    def cost(self, deployment: Any, usage: dict[str, Any] | None) -> float:
        """prompt_tokens x input price + completion_tokens x output price (embeddings: input only)."""
        if not usage or deployment is None:
            return 0.0
        price = self.price_for(deployment)
        if price is None:
            return 0.0
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        if price.cache_read_input_token_cost is not None or price.cache_creation_input_token_cost is not None:
            # `prompt_tokens` counts cached reads and cache writes too (LiteLLM's usage): price them apart.
            details = usage.get("prompt_tokens_details")
            cached = details.get("cached_tokens") if isinstance(details, dict) else None
            # DeepSeek reports its cache hits as `prompt_cache_hit_tokens`.
            read = int(usage.get("cache_read_input_tokens") or cached or usage.get("prompt_cache_hit_tokens") or 0)
            written = int(usage.get("cache_creation_input_tokens") or 0)
            read, written = min(read, prompt), min(written, max(prompt - read, 0))
            inp = price.input_cost_per_token
            return ((prompt - read - written) * inp
                    + read * (price.cache_read_input_token_cost if price.cache_read_input_token_cost is not None else inp)
                    + written * (price.cache_creation_input_token_cost
                                 if price.cache_creation_input_token_cost is not None else inp)
                    + completion * price.output_cost_per_token)
        return prompt * price.input_cost_per_token + completion * price.output_cost_per_token
