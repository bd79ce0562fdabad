"""`/spend/*`: reading spend. Aggregates are computed by the database (or its daily roll-up).

A non-admin key sees only its own rows, whatever filter it passes.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, RootModel
from quart import Blueprint, current_app, g, request
from quart_schema import document_querystring, document_request, document_response, tag_blueprint
from pypika_tortoise.functions import Date as PypikaDate
from pypika_tortoise.terms import AtTimezone
from tortoise import connections
from tortoise.functions import Count, Function, Sum

from gateway.context import iter_request_text
from gateway.core.db.models import Key, SpendDaily, SpendKeyTagDaily, SpendLog, SpendTagDaily, User
from gateway.core.json_body import parse_json_object
from gateway.core.keys import token_of
from gateway.core.management.common import check_query
from gateway.core.route_groups import SPEND, declare
from gateway.core.spend.record import estimate_tokens
from gateway.errors import BadRequestError, PermissionDeniedError

bp = declare(Blueprint("spend", __name__), SPEND)
bp.before_request(check_query)
tag_blueprint(bp, ["Spend"])
MAX_ROWS = 10_000
DATE = "A day, e.g. 2024-06-30 (UTC)"


class SpendLogsQuery(BaseModel):
    request_id: str | None = None
    api_key: str | None = Field(None, description="A raw key or its hash")
    user_id: str | None = None
    start_date: str | None = Field(None, description=DATE + "; with end_date: daily totals")
    end_date: str | None = Field(None, description=DATE + "; with start_date: daily totals")
    limit: int | None = Field(None, ge=1, le=MAX_ROWS, description="Rows, newest first (default 1000)")


class SpendLogRow(BaseModel):
    """One LLM call: success, failure or block. `api_key` is the key's hash, never the key."""

    request_id: str
    call_type: str
    api_key: str | None
    spend: float
    total_tokens: int
    prompt_tokens: int
    completion_tokens: int
    startTime: str
    endTime: str
    model: str
    model_group: str | None
    api_base: str | None
    user: str | None
    end_user: str | None
    team_id: str | None
    request_tags: list[str]
    metadata: dict[str, Any]
    status: str
    messages: Any = None
    response: Any = None


class DailySpend(BaseModel):
    """One day (UTC): total spend and calls, and the spend per model and per user."""

    startTime: str
    spend: float
    log_count: int
    models: dict[str, float]
    users: dict[str, float]


class SpendLogsReply(RootModel[list[SpendLogRow] | list[DailySpend]]):
    """Rows, newest first; or, with start_date and end_date, daily totals."""


class DateRange(BaseModel):
    start_date: str | None = Field(None, description=DATE)
    end_date: str | None = Field(None, description=DATE)


class TagSpend(BaseModel):
    individual_request_tag: str
    log_count: int
    total_spend: float


class TagSpendList(RootModel[list[TagSpend]]):
    """Per tag, highest spend first."""


class KeySpend(BaseModel):
    token: str
    key_name: str
    key_alias: str | None
    spend: float
    max_budget: float | None
    user_id: str | None
    team_id: str | None


class KeySpendList(RootModel[list[KeySpend]]):
    """Keys, highest spend first (a non-admin key: itself)."""


class UserSpendQuery(BaseModel):
    user_id: str | None = None


class UserSpend(BaseModel):
    user_id: str
    spend: float
    max_budget: float | None


class UserSpendList(RootModel[list[UserSpend]]):
    """Users, highest spend first (a non-admin key: its own user)."""


class CalculateBody(BaseModel):
    """`{model, messages}` (prompt only, estimated) or `{completion_response}` (its usage)."""

    model_config = ConfigDict(extra="allow")

    model: str | None = Field(None, examples=["gpt-4"])
    messages: list[dict[str, Any]] | None = None
    completion_response: dict[str, Any] | None = None


class Cost(BaseModel):
    cost: float = Field(description="USD")


def parse_day(name: str) -> date | None:
    value = request.args.get(name)
    if not value:
        return None
    try:
        day = date.fromisoformat(value[:10])
    except ValueError:
        raise BadRequestError(f"{name} must be a date like 2024-06-30; got {value!r}", param=name) from None
    if day >= date.max:  # the range ends the day after: that must still be a date
        raise BadRequestError(f"{name} must be before {date.max.isoformat()}", param=name)
    return day


def day_bounds(start: date | None, end: date | None) -> tuple[datetime | None, datetime | None]:
    """Inclusive days as a half-open UTC range: [start 00:00, end+1 00:00)."""
    lo = datetime.combine(start, time.min, tzinfo=timezone.utc) if start else None
    hi = datetime.combine(end + timedelta(days=1), time.min, tzinfo=timezone.utc) if end else None
    if lo and hi and lo >= hi:
        raise BadRequestError("start_date must not be after end_date", param="start_date")
    return lo, hi


