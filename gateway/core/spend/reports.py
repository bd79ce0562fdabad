"""`/global/spend/*`: LiteLLM's spend reports, in its response shapes.

Totals come from the writer's daily roll-ups where they hold what is asked (`spend_daily` per key,
`spend_tag_daily` and `spend_key_tag_daily` per tag); breakdowns they do not hold (team, customer,
tokens) are grouped by the database over the date range of `spend_logs`. A non-admin key sees only
its own calls, whatever it asks for. The routes hang on `routes.bp` (imported there);
`/spend/logs/ui` is in `logs_ui`.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from typing import Any

from pydantic import BaseModel, Field, RootModel
from quart import request
from quart_schema import document_querystring, document_response
from tortoise import connections
from tortoise.functions import Sum

from gateway.core.db.models import Key, SpendDaily, SpendKeyTagDaily, SpendLog, SpendTagDaily, Team
from gateway.core.keys import token_of
from gateway.core.spend.routes import DATE, MAX_ROWS, Day, UtcDay, bp, day_bounds, json_reply, own_scope, parse_day
from gateway.errors import BadRequestError

LAST_DAYS = 30  # LiteLLM's views (`MonthlyGlobalSpend`, `Last30dKeysBySpend`) cover the last 30 days
GROUPS = ("team", "customer", "api_key", "key", "tag")


class RangeQuery(BaseModel):
    start_date: str | None = Field(None, description=DATE + f"; default: the last {LAST_DAYS} days")
    end_date: str | None = Field(None, description=DATE)
    api_key: str | None = Field(None, description="A raw key or its hash: that key's days only")


class DaySpend(BaseModel):
    model_config = {"extra": "allow"}

    date: str
    spend: float
    api_key: str | None = None


class DaySpendList(RootModel[list[DaySpend]]):
    """Per day (UTC), oldest first."""


class KeysQuery(BaseModel):
    limit: int | None = Field(None, ge=1, le=MAX_ROWS, description="The top n keys")


class KeyTotal(BaseModel):
    api_key: str = Field(description="The key's hash")
    key_alias: str | None
    key_name: str | None
    total_spend: float


class KeyTotalList(RootModel[list[KeyTotal]]):
    """Keys, highest spend first."""


class TeamsReply(BaseModel):
    daily_spend: list[dict[str, Any]] = Field(description="`{date, <team>: spend, ...}` per day")
    teams: list[str]
    total_spend_per_team: list[dict[str, Any]] = Field(description="`{team_id, total_spend}`, top 10")


class TagsQuery(BaseModel):
    start_date: str = Field(description=DATE)
    end_date: str = Field(description=DATE)
    tags: str | None = Field(None, description="Comma-separated tags (`all-tags`: every tag)")


class TagTotal(BaseModel):
    name: str
    spend: float
    log_count: int


class TagsReply(BaseModel):
    spend_per_tag: list[TagTotal]


class ReportQuery(BaseModel):
    start_date: str = Field(description=DATE)
    end_date: str = Field(description=DATE)
    group_by: str | None = Field("team", description="team, customer, api_key (or key), tag")
    api_key: str | None = Field(None, description="One key (raw or hash): its spend per model")
    internal_user_id: str | None = Field(None, description="One internal user: their keys' spend per model")


class Report(RootModel[list[dict[str, Any]]]):
    """`[{group_by_day, teams|customers|tags: [...]}]`, or per key `[{api_key, total_cost, ...,
    model_details}]`."""


def _days(required: bool) -> tuple[date, date]:
    start, end = parse_day("start_date"), parse_day("end_date")
    if start is None or end is None:
        if required:
            raise BadRequestError("Please provide start_date and end_date", param="start_date" if start is None
                                  else "end_date")
        today = datetime.now(timezone.utc).date()
        end = end or today
        start = start or end - timedelta(days=LAST_DAYS - 1)
    day_bounds(start, end)  # 400 when start is after end
    return start, end


def _key_arg(scope: str | None) -> str | None:
    """The key a query is limited to: the caller's own (non-admin), else `?api_key=` if any."""
    if scope is not None:
        return scope
    raw = request.args.get("api_key")
    return token_of(raw) if raw else None


def _day_of(row: dict[str, Any]) -> str:
    return str(row["day"])[:10]


def _grouped(query: Any, *columns: str, **sums: Any) -> Any:
    """`query` grouped by the UTC day of `start_time` and `columns`, summed in SQL."""
    postgres = connections.get("default").capabilities.dialect == "postgres"
    day = UtcDay("start_time") if postgres else Day("start_time")
    return query.annotate(day=day).group_by("day", *columns).annotate(**sums).values("day", *columns, *sums)


