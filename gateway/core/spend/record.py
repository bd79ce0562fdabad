"""One spend-log row from a finished call: cost, tokens, tags and metadata merged as documented.

Tags = request `metadata.tags` and top-level `tags`, then the key's `metadata.tags` and `tags`, then
the team's `metadata.tags`; deduplicated, order kept. `spend_logs_metadata` = the team's, overlaid
by the key's, overlaid by the request's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from gateway.context import iter_request_text
from gateway.core.spend.pricing import TOKEN_CALLS
from gateway.core.storable import clean_text, storable

# The width of the spend-log columns that hold strings a client or an upstream chose (request id,
# model, end user, tag): longer values are cut, so that a row can always be stored.
WIDTH = 255


@dataclass(slots=True)
class SpendRow:
    request_id: str
    call_type: str
    api_key: str | None
    spend: float
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    start_time: datetime
    end_time: datetime
    model: str
    model_group: str
    api_base: str | None
    user: str | None
    end_user: str | None
    team_id: str | None
    request_tags: list[str]
    metadata: dict[str, Any]
    status: str
    http_status: int
    blocked_by: str | None = None
    usage_estimated: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    #: What was asked and answered, with `general_settings.store_prompts_in_spend_logs` (as logged:
    #: `logging_only` guardrails have been applied); None otherwise.
    messages: Any = None
    response: Any = None


def _strings(value: Any) -> list[str]:
    return [clean_text(v)[:WIDTH] for v in value if isinstance(v, str)] if isinstance(value, (list, tuple)) else []


def _fit(value: Any) -> Any:
    return clean_text(value)[:WIDTH] if isinstance(value, str) else value


def merge_tags(body: dict[str, Any], principal: Any) -> list[str]:
    request_meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    ordered = [*_strings(request_meta.get("tags")), *_strings(body.get("tags")),
               *_strings((principal.metadata or {}).get("tags")), *_strings(principal.tags),
               *_strings((principal.team_metadata or {}).get("tags"))]
    return list(dict.fromkeys(ordered))


def merge_spend_logs_metadata(body: dict[str, Any], principal: Any) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    request_meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    for source in ((principal.team_metadata or {}).get("spend_logs_metadata"),
                   (principal.metadata or {}).get("spend_logs_metadata"),
                   request_meta.get("spend_logs_metadata")):
        if isinstance(source, dict):
            merged.update(source)
    return merged


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / 4) if text else 0


def completion_text(response: dict[str, Any] | None) -> str:
    """The text a reply carries: its choices' content or text, and their tool calls."""
    parts: list[str] = []
    for choice in (response or {}).get("choices") or ():
        message = choice.get("message") or {}
        parts.append(str(message.get("content") or choice.get("text") or ""))
        for call in message.get("tool_calls") or ():
            fn = call.get("function") or {}
            parts.append(str(fn.get("name") or "") + str(fn.get("arguments") or ""))
    return "".join(parts)


def estimate_usage(body: dict[str, Any], response: dict[str, Any] | None) -> dict[str, int]:
    """Usage when the upstream gave none: about four characters a token, of the request's text
    (what was sent) and of the reply's text (what was received)."""
    prompt = estimate_tokens("\n".join(iter_request_text(body)))
    completion = estimate_tokens(completion_text(response))
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _to_dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


#: Where each call type's input is in the request body.
INPUT_FIELD = {"acompletion": "messages", "atext_completion": "prompt", "aembedding": "input",
               "aimage_generation": "prompt", "aspeech": "input", "amoderation": "input", "arerank": "query",
               "atranscription": "prompt"}


def _org_of(principal: Any) -> str | None:
    """The organization of the caller's team (None: no team, or a team in no organization)."""
    records = principal.extra.get("records") if principal.extra else None
    team = records[1] if records and len(records) > 1 else None
    return getattr(team, "organization_id", None)


