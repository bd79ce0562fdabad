"""What a call cost: tokens times the per-token price of the deployment's model; for images, audio,
moderations and rerank, what the call made times its unit price (`call_cost`, formulas in
`media_bill`).

Prices come from the shipped table (`prices.json`, with the date they were taken), overridable
per deployment. Unknown models cost 0 and say so once in the log, so spend is never invented.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, fields, replace
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
    # Per-unit prices of the other call types (LiteLLM's names; `media_models` in prices.json).
    input_cost_per_image: float | None = None
    output_cost_per_image: float | None = None
    input_cost_per_pixel: float | None = None
    output_cost_per_pixel: float | None = None
    input_cost_per_second: float | None = None
    output_cost_per_second: float | None = None
    input_cost_per_character: float | None = None
    input_cost_per_query: float | None = None
    input_cost_per_audio_token: float | None = None
    input_cost_per_image_token: float | None = None
    output_cost_per_image_token: float | None = None

    def token_cost(self, usage: dict[str, Any]) -> float:
        """prompt_tokens x input price + completion_tokens x output price, cached prompt tokens at
        the cache prices when the model has them (embeddings: input only)."""
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        if self.cache_read_input_token_cost is not None or self.cache_creation_input_token_cost is not None:
            # `prompt_tokens` counts cached reads and cache writes too (LiteLLM's usage): price them apart.
            details = usage.get("prompt_tokens_details")
            cached = details.get("cached_tokens") if isinstance(details, dict) else None
            # DeepSeek reports its cache hits as `prompt_cache_hit_tokens`.
            read = int(usage.get("cache_read_input_tokens") or cached or usage.get("prompt_cache_hit_tokens") or 0)
            written = int(usage.get("cache_creation_input_tokens") or 0)
            read, written = min(read, prompt), min(written, max(prompt - read, 0))
            inp = self.input_cost_per_token
            return ((prompt - read - written) * inp
                    + read * (self.cache_read_input_token_cost if self.cache_read_input_token_cost is not None else inp)
                    + written * (self.cache_creation_input_token_cost
                                 if self.cache_creation_input_token_cost is not None else inp)
                    + completion * self.output_cost_per_token)
        return prompt * self.input_cost_per_token + completion * self.output_cost_per_token


#: The call types billed per token (`PriceTable.cost`); the others by what they make (`call_cost`).
TOKEN_CALLS = frozenset({"acompletion", "atext_completion", "aembedding"})
#: Per-unit prices a deployment's `litellm_params` may set over the table's (LiteLLM's names).
UNIT_FIELDS = tuple(f.name for f in fields(Price) if f.name.startswith(("input_cost_per_", "output_cost_per_"))
                    and not f.name.endswith("_per_token"))


class PriceTable:
    def __init__(self, table: dict[str, Any] | None = None) -> None:
        data = table if table is not None else json.loads(
            resources.files("gateway.core.spend").joinpath("prices.json").read_text())
        self.taken = data.get("prices_taken")
        self.prices = {name: Price(**p) for name, p in data["models"].items()}
        #: The other call types' rows (images, audio, moderations, rerank), looked up first for them.
        self.media = {name: Price(**{"input_cost_per_token": 0.0, "output_cost_per_token": 0.0, **p})
                      for name, p in data.get("media_models", {}).items()}
        self._warned: set[str] = set()
        self._by_deployment: dict[tuple[Any, ...], Price | None] = {}
        self._by_unit: dict[tuple[Any, ...], Price | None] = {}

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
        return price.token_cost(usage)

    # -- images, audio, moderations, rerank --------------------------------------------------------
    def media_lookup(self, provider: str, names: tuple[str, ...]) -> Price | None:
        """The first of `names` (most specific first, the model itself last) in the media rows, as
        `lookup` finds names: `provider/name`, then `name` for OpenAI-family providers, then a
        dated variant of the model, then `provider/*`."""
        provider = PRICE_PREFIX_ALIASES.get(provider, provider)
        keys = [k for name in names for k in ((f"{provider}/{name}", name) if provider in SAME_PRICES_AS
                                               else (f"{provider}/{name}",))]
        for key in keys:
            if key in self.media:
                return self.media[key]
        model_keys = keys[-2:] if provider in SAME_PRICES_AS else keys[-1:]
        for key in model_keys:
            best = max((k for k in self.media if key.startswith(k + "-")), key=len, default=None)
            if best is not None:
                return self.media[best]
        return self.media.get(f"{provider}/*")

    def unit_price(self, deployment: Any, call_type: str, names: tuple[str, ...]) -> Price | None:
        """The price of one media call: the table's row (media rows first, then the token rows),
        with the deployment's own `litellm_params` prices over it. Worked out once per deployment."""
        own: dict[str, float] = {}
        params = getattr(deployment, "params", None) or {}
        for name in UNIT_FIELDS:
            value = params.get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0:
                own[name] = float(value)
        for name in ("input_cost_per_token", "output_cost_per_token"):
            if getattr(deployment, name, None) is not None:
                own[name] = getattr(deployment, name)
        key = (deployment.provider, deployment.upstream_model, getattr(deployment, "id", None), names,
               tuple(own.items()))
        if key in self._by_unit:
            return self._by_unit[key]
        if len(self._by_unit) > 50_000:
            self._by_unit.clear()
        listed = self.media_lookup(deployment.provider, names) or self.lookup(deployment.provider, deployment.upstream_model)
        if listed is None and not own:
            warned = f"{getattr(deployment, 'id', None)}:{call_type}"
            if warned not in self._warned:
                self._warned.add(warned)
                log.warning("no %s price known for %s/%s (deployment %s): its spend is recorded as 0; set it in "
                            "litellm_params (%s)", call_type, deployment.provider, deployment.upstream_model,
                            getattr(deployment, "id", None), ", ".join(UNIT_HINTS.get(call_type, UNIT_FIELDS)))
        price = replace(listed or Price(0.0, 0.0), **own) if own else listed
        self._by_unit[key] = price
        return price

    def call_cost(self, ctx: Any, deployment: Any, usage: dict[str, Any] | None, outcome: Any = None) -> float:
        """What one finished call cost, by its call type: tokens (`cost`, with `usage` as the spend
        row counts it) for chat, completions and embeddings; for the others, what the reply says it
        made (`outcome.response` and the reply's own `outcome.usage`), times the unit price. How a
        media call was billed lands on its spend row (`metadata.annotations.spend_logs.billed`)."""
        call_type = getattr(ctx, "call_type", "acompletion")
        if call_type in TOKEN_CALLS or deployment is None:
            return self.cost(deployment, usage)
        if outcome is not None and getattr(outcome, "status", "success") != "success":
            return 0.0  # a failed image or audio call made nothing: nothing to bill
        raw = getattr(outcome, "usage", None) if outcome is not None else usage
        response = getattr(outcome, "response", None) if outcome is not None else None
        bill = media_bill(self, call_type, deployment, getattr(ctx, "body", None) or {},
                          raw if isinstance(raw, dict) else None, response if isinstance(response, dict) else None)
        if bill is None:
            return 0.0
        cost, billed = bill
        if hasattr(ctx, "annotate"):
            ctx.annotate("billed", billed, plugin="spend_logs")
        return cost