def _logs_between(start: date, end: date, scope: str | None) -> Any:
    lo, hi = day_bounds(start, end)
    query = SpendLog.filter(start_time__gte=lo, start_time__lt=hi)
    return query.filter(api_key=scope) if scope is not None else query


@bp.get("/global/spend/logs")
@document_querystring(RangeQuery)
@document_response(DaySpendList)
async def global_spend_logs() -> Any:
    """Spend per day over the last 30 days (or the range given), from the daily roll-up; with
    `api_key`, that key's (a non-admin key: always its own)."""
    start, end = _days(required=False)
    key = _key_arg(own_scope())
    query = SpendDaily.filter(day__gte=start, day__lte=end)
    if key is not None:
        query = query.filter(api_key=key)
    rows = await query.group_by("day").annotate(spend_sum=Sum("total_spend")).values("day", "spend_sum")
    out = [{"date": _day_of(r), "spend": float(r["spend_sum"] or 0.0)} for r in rows]
    if key is not None:
        out = [{**r, "api_key": key} for r in out]
    return json_reply(sorted(out, key=lambda r: r["date"]))


@bp.get("/global/spend/keys")
@document_querystring(KeysQuery)
@document_response(KeyTotalList)
async def global_spend_keys() -> Any:
    """The keys with the most spend over the last 30 days, highest first (a non-admin key: itself)."""
    try:
        limit = min(MAX_ROWS, max(1, int(request.args.get("limit", MAX_ROWS))))
    except ValueError:
        raise BadRequestError("limit must be a whole number", param="limit") from None
    start, end = _days(required=False)
    scope = own_scope()
    query = SpendDaily.filter(day__gte=start, day__lte=end).exclude(api_key="")
    if scope is not None:
        query = query.filter(api_key=scope)
    rows = await query.group_by("api_key").annotate(spend_sum=Sum("total_spend")) \
        .order_by("-spend_sum", "api_key").limit(limit).values("api_key", "spend_sum")
    keys = {k.token: k for k in await Key.filter(token__in=[r["api_key"] for r in rows])} if rows else {}
    return json_reply([{"api_key": r["api_key"], "key_alias": getattr(keys.get(r["api_key"]), "key_alias", None),
                   "key_name": getattr(keys.get(r["api_key"]), "key_name", None),
                   "total_spend": float(r["spend_sum"] or 0.0)} for r in rows])


async def _team_names(team_ids: set[str]) -> dict[str, str]:
    teams = await Team.filter(team_id__in=sorted(team_ids)) if team_ids else []
    return {t.team_id: t.team_alias or t.team_id for t in teams}


@bp.get("/global/spend/teams")
@document_querystring(RangeQuery)
@document_response(TeamsReply)
async def global_spend_teams() -> Any:
    """Spend per team per day over the last 30 days (teams by alias; calls of no team: Unassigned)."""
    start, end = _days(required=False)
    rows = await _grouped(_logs_between(start, end, _key_arg(own_scope())), "team_id", spend_sum=Sum("spend"))
    names = await _team_names({r["team_id"] for r in rows if r["team_id"]})
    by_day: dict[str, dict[str, float]] = defaultdict(dict)
    totals: dict[str, float] = defaultdict(float)
    for r in rows:
        team = names.get(r["team_id"], r["team_id"]) if r["team_id"] else "Unassigned"
        spend = float(r["spend_sum"] or 0.0)
        by_day[_day_of(r)][team] = by_day[_day_of(r)].get(team, 0.0) + spend
        totals[team] += spend
    top = sorted(totals.items(), key=lambda t: (-t[1], t[0]))[:10]
    return json_reply({"daily_spend": [{"date": d, **by_day[d]} for d in sorted(by_day)], "teams": sorted(totals),
                  "total_spend_per_team": [{"team_id": t, "total_spend": s} for t, s in top]})


async def _tag_totals(start: date, end: date, scope: str | None, by_day: bool) -> list[tuple[str, str, int, float]]:
    """(day or "", tag, calls, spend) from the roll-ups: per key for a non-admin caller, else overall."""
    model = SpendTagDaily if scope is None else SpendKeyTagDaily
    query = model.filter(day__gte=start, day__lte=end)
    if scope is not None:
        query = query.filter(api_key=scope)
    columns = ("day", "tag") if by_day else ("tag",)
    rows = await query.group_by(*columns).annotate(calls=Sum("log_count"), spend_sum=Sum("total_spend")) \
        .values(*columns, "calls", "spend_sum")
    return [(_day_of(r) if by_day else "", r["tag"], int(r["calls"] or 0), float(r["spend_sum"] or 0.0))
            for r in rows]


