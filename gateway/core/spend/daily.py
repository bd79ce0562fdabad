"""`GET /spend/daily`: spend per day grouped by key, team, user, tag or model (the admin UI's Spend page).

Read from the spend writer's daily roll-ups only, never from `spend_logs`: `spend_daily` (day x key x
model x user) for keys, users and models; teams by joining each key to its team (`keys.team_id`)
when read, since the roll-up has no team column; tags from `spend_tag_daily`, or `spend_key_tag_daily`
for a non-admin caller. An answer costs a few grouped reads of the roll-up rows in the date range,
whatever the number of calls. A non-admin key sees only its own key's spend.

The routes hang on `routes.bp` (imported there).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

from pydantic import BaseModel, Field
from quart import request
from quart_schema import document_querystring, document_response
from tortoise import connections

from gateway.core.db.models import Key, Team
from gateway.core.management.common import page_args
from gateway.core.spend.routes import DATE, bp, day_bounds, json_reply, own_scope, parse_day
from gateway.errors import BadRequestError

GROUPS = ("key", "team", "user", "tag", "model")
LAST_DAYS = 30
MAX_DAYS = 366
MAX_TOP = 10
NONE_NAMES = {"key": "(no key)", "team": "(no team)", "user": "(no user)", "model": "(no model)", "tag": "(no tag)"}
# (FROM clause, the group's expression); `d` is always the roll-up table.
SOURCES = {
    "key": ("spend_daily d", "d.api_key"),
    "user": ("spend_daily d", 'd."user"'),
    "model": ("spend_daily d", "d.model"),
    "team": ("spend_daily d LEFT JOIN keys k ON k.token = d.api_key", "COALESCE(k.team_id, '')"),
    "tag": ("spend_tag_daily d", "d.tag"),
}
KEY_TAGS = ("spend_key_tag_daily d", "d.tag")


class DailyQuery(BaseModel):
    start_date: str | None = Field(None, description=DATE + f"; default: {LAST_DAYS - 1} days before end_date")
    end_date: str | None = Field(None, description=DATE + "; default: today")
    group_by: str | None = Field("key", description="key (the default), team, user, tag or model")
    top: int | None = Field(5, ge=1, le=MAX_TOP, description="How many groups the per-day split names (the rest: other)")
    page: int | None = Field(1, ge=1, description="The page of `groups`")
    page_size: int | None = Field(25, ge=1, le=1000, description="Groups per page")


class GroupSpend(BaseModel):
    id: str = Field(description="The key's hash, team id, user id, tag or model; empty for calls without one")
    name: str = Field(description="For people: the key's alias (else its name), the team's alias, else the id")
    spend: float
    log_count: int


class DaySplit(BaseModel):
    date: str
    spend: float = Field(description="All spend that day (every group)")
    log_count: int
    groups: dict[str, float] = Field(description="Spend of each of the `top` groups that day, by id")
    other: float = Field(description="Spend of the other groups that day (tags: a call counts under each of its tags)")


class DailyReport(BaseModel):
    """Totals, the top groups, every day of the range (oldest first) and a page of groups, highest
    spend first."""

    group_by: str
    start_date: str
    end_date: str
    total_spend: float
    log_count: int
    top: list[GroupSpend]
    days: list[DaySplit]
    groups: list[GroupSpend]
    total: int = Field(description="How many groups spent in the range")
    page: int
    page_size: int
    total_pages: int


def _range() -> tuple[date, date]:
    start, end = parse_day("start_date"), parse_day("end_date")
    end = end or datetime.now(timezone.utc).date()
    start = start or end - timedelta(days=LAST_DAYS - 1)
    day_bounds(start, end)  # 400 when start is after end
    if (end - start).days + 1 > MAX_DAYS:
        raise BadRequestError(f"The date range must be at most {MAX_DAYS} days; got {(end - start).days + 1}",
                              param="start_date")
    return start, end


def _whole(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    try:
        value = int(raw) if raw not in (None, "") else default
    except ValueError:
        raise BadRequestError(f"{name} must be a whole number; got {raw!r}", param=name) from None
    if not low <= value <= high:
        raise BadRequestError(f"{name} must be from {low} to {high}; got {value}", param=name)
    return value


class _Sql:
    """Raw SQL over one roll-up, in the connection's placeholder style (`?` or `$n`)."""

    def __init__(self, source: tuple[str, str], start: date, end: date, scope: str | None) -> None:
        self.conn = connections.get("default")
        self.postgres = self.conn.capabilities.dialect == "postgres"
        self.table, self.group = source
        self.where = "d.day >= ? AND d.day <= ?"
        self.params: list[Any] = [self._day(start), self._day(end)]
        if scope is not None:
            self.where += " AND d.api_key = ?"
            self.params.append(scope)

    def _day(self, day: date) -> Any:
        return day if self.postgres else day.isoformat()

    async def rows(self, sql: str, *extra: Any) -> list[dict[str, Any]]:
        params = [*self.params, *extra]
        if self.postgres:
            parts = sql.split("?")
            sql = "".join(part + (f"${i + 1}" if i < len(parts) - 1 else "") for i, part in enumerate(parts))
        return await self.conn.execute_query_dict(sql, params)

    async def per_day(self) -> dict[str, tuple[float, int]]:
        rows = await self.rows(f"SELECT d.day AS day, SUM(d.total_spend) AS spend, SUM(d.log_count) AS calls "
                               f"FROM {self.table} WHERE {self.where} GROUP BY d.day")
        return {str(r["day"])[:10]: (float(r["spend"] or 0.0), int(r["calls"] or 0)) for r in rows}

    async def count(self) -> int:
        rows = await self.rows(f"SELECT COUNT(*) AS n FROM (SELECT {self.group} AS grp FROM {self.table} "
                               f"WHERE {self.where} GROUP BY {self.group}) x")
        return int(rows[0]["n"]) if rows else 0

    async def ranked(self, limit: int, offset: int) -> list[dict[str, Any]]:
        """Groups, highest spend first; each row's `n` is how many groups there are in all (one
        pass over the roll-up rows, not two)."""
        return await self.rows(f"SELECT {self.group} AS grp, SUM(d.total_spend) AS spend, SUM(d.log_count) AS calls, "
                               f"COUNT(*) OVER () AS n FROM {self.table} WHERE {self.where} GROUP BY {self.group} "
                               f"ORDER BY spend DESC, grp LIMIT ? OFFSET ?", limit, offset)

    async def split(self, ids: list[str]) -> list[dict[str, Any]]:
        if not ids:
            return []
        marks = ", ".join("?" for _ in ids)
        return await self.rows(f"SELECT d.day AS day, {self.group} AS grp, SUM(d.total_spend) AS spend "
                               f"FROM {self.table} WHERE {self.where} AND {self.group} IN ({marks}) "
                               f"GROUP BY d.day, {self.group}", *ids)


