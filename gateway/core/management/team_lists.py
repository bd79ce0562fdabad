"""`/team/list` and `/v2/team/list`: every team at once, or one page at a time, filtered and
sorted as LiteLLM's. The routes hang on `teams.bp` (this module is imported at the end of teams.py)."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, Field, RootModel
from quart import request
from quart_schema import document_querystring, document_response

from gateway.core.db.models import Team
from gateway.core.management.common import order_args, page_args, require_admin
from gateway.core.management.teams import TeamInfo, bp, member_ids, team_info


class TeamList(RootModel[list[TeamInfo]]):
    """Teams, oldest first."""


class TeamListQuery(BaseModel):
    user_id: str | None = Field(None, description="Only the teams this user belongs to")


SORTABLE = ("team_id", "team_alias", "created_at")


class TeamPageQuery(BaseModel):
    """LiteLLM's `/v2/team/list` query."""

    user_id: str | None = Field(None, description="Only the teams this user belongs to")
    organization_id: str | None = Field(None, description="Only the teams of this organization")
    team_id: str | None = Field(None, description="Only this team")
    team_alias: str | None = Field(None, description="Teams whose alias contains this (any case)")
    page: int | None = Field(None, ge=1)
    page_size: int | None = Field(None, ge=1, le=1000, description="Teams per page (default 10)")
    sort_by: Literal["team_id", "team_alias", "created_at"] | None = Field(None, description="Default created_at")
    sort_order: Literal["asc", "desc"] | None = Field(None, description="Default asc")


class TeamListItem(TeamInfo):
    members_count: int = Field(description="Distinct members (members_with_roles, admins, members)")


class TeamPage(BaseModel):
    teams: list[TeamListItem]
    total: int
    page: int
    page_size: int
    total_pages: int


@bp.get("/team/list")
@document_querystring(TeamListQuery)
@document_response(TeamList)
async def list_teams() -> Any:
    """Every team (optionally only those `?user_id=` belongs to), oldest first."""
    require_admin()
    teams = await Team.all().order_by("created_at", "team_id")
    user_id = request.args.get("user_id")
    if user_id:
        teams = [t for t in teams if user_id in member_ids(t)]
    return [team_info(t) for t in teams]


@bp.get("/v2/team/list")
@document_querystring(TeamPageQuery)
@document_response(TeamPage)
async def list_teams_paginated() -> Any:
    """Teams, one page at a time (admin), filtered and sorted as LiteLLM's `/v2/team/list`; each
    with its `members_count`. Default: oldest first, 10 a page."""
    require_admin()
    args = request.args
    page, size = page_args("page_size", 10)
    order = order_args(SORTABLE, "team_id")
    query = Team.all()
    for name in ("team_id", "organization_id"):
        if args.get(name):
            query = query.filter(**{name: args[name]})
    if args.get("team_alias"):
        query = query.filter(team_alias__icontains=args["team_alias"])
    if args.get("user_id"):  # members live in JSON lists: matched here, the same on every database
        uid = args["user_id"]
        rows = await query.values_list("team_id", "members_with_roles", "admins", "members")
        query = query.filter(team_id__in=[tid for tid, with_roles, admins, members in rows
                                          if uid in (admins or ()) or uid in (members or ())
                                          or any(m.get("user_id") == uid for m in with_roles or ())])
    total = await query.count()
    teams = await query.order_by(*order).offset((page - 1) * size).limit(size)
    return {"teams": [{**team_info(t), "members_count": len(member_ids(t))} for t in teams], "total": total,
            "page": page, "page_size": size, "total_pages": max(1, math.ceil(total / size))}
