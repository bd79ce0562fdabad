"""`/team/member_add`, `/team/member_update`, `/team/member_delete`: who is in a team, with
which role, and each member's own budget inside the team (`max_budget_in_team`, kept on the
membership row). The routes hang on `teams.bp` (this module is imported at the end of teams.py)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field
from quart import current_app
from quart_schema import document_request, document_response

from gateway.core.db.models import Budget, Team, TeamMembership, User
from gateway.core.management.common import (
    member_ident,
    own_budget,
    read_body,
    record_change,
    require_admin,
    team_memberships,
)
from gateway.core.management.teams import (
    Member,
    TeamInfo,
    TeamMembershipInfo,
    bp,
    find,
    member_ids,
    resolve_members,
    sync_user_teams,
    team_info,
)
from gateway.errors import BadRequestError


class MemberAddBody(BaseModel):
    team_id: str = Field(min_length=1)
    member: Member | list[Member]
    max_budget_in_team: float | None = Field(None, ge=0, description="Each new member's budget inside the team")


class MemberRef(BaseModel):
    team_id: str = Field(min_length=1)
    user_id: str | None = Field(None, min_length=1)
    user_email: str | None = None


class MemberUpdateBody(MemberRef):
    role: Literal["admin", "user"] | None = None
    max_budget_in_team: float | None = Field(None, ge=0, description="The member's budget inside the team (USD)")


class MemberUpdated(BaseModel):
    team_id: str
    user_id: str
    user_email: str | None
    role: str | None
    max_budget_in_team: float | None


class MembersAdded(TeamInfo):
    """The team, and (LiteLLM's fields) the users and membership rows the call touched."""

    updated_users: list[dict[str, Any]]
    updated_team_memberships: list[TeamMembershipInfo]


@bp.post("/team/member_add")
@document_request(MemberAddBody)
@document_response(MembersAdded)
async def member_add() -> Any:
    """Add one member or a list of members to a team (admin), by user_id or user_email (a user is
    created for an unknown e-mail), each with `max_budget_in_team` when given."""
    require_admin()
    body, _ = await read_body(MemberAddBody)
    t = await find(body.team_id)
    adding = body.member if isinstance(body.member, list) else [body.member]
    if not adding:
        raise BadRequestError("member must name at least one member", param="member")
    await resolve_members(adding, "member")
    current = {m.get("user_id") for m in t.members_with_roles or ()}
    seen: set[str] = set()
    for m in adding:
        if m.user_id in current or m.user_id in seen:
            raise BadRequestError(f"User={m.user_id} is already a member of team={t.team_id}", param="member")
        seen.add(m.user_id)  # type: ignore[arg-type]
    before = team_info(t)
    old_members = member_ids(t)
    t.members_with_roles = [*(t.members_with_roles or []), *(m.as_row() for m in adding)]
    await t.save(update_fields=["members_with_roles", "updated_at"])
    await record_change("team", "updated", t.team_id, before, {"members_with_roles": t.members_with_roles})
    await sync_user_teams(t.team_id, old_members, member_ids(t))
    ids = [m.user_id for m in adding]
    if body.max_budget_in_team is not None:
        for user_id in ids:
            await set_member_budget(t.team_id, user_id, body.max_budget_in_team)  # type: ignore[arg-type]
    from gateway.core.management.users import user_info

    users = {u.user_id: user_info(u) for u in await User.filter(user_id__in=ids)}
    rows = await team_memberships(team_id=t.team_id, user_id__in=ids)
    return {**team_info(t), "updated_users": [users[i] for i in ids if i in users],
            "updated_team_memberships": rows}


async def set_member_budget(team_id: str, user_id: str, max_budget: float) -> None:
    """The member's in-team budget: a budget of its own, linked from the membership row."""
    row, _ = await TeamMembership.get_or_create(team_id=team_id, user_id=user_id)
    budget, created = await own_budget(row.budget_id, max_budget)
    if created:
        row.budget_id = budget.budget_id
        await row.save(update_fields=["budget_id", "updated_at"])
        await record_change("team_member", "updated", member_ident(team_id, user_id), None,
                            {"team_id": team_id, "user_id": user_id, "budget_id": budget.budget_id})
    else:
        await current_app.gateway.directory.changed("team_member", member_ident(team_id, user_id))


async def _member_of(t: Team, ref: MemberRef) -> str:
    """The user id a member_update / member_delete names (by user_id or user_email); 400 if not a member."""
    if ref.user_id is None and ref.user_email is None:
        raise BadRequestError("Either user_id or user_email needs to be passed in", param="user_id")
    uid = ref.user_id
    if uid is None:
        uid = next((m.get("user_id") for m in t.members_with_roles or () if m.get("user_email") == ref.user_email),
                   None)
        if uid is None:
            users = await User.filter(user_email=ref.user_email).values_list("user_id", flat=True)
            uid = next((u for u in users if u in member_ids(t)), None)
    if uid is None or uid not in member_ids(t):
        who = ref.user_id if ref.user_id is not None else ref.user_email
        raise BadRequestError(f"User={who} is not a member of team={t.team_id}", param="user_id")
    return uid


@bp.post("/team/member_update")
@document_request(MemberUpdateBody)
@document_response(MemberUpdated)
async def member_update() -> Any:
    """Change a member's role and/or in-team budget (`max_budget_in_team`) (admin)."""
    require_admin()
    body, _ = await read_body(MemberUpdateBody)
    t = await find(body.team_id)
    uid = await _member_of(t, body)
    if body.role is not None:
        before = team_info(t)
        rows = [dict(m) for m in t.members_with_roles or ()]
        for m in rows:
            if m.get("user_id") == uid:
                m["role"] = body.role
        if not any(m.get("user_id") == uid for m in rows):  # a member through `admins` / `members` only
            rows.append({"role": body.role, "user_id": uid})
        t.members_with_roles = rows
        await t.save(update_fields=["members_with_roles", "updated_at"])
        await record_change("team", "updated", t.team_id, before, {"members_with_roles": rows})
    if body.max_budget_in_team is not None:
        await set_member_budget(t.team_id, uid, body.max_budget_in_team)
    role = next((m.get("role") for m in t.members_with_roles or () if m.get("user_id") == uid), None)
    email = body.user_email or next((m.get("user_email") for m in t.members_with_roles or ()
                                     if m.get("user_id") == uid), None)
    row = await TeamMembership.get_or_none(team_id=t.team_id, user_id=uid)
    budget = await Budget.get_or_none(budget_id=row.budget_id) if row is not None and row.budget_id else None
    return {"team_id": t.team_id, "user_id": uid, "user_email": email, "role": role,
            "max_budget_in_team": budget.max_budget if budget is not None else None}


@bp.post("/team/member_delete")
@document_request(MemberRef)
@document_response(TeamInfo)
async def member_delete() -> Any:
    """Take a user out of a team (admin), by user_id or user_email; a non-member is a 400."""
    require_admin()
    body, _ = await read_body(MemberRef)
    t = await find(body.team_id)
    uid = await _member_of(t, body)
    before = team_info(t)
    old_members = member_ids(t)
    t.members_with_roles = [m for m in t.members_with_roles or () if m.get("user_id") != uid]
    t.admins = [a for a in t.admins or () if a != uid]
    t.members = [a for a in t.members or () if a != uid]
    await t.save(update_fields=["members_with_roles", "admins", "members", "updated_at"])
    changed = {f: getattr(t, f) for f in ("admins", "members", "members_with_roles") if before[f] != getattr(t, f)}
    await record_change("team", "updated", t.team_id, before, changed)
    await sync_user_teams(t.team_id, old_members, member_ids(t))
    return team_info(t)