def row_out(r: SpendLog) -> dict[str, Any]:
    return {
        "request_id": r.request_id, "call_type": r.call_type, "api_key": r.api_key, "spend": r.spend,
        "total_tokens": r.total_tokens, "prompt_tokens": r.prompt_tokens, "completion_tokens": r.completion_tokens,
        "startTime": r.start_time.isoformat(), "endTime": r.end_time.isoformat(), "model": r.model,
        "model_group": r.model_group, "api_base": r.api_base, "user": r.user, "end_user": r.end_user,
        "team_id": r.team_id, "request_tags": r.request_tags, "metadata": r.metadata, "status": r.status,
        "messages": r.messages, "response": r.response, "cache_hit": bool((r.metadata or {}).get("cache_hit")),
    }


def own_scope() -> str | None:
    """The key a non-admin caller is limited to (None for admins)."""
    principal = g.principal
    if principal.is_admin:
        return None
    if principal.api_key is None:
        raise PermissionDeniedError(f"Only proxy admin can access this route. Route={request.path}")
    return principal.api_key


def json_reply(data: Any) -> Any:
    """A JSON reply made with orjson (datetimes, many rows): the spend routes' own."""
    return current_app.response_class(orjson.dumps(data), content_type="application/json")


@bp.get("/spend/logs")
@document_querystring(SpendLogsQuery)
@document_response(SpendLogsReply)
async def spend_logs() -> Any:
    """Spend logs; a non-admin key sees only its own calls."""
    args = request.args
    query = SpendLog.all()
    scope = own_scope()
    if args.get("api_key"):
        query = query.filter(api_key=token_of(args["api_key"]))
    if scope is not None:
        query = query.filter(api_key=scope)
    if args.get("request_id"):
        query = query.filter(request_id=args["request_id"])
    if args.get("user_id"):
        query = query.filter(user=args["user_id"])
    start, end = parse_day("start_date"), parse_day("end_date")
    lo, hi = day_bounds(start, end)
    if lo:
        query = query.filter(start_time__gte=lo)
    if hi:
        query = query.filter(start_time__lt=hi)
    if start and end:
        if args.get("request_id"):
            return await daily(query)
        return await daily_rollup(start, end, token_of(args["api_key"]) if args.get("api_key") else None,
                                  scope, args.get("user_id"))
    try:
        limit = min(MAX_ROWS, max(1, int(args.get("limit", 1000))))
    except ValueError:
        raise BadRequestError("limit must be a whole number", param="limit") from None
    rows = await query.order_by("-start_time", "-id").limit(limit)
    return json_reply([row_out(r) for r in rows])


class Day(Function):
    """DATE(column): the UTC day on SQLite, which keeps the stored offset."""

    database_func = PypikaDate


class UtcDay(Function):
    """DATE(column AT TIME ZONE 'UTC'): PostgreSQL's DATE() would take the session's time zone."""

    def _get_function_field(self, field: Any, *default_values: Any) -> Any:
        return PypikaDate(AtTimezone(field, "UTC"))


async def daily(query: Any) -> Any:
    """Per day (UTC): total spend and calls, and the spend by model and by user, grouped in SQL."""
    postgres = connections.get("default").capabilities.dialect == "postgres"
    day = UtcDay("start_time") if postgres else Day("start_time")
    rows = await query.annotate(day=day).group_by("day", "model", "user") \
        .annotate(spend_sum=Sum("spend"), calls=Count("id")).values("day", "model", "user", "spend_sum", "calls")
    return _per_day(rows)


async def daily_rollup(start: date, end: date, api_key: str | None, scope: str | None,
                       user_id: str | None) -> Any:
    """Per day from the writer's roll-up: the same answer as `daily`, without reading every call."""
    query = SpendDaily.filter(day__gte=start, day__lte=end)
    for key in (api_key, scope):
        if key is not None:
            query = query.filter(api_key=key)
    if user_id:
        query = query.filter(user=user_id)
    rows = await query.group_by("day", "model", "user").annotate(spend_sum=Sum("total_spend"), calls=Sum("log_count")) \
        .values("day", "model", "user", "spend_sum", "calls")
    return _per_day(rows)


