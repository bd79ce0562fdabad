"""One finished call, read once into the numbers and label values every metric family needs.

`request_finished` hands over the call's `RequestContext` and `Outcome`; this module turns them
into a `Call`: tokens as the upstream reported them, the cost as the spend row prices it, the
latencies, each upstream attempt's deployment and result, the rate limits left, and the plugins'
verdicts. The metric families (`gateway_families`, `litellm_families`) only copy these out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from gateway_plugin_prometheus.labels import DeploymentLabels, LabelMaker, clip

log = logging.getLogger("gateway.plugins.prometheus")

#: `ctx.state_for(<plugin>)` key where `stream_chunk` notes when the first chunk arrived.
FIRST_CHUNK_AT = "first_chunk_at"
#: Attempt errors that mean the deployment could not be reached at all (LiteLLM's "complete outage").
UNREACHABLE = frozenset({"api_connection_error", "timeout"})
HEALTHY, PARTIAL_OUTAGE, COMPLETE_OUTAGE = 0, 1, 2
RATE_LIMIT_UNITS = ("requests", "tokens")


@dataclass(slots=True)
class Attempt:
    """One upstream attempt: which deployment, and how it went."""

    deployment: DeploymentLabels
    ok: bool
    status_code: str
    state: int  # HEALTHY, PARTIAL_OUTAGE or COMPLETE_OUTAGE
    exception_class: str = ""


@dataclass(slots=True)
class Call:
    model_group: str
    call_type: str
    status: str  # success | failure | blocked
    status_code: str
    blocked_by: str
    model: str  # the upstream model called, else the model group (LiteLLM's `model` label)
    caller: dict[str, str]
    key_known: bool
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    spend: float | None = None
    total_s: float = 0.0
    upstream_s: float | None = None
    overhead_s: float | None = None
    ttft_s: float | None = None
    exception_class: str = ""
    attempts: list[Attempt] = field(default_factory=list)
    rate_limits: dict[str, tuple[int, int | None]] = field(default_factory=dict)  # unit -> (remaining, limit)
    verdicts: list[tuple[str, str, str, float]] = field(default_factory=list)  # plugin, phase, verdict, s


def _count(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else 0


def tokens(usage: Any) -> tuple[int, int, int]:
    """(prompt, completion, total) from a usage dict, in OpenAI's or the image/audio names."""
    if not isinstance(usage, dict):
        return 0, 0, 0
    prompt = _count(usage.get("prompt_tokens")) or _count(usage.get("input_tokens"))
    completion = _count(usage.get("completion_tokens")) or _count(usage.get("output_tokens"))
    total = _count(usage.get("total_tokens")) or prompt + completion
    return prompt, completion, total


class Pricing:
    """The call's cost in USD, as its spend row prices it; None when the gateway cannot say.

    `gateway.call_cost(ctx, outcome)` when the core offers it; with an older core its price table
    (`gateway.prices`) is asked, guarded: if that fails, the cost is None and one warning says so."""

    def __init__(self, gateway: Any) -> None:
        self.gateway = gateway
        self.warned = False

    def __call__(self, ctx: Any, outcome: Any) -> float | None:
        if outcome.cost is not None:  # a fixed price per call (pass-through endpoints)
            return float(outcome.cost)
        if outcome.status not in ("success", "failure") or getattr(ctx, "cache_hit", False):
            return 0.0  # a blocked call or a cached answer is not billed
        try:
            public = getattr(self.gateway, "call_cost", None)
            if callable(public):
                return float(public(ctx, outcome))
            usage = outcome.usage if isinstance(outcome.usage, dict) else None
            return float(self.gateway.prices.call_cost(ctx, ctx.deployment, usage, outcome))
        except Exception as exc:
            if not self.warned:
                self.warned = True
                log.warning("prometheus: the call's cost is not available (%s); spend metrics stay at 0",
                            type(exc).__name__)
            return None


