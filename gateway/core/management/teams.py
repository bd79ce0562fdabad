"""`/team/*`: teams. A team groups keys under shared models, limits and a budget; blocking a team
refuses every key in it at once. Deleting a team deletes its keys. A team may sit in an
organization (whose models and budget bound it). Each member has a membership row holding their
in-team spend and, with `max_budget_in_team`, a budget of their own inside the team.

The member routes live in team_members.py and the list routes in team_lists.py; both hang on this
module's `bp`."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from quart import Blueprint, current_app, g, request
from quart_schema import document_querystring, document_request, document_response, tag_blueprint
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from gateway.core.db.models import Key, Team, TeamMembership, User
from gateway.core.management.common import (
    check_guardrail_metadata,
    sync_team_memberships,
    team_memberships,
    user_for_member,
    with_guardrails,
    with_metadata_field,
    check_query,
    caller_id,
    changes_from,
    iso,
    next_reset,
    read_body,
    record_change,
    require_admin,
)
from gateway.core.management.keys import KeyInfo, key_info
from gateway.core.route_groups import INFO, MANAGEMENT, declare
from gateway.errors import BadRequestError, NotFoundError, PermissionDeniedError

bp = declare(Blueprint("teams", __name__), MANAGEMENT, info=INFO)
bp.before_request(check_query)
tag_blueprint(bp, ["Teams"])

EDITABLE = ("team_alias", "admins", "members", "members_with_roles", "metadata", "tpm_limit", "rpm_limit",
            "max_budget", "budget_duration", "models", "blocked", "spend", "organization_id")
# What the audit row of /team/new shows, in this order (the seed's sample): the team as created,
# without unset values, an empty metadata or the zero spend.
CREATED_VALUES = ("team_id", "team_alias", "admins", "members", "members_with_roles", "metadata", "tpm_limit",
                  "rpm_limit", "max_budget", "budget_duration", "models", "blocked")
# Columns that cannot hold null: a null sent by a client means "back to the default".
DEFAULTS: dict[str, Any] = {"admins": [], "members": [], "members_with_roles": [], "metadata": {}, "models": [],
                            "blocked": False, "spend": 0.0}


class Member(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["admin", "user"] = "user"
    user_id: str | None = Field(None, min_length=1, description="The user; or give user_email")
    user_email: str | None = Field(None, description="Looked up; a user is created (internal_user) if none has it")

    def as_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {"role": self.role, "user_id": self.user_id}
        if self.user_email is not None:
            row["user_email"] = self.user_email
        return row


class TeamFields(BaseModel):
    model_config = ConfigDict(extra="ignore")

    team_alias: str | None = None
    admins: list[str] | None = None
    members: list[str] | None = None
    members_with_roles: list[Member] | None = None
    metadata: dict[str, Any] | None = None
    tpm_limit: int | None = Field(None, ge=0)
    rpm_limit: int | None = Field(None, ge=0)
    max_budget: float | None = Field(None, ge=0)
    budget_duration: str | None = None
    models: list[str] | None = None
    blocked: bool | None = None
    guardrails: list[str] | None = Field(None, description="Guardrails switched on for the team's requests "
                                         "(kept in metadata.guardrails)")
    model_aliases: dict[str, str] | None = Field(None, description="Model names the team's keys may use for model "
                                                 "groups (kept in metadata.model_aliases)")
    organization_id: str | None = Field(None, description="The organization the team belongs to (/organization/new)")


class NewBody(TeamFields):
    team_id: str | None = Field(None, min_length=1, max_length=255)


class UpdateBody(TeamFields):
    team_id: str = Field(min_length=1)
    spend: float | None = Field(None, ge=0)


class TeamRef(BaseModel):
    team_id: str = Field(min_length=1)


class DeleteBody(BaseModel):
    team_ids: list[str] = Field(min_length=1)


class TeamMembershipInfo(BaseModel):
    """LiteLLM's `LiteLLM_TeamMembership`: a member's spend inside the team and their budget."""

    user_id: str
    team_id: str
    budget_id: str | None
    spend: float
    litellm_budget_table: dict[str, Any] | None


class TeamInfo(BaseModel):
    team_id: str
    team_alias: str | None
    admins: list[str]
    members: list[str]
    members_with_roles: list[dict[str, Any]]
    metadata: dict[str, Any]
    tpm_limit: int | None
    rpm_limit: int | None
    max_budget: float | None
    budget_duration: str | None
    budget_reset_at: str | None
    models: list[str]
    blocked: bool
    spend: float
    model_aliases: dict[str, str] | None = None
    organization_id: str | None = None
    created_at: str | None
    updated_at: str | None


class TeamUpdated(BaseModel):
    """LiteLLM's answer to /team/update."""

    team_id: str
    data: TeamInfo


class TeamInfoReply(BaseModel):
    team_id: str
    team_info: TeamInfo
    keys: list[KeyInfo]
    team_memberships: list[TeamMembershipInfo]