def _per_day(rows: Any) -> list[dict[str, Any]]:
    days: dict[str, dict[str, Any]] = {}
    for r in rows:
        day = str(r["day"])[:10]
        spend = float(r["spend_sum"] or 0.0)
        d = days.setdefault(day, {"startTime": day, "spend": 0.0, "log_count": 0, "models": {}, "users": {}})
        d["spend"] += spend
        d["log_count"] += int(r["calls"] or 0)
        d["models"][r["model"]] = d["models"].get(r["model"], 0.0) + spend
        if r["user"]:
            d["users"][r["user"]] = d["users"].get(r["user"], 0.0) + spend
    return [days[k] for k in sorted(days)]


@bp.get("/spend/tags")
@document_querystring(DateRange)
@document_response(TagSpendList)
async def spend_tags() -> Any:
    """Per tag: calls and spend, highest first, from the daily roll-ups: overall for admins, the
    per-key one (`spend_key_tag_daily`) for a key, so that its answer costs the same at any volume."""
    start, end = parse_day("start_date"), parse_day("end_date")
    day_bounds(start, end)  # 400 when start is after end
    scope = own_scope()
    query = SpendTagDaily.all() if scope is None else SpendKeyTagDaily.filter(api_key=scope)
    if start:
        query = query.filter(day__gte=start)
    if end:
        query = query.filter(day__lte=end)
    rows = await query.group_by("tag").annotate(log_count_sum=Sum("log_count"), spend_sum=Sum("total_spend")) \
        .values("tag", "log_count_sum", "spend_sum")
    return _tag_list((r["tag"], int(r["log_count_sum"] or 0), float(r["spend_sum"] or 0.0)) for r in rows)


def _tag_list(rows: Any) -> list[dict[str, Any]]:
    out = [{"individual_request_tag": tag, "log_count": count, "total_spend": spend} for tag, count, spend in rows]
    out.sort(key=lambda r: (-r["total_spend"], r["individual_request_tag"]))
    return out


@bp.get("/spend/keys")
@document_response(KeySpendList)
async def spend_keys() -> Any:
    """Spend per key."""
    scope = own_scope()
    query = Key.all() if scope is None else Key.filter(token=scope)
    rows = await query.order_by("-spend").limit(MAX_ROWS)
    return [{"token": k.token, "key_name": k.key_name, "key_alias": k.key_alias, "spend": k.spend,
             "max_budget": k.max_budget, "user_id": k.user_id, "team_id": k.team_id} for k in rows]


@bp.get("/spend/users")
@document_querystring(UserSpendQuery)
@document_response(UserSpendList)
async def spend_users() -> Any:
    """Spend per internal user."""
    principal = g.principal
    query = User.all()
    if not principal.is_admin:
        if not principal.user_id:
            return []
        query = query.filter(user_id=principal.user_id)
    if request.args.get("user_id"):
        query = query.filter(user_id=request.args["user_id"])
    rows = await query.order_by("-spend").limit(MAX_ROWS)
    return [{"user_id": u.user_id, "spend": u.spend, "max_budget": u.max_budget} for u in rows]


@bp.post("/spend/calculate")
@document_request(CalculateBody)
@document_response(Cost)
async def spend_calculate() -> Any:
    """The cost of a call: `{model, messages}` (prompt only, estimated) or `{completion_response}`."""
    raw = await request.get_data(cache=False)
    body = parse_json_object(raw) if raw else {}
    gw = current_app.gateway
    response = body.get("completion_response")
    model = body.get("model")
    if model is None and isinstance(response, dict):
        model = response.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequestError("model is required (or a completion_response naming its model)", param="model")
    deployment = gw.router.groups[model][0] if model in gw.router.groups else None
    if isinstance(response, dict):
        usage = response.get("usage") if isinstance(response.get("usage"), dict) else None
        if usage is None:
            raise BadRequestError("completion_response has no usage", param="completion_response")
    else:
        messages = body.get("messages")
        if not isinstance(messages, list):
            raise BadRequestError("messages must be a list (or pass completion_response)", param="messages")
        usage = {"prompt_tokens": estimate_tokens("\n".join(iter_request_text({"messages": messages}))),
                 "completion_tokens": 0}
    if deployment is not None:
        cost = gw.prices.cost(deployment, usage)
    else:
        provider, _, name = model.rpartition("/")
        price = gw.prices.lookup(provider or "openai", name)
        if price is None:
            raise BadRequestError(f"No price known for model={model}", param="model")
        cost = price.token_cost(usage)
    return {"cost": cost}


from gateway.core.spend import logs_ui, reports  # noqa: E402,F401  (their routes hang on `bp`: /spend/logs/ui, /global/spend/*)
from gateway.core.spend import daily as daily_routes  # noqa: E402,F401  (/spend/daily: the admin UI's Spend page)