#: Which `litellm_params` price a media call type needs, for the "no price known" warning.
UNIT_HINTS = {"aimage_generation": ("input_cost_per_image", "input_cost_per_pixel"),
              "atranscription": ("input_cost_per_second",), "aspeech": ("input_cost_per_character",),
              "arerank": ("input_cost_per_query",), "amoderation": ("input_cost_per_token",)}


# -- the media formulas -------------------------------------------------------------------------
Bill = tuple[float, dict[str, Any]]  # (USD, how it was billed: unit, quantity, source, unit_price)


def _number(value: Any) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    return float(value) if ok else None


def _token_counts(usage: dict[str, Any] | None) -> tuple[int, int, int, int] | None:
    """(text in, image in, audio in, out) tokens a media reply reports: OpenAI's `input_tokens` /
    `output_tokens` with their details (`input_tokens_details` for images, `input_token_details`
    for transcriptions), or `prompt_tokens` / `completion_tokens`. None: it reports none."""
    if not usage:
        return None
    inp = _number(usage.get("input_tokens", usage.get("prompt_tokens")))
    out = _number(usage.get("output_tokens", usage.get("completion_tokens")))
    if inp is None and out is None:
        return None
    details = next((d for d in (usage.get(k) for k in ("input_tokens_details", "input_token_details",
                                                       "prompt_tokens_details")) if isinstance(d, dict)), {})
    image, audio = int(_number(details.get("image_tokens")) or 0), int(_number(details.get("audio_tokens")) or 0)
    text = _number(details.get("text_tokens"))
    total_in = int(inp or 0)
    return (int(text) if text is not None else max(total_in - image - audio, 0)), image, audio, int(out or 0)