def billed_usage(ctx: Any, outcome: Any, prices: Any) -> tuple[dict[str, Any], bool, float]:
    """(usage, estimated, cost in USD) of a finished call, as its spend row records them: the one
    place that says what a call cost (`Gateway.call_cost` hands it to plugins)."""
    usage = dict(outcome.usage) if isinstance(outcome.usage, dict) else None
    estimated = bool(outcome.usage_estimated)
    response = outcome.response if isinstance(outcome.response, dict) else None
    if usage is None and outcome.status == "success" and ctx.call_type in TOKEN_CALLS:
        # The upstream gave no usage (some streams): estimate from the text, and say so.
        usage = estimate_usage(ctx.body, response)
        estimated = True
    usage = usage or {}
    # A failure is billed for the usage it reports: a stream cut short reports what was sent and
    # received (estimated); other failures report none. A blocked call is not billed.
    if outcome.cost is not None:  # a fixed price per call (pass-through endpoints)
        spend = float(outcome.cost)
    else:
        billed = outcome.status in ("success", "failure") and not ctx.cache_hit
        spend = prices.call_cost(ctx, ctx.deployment, usage, outcome) if billed else 0.0
    return usage, estimated, spend


def build_row(ctx: Any, outcome: Any, prices: Any, master_key_hash: str | None, store_prompts: bool = False) -> SpendRow:
    principal = ctx.principal
    response = outcome.response if isinstance(outcome.response, dict) else None
    usage, estimated, spend = billed_usage(ctx, outcome, prices)
    # OpenAI's image and audio replies name them input and output tokens
    prompt_tokens = int(usage.get("prompt_tokens") or usage.get("input_tokens") or 0)
    completion_tokens = int(usage.get("completion_tokens") or usage.get("output_tokens") or 0)
    total = int(usage.get("total_tokens") or prompt_tokens + completion_tokens)
    dep = ctx.deployment
    api_key = principal.api_key or (master_key_hash if principal.is_admin else None)
    request_id = (response or {}).get("id") if isinstance((response or {}).get("id"), str) else None
    if ctx.cache_hit:  # an answer served again: its id is the first call's, the row is this call's
        request_id = None
    metadata = {
        "user_api_key": api_key,
        "user_api_key_alias": principal.key_alias,
        "user_api_key_team_id": principal.team_id,
        "user_api_key_user_id": principal.user_id,
        "user_api_key_team_alias": principal.team_alias,
        "user_api_key_org_id": _org_of(principal),
        "spend_logs_metadata": storable(merge_spend_logs_metadata(ctx.body, principal)) or None,
        "gateway_request_id": ctx.request_id,
    }
    if usage and estimated:
        metadata["usage_estimated"] = True
    if ctx.blocked_by:
        metadata["blocked_by"] = ctx.blocked_by
    if ctx.monitored:
        metadata["would_have_blocked"] = ctx.monitored
    if ctx.verdicts:
        metadata["guardrails"] = list(ctx.verdicts.values())
    if ctx.annotations:
        metadata["annotations"] = ctx.annotations
    if ctx.cache_hit:
        metadata["cache_hit"] = True
    if len(ctx.attempts) > 1:  # retries or fallbacks: every deployment tried, in order
        metadata["attempts"] = ctx.attempts
    if outcome.error is not None and outcome.status != "success":
        metadata["error"] = {"message": clean_text(getattr(outcome.error, "message", str(outcome.error)))[:1000],
                             "type": getattr(outcome.error, "type", type(outcome.error).__name__)}
    return SpendRow(
        request_id=_fit(request_id or ctx.request_id), call_type=ctx.api or ctx.call_type, api_key=api_key, spend=spend,
        prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, total_tokens=total,
        start_time=_to_dt(ctx.start_time), end_time=_to_dt(outcome.end_time),
        model=_fit(dep.upstream_model if dep is not None else ctx.model), model_group=_fit(ctx.model),
        api_base=dep.display_base if dep is not None else None, user=principal.user_id,
        end_user=_fit(ctx.end_user) if isinstance(ctx.end_user, str) else None, team_id=principal.team_id,
        request_tags=merge_tags(ctx.body, principal), metadata=metadata, status=outcome.status,
        http_status=outcome.http_status, blocked_by=ctx.blocked_by, usage_estimated=estimated and bool(usage),
        messages=storable(ctx.body.get(INPUT_FIELD.get(ctx.call_type, "messages"))) if store_prompts else None,
        response=storable(response) if store_prompts and response is not None else None,
    )
