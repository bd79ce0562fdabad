"""Rate limits of keys, teams, users and end users: `rpm_limit`, `tpm_limit`, `max_parallel_requests`.

Each limit set on a record that a call counts towards becomes one claim, and the call takes them
all (with its budget reservation) in one acquire, or is refused with 429 `rate_limit_error` naming
the first limit that did not fit, in the LiteLLM proxy's words. Windows are `WINDOW_S` (60 s)
long and start with the first request counted after the previous window ended (LiteLLM's rule).

- rpm: a window claim of 1 request per call admitted (refused calls are not counted).
- tpm: a window claim of 0 at admission, refused once the window's tokens reached the limit; the
  call's real `total_tokens` are added when it ends (`count_tokens`).
- max_parallel_requests: a hold of 1, released when the call (a stream included) ends, with the
  budget reservation; a hold a dead worker left expires after `budget_reservation_ttl_s`.

End users' limits are read off their record with getattr (`rpm_limit`, `tpm_limit`,
`max_parallel_requests`), so that records given them later (budget objects) work unchanged.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

from gateway.core.limits.claims import Claim, LimitReached
from gateway.core.settings import ConfigError
from gateway.errors import RateLimitError

#: The public window: one minute. `WINDOW_ENV` shortens it, for tests only.
WINDOW_S = 60.0
WINDOW_ENV = "GATEWAY_TEST_RATE_LIMIT_WINDOW_S"
FAILURE_SETTING = "rate_limit_redis_failure"
FAILURE_MODES = ("fail_open", "fail_closed")
#: Where the call's tpm counters are kept until it ends: the private state of the plugin that took them.
OWNER, STATE_KEY = "virtual_keys", "rate_limits"

#: LiteLLM's names of the entities and of the kinds of limit, as its refusals print them.
ENTITY_NAMES = {"key": "api_key", "team": "team", "user": "user", "end_user": "end_user"}
KIND_NAMES = {"rpm": "requests", "tpm": "tokens", "parallel": "max_parallel_requests"}
FIELDS = (("rpm", "rpm_limit"), ("tpm", "tpm_limit"), ("parallel", "max_parallel_requests"))


def window_s() -> float:
    raw = os.environ.get(WINDOW_ENV)
    return float(raw) if raw else WINDOW_S


def fail_closed(general: dict[str, Any]) -> bool:
    """`general_settings.rate_limit_redis_failure`: fail_open (default) or fail_closed."""
    mode = general.get(FAILURE_SETTING) or "fail_open"
    if mode not in FAILURE_MODES:
        raise ConfigError(f"general_settings.{FAILURE_SETTING}: must be fail_open or fail_closed, got {mode!r}")
    return mode == "fail_closed"


@dataclass(frozen=True, slots=True)
class Limited:
    """One limit of one entity: what a claim stands for."""

    entity: str  # key | team | user | end_user
    ident: str  # the key's hash, the team, user or end-user id: never a raw key
    kind: str  # rpm | tpm | parallel
    limit: int


def limit_of(record: Any, field: str) -> int | None:
    value = getattr(record, field, None)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def claims_for(entities: Iterable[tuple[str, str, Any]], window: float, ttl: float) -> dict[str, tuple[Claim, Limited]]:
    """counter -> (claim, what it limits), for every limit set on the (entity, id, record) given."""
    out: dict[str, tuple[Claim, Limited]] = {}
    for entity, ident, record in entities:
        for kind, field in FIELDS:
            limit = limit_of(record, field)
            if limit is None:
                continue
            counter = f"{kind}:{entity}:{ident}"
            if kind == "parallel":
                claim = Claim(counter, 1.0, float(limit), ttl=ttl)
            else:
                claim = Claim(counter, 1.0 if kind == "rpm" else 0.0, float(limit), window=window)
            out[counter] = (claim, Limited(entity, ident, kind, limit))
    return out


def refusal(limited: Limited, refused: LimitReached) -> RateLimitError:
    """The 429: LiteLLM's message, `retry-after` in whole seconds (a window's end; 1 s for parallel
    requests, whose end cannot be known), and the refused limit's x-ratelimit-* pair."""
    retry = max(1, math.ceil(refused.reset_s)) if limited.kind != "parallel" else 1
    remaining = max(0, int(limited.limit - refused.held)) if limited.kind != "tpm" else 0
    resets = (datetime.now(timezone.utc) + timedelta(seconds=retry)).strftime("%Y-%m-%d %H:%M:%S UTC")
    message = (f"Rate limit exceeded for {ENTITY_NAMES[limited.entity]}: {limited.ident}. "
               f"Limit type: {KIND_NAMES[limited.kind]}. Current limit: {limited.limit}, Remaining: {remaining}. "
               f"Limit resets at: {resets}")
    headers = {"retry-after": str(retry)}
    if limited.kind != "parallel":
        unit = KIND_NAMES[limited.kind]
        headers[f"x-ratelimit-limit-{unit}"] = str(limited.limit)
        headers[f"x-ratelimit-remaining-{unit}"] = "0"
    return RateLimitError(message, headers=headers)


def headers(taken: Iterable[tuple[Limited, float]]) -> dict[str, str]:
    """x-ratelimit-{limit,remaining}-{requests,tokens} of the tightest rpm and tpm limit (least
    remaining; of equals, the smallest limit), from each claim's level once taken."""
    best: dict[str, tuple[float, int]] = {}
    for limited, level in taken:
        if limited.kind == "parallel":
            continue
        remaining = max(0.0, limited.limit - level)
        if limited.kind not in best or (remaining, limited.limit) < best[limited.kind]:
            best[limited.kind] = (remaining, limited.limit)
    out: dict[str, str] = {}
    for kind, (remaining, limit) in best.items():
        unit = KIND_NAMES[kind]
        out[f"x-ratelimit-limit-{unit}"] = str(limit)
        out[f"x-ratelimit-remaining-{unit}"] = str(int(remaining))
    return out


def remember(ctx: Any, counters: list[str], window: float, shared: bool) -> None:
    ctx.state_for(OWNER)[STATE_KEY] = (counters, window, shared)


def total_tokens(usage: Any) -> int:
    if not isinstance(usage, dict):
        return 0
    total = usage.get("total_tokens")
    if not isinstance(total, (int, float)) or isinstance(total, bool):
        total = sum(v for k in ("prompt_tokens", "completion_tokens")
                    if isinstance(v := usage.get(k), (int, float)) and not isinstance(v, bool))
    return max(0, int(total))


def count_tokens(limits: Any, ctx: Any, outcome: Any) -> None:
    """The call ended: add its real total tokens to the windows of its tpm limits."""
    state = ctx.state.get(OWNER)
    taken = state.pop(STATE_KEY, None) if state else None
    if not taken:
        return
    counters, window, shared = taken
    tokens = total_tokens(getattr(outcome, "usage", None))
    if tokens:
        for counter in counters:
            limits.add(counter, tokens, window, shared)