def _prices_tokens(price: Price | None) -> bool:
    return price is not None and any((price.input_cost_per_token, price.output_cost_per_token,
                                      price.input_cost_per_image_token, price.output_cost_per_image_token,
                                      price.input_cost_per_audio_token))


def _token_bill(price: Price, tokens: tuple[int, int, int, int], image_out: bool = False) -> Bill:
    text, image, audio, out = tokens
    inp = price.input_cost_per_token
    out_price = (price.output_cost_per_image_token if image_out and price.output_cost_per_image_token is not None
                 else price.output_cost_per_token)
    cost = (text * inp + image * (price.input_cost_per_image_token if price.input_cost_per_image_token is not None
                                  else inp)
            + audio * (price.input_cost_per_audio_token if price.input_cost_per_audio_token is not None else inp)
            + out * out_price)
    return cost, {"unit": "token", "quantity": text + image + audio + out, "source": "the reply's usage"}


def _size(value: Any) -> tuple[int, int]:
    """`"1024x1792"` -> (1024, 1792); `auto`, absent or unreadable: OpenAI's default 1024x1024."""
    if isinstance(value, str) and "x" in value:
        w, _, h = value.lower().partition("x")
        if w.isdigit() and h.isdigit() and 0 < int(w) <= 16384 and 0 < int(h) <= 16384:
            return int(w), int(h)
    return 1024, 1024


def _image_bill(table: PriceTable, dep: Any, body: dict[str, Any], usage: dict[str, Any] | None,
                response: dict[str, Any] | None) -> Bill:
    model = dep.upstream_model
    tokens = _token_counts(usage)
    per_image = any(k in (getattr(dep, "params", None) or {}) for k in ("input_cost_per_image", "output_cost_per_image"))
    if tokens is not None and not per_image:  # gpt-image models report and bill tokens
        price = table.unit_price(dep, "aimage_generation", (model,))
        if price is not None and _prices_tokens(price):
            return _token_bill(price, tokens, image_out=True)
    data = response.get("data") if response else None
    n = len(data) if isinstance(data, list) else int(_number(body.get("n")) or 1)
    w, h = _size(body.get("size"))
    quality = body.get("quality") if isinstance(body.get("quality"), str) and body.get("quality") != "auto" else None
    if quality is None and model.startswith("dall-e-3"):
        quality = "standard"  # dall-e-3's default
    names = ((f"{quality}/{w}-x-{h}/{model}",) if quality else ()) + (f"{w}-x-{h}/{model}", model)
    price = table.unit_price(dep, "aimage_generation", names)
    each = 0.0
    if price is not None:
        each = (price.input_cost_per_image or 0.0) + (price.output_cost_per_image or 0.0)
        if not each:
            each = w * h * ((price.input_cost_per_pixel or 0.0) + (price.output_cost_per_pixel or 0.0))
    source = f"{n} image(s) of {w}x{h}" + (f", quality {quality}" if quality else "")
    return n * each, {"unit": "image", "quantity": n, "source": source, "unit_price": each}


