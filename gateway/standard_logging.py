"""One finished call as LiteLLM's StandardLoggingPayload (as far as the gateway's data allows).

The shape is LiteLLM's (`id`, `call_type`, `response_cost`, `status`, tokens, `startTime` /
`endTime`, `model`, `model_group`, `api_base`, `metadata` with the key's hash, alias, team and
user, `request_tags`, `end_user`, `error_information`, ...), so that what consumed LiteLLM's
logs consumes these. `status` keeps LiteLLM's two values: a call a plugin blocked is a
`"failure"`, with `metadata.blocked_by` naming the plugin and `status_fields.guardrail_status`
`"guardrail_intervened"`.

Never in a payload: the raw key (only its sha256, `user_api_key_hash`), request headers, a
deployment's api_key, the query string or userinfo of an api_base. Prompts and replies
(`messages`, `response`) only when the caller asks for them (`log_messages`).

Public for logging plugins (the generic HTTP logger and Langfuse build their records from it).
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
from typing import Any, Mapping
from urllib.parse import urlsplit

from gateway import iter_request_text

log = logging.getLogger("gateway.plugins")

#: Where each call type's input is in the request body (the rest of the body is parameters).
INPUT_FIELD = {"acompletion": "messages", "atext_completion": "prompt", "aembedding": "input",
               "aimage_generation": "prompt", "aspeech": "input", "amoderation": "input", "arerank": "query",
               "atranscription": "prompt"}
#: Body keys that are never `model_parameters`: the client's text, and the gateway's own fields.
NOT_PARAMETERS = frozenset({"messages", "prompt", "input", "query", "documents", "suffix", "instructions",
                            "model", "metadata", "tags", "guardrails", "cache", "user", "file"})
#: A body key that may hold a credential (a client may send its own `api_key`): never logged.
SECRET_NAME = re.compile(
    r"(^|_)(api_?key|key|secret|password|passwd|token|access_token|authorization|credentials?)($|_)", re.IGNORECASE)
GUARDRAIL_STATUS = {"pass": "success", "rewrite": "guardrail_intervened", "block": "guardrail_intervened",
                    "would_block": "success", "error": "guardrail_failed_to_respond"}
MAX_ERROR_CHARS = 1000
#: Calls billed by tokens: when the upstream gave no usage, it is estimated, as the spend row does.
TOKEN_CALLS = frozenset({"acompletion", "atext_completion", "aembedding"})

SUCCESS, FAILURE = "llm_api_success", "llm_api_failure"
EVENT_TYPES = (SUCCESS, FAILURE)


def event_type(outcome: Any) -> str:
    """LiteLLM's event of a finished call: a block is a failure, as LiteLLM logs it."""
    return SUCCESS if outcome.status == "success" else FAILURE


def events_from_callbacks(litellm_settings: Mapping[str, Any], names: tuple[str, ...]) -> tuple[str, ...]:
    """The events a plugin logs by default, from where LiteLLM's config names it: `callbacks`
    (both), `success_callback` (successes), `failure_callback` (failures); named nowhere there
    (a native `plugins:` entry): both."""
    def listed(key: str) -> bool:
        value = litellm_settings.get(key)
        value = [value] if isinstance(value, str) else value
        return isinstance(value, list) and any(name in value for name in names)

    chosen = set()
    if listed("callbacks"):
        chosen.update(EVENT_TYPES)
    if listed("success_callback"):
        chosen.add(SUCCESS)
    if listed("failure_callback"):
        chosen.add(FAILURE)
    return tuple(e for e in EVENT_TYPES if e in chosen) or EVENT_TYPES


def wants_messages(log_messages: bool | None, turn_off_message_logging: bool | None, ctx: Any) -> bool:
    """Prompts and replies are logged only when asked for (`<plugin>_log_messages: true`, or
    LiteLLM's `turn_off_message_logging: false` said explicitly); `turn_off_message_logging: true`
    (in the config, or in the request's `metadata`) always wins."""
    if turn_off_message_logging is True or (ctx.metadata or {}).get("turn_off_message_logging") is True:
        return False
    return log_messages is True or turn_off_message_logging is False


def safe_base(url: Any) -> str | None:
    """An api_base as it may be logged: scheme, host and path only (no userinfo, no query)."""
    if not isinstance(url, str) or not url:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, (list, tuple)) else []


def request_tags(ctx: Any) -> list[str]:
    """The spend row's tags: request `metadata.tags` and `tags`, the key's `metadata.tags` and
    `tags`, the team's `metadata.tags`; deduplicated, in order."""
    principal = ctx.principal
    meta = ctx.metadata if isinstance(ctx.metadata, dict) else {}
    tags = [*_strings(meta.get("tags")), *_strings(ctx.body.get("tags")),
            *_strings((principal.metadata or {}).get("tags")), *_strings(principal.tags),
            *_strings((principal.team_metadata or {}).get("tags"))]
    return list(dict.fromkeys(tags))


