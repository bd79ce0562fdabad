"""Making metrics: one place that knows prometheus_client's classes and the storage mode.

In memory, a metric registers with the plugin's own registry (never prometheus_client's global
one, so two gateways in one process never collide). In multiprocess mode a metric registers
nowhere: its values go to the shared files, and a scrape reads those. Gauges there keep the most
recently written value across workers (`mostrecent`): a rate limit or a deployment's state is
what the last call saw, whichever worker served it.
"""

from __future__ import annotations

from typing import Any, Sequence

#: The caller labels every LiteLLM family carries; values the config leaves out are "".
LITELLM_CALLER = ("end_user", "hashed_api_key", "api_key_alias", "team", "team_alias", "user")
#: Optional caller labels and the config switch that adds each to the gateway_* families.
OPTIONAL_CALLER = (("hashed_api_key", "prometheus_include_key_hash"), ("user", "prometheus_include_user"),
                   ("end_user", "enable_end_user_cost_tracking_prometheus_only"))


def gateway_caller_labels(config: Any) -> tuple[str, ...]:
    """The caller labels of the gateway_* families: alias and team always, the rest when asked."""
    return ("api_key_alias", "team", "team_alias",
            *(label for label, switch in OPTIONAL_CALLER if getattr(config, switch)))


class Labelled:
    """A labelled metric whose children are found in a plain dict first: prometheus_client's
    `labels()` converts, checks and locks on every call (about 4 us, and a call updates some 30
    series); a known label tuple costs one hash here. Label values are always strings."""

    __slots__ = ("metric", "children")

    def __init__(self, metric: Any) -> None:
        self.metric = metric
        self.children: dict[tuple[str, ...], Any] = {}

    def labels(self, *values: str) -> Any:
        child = self.children.get(values)
        if child is None:
            child = self.children[values] = self.metric.labels(*values)
        return child


class MetricFactory:
    def __init__(self, registry: Any) -> None:
        self.registry = registry  # None in multiprocess mode

    def counter(self, name: str, doc: str, labels: Sequence[str]) -> Labelled:
        from prometheus_client import Counter

        return Labelled(Counter(name, doc, labelnames=tuple(labels), registry=self.registry))

    def histogram(self, name: str, doc: str, labels: Sequence[str], buckets: Sequence[float]) -> Labelled:
        from prometheus_client import Histogram

        return Labelled(Histogram(name, doc, labelnames=tuple(labels), buckets=tuple(buckets), registry=self.registry))

    def gauge(self, name: str, doc: str, labels: Sequence[str]) -> Labelled:
        from prometheus_client import Gauge

        return Labelled(Gauge(name, doc, labelnames=tuple(labels), registry=self.registry,
                              multiprocess_mode="mostrecent"))