def _transcription_bill(table: PriceTable, dep: Any, body: dict[str, Any], usage: dict[str, Any] | None,
                        response: dict[str, Any] | None) -> Bill:
    price = table.unit_price(dep, "atranscription", (dep.upstream_model,))
    tokens = _token_counts(usage) if usage and usage.get("type") != "duration" else None
    if tokens is not None and _prices_tokens(price):  # gpt-4o-transcribe reports and bills tokens
        return _token_bill(price, tokens)  # type: ignore[arg-type]
    upload = body.get("file")
    seconds, source = None, "unknown: the reply gives no duration and the audio is not a WAV file"
    for value, where in ((usage or {}).get("seconds"), "the reply's usage.seconds"), \
            ((response or {}).get("duration"), "the reply's duration"), \
            (upload.get("duration_s") if isinstance(upload, dict) else None, "the audio file's WAV header"):
        if _number(value) is not None:
            seconds, source = _number(value), where
            break
    each = ((price.input_cost_per_second or 0.0) + (price.output_cost_per_second or 0.0)) if price else 0.0
    return (seconds or 0.0) * each, {"unit": "second", "quantity": seconds or 0.0, "source": source,
                                     "unit_price": each}


def _speech_bill(table: PriceTable, dep: Any, body: dict[str, Any], usage: dict[str, Any] | None,
                 response: dict[str, Any] | None) -> Bill:
    text = body.get("input")
    chars = len(text) if isinstance(text, str) else 0
    price = table.unit_price(dep, "aspeech", (dep.upstream_model,))
    if price is not None and price.input_cost_per_character is None and _prices_tokens(price):
        tokens = math.ceil(chars / 4)  # gpt-4o-mini-tts bills text tokens: about four characters a token
        return tokens * price.input_cost_per_token, {
            "unit": "token", "quantity": tokens, "unit_price": price.input_cost_per_token,
            "source": f"estimated from the input's {chars} characters (the audio reply reports no usage)"}
    each = (price.input_cost_per_character or 0.0) if price else 0.0
    return chars * each, {"unit": "character", "quantity": chars, "source": "the input's characters",
                          "unit_price": each}


def _rerank_bill(table: PriceTable, dep: Any, body: dict[str, Any], usage: dict[str, Any] | None,
                 response: dict[str, Any] | None) -> Bill:
    price = table.unit_price(dep, "arerank", (dep.upstream_model,))
    meta = (response or {}).get("meta")
    billed = meta.get("billed_units") if isinstance(meta, dict) else None
    units = _number(billed.get("search_units")) if isinstance(billed, dict) else None
    if units is None and price is not None and price.input_cost_per_query is None and _prices_tokens(price):
        tokens = _number((usage or {}).get("prompt_tokens", (usage or {}).get("total_tokens")))
        if tokens is not None:  # a token-billed reranker (vLLM, Jina): its usage
            return _token_bill(price, (int(tokens), 0, 0, 0))
    source = "the reply's meta.billed_units.search_units"
    if units is None:
        units, source = 1.0, "one search unit a query (the reply reports none)"
    each = (price.input_cost_per_query or 0.0) if price else 0.0
    return units * each, {"unit": "search_unit", "quantity": units, "source": source, "unit_price": each}


def _moderation_bill(table: PriceTable, dep: Any, body: dict[str, Any], usage: dict[str, Any] | None,
                     response: dict[str, Any] | None) -> Bill | None:
    tokens = _token_counts(usage)
    if tokens is None:
        return None  # OpenAI's moderations are free and report no usage
    price = table.unit_price(dep, "amoderation", (dep.upstream_model,))
    return _token_bill(price, tokens) if price is not None else None


FORMULAS = {"aimage_generation": _image_bill, "atranscription": _transcription_bill, "aspeech": _speech_bill,
            "arerank": _rerank_bill, "amoderation": _moderation_bill}


def media_bill(table: PriceTable, call_type: str, dep: Any, body: dict[str, Any], usage: dict[str, Any] | None,
               response: dict[str, Any] | None) -> Bill | None:
    """(cost, how it was billed) of one successful media call; None when there is nothing to bill."""
    formula = FORMULAS.get(call_type)
    return formula(table, dep, body, usage, response) if formula is not None else None