class TeamInfoQuery(BaseModel):
    team_id: str | None = Field(None, description="Default for a non-admin key: its own team")


class DeletedTeams(BaseModel):
    deleted_teams: list[str]
    deleted_keys: list[str]


def team_info(t: Team) -> dict[str, Any]:
    return {
        "team_id": t.team_id, "team_alias": t.team_alias, "admins": t.admins, "members": t.members,
        "members_with_roles": t.members_with_roles, "metadata": t.metadata, "tpm_limit": t.tpm_limit,
        "rpm_limit": t.rpm_limit, "max_budget": t.max_budget, "budget_duration": t.budget_duration,
        "budget_reset_at": iso(t.budget_reset_at), "models": t.models, "blocked": t.blocked, "spend": t.spend,
        "model_aliases": (t.metadata or {}).get("model_aliases"), "organization_id": t.organization_id,
        "created_at": iso(t.created_at), "updated_at": iso(t.updated_at),
    }


def member_ids(t: Team) -> set[str]:
    return {m.get("user_id") for m in t.members_with_roles or () if m.get("user_id")} | set(t.members or ()) | \
        set(t.admins or ())


async def find(team_id: str) -> Team:
    t = await Team.get_or_none(team_id=team_id)
    if t is None:
        raise NotFoundError(f"Team not found, passed team_id={team_id}", param="team_id")
    return t


async def organization_bounds(organization_id: str | None, models: list[str] | None,
                              max_budget: float | None) -> None:
    from gateway.core.management.organizations import check_team  # it imports this module

    await check_team(organization_id, models, max_budget)


async def resolve_members(members: list[Member], field: str) -> list[str]:
    """Each member's user id: given, or found (or created) by `user_email`; the ids of users created."""
    created = []
    for i, m in enumerate(members):
        if m.user_id is None:
            m.user_id, new = await user_for_member(None, m.user_email, f"{field}.{i}.user_id")
            if new:
                created.append(m.user_id)
    return created


async def sync_user_teams(team_id: str, before: set[str], after: set[str]) -> None:
    """Keep the `teams` list of the users who joined or left in step (users that exist only), and
    the membership rows of every member."""
    joined, left = after - before, before - after
    if not joined and not left:
        return
    await sync_team_memberships(team_id, before, after)
    directory = current_app.gateway.directory
    for user in await User.filter(user_id__in=sorted(joined | left)):
        teams = [t for t in user.teams or () if t != team_id]
        if user.user_id in joined:
            teams.append(team_id)
        if teams != list(user.teams or ()):
            user.teams = teams
            await user.save(update_fields=["teams", "updated_at"])
            await directory.changed("user", user.user_id)


@bp.post("/team/new")
@document_request(NewBody)
@document_response(TeamInfo)
async def new() -> Any:
    """Create a team (admin); the caller joins it as an admin member."""
    require_admin()
    body, _ = await read_body(NewBody)
    team_id = body.team_id or str(uuid.uuid4())
    await organization_bounds(body.organization_id, body.models, body.max_budget)
    for i, m in enumerate(body.members_with_roles or ()):
        if m.user_id is None and m.user_email is None:
            raise BadRequestError("Either user_id or user_email must be given", param=f"members_with_roles.{i}.user_id")
    if await Team.exists(team_id=team_id):
        raise BadRequestError(f"Team id = {team_id} already exists. Please use a different team id.",
                              param="team_id")
    await resolve_members(body.members_with_roles or [], "members_with_roles")
    members = [m.as_row() for m in body.members_with_roles or ()]
    creator = caller_id()
    if not any(m["user_id"] == creator for m in members):
        members.append({"role": "admin", "user_id": creator})
    fields = {f: getattr(body, f) for f in EDITABLE if f != "spend" and getattr(body, f, None) is not None}
    fields["members_with_roles"] = members
    check_guardrail_metadata(body.metadata)
    if body.guardrails is not None:
        fields["metadata"] = with_guardrails(body.metadata, body.guardrails)
    if body.model_aliases is not None:
        fields["metadata"] = with_metadata_field(fields.get("metadata", body.metadata), "model_aliases",
                                                 body.model_aliases)
    reset_at = next_reset(body.budget_duration)
    if await Team.exists(team_id=team_id):
        raise BadRequestError(f"Team id = {team_id} already exists. Please use a different team id.",
                              param="team_id")
    try:
        t = await Team.create(team_id=team_id, budget_reset_at=reset_at, **fields)
    except IntegrityError:
        raise BadRequestError(f"Team id = {team_id} already exists. Please use a different team id.",
                              param="team_id") from None
    info = team_info(t)
    created = {f: info[f] for f in CREATED_VALUES if info[f] is not None and not (f == "metadata" and not info[f])}
    await record_change("team", "created", team_id, None, created)
    await sync_user_teams(team_id, set(), member_ids(t))
    return info


