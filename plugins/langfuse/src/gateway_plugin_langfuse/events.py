"""One finished call as Langfuse ingestion events: a `trace-create` and a `generation-create`.

Built from the call's StandardLoggingPayload (payload.py), as LiteLLM's Langfuse logger builds
them from its own. The request's `metadata` may steer them, with LiteLLM's keys: `trace_id`
(group calls in one trace), `existing_trace_id` (add the generation to a trace without touching
it), `trace_name`, `generation_name`, `generation_id`, `session_id`, `trace_user_id`,
`trace_metadata`, `trace_release`, `version` / `trace_version`.

Each event has its own id (a UUID made once, so a retried batch is deduplicated by Langfuse);
the trace's id is the call's `x-request-id` unless the request names one; the generation's id is
the `x-request-id` too (traces and observations are separate kinds in Langfuse).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

#: The payload's metadata keys that Langfuse shows as the generation's metadata, besides the
#: StandardLoggingMetadata (the key's hash, alias, team, user...).
CALL_FIELDS = ("call_type", "model_group", "model_id", "custom_llm_provider", "api_base", "cache_hit", "stream",
               "status", "response_cost", "error_information", "guardrail_information")


def iso(ts: float) -> str:
    """Langfuse's timestamps: ISO 8601, UTC, milliseconds."""
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _text(meta: dict[str, Any], *names: str) -> str | None:
    for name in names:
        value = meta.get(name)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()[:200]
    return None


def _parameters(params: dict[str, Any]) -> dict[str, Any]:
    """Langfuse's modelParameters hold strings, numbers, booleans and lists of strings."""
    return {k: v for k, v in params.items() if isinstance(v, (str, int, float, bool))
            or (isinstance(v, list) and all(isinstance(i, str) for i in v))}


def _clean(value: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if v is not None}


def call_events(payload: dict[str, Any], *, release: str | None = None, environment: str | None = None,
                now: float | None = None) -> list[dict[str, Any]]:
    """The events of one call, in order: the trace (unless the request names an existing one)
    and the generation."""
    meta = payload.get("metadata") or {}
    asked = meta.get("requester_metadata") if isinstance(meta.get("requester_metadata"), dict) else {}
    stamp = iso(now if now is not None else payload["endTime"])
    default_name = f"litellm-{payload['call_type']}"
    existing = _text(asked, "existing_trace_id")
    trace_id = existing or _text(asked, "trace_id") or payload["trace_id"]
    failed = payload["status"] != "success"
    generation_metadata = _clean({**{k: v for k, v in meta.items() if k != "requester_metadata"},
                                  **{k: payload.get(k) for k in CALL_FIELDS},
                                  "requester_metadata": asked or None})
    events: list[dict[str, Any]] = []
    if existing is None:
        trace_metadata = asked.get("trace_metadata") if isinstance(asked.get("trace_metadata"), dict) else {}
        trace = {
            "id": trace_id,
            "timestamp": iso(payload["startTime"]),
            "name": _text(asked, "trace_name") or default_name,
            "userId": _text(asked, "trace_user_id") or payload.get("end_user") or meta.get("user_api_key_user_id"),
            "sessionId": _text(asked, "session_id"),
            "release": _text(asked, "trace_release") or release,
            "version": _text(asked, "trace_version", "version"),
            "metadata": _clean({"user_api_key_hash": meta.get("user_api_key_hash"),
                                "user_api_key_alias": meta.get("user_api_key_alias"),
                                "user_api_key_team_id": meta.get("user_api_key_team_id"),
                                "user_api_key_team_alias": meta.get("user_api_key_team_alias"),
                                "model_group": payload.get("model_group"), **trace_metadata}),
            "tags": payload.get("request_tags") or [],
            "input": payload.get("messages"),
            "output": payload.get("response"),
            "environment": environment,
        }
        events.append({"id": str(uuid.uuid4()), "timestamp": stamp, "type": "trace-create", "body": _clean(trace)})
    prompt, completion, total = payload["prompt_tokens"], payload["completion_tokens"], payload["total_tokens"]
    generation = {
        "id": _text(asked, "generation_id") or payload["id"],
        "traceId": trace_id,
        "name": _text(asked, "generation_name") or default_name,
        "startTime": iso(payload["startTime"]),
        "endTime": iso(payload["endTime"]),
        "completionStartTime": iso(payload["completionStartTime"]),
        "model": payload.get("model"),
        "modelParameters": _parameters(payload.get("model_parameters") or {}),
        "usageDetails": {"input": prompt, "output": completion, "total": total} if total or prompt else None,
        "costDetails": {"total": payload["response_cost"]} if payload.get("response_cost") is not None else None,
        "input": payload.get("messages"),
        "output": payload.get("response"),
        "metadata": generation_metadata,
        "level": "ERROR" if failed else "DEFAULT",
        "statusMessage": payload.get("error_str") if failed else None,
        "version": _text(asked, "version"),
        "environment": environment,
    }
    events.append({"id": str(uuid.uuid4()), "timestamp": stamp, "type": "generation-create",
                   "body": _clean(generation)})
    return events