def spend_logs_metadata(ctx: Any) -> dict[str, Any] | None:
    """The team's `spend_logs_metadata`, overlaid by the key's, overlaid by the request's."""
    merged: dict[str, Any] = {}
    for source in ((ctx.principal.team_metadata or {}).get("spend_logs_metadata"),
                   (ctx.principal.metadata or {}).get("spend_logs_metadata"),
                   (ctx.metadata or {}).get("spend_logs_metadata")):
        if isinstance(source, dict):
            merged.update(source)
    return merged or None


def _reply_text(response: dict[str, Any] | None) -> str:
    parts: list[str] = []
    for choice in (response or {}).get("choices") or ():
        message = choice.get("message") or {}
        parts.append(str(message.get("content") or choice.get("text") or ""))
        for call in message.get("tool_calls") or ():
            fn = call.get("function") or {}
            parts.append(str(fn.get("name") or "") + str(fn.get("arguments") or ""))
    return "".join(parts)


def billed_usage(ctx: Any, outcome: Any) -> tuple[dict[str, Any] | None, bool]:
    """The usage the spend row bills, and whether it is estimated: the upstream's, else, for a
    token call that succeeded without one (some streams), about four characters a token of what
    was sent and received."""
    if isinstance(outcome.usage, dict):
        return dict(outcome.usage), bool(outcome.usage_estimated)
    if outcome.status != "success" or ctx.call_type not in TOKEN_CALLS:
        return None, False
    prompt = math.ceil(len("\n".join(iter_request_text(ctx.body))) / 4)
    response = outcome.response if isinstance(outcome.response, dict) else None
    completion = math.ceil(len(_reply_text(response)) / 4)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}, True


def token_counts(usage: Any) -> tuple[int, int, int]:
    """(prompt, completion, total) from an OpenAI usage (images and audio say input/output)."""
    usage = usage if isinstance(usage, dict) else {}
    prompt = int(usage.get("prompt_tokens") or usage.get("input_tokens") or 0)
    completion = int(usage.get("completion_tokens") or usage.get("output_tokens") or 0)
    return prompt, completion, int(usage.get("total_tokens") or prompt + completion)


def key_hash(ctx: Any, gateway: Any) -> str | None:
    """The caller's key as the spend row names it: its sha256 (the master key's for admins)."""
    principal = ctx.principal
    if principal.api_key:
        return principal.api_key
    master = getattr(gateway, "master_key", None)
    return hashlib.sha256(master.encode()).hexdigest() if principal.is_admin and master else None


_cost_warned = False


def response_cost(ctx: Any, outcome: Any, gateway: Any) -> float | None:
    """What the call cost in USD, as the spend row records it (`gateway.call_cost`); None, with
    one warning per process, should pricing fail (a logger must not lose the record for it)."""
    global _cost_warned
    try:
        return float(gateway.call_cost(ctx, outcome))
    except Exception as exc:
        if not _cost_warned:
            _cost_warned = True
            log.warning("response_cost is not available to logging plugins (%s); it is logged as null",
                        type(exc).__name__)
        return None


def _error_message(error: Any) -> str:
    text = getattr(error, "message", None) or str(error)
    return " ".join(str(text).split())[:MAX_ERROR_CHARS]


def _parameters(ctx: Any) -> dict[str, Any]:
    """The request's scalar parameters (temperature, max_tokens, stream...): never its text, never
    a value under a credential's name."""
    return {k: v for k, v in ctx.body.items()
            if k not in NOT_PARAMETERS and not SECRET_NAME.search(k)
            and (v is None or isinstance(v, (bool, int, float)) or (isinstance(v, str) and len(v) <= 100))}


def _loggable_reply(response: dict[str, Any] | None) -> dict[str, Any] | None:
    """The reply as logged: embedding vectors and base64 images are left out (their size, not
    their meaning, would fill the log), the rest as it came."""
    data = response.get("data") if response else None
    if not isinstance(data, list) or not any(isinstance(d, dict) and ("embedding" in d or "b64_json" in d)
                                             for d in data):
        return response
    slim = [{k: (f"<{len(v)} values>" if k == "embedding" and isinstance(v, list) else
                 f"<{len(v)} base64 characters>" if k == "b64_json" and isinstance(v, str) else v)
             for k, v in d.items()} if isinstance(d, dict) else d for d in data]
    return {**response, "data": slim}


def _guardrails(ctx: Any) -> list[dict[str, Any]] | None:
    out = []
    for verdict in (ctx.verdicts or {}).values():
        latency = verdict.get("latency_ms")
        out.append({"guardrail_name": verdict.get("name"), "guardrail_mode": verdict.get("phase"),
                    "guardrail_status": GUARDRAIL_STATUS.get(verdict.get("verdict"), "success"),
                    "duration": latency / 1000 if isinstance(latency, (int, float)) else None})
    return out or None