@bp.post("/team/update")
@document_request(UpdateBody)
@document_response(TeamUpdated)
async def update() -> Any:
    """Change a team (admin): only the fields sent change. Answers `{"team_id", "data"}` as LiteLLM does."""
    require_admin()
    body, sent = await read_body(UpdateBody)
    t = await find(body.team_id)
    if sent & {"organization_id", "models", "max_budget"}:
        await organization_bounds(body.organization_id if "organization_id" in sent else t.organization_id,
                                 body.models if "models" in sent else t.models,
                                 body.max_budget if "max_budget" in sent else t.max_budget)
    if "members_with_roles" in sent:
        await resolve_members(body.members_with_roles or [], "members_with_roles")
    before = team_info(t)
    old_members = member_ids(t)
    changes = changes_from(body, sent, EDITABLE, DEFAULTS)
    check_guardrail_metadata(changes.get("metadata"))
    if "guardrails" in sent:
        changes["metadata"] = with_guardrails(changes["metadata"] if "metadata" in changes else t.metadata,
                                              body.guardrails)
    if "model_aliases" in sent:
        changes["metadata"] = with_metadata_field(changes["metadata"] if "metadata" in changes else t.metadata,
                                                  "model_aliases", body.model_aliases or None)
    if changes.get("members_with_roles") is not None:
        changes["members_with_roles"] = [m.as_row() for m in body.members_with_roles or ()]
    t.update_from_dict(changes)
    await t.save()
    after = team_info(t)
    await record_change("team", "updated", t.team_id, before, {f: after[f] for f in changes if f in after})
    await sync_user_teams(t.team_id, old_members, member_ids(t))
    return {"team_id": t.team_id, "data": after}


async def _set_blocked(blocked: bool) -> Any:
    require_admin()
    body, _ = await read_body(TeamRef)
    t = await find(body.team_id)
    before = team_info(t)
    t.blocked = blocked
    await t.save(update_fields=["blocked", "updated_at"])
    await record_change("team", "blocked" if blocked else "unblocked", t.team_id, before, {"blocked": blocked})
    return team_info(t)


@bp.post("/team/block")
@document_request(TeamRef)
@document_response(TeamInfo)
async def block() -> Any:
    """Block a team (admin): every key in it is refused at once."""
    return await _set_blocked(True)


@bp.post("/team/unblock")
@document_request(TeamRef)
@document_response(TeamInfo)
async def unblock() -> Any:
    """Unblock a team (admin)."""
    return await _set_blocked(False)


@bp.post("/team/delete")
@document_request(DeleteBody)
@document_response(DeletedTeams)
async def delete() -> Any:
    """Deletes the teams and every key in them (each key gets its own audit row)."""
    require_admin()
    body, _ = await read_body(DeleteBody)
    ids = list(dict.fromkeys(body.team_ids))
    teams = [await find(team_id) for team_id in ids]
    return {"deleted_teams": ids, "deleted_keys": await delete_teams(teams)}


async def delete_teams(teams: list[Team]) -> list[str]:
    """Delete the teams, their keys and memberships, each with its audit row; the keys' hashes."""
    deleted_keys: list[str] = []
    for t in teams:
        keys = await Key.filter(team_id=t.team_id).order_by("created_at", "token")
        before_keys = [key_info(k) for k in keys]
        before = team_info(t)
        members = member_ids(t)
        async with in_transaction():
            await Key.filter(team_id=t.team_id).delete()
            await Team.filter(team_id=t.team_id).delete()
            await TeamMembership.filter(team_id=t.team_id).delete()
        for info in before_keys:
            await record_change("key", "deleted", info["token"], info, None)
            deleted_keys.append(info["token"])
        await record_change("team", "deleted", t.team_id, before, None)
        await sync_user_teams(t.team_id, members, set())
    return deleted_keys


@bp.get("/team/info")
@document_querystring(TeamInfoQuery)
@document_response(TeamInfoReply)
async def info() -> Any:
    """The team and its keys (never a raw key). A non-admin key may read its own team only."""
    principal = g.principal
    team_id = request.args.get("team_id") or (None if principal.is_admin else principal.team_id)
    if not team_id:
        raise BadRequestError("Pass ?team_id=<team id>", param="team_id")
    if not principal.is_admin and team_id != principal.team_id:
        t = await Team.get_or_none(team_id=team_id)
        if t is None or principal.user_id is None or principal.user_id not in member_ids(t):
            raise PermissionDeniedError("You can only view information about your own team")
    t = await find(team_id)
    keys = await Key.filter(team_id=team_id).order_by("created_at", "token")
    return {"team_id": team_id, "team_info": team_info(t), "keys": [key_info(k) for k in keys],
            "team_memberships": await team_memberships(team_id=team_id)}


# Their routes hang on `bp`: imported here, after everything they use from this module, so that
# whoever imports teams (app.py registers `bp`) gets every /team/* route. The order keeps the routes'
# order (and so the OpenAPI document's) as it was.
from gateway.core.management import team_lists, team_members  # noqa: E402,F401