async def _names(group_by: str, ids: set[str]) -> dict[str, str]:
    """What people call each group: a key's alias (else its sk-...abcd name), a team's alias."""
    names = {i: i for i in ids}
    known = sorted(i for i in ids if i)
    if group_by == "key" and known:
        for k in await Key.filter(token__in=known).only("token", "key_alias", "key_name"):
            names[k.token] = k.key_alias or k.key_name
    elif group_by == "team" and known:
        for t in await Team.filter(team_id__in=known).only("team_id", "team_alias"):
            names[t.team_id] = t.team_alias or t.team_id
    if "" in names:
        names[""] = NONE_NAMES[group_by]
    return names


def _group(r: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    gid = str(r["grp"] or "")
    return {"id": gid, "name": names.get(gid, gid), "spend": float(r["spend"] or 0.0), "log_count": int(r["calls"] or 0)}


@bp.get("/spend/daily")
@document_querystring(DailyQuery)
@document_response(DailyReport)
async def spend_daily() -> Any:
    """Spend per day over a date range (default: the last 30 days, at most 366), grouped by key,
    team, user, tag or model: totals, the top groups split per day, and the groups highest spend
    first, a page at a time. From the daily roll-ups only; a non-admin key sees only its own spend."""
    start, end = _range()
    group_by = request.args.get("group_by") or "key"
    if group_by not in GROUPS:
        raise BadRequestError(f"group_by must be one of: {', '.join(GROUPS)}; got {group_by!r}", param="group_by")
    top_n = _whole("top", 5, 1, MAX_TOP)
    page, size = page_args("page_size", 25)
    scope = own_scope()
    source = KEY_TAGS if group_by == "tag" and scope is not None else SOURCES[group_by]
    grouped = _Sql(source, start, end, scope)
    totals = await _Sql(SOURCES["key"], start, end, scope).per_day()
    group_days = await grouped.per_day() if group_by == "tag" else totals
    page_rows = await grouped.ranked(size, (page - 1) * size)
    total = int(page_rows[0]["n"]) if page_rows else 0 if page == 1 else await grouped.count()
    top_rows = page_rows[:top_n] if page == 1 and size >= top_n else await grouped.ranked(top_n, 0)
    top_ids = [str(r["grp"] or "") for r in top_rows]
    split: dict[str, dict[str, float]] = {}
    for r in await grouped.split(top_ids):
        split.setdefault(str(r["day"])[:10], {})[str(r["grp"] or "")] = float(r["spend"] or 0.0)
    names = await _names(group_by, {str(r["grp"] or "") for r in [*page_rows, *top_rows]})
    days = []
    for i in range((end - start).days + 1):
        day = (start + timedelta(days=i)).isoformat()
        spend, calls = totals.get(day, (0.0, 0))
        shares = split.get(day, {})
        others = group_days.get(day, (0.0, 0))[0] - sum(shares.values())
        days.append({"date": day, "spend": spend, "log_count": calls, "groups": shares,
                     "other": round(max(0.0, others), 12)})
    body = {
        "group_by": group_by, "start_date": start.isoformat(), "end_date": end.isoformat(),
        "total_spend": sum(s for s, _ in totals.values()), "log_count": sum(c for _, c in totals.values()),
        "top": [_group(r, names) for r in top_rows], "days": days,
        "groups": [_group(r, names) for r in page_rows], "total": total, "page": page, "page_size": size,
        "total_pages": (total + size - 1) // size,
    }
    return json_reply(body)