def _int_header(headers: Any, name: str) -> int | None:
    value = headers.get(name) if isinstance(headers, dict) else None
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def rate_limits(ctx: Any, outcome: Any) -> dict[str, tuple[int, int | None]]:
    """What the core's `x-ratelimit-remaining-*` headers said: on the reply (`ctx.response_headers`)
    or on the 429 that refused the call (the error's headers)."""
    error_headers = getattr(outcome.error, "headers", None) if outcome.error is not None else None
    out: dict[str, tuple[int, int | None]] = {}
    for headers in (ctx.response_headers, error_headers):
        if not isinstance(headers, dict):
            continue
        for unit in RATE_LIMIT_UNITS:
            remaining = _int_header(headers, f"x-ratelimit-remaining-{unit}")
            if remaining is not None:
                out[unit] = (remaining, _int_header(headers, f"x-ratelimit-limit-{unit}"))
    return out


def attempts(ctx: Any, outcome: Any, labels: LabelMaker) -> list[Attempt]:
    """Each upstream attempt (`ctx.attempts`) with its deployment's labels. A stream whose
    upstream answered but then broke off (5xx after the first byte) counts against its deployment."""
    out: list[Attempt] = []
    for record in ctx.attempts or ():
        if not isinstance(record, dict):
            continue
        status = record.get("status")
        ok = isinstance(status, int) and status < 400
        state = HEALTHY if ok else COMPLETE_OUTAGE if record.get("error") in UNREACHABLE else PARTIAL_OUTAGE
        dep = labels.deployment(ctx, record.get("model_id"), record.get("model_group"))
        out.append(Attempt(dep, ok, str(status) if isinstance(status, int) else "", state,
                           "" if ok else clip(record.get("error"))))
    if (out and out[-1].ok and ctx.stream and outcome.status == "failure"
            and isinstance(outcome.http_status, int) and outcome.http_status >= 500):
        last = out[-1]
        out[-1] = Attempt(last.deployment, False, str(outcome.http_status), PARTIAL_OUTAGE,
                          type(outcome.error).__name__ if outcome.error is not None else "")
    return out


def verdicts(ctx: Any, own_name: str) -> list[tuple[str, str, str, float]]:
    """The plugins' verdicts, `(plugin, phase, verdict, seconds)`; this plugin's own (a pass
    recorded for its `stream_chunk`, when it measures time to first token) is left out."""
    out = []
    for entry in (ctx.verdicts or {}).values():
        if not isinstance(entry, dict) or entry.get("name") == own_name:
            continue
        ms = entry.get("latency_ms")
        seconds = float(ms) / 1000 if isinstance(ms, (int, float)) and ms >= 0 else 0.0
        out.append((clip(entry.get("name")), clip(entry.get("phase")), clip(entry.get("verdict")), seconds))
    return out


def read_call(ctx: Any, outcome: Any, labels: LabelMaker, pricing: Pricing, own_name: str) -> Call:
    status = outcome.status if outcome.status in ("success", "failure", "blocked") else "failure"
    caller = labels.caller(ctx)
    group = labels.model_group(ctx, status)
    call = Call(
        model_group=group, call_type=clip(ctx.api or ctx.call_type), status=status,
        status_code=str(outcome.http_status), blocked_by=clip(ctx.blocked_by),
        model=labels.upstream_model(ctx) or group, caller=caller, key_known=labels.key_known(caller),
    )
    call.prompt_tokens, call.completion_tokens, call.total_tokens = tokens(outcome.usage)
    call.spend = pricing(ctx, outcome)
    call.total_s = max(0.0, float(outcome.end_time) - float(ctx.start_time))
    reached = ctx.deployment is not None and bool(ctx.attempts) and not getattr(ctx, "cache_hit", False)
    if not ctx.stream:  # a stream's upstream time so far covers only its first bytes (see README)
        call.upstream_s = max(0.0, float(ctx.upstream_seconds)) if reached else None
        call.overhead_s = max(0.0, call.total_s - (call.upstream_s or 0.0))
    first = (ctx.state.get(own_name) or {}).get(FIRST_CHUNK_AT)
    if ctx.stream and isinstance(first, float):
        call.ttft_s = max(0.0, first - float(ctx.start_time))
    if status != "success" and outcome.error is not None:
        call.exception_class = type(outcome.error).__name__
    call.attempts = attempts(ctx, outcome, labels)
    call.rate_limits = rate_limits(ctx, outcome)
    call.verdicts = verdicts(ctx, own_name)
    return call
