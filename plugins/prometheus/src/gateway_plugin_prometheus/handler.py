"""The plugin: `request_finished` turns each finished call into metric updates, `routes` serves
GET /metrics, `startup` picks where the numbers live (one process, or files pooled across the
gateway's workers) and `shutdown` cleans up. With `prometheus_time_to_first_token`, `stream_chunk`
notes when a stream's first chunk arrived.

Enabled like LiteLLM's: `litellm_settings.callbacks: ["prometheus"]` (or a native `plugins:` entry).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from gateway import Outcome, Plugin, RequestContext, hookimpl

from gateway_plugin_prometheus import endpoint, storage
from gateway_plugin_prometheus.call import FIRST_CHUNK_AT, Pricing, read_call
from gateway_plugin_prometheus.config import PrometheusConfig
from gateway_plugin_prometheus.families import MetricFactory
from gateway_plugin_prometheus.gateway_metrics import GatewayMetrics
from gateway_plugin_prometheus.labels import LabelMaker
from gateway_plugin_prometheus.litellm_metrics import LiteLLMMetrics

log = logging.getLogger("gateway.plugins.prometheus")


class Prometheus(Plugin):
    """Prometheus metrics of every LLM call: requests, tokens, spend, latencies, deployments'
    health, rate limits left and the plugins' verdicts, under gateway_* and LiteLLM's names."""

    name = "prometheus"  # the entry-point name, LiteLLM's callback name
    priority = 40  # observers band (0-99)
    Config = PrometheusConfig

    config: PrometheusConfig

    def __init__(self, config: PrometheusConfig, gateway: Any) -> None:
        super().__init__(config, gateway)
        self.storage = storage.Storage()
        self.registry: Any = None  # in-memory mode: this plugin's own CollectorRegistry
        self.families: list[Any] = []
        self.labels: LabelMaker | None = None
        self.pricing = Pricing(gateway)
        if not config.prometheus_time_to_first_token:
            self.stream_chunk = None  # type: ignore[method-assign]  # no hook: streams pass unparsed

    @hookimpl
    async def startup(self, gateway: Any) -> None:
        self.storage = storage.choose()
        storage.use_value_class(self.storage.multiprocess)
        from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

        if not self.storage.multiprocess:
            self.registry = CollectorRegistry()
            for collector in (ProcessCollector, PlatformCollector, GCCollector):
                collector(registry=self.registry)
        make = MetricFactory(self.registry)
        self.families = []
        if self.config.gateway_names:
            self.families.append(GatewayMetrics(self.config, make))
        if self.config.litellm_names:
            self.families.append(LiteLLMMetrics(self.config, make))
        self.labels = LabelMaker(self.config, gateway)
        where = f"pooled across workers in {self.storage.directory}" if self.storage.multiprocess else "in memory"
        log.info("prometheus: metrics on GET /metrics (%s names, %s, %s)", self.config.prometheus_metric_names, where,
                 "key required" if self.config.require_auth_for_metrics_endpoint else "public")

    @hookimpl
    async def shutdown(self, gateway: Any) -> None:
        self.families = []
        storage.release(self.storage)

    @hookimpl
    async def request_finished(self, ctx: RequestContext, outcome: Outcome) -> None:
        if not self.families or self.labels is None:
            return
        call = read_call(ctx, outcome, self.labels, self.pricing, self.name)
        for family in self.families:
            family.record(call)

    @hookimpl
    async def stream_chunk(self, ctx: RequestContext, chunk: dict[str, Any]) -> None:
        state = ctx.state_for(self.name)
        if FIRST_CHUNK_AT not in state:
            state[FIRST_CHUNK_AT] = time.time()

    @hookimpl
    def routes(self, gateway: Any) -> list[Any]:
        return [endpoint.blueprint(self)]

    def scrape_registry(self) -> Any:
        """What a scrape reads: this process's registry, or every worker's files."""
        if not self.storage.multiprocess:
            return self.registry
        from prometheus_client import CollectorRegistry
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.storage.directory)
        return registry
