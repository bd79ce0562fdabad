"""The plugin's settings, validated once at start-up: a bad value stops the gateway with one line.

Where LiteLLM has a setting for the same thing, its flat key is the field's name
(`require_auth_for_metrics_endpoint`, `prometheus_latency_buckets`,
`enable_end_user_cost_tracking_prometheus_only`), so a LiteLLM config with
`litellm_settings.callbacks: ["prometheus"]` keeps meaning what it meant. The others carry the
prefix `prometheus_`: flat keys are a namespace shared by every plugin.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, field_validator

from gateway import PluginConfig

#: LiteLLM's latency buckets (seconds), so that its dashboards' quantiles read the same.
DEFAULT_LATENCY_BUCKETS = (0.005, 0.00625, 0.0125, 0.025, 0.05, 0.1, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5,
                           5.0, 5.5, 6.0, 6.5, 7.0, 7.5, 8.0, 8.5, 9.0, 9.5, 10.0, 15.0, 20.0, 25.0, 30.0, 60.0,
                           120.0, 180.0, 240.0, 300.0)
#: Plugin hooks take micro- to milliseconds: finer buckets than a whole call's.
DEFAULT_PLUGIN_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                          2.5, 5.0, 10.0)


def _buckets(values: list[float] | None) -> list[float] | None:
    if values is None:
        return None
    finite = [float(v) for v in values if not math.isinf(float(v))]  # +Inf is always added
    if not finite:
        raise ValueError("give at least one finite bucket bound (seconds)")
    if any(v <= 0 for v in finite) or finite != sorted(set(finite)):
        raise ValueError("bucket bounds must be positive and strictly increasing")
    return finite


class PrometheusConfig(PluginConfig):
    """Settings of `prometheus`."""

    require_auth_for_metrics_endpoint: bool = Field(
        False,
        description="Ask for a key on GET /metrics (LiteLLM's setting). Off: anyone who reaches the gateway may "
        "scrape it, as in LiteLLM. On: the master key or any valid virtual key, as LiteLLM; no key or a wrong one "
        "gets 401.",
    )
    prometheus_metric_names: Literal["both", "gateway", "litellm"] = Field(
        "both",
        description="Which names to export: `gateway` (gateway_* names, Prometheus conventions), `litellm` "
        "(LiteLLM's litellm_* names, for its Grafana dashboards), or `both` (each event counted under both).",
    )
    prometheus_latency_buckets: list[float] | None = Field(
        None,
        description="Bucket bounds in seconds for the latency histograms (LiteLLM's setting; +Inf is always "
        "added). Default: LiteLLM's 35 bounds from 5 ms to 300 s.",
    )
    prometheus_plugin_latency_buckets: list[float] | None = Field(
        None,
        description="Bucket bounds in seconds for the per-plugin hook latency histograms. Default: 0.1 ms to 10 s.",
    )
    prometheus_include_user: bool = Field(
        False,
        description="Label calls with the key's user id (`user`). Off by default: user ids are personal data and "
        "unbounded; when on, at most prometheus_label_value_limit distinct values per worker, the rest `other`.",
    )
    enable_end_user_cost_tracking_prometheus_only: bool = Field(
        False,
        description="Label calls with the end user (the request's `user` field, `end_user`), as LiteLLM's setting "
        "of this name does. Off by default: clients choose these values; when on, bounded like "
        "prometheus_include_user.",
    )
    prometheus_include_key_hash: bool = Field(
        False,
        description="Label calls with `hashed_api_key`: the first 16 hex digits of the key's sha256, never the key. "
        "Off by default (one series set per key); `api_key_alias`, `team` and `team_alias` are always labels.",
    )
    prometheus_label_value_limit: int = Field(
        500,
        ge=1,
        le=100_000,
        description="Most distinct values per worker of a label that requests choose (user, end user, a wildcard "
        "route's model names); further values are counted under `other`, so a client cannot grow the series "
        "without bound.",
    )
    prometheus_time_to_first_token: bool = Field(
        False,
        description="Measure streams' time to first token (through the stream_chunk hook). Off by default: with it "
        "every streamed chunk is parsed and re-serialised, and the plugin shows as a passing hook in "
        "x-gateway-guardrails and the spend row's metadata.guardrails.",
    )

    @field_validator("prometheus_latency_buckets", "prometheus_plugin_latency_buckets")
    @classmethod
    def _check_buckets(cls, values: list[float] | None) -> list[float] | None:
        return _buckets(values)

    def latency_buckets(self) -> tuple[float, ...]:
        return tuple(self.prometheus_latency_buckets or DEFAULT_LATENCY_BUCKETS)

    def plugin_buckets(self) -> tuple[float, ...]:
        return tuple(self.prometheus_plugin_latency_buckets or DEFAULT_PLUGIN_BUCKETS)

    @property
    def gateway_names(self) -> bool:
        return self.prometheus_metric_names in ("both", "gateway")

    @property
    def litellm_names(self) -> bool:
        return self.prometheus_metric_names in ("both", "litellm")
