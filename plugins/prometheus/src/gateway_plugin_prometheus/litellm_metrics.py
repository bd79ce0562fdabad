"""The litellm_* metrics: the LiteLLM proxy's names and label sets, so that its Grafana dashboards
and alert rules work unchanged. Each label LiteLLM has is present; the caller labels the config
leaves out (`end_user`, `user`, `hashed_api_key` by default) are empty, which Prometheus reads as
absent. The README maps each to its gateway_* counterpart."""

from __future__ import annotations

from typing import Any

from gateway_plugin_prometheus.call import Call
from gateway_plugin_prometheus.families import LITELLM_CALLER, MetricFactory

CALLER_MODEL = (*LITELLM_CALLER, "requested_model", "model")
DEPLOYMENT_CALLER = ("requested_model", "litellm_model_name", "model_id", "api_base", "api_provider",
                     "hashed_api_key", "api_key_alias", "team", "team_alias")
DEPLOYMENT = ("litellm_model_name", "model_id", "api_base", "api_provider")
#: Our verdicts as LiteLLM's guardrail `status`.
GUARDRAIL_STATUS = {"pass": "success", "rewrite": "success", "block": "blocked", "would_block": "would_block",
                    "error": "error"}


class LiteLLMMetrics:
    def __init__(self, config: Any, make: MetricFactory) -> None:
        buckets = config.latency_buckets()
        self.requests = make.counter(
            "litellm_requests_metric", "Successful LLM calls (deprecated in LiteLLM: use "
            "litellm_proxy_total_requests_metric)", (*LITELLM_CALLER, "model"))
        self.proxy_total = make.counter(
            "litellm_proxy_total_requests_metric", "Every LLM call the proxy answered, by HTTP status",
            (*LITELLM_CALLER, "requested_model", "status_code"))
        self.proxy_failed = make.counter(
            "litellm_proxy_failed_requests_metric", "LLM calls the client got no success for (failures and blocks)",
            (*LITELLM_CALLER, "requested_model", "exception_status", "exception_class"))
        self.spend = make.counter("litellm_spend_metric", "Total spend on LLM requests (USD)",
                                  (*LITELLM_CALLER, "model"))
        self.total_tokens = make.counter("litellm_total_tokens_metric", "Input + output tokens", CALLER_MODEL)
        self.input_tokens = make.counter("litellm_input_tokens_metric", "Input (prompt) tokens", CALLER_MODEL)
        self.output_tokens = make.counter("litellm_output_tokens_metric", "Output (completion) tokens", CALLER_MODEL)
        self.total_latency = make.histogram(
            "litellm_request_total_latency_metric", "Total latency (seconds) of a request to the proxy",
            CALLER_MODEL, buckets)
        self.api_latency = make.histogram(
            "litellm_llm_api_latency_metric", "Latency (seconds) of the LLM API call alone (JSON replies)",
            CALLER_MODEL, buckets)
        self.overhead = make.histogram(
            "litellm_overhead_latency_metric", "Latency (seconds) the proxy added (JSON replies)",
            CALLER_MODEL, buckets)
        self.ttft = None
        if config.prometheus_time_to_first_token:
            self.ttft = make.histogram(
                "litellm_llm_api_time_to_first_token_metric", "Time to first token (seconds), streams only",
                ("model", "hashed_api_key", "api_key_alias", "team", "team_alias"), buckets)
        self.dep_success = make.counter(
            "litellm_deployment_success_responses", "Successful LLM API calls per deployment", DEPLOYMENT_CALLER)
        self.dep_failure = make.counter(
            "litellm_deployment_failure_responses", "Failed LLM API calls per deployment",
            (*DEPLOYMENT_CALLER, "exception_status", "exception_class"))
        self.dep_total = make.counter(
            "litellm_deployment_total_requests", "LLM API calls per deployment, success + failure", DEPLOYMENT_CALLER)
        self.dep_state = make.gauge(
            "litellm_deployment_state", "The deployment's state: 0 healthy, 1 partial outage, 2 complete outage",
            DEPLOYMENT)
        self.per_token = make.histogram(
            "litellm_deployment_latency_per_output_token", "LLM API latency per output token (seconds)",
            (*DEPLOYMENT, "hashed_api_key", "api_key_alias", "team", "team_alias"),
            (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0))
        self.remaining_requests = make.gauge(
            "litellm_remaining_api_key_requests_for_model", "Requests left in the key's tightest rpm limit",
            ("hashed_api_key", "api_key_alias", "model"))
        self.remaining_tokens = make.gauge(
            "litellm_remaining_api_key_tokens_for_model", "Tokens left in the key's tightest tpm limit",
            ("hashed_api_key", "api_key_alias", "model"))
        self.guard_latency = make.histogram(
            "litellm_guardrail_latency_seconds", "Guardrail (plugin hook) latency in seconds",
            ("guardrail_name", "status", "error_type", "hook_type"), config.plugin_buckets())
        self.guard_requests = make.counter(
            "litellm_guardrail_requests_total", "Guardrail (plugin hook) runs",
            ("guardrail_name", "status", "hook_type"))
        self.guard_errors = make.counter(
            "litellm_guardrail_errors_total", "Guardrail (plugin hook) errors", ("guardrail_name", "error_type",
                                                                                 "hook_type"))

    def record(self, call: Call) -> None:
        c = call.caller
        who = tuple(c[name] for name in LITELLM_CALLER)
        group, model = call.model_group, call.model
        self.proxy_total.labels(*who, group, call.status_code).inc()
        if call.status == "success":
            self.requests.labels(*who, model).inc()
        else:
            self.proxy_failed.labels(*who, group, call.status_code, call.exception_class).inc()
        if call.spend:
            self.spend.labels(*who, model).inc(call.spend)
        if call.total_tokens:
            self.total_tokens.labels(*who, group, model).inc(call.total_tokens)
        if call.prompt_tokens:
            self.input_tokens.labels(*who, group, model).inc(call.prompt_tokens)
        if call.completion_tokens:
            self.output_tokens.labels(*who, group, model).inc(call.completion_tokens)
        self.total_latency.labels(*who, group, model).observe(call.total_s)
        if call.upstream_s is not None:
            self.api_latency.labels(*who, group, model).observe(call.upstream_s)
        if call.overhead_s is not None:
            self.overhead.labels(*who, group, model).observe(call.overhead_s)
        if self.ttft is not None and call.ttft_s is not None:
            self.ttft.labels(model, c["hashed_api_key"], c["api_key_alias"], c["team"], c["team_alias"]).observe(
                call.ttft_s)
        self._deployments(call)
        if call.key_known:
            for unit, gauge in (("requests", self.remaining_requests), ("tokens", self.remaining_tokens)):
                if unit in call.rate_limits:
                    gauge.labels(c["hashed_api_key"], c["api_key_alias"], group).set(call.rate_limits[unit][0])
        for plugin, phase, verdict, seconds in call.verdicts:
            status = GUARDRAIL_STATUS.get(verdict, verdict)
            error_type = "plugin_error" if verdict == "error" else "none"
            self.guard_latency.labels(plugin, status, error_type, phase).observe(seconds)
            self.guard_requests.labels(plugin, status, phase).inc()
            if verdict == "error":
                self.guard_errors.labels(plugin, error_type, phase).inc()

    def _deployments(self, call: Call) -> None:
        c = call.caller
        who = (c["hashed_api_key"], c["api_key_alias"], c["team"], c["team_alias"])
        for attempt in call.attempts:
            d = attempt.deployment
            dep = (d.upstream_model, d.model_id, d.api_base, d.provider)
            labels = (call.model_group, *dep, *who)
            self.dep_total.labels(*labels).inc()
            if attempt.ok:
                self.dep_success.labels(*labels).inc()
            else:
                self.dep_failure.labels(*labels, attempt.status_code, attempt.exception_class).inc()
            self.dep_state.labels(*dep).set(attempt.state)
        last = call.attempts[-1] if call.attempts else None
        if (last is not None and last.ok and call.status == "success" and call.upstream_s
                and call.completion_tokens):
            d = last.deployment
            self.per_token.labels(d.upstream_model, d.model_id, d.api_base, d.provider, *who).observe(
                call.upstream_s / call.completion_tokens)
