"""The gateway_* metrics: Prometheus's naming conventions (`_total` counters, `_seconds`
histograms, units in the name), one metric per quantity with the variants as labels."""

from __future__ import annotations

from typing import Any

from gateway_plugin_prometheus.call import Call
from gateway_plugin_prometheus.families import MetricFactory, gateway_caller_labels

DEPLOYMENT = ("model_group", "model_id", "provider", "upstream_model", "api_base")


class GatewayMetrics:
    def __init__(self, config: Any, make: MetricFactory) -> None:
        self.caller_labels = caller = gateway_caller_labels(config)
        buckets = config.latency_buckets()
        self.requests = make.counter(
            "gateway_requests", "LLM calls that finished, by model group, API called (call_type), status "
            "(success, failure, blocked), HTTP status and the plugin that blocked it",
            ("model_group", "call_type", "status", "status_code", "blocked_by", *caller))
        self.tokens = make.counter(
            "gateway_tokens", "Tokens the upstream reported, by type (prompt, completion)",
            ("model_group", "call_type", "type", *caller))
        self.spend = make.counter(
            "gateway_spend_usd", "What the calls cost in USD, as the spend log prices them",
            ("model_group", "call_type", *caller))
        self.latency = make.histogram(
            "gateway_request_latency_seconds", "Whole call, from the request to the end of the reply (streams: "
            "to the last chunk)", ("model_group", "call_type", "status"), buckets)
        self.upstream = make.histogram(
            "gateway_upstream_latency_seconds", "Time spent waiting for the upstream, every attempt included "
            "(JSON replies; not streams)", ("model_group", "call_type"), buckets)
        self.overhead = make.histogram(
            "gateway_overhead_latency_seconds", "The gateway's own time: whole call minus upstream time (JSON "
            "replies and refusals; not streams)", ("model_group", "call_type"), buckets)
        self.ttft = None
        if config.prometheus_time_to_first_token:
            self.ttft = make.histogram(
                "gateway_time_to_first_token_seconds", "Streams: from the request to the first chunk from the "
                "upstream", ("model_group", "call_type"), buckets)
        self.deployment_calls = make.counter(
            "gateway_deployment_calls", "Upstream attempts per deployment, by result (success, failure) and "
            "HTTP status (empty: not reached)", (*DEPLOYMENT, "result", "status_code"))
        self.deployment_state = make.gauge(
            "gateway_deployment_state", "Each deployment's last attempt: 0 healthy, 1 failed (partial outage), "
            "2 unreachable or timed out (complete outage)", DEPLOYMENT)
        self.rate_remaining = make.gauge(
            "gateway_rate_limit_remaining", "Requests or tokens left in the caller's tightest rate limit, as the "
            "x-ratelimit-remaining-* headers of its last call said", ("unit", "model_group", *caller))
        self.rate_limit = make.gauge(
            "gateway_rate_limit_limit", "The caller's tightest rate limit (x-ratelimit-limit-*)",
            ("unit", "model_group", *caller))
        self.plugin_latency = make.histogram(
            "gateway_plugin_latency_seconds", "Time each plugin's request hooks took per call, by phase (pre_call, "
            "during_call, post_call, logging_only)", ("plugin", "phase"), config.plugin_buckets())
        self.plugin_verdicts = make.counter(
            "gateway_plugin_verdicts", "Each plugin's verdict per call and phase (pass, rewrite, block, "
            "would_block, error)", ("plugin", "phase", "verdict"))

    def record(self, call: Call) -> None:
        caller = tuple(call.caller[name] for name in self.caller_labels)
        group, api = call.model_group, call.call_type
        self.requests.labels(group, api, call.status, call.status_code, call.blocked_by, *caller).inc()
        if call.prompt_tokens:
            self.tokens.labels(group, api, "prompt", *caller).inc(call.prompt_tokens)
        if call.completion_tokens:
            self.tokens.labels(group, api, "completion", *caller).inc(call.completion_tokens)
        if call.spend:
            self.spend.labels(group, api, *caller).inc(call.spend)
        self.latency.labels(group, api, call.status).observe(call.total_s)
        if call.upstream_s is not None:
            self.upstream.labels(group, api).observe(call.upstream_s)
        if call.overhead_s is not None:
            self.overhead.labels(group, api).observe(call.overhead_s)
        if self.ttft is not None and call.ttft_s is not None:
            self.ttft.labels(group, api).observe(call.ttft_s)
        for attempt in call.attempts:
            dep = attempt.deployment
            self.deployment_calls.labels(dep.model_group, dep.model_id, dep.provider, dep.upstream_model, dep.api_base,
                                         "success" if attempt.ok else "failure", attempt.status_code).inc()
            self.deployment_state.labels(dep.model_group, dep.model_id, dep.provider, dep.upstream_model,
                                         dep.api_base).set(attempt.state)
        if call.key_known:  # else the keys without an alias would share (and overwrite) one series
            for unit, (remaining, limit) in call.rate_limits.items():
                self.rate_remaining.labels(unit, group, *caller).set(remaining)
                if limit is not None:
                    self.rate_limit.labels(unit, group, *caller).set(limit)
        for plugin, phase, verdict, seconds in call.verdicts:
            self.plugin_latency.labels(plugin, phase).observe(seconds)
            self.plugin_verdicts.labels(plugin, phase, verdict).inc()
