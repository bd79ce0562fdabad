"""How a deployment is chosen among a model group's healthy ones: `router_settings.routing_strategy`.

- `simple-shuffle` (the default): at random, weighted by `weight`, else `rpm`, else `tpm`, else evenly.
- `least-busy`: the fewest calls in flight in this process.
- `latency-based-routing`: the lowest recent latency (an average over the last calls, per output
  token for streams as LiteLLM does), any deployment within `lowest_latency_buffer` of the best
  chosen at random; deployments with no measurement yet are tried first.
- `usage-based-routing`, `usage-based-routing-v2`: the fewest tokens used this minute. (Whatever the
  strategy, the router skips deployments at their own `rpm` / `tpm`, counted exactly: see
  `Router._admitted`.)
- `cost-based-routing`: the cheapest (input + output price per token), ties at random.

Statistics are this process's (each worker learns its own). `pick` is given the deployments that
are not cooling down when there are any.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable

STRATEGIES = ("simple-shuffle", "least-busy", "latency-based-routing", "usage-based-routing",
              "usage-based-routing-v2", "cost-based-routing")
WINDOW_S = 60.0
LATENCY_SAMPLES = 10


class NoDeploymentAvailable(Exception):
    """Every deployment of the group is at its own rpm/tpm limit."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


@dataclass(slots=True)
class Stats:
    """What the router has seen of one deployment, in this process."""

    in_flight: int = 0
    latencies: list[float] = field(default_factory=list)
    minute: int = 0
    tokens: int = 0
    failures: list[float] = field(default_factory=list)

    def window(self, now: float) -> None:
        minute = int(now // WINDOW_S)
        if minute != self.minute:
            self.minute, self.tokens = minute, 0

    def latency(self) -> float | None:
        return sum(self.latencies) / len(self.latencies) if self.latencies else None


class Strategy:
    """One routing strategy over per-deployment `Stats` (keyed by deployment id)."""

    def __init__(self, name: str, settings: dict[str, Any], price_of: Callable[[Any], float]) -> None:
        if name not in STRATEGIES:
            raise ValueError(f"router_settings.routing_strategy: {name!r} is not one of: {', '.join(STRATEGIES)}")
        self.name = name
        self.stats: dict[str, Stats] = {}
        args = settings.get("routing_strategy_args") or {}
        self.buffer = float(args.get("lowest_latency_buffer", settings.get("lowest_latency_buffer", 0)) or 0)
        self.price_of = price_of

    def of(self, dep: Any) -> Stats:
        stats = self.stats.get(dep.id)
        if stats is None:
            stats = self.stats[dep.id] = Stats()
        return stats

    # -- choosing ----------------------------------------------------------------------------------
    def pick(self, candidates: list[Any]) -> Any:
        if len(candidates) == 1 and self.name not in ("usage-based-routing", "usage-based-routing-v2"):
            return candidates[0]
        if self.name == "simple-shuffle":
            return random.choices(candidates, weights=[_weight(d) for d in candidates])[0]
        if self.name == "least-busy":
            least = min(self.of(d).in_flight for d in candidates)
            return random.choice([d for d in candidates if self.of(d).in_flight == least])
        if self.name == "latency-based-routing":
            return self._fastest(candidates)
        if self.name == "cost-based-routing":
            prices = {d.id: self.price_of(d) for d in candidates}
            cheapest = min(prices.values())
            return random.choice([d for d in candidates if prices[d.id] == cheapest])
        return self._least_used(candidates)

    def _fastest(self, candidates: list[Any]) -> Any:
        unmeasured = [d for d in candidates if self.of(d).latency() is None]
        if unmeasured:
            return random.choice(unmeasured)
        latency = {d.id: self.of(d).latency() or 0.0 for d in candidates}
        best = min(latency.values())
        return random.choice([d for d in candidates if latency[d.id] <= best * (1 + self.buffer)])

    def _least_used(self, candidates: list[Any]) -> Any:
        now = time.time()
        for d in candidates:
            self.of(d).window(now)
        least = min(self.of(d).tokens for d in candidates)
        return random.choice([d for d in candidates if self.of(d).tokens == least])

    # -- learning ----------------------------------------------------------------------------------
    def started(self, dep: Any) -> None:
        self.of(dep).in_flight += 1

    def ended(self, dep: Any, seconds: float | None, tokens: int = 0, output_tokens: int = 0) -> None:
        s = self.of(dep)
        s.in_flight = max(0, s.in_flight - 1)
        if tokens:
            s.window(time.time())
            s.tokens += tokens
        if seconds is not None:
            per = seconds / output_tokens if output_tokens else seconds
            s.latencies.append(per)
            del s.latencies[:-LATENCY_SAMPLES]


def _weight(dep: Any) -> float:
    params = dep.params
    for name in ("weight", "rpm", "tpm"):
        value = params.get(name)
        if isinstance(value, (int, float)) and value > 0:
            return float(value)
    return 1.0