def build_payload(ctx: Any, outcome: Any, gateway: Any, *, log_messages: bool,
                  redact_key_info: bool = False) -> dict[str, Any]:
    """The StandardLoggingPayload of one finished call (a JSON-ready dict). `redact_key_info`
    (LiteLLM's `redact_user_api_key_info`) leaves every `user_api_key_*` field null."""
    principal = ctx.principal
    dep = ctx.deployment
    usage, estimated = billed_usage(ctx, outcome)
    prompt_tokens, completion_tokens, total_tokens = token_counts(usage)
    cost = response_cost(ctx, outcome, gateway)
    api_base = safe_base(getattr(dep, "api_base", None))
    upstream_model = getattr(dep, "upstream_model", None) or ctx.model
    model_id = getattr(dep, "id", None)
    status = "success" if outcome.status == "success" else "failure"
    guardrails = _guardrails(ctx)
    if ctx.blocked_by:
        guardrail_status = "guardrail_intervened"
    else:
        guardrail_status = "success" if guardrails else "not_run"
    response = outcome.response if isinstance(outcome.response, dict) else None
    metadata: dict[str, Any] = {
        "user_api_key_hash": key_hash(ctx, gateway),
        "user_api_key_alias": principal.key_alias,
        "user_api_key_org_id": None,
        "user_api_key_team_id": principal.team_id,
        "user_api_key_team_alias": principal.team_alias,
        "user_api_key_user_id": principal.user_id,
        "user_api_key_user_email": None,
        "user_api_key_end_user_id": ctx.end_user,
        "user_api_key_request_route": ctx.route,
        "spend_logs_metadata": spend_logs_metadata(ctx),
        "requester_ip_address": None,
        "requester_metadata": dict(ctx.metadata) if isinstance(ctx.metadata, dict) else None,
        "applied_guardrails": [g["guardrail_name"] for g in guardrails] if guardrails else None,
        "usage_object": usage,
        # The gateway's own, beyond LiteLLM's fields:
        "gateway_status": outcome.status,
        "http_status": outcome.http_status,
        "blocked_by": ctx.blocked_by,
        "would_have_blocked": list(ctx.monitored) or None,
        "usage_estimated": estimated or None,
        "annotations": dict(outcome.annotations) or None,
        "attempts": list(ctx.attempts) if len(ctx.attempts) > 1 else None,
    }
    if redact_key_info:
        metadata.update({k: None for k in metadata if k.startswith("user_api_key_")})
    error = outcome.error if outcome.status != "success" else None
    error_information = None
    if error is not None:
        error_information = {"error_code": str(outcome.http_status), "error_class": type(error).__name__,
                             "llm_provider": getattr(dep, "provider", None), "traceback": "",
                             "error_message": _error_message(error)}
    input_field = INPUT_FIELD.get(ctx.call_type, "messages")
    return {
        "id": ctx.request_id,
        "trace_id": ctx.request_id,
        "call_type": ctx.api or ctx.call_type,
        "stream": bool(ctx.stream),
        "response_cost": cost,
        "cost_breakdown": None,
        "response_cost_failure_debug_info": None,
        "status": status,
        "status_fields": {"llm_api_status": status, "guardrail_status": guardrail_status},
        "custom_llm_provider": getattr(dep, "provider", None),
        "total_tokens": total_tokens,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "startTime": ctx.start_time,
        "endTime": outcome.end_time,
        "completionStartTime": outcome.end_time,
        "response_time": max(0.0, outcome.end_time - ctx.start_time),
        "model_map_information": {"model_map_key": upstream_model, "model_map_value": None},
        "model": upstream_model,
        "model_id": model_id,
        "model_group": ctx.model,
        "api_base": api_base or "",
        "metadata": metadata,
        "cache_hit": bool(getattr(ctx, "cache_hit", False)),
        "cache_key": None,
        "saved_cache_cost": 0.0,
        "request_tags": request_tags(ctx),
        "end_user": ctx.end_user,
        "requester_ip_address": None,
        "messages": ctx.body.get(input_field) if log_messages else None,
        "response": _loggable_reply(response) if log_messages else None,
        "error_str": error_information["error_message"] if error_information else None,
        "error_information": error_information,
        "model_parameters": _parameters(ctx),
        "hidden_params": {"model_id": model_id, "cache_key": None, "api_base": api_base,
                          "response_cost": cost, "litellm_overhead_time_ms": None, "additional_headers": None,
                          "litellm_model_name": upstream_model},
        "guardrail_information": guardrails,
        "standard_built_in_tools_params": None,
    }