@bp.get("/global/spend/tags")
@document_querystring(TagsQuery)
@document_response(TagsReply)
async def global_spend_tags() -> Any:
    """Spend and calls per request tag over a date range (both dates required), highest first."""
    start, end = _days(required=True)
    wanted = [t for t in (request.args.get("tags") or "").split(",") if t]
    keep = None if not wanted or "all-tags" in wanted else set(wanted)
    spend: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    for _, tag, count, total in await _tag_totals(start, end, own_scope(), by_day=False):
        if keep is None or tag in keep:
            spend[tag] += total
            calls[tag] += count
    ranked = sorted(spend, key=lambda t: (-spend[t], t))
    return json_reply({"spend_per_tag": [{"name": t, "spend": spend[t], "log_count": calls[t]} for t in ranked]})


@bp.get("/global/spend/report")
@document_querystring(ReportQuery)
@document_response(Report)
async def global_spend_report() -> Any:
    """Spend per day per team, customer or tag (each with its spend by model and key), or per key
    with its spend by model (`group_by=api_key`, `api_key=`, `internal_user_id=`)."""
    start, end = _days(required=True)
    group_by = request.args.get("group_by") or "team"
    if group_by not in GROUPS:
        raise BadRequestError(f"group_by must be one of: {', '.join(GROUPS)}; got {group_by!r}", param="group_by")
    scope = own_scope()
    query = _logs_between(start, end, _key_arg(scope))
    user = request.args.get("internal_user_id")
    if user:
        query = query.filter(user=user)
    if request.args.get("api_key") or user or group_by in ("api_key", "key"):
        return json_reply(await _per_key(query))
    if group_by == "tag":
        return json_reply(_per_day("tags", "tag", [(d, t, s, {"log_count": c}) for d, t, c, s
                                             in await _tag_totals(start, end, scope, by_day=True)]))
    column = "team_id" if group_by == "team" else "end_user"
    rows = await _grouped(query, column, "model", "api_key", spend_sum=Sum("spend"), tokens=Sum("total_tokens"))
    names = await _team_names({r["team_id"] for r in rows if r["team_id"]}) if group_by == "team" else {}
    groups: dict[tuple[str, Any], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        who = r[column]
        if group_by == "team":
            who = names.get(who, who) if who else "Unassigned Team"
        groups[(_day_of(r), who)].append({"model": r["model"], "api_key": r["api_key"],
                                          "spend": float(r["spend_sum"] or 0.0), "total_tokens": int(r["tokens"] or 0)})
    entries = [(day, who, sum(m["spend"] for m in meta), {"metadata": meta}) for (day, who), meta in groups.items()]
    if group_by == "team":
        return json_reply(_per_day("teams", "team_name", entries))
    return json_reply(_per_day("customers", "customer", entries))


def _per_day(plural: str, name: str, entries: list[tuple[str, Any, float, dict[str, Any]]]) -> list[dict[str, Any]]:
    """LiteLLM's report shape: `[{group_by_day, <plural>: [{<name>, total_spend, ...}]}]` by day."""
    days: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for day, who, total, extra in entries:
        days[day].append({name: who, "total_spend": total, **extra})
    return [{"group_by_day": f"{day}T00:00:00+00:00",
             plural: sorted(days[day], key=lambda e: (-e["total_spend"], str(e[name])))} for day in sorted(days)]


async def _per_key(query: Any) -> list[dict[str, Any]]:
    """Per key, highest cost first: totals and the split by model (LiteLLM's `model_details`)."""
    rows = await query.group_by("api_key", "model").annotate(
        cost=Sum("spend"), inp=Sum("prompt_tokens"), out=Sum("completion_tokens")) \
        .values("api_key", "model", "cost", "inp", "out")
    keys: dict[Any, dict[str, Any]] = {}
    for r in rows:
        k = keys.setdefault(r["api_key"], {"api_key": r["api_key"], "total_cost": 0.0, "total_input_tokens": 0,
                                           "total_output_tokens": 0, "model_details": []})
        detail = {"model": r["model"], "total_cost": float(r["cost"] or 0.0),
                  "total_input_tokens": int(r["inp"] or 0), "total_output_tokens": int(r["out"] or 0)}
        k["model_details"].append(detail)
        k["total_cost"] += detail["total_cost"]
        k["total_input_tokens"] += detail["total_input_tokens"]
        k["total_output_tokens"] += detail["total_output_tokens"]
    for k in keys.values():
        k["model_details"].sort(key=lambda d: (-d["total_cost"], d["model"]))
    return sorted(keys.values(), key=lambda k: (-k["total_cost"], str(k["api_key"])))
