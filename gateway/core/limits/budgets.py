"""Budget reservations: a call's estimated cost is held against every budget it counts towards
(key, team, user, end user) from admission until it ends, so that calls in flight cannot all
spend the same headroom. The spend path adds the real cost, then `settle` releases the hold.

The estimate is made before a deployment is chosen, so it takes the model group's most expensive
deployment: prompt tokens (the request's text and tool definitions, four characters a token) x
input price + output tokens x output price, where output tokens = `max_completion_tokens` or
`max_tokens` (else `budget_default_max_tokens`) capped by the model's known output limit, times
`n`. Embeddings have no output. A model with no known price is estimated at 0 and reserves nothing.

A record whose spend in the current period already reached its budget is refused outright
(`check_budget`), on the LLM routes (the `virtual_keys` builtin) and the pass-through endpoints.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import orjson

from gateway.context import iter_request_text
from gateway.core.limits.claims import Hold
from gateway.core.settings import ConfigError
from gateway.errors import BudgetExceededError

DEFAULT_MAX_TOKENS = 1024
DEFAULT_TTL_S = 600.0
#: Where the hold of a call is kept: the private state of the plugin that takes it.
OWNER, STATE_KEY = "virtual_keys", "budget_hold"


def positive_setting(general: dict[str, Any], key: str, default: float) -> float:
    value = general.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ConfigError(f"general_settings.{key}: must be a number greater than 0, got {value!r}")
    return float(value)


def effective_spend(record: Any, now: datetime) -> float:
    """Spend in the current budget period (a period that ended counts as reset)."""
    if record.budget_reset_at is not None and record.budget_reset_at <= now:
        return 0.0
    return float(record.spend or 0.0)


def budget_exceeded(spend: float, max_budget: float) -> BudgetExceededError:
    return BudgetExceededError(f"Budget has been exceeded! Current cost: {spend}, Max budget: {max_budget}")


def check_budget(record: Any, now: datetime) -> None:
    """Refuse (`budget_exceeded`) a key, team, user, ... record whose period's spend reached its budget."""
    if record is None or record.max_budget is None:
        return
    spend = effective_spend(record, now)
    if spend >= record.max_budget:
        raise budget_exceeded(spend, record.max_budget)


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def prompt_tokens(body: dict[str, Any]) -> int:
    chars = sum(len(text) for text in iter_request_text(body))
    for field in ("tools", "functions"):
        if body.get(field):
            try:
                chars += len(orjson.dumps(body[field]))
            except (TypeError, orjson.JSONEncodeError):
                pass
    return math.ceil(chars / 4)


class Estimator:
    """The estimated cost of a call, from the request and the prices of its model group."""

    def __init__(self, router: Any, prices: Any, default_max_tokens: int) -> None:
        self.router = router
        self.prices = prices
        self.default_max_tokens = default_max_tokens
        self._groups: dict[str, tuple[tuple[float, float, int | None], ...]] = {}

    def _group_prices(self, model: str) -> tuple[tuple[float, float, int | None], ...]:
        """(input price, output price, output cap) of each deployment with a price; cached."""
        found = self._groups.get(model)
        if found is None:
            rows = []
            for dep in self.router.names.find(self.router.names.aliases.get(model, model)) or ():
                price = self.prices.price_for(dep)
                if price is not None and (price.input_cost_per_token or price.output_cost_per_token):
                    cap = getattr(price, "max_output_tokens", None) or price.max_tokens
                    rows.append((price.input_cost_per_token, price.output_cost_per_token, cap))
            if len(self._groups) > 10_000:  # wildcard routes take any name: keep the cache bounded
                self._groups.clear()
            found = self._groups[model] = tuple(rows)
        return found

    def cost(self, ctx: Any) -> float:
        prices = self._group_prices(ctx.model)
        if not prices:
            return 0.0
        body = ctx.body
        prompt = prompt_tokens(body)
        if ctx.call_type == "aembedding":
            return max(prompt * inp for inp, _, _ in prices)
        asked = _count(body.get("max_completion_tokens")) or _count(body.get("max_tokens")) or self.default_max_tokens
        choices = min(_count(body.get("n")) or 1, 128)
        return max(prompt * inp + min(asked, cap or asked) * choices * out for inp, out, cap in prices)


def remember(ctx: Any, hold: Hold) -> None:
    ctx.state_for(OWNER)[STATE_KEY] = hold


def settle(ctx: Any) -> None:
    """The call ended and its real cost is on the cached records: release its reservation."""
    state = ctx.state.get(OWNER)
    hold = state.pop(STATE_KEY, None) if state else None
    if hold is not None:
        hold.owner.release(hold)
