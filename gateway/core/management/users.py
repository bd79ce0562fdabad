"""`/user/*`: internal users. A user's `user_role` decides what their keys may do: a key of a
`proxy_admin` user is admin. Like the LiteLLM proxy, `/user/new` also issues a key for the user
(returned once, as `key`) unless `auto_create_key` is false. Deleting a user deletes their keys."""

from __future__ import annotations

import math
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from quart import Blueprint, current_app, g, request
from quart_schema import document_querystring, document_request, document_response, tag_blueprint
from tortoise.exceptions import IntegrityError
from tortoise.functions import Count
from tortoise.transactions import in_transaction

from gateway.core.db.models import Key, OrganizationMembership, Team, TeamMembership, User
from gateway.core.keys import generate_key, hash_key, key_name
from gateway.core.management.common import (
    member_ident,
    team_memberships,
    check_query,
    changes_from,
    iso,
    next_reset,
    now,
    order_args,
    page_args,
    parse_duration,
    read_body,
    record_change,
    require_admin,
)
from gateway.core.management.keys import KeyInfo, _alias_free, key_info
from gateway.core.management.teams import TeamInfo, TeamMembershipInfo, team_info
from gateway.core.route_groups import INFO, MANAGEMENT, declare
from gateway.errors import BadRequestError, NotFoundError, PermissionDeniedError

bp = declare(Blueprint("users", __name__), MANAGEMENT, info=INFO)
bp.before_request(check_query)
tag_blueprint(bp, ["Users"])

Role = Literal["proxy_admin", "proxy_admin_viewer", "internal_user", "internal_user_viewer"]

EDITABLE = ("user_alias", "user_email", "user_role", "teams", "models", "max_budget", "budget_duration",
            "metadata", "tpm_limit", "rpm_limit", "spend")
CREATED_VALUES = ("user_id", "user_alias", "user_email", "user_role", "teams", "models", "max_budget",
                  "budget_duration", "metadata", "tpm_limit", "rpm_limit")
DEFAULTS: dict[str, Any] = {"teams": [], "models": [], "metadata": {}, "spend": 0.0, "user_role": "internal_user"}


class UserFields(BaseModel):
    model_config = ConfigDict(extra="ignore")

    user_alias: str | None = None
    user_email: str | None = None
    user_role: Role | None = None
    teams: list[str] | None = None
    models: list[str] | None = None
    max_budget: float | None = Field(None, ge=0)
    budget_duration: str | None = None
    metadata: dict[str, Any] | None = None
    tpm_limit: int | None = Field(None, ge=0)
    rpm_limit: int | None = Field(None, ge=0)


class NewBody(UserFields):
    user_id: str | None = Field(None, min_length=1, max_length=255)
    auto_create_key: bool = True
    key_alias: str | None = None
    duration: str | None = None


class UpdateBody(UserFields):
    user_id: str = Field(min_length=1)
    spend: float | None = Field(None, ge=0)


class DeleteBody(BaseModel):
    user_ids: list[str] = Field(min_length=1)


class UserInfo(BaseModel):
    user_id: str
    user_alias: str | None
    user_email: str | None
    user_role: str
    teams: list[str]
    models: list[str]
    max_budget: float | None
    spend: float
    budget_duration: str | None
    budget_reset_at: str | None
    metadata: dict[str, Any]
    tpm_limit: int | None
    rpm_limit: int | None
    created_at: str | None
    updated_at: str | None


class NewUser(UserInfo):
    """The user; with `auto_create_key` (the default), also their first key, shown this once."""

    key: str | None = None
    token: str | None = None
    key_name: str | None = None
    key_alias: str | None = None
    expires: str | None = None


class UserInfoReply(BaseModel):
    user_id: str
    user_info: UserInfo
    keys: list[KeyInfo]
    teams: list[TeamInfo]
    team_memberships: list[TeamMembershipInfo]


class UserInfoQuery(BaseModel):
    user_id: str | None = Field(None, description="Default for a non-admin key: its own user")


SORTABLE = ("user_id", "user_email", "user_alias", "user_role", "created_at", "updated_at", "spend")


class UserListQuery(BaseModel):
    page: int | None = Field(None, ge=1)
    page_size: int | None = Field(None, ge=1, le=1000, description="Users per page (default 25)")
    role: Role | None = None
    user_ids: str | None = Field(None, description="Comma-separated user ids")
    user_email: str | None = Field(None, description="Users whose e-mail contains this (any case)")
    team: str | None = Field(None, description="Users with this team id in their teams")
    sort_by: Literal["user_id", "user_email", "user_alias", "user_role", "created_at", "updated_at", "spend"] | None \
        = None
    sort_order: Literal["asc", "desc"] | None = Field(None, description="Default asc")


class UserListItem(UserInfo):
    key_count: int = Field(description="How many keys the user has (LiteLLM's key_count)")


class UserList(BaseModel):
    users: list[UserListItem]
    total: int
    page: int
    page_size: int
    total_pages: int


class DeletedUsers(BaseModel):
    deleted_users: list[str]
    deleted_keys: list[str]


def user_info(u: User) -> dict[str, Any]:
    return {
        "user_id": u.user_id, "user_alias": u.user_alias, "user_email": u.user_email, "user_role": u.user_role,
        "teams": u.teams, "models": u.models, "max_budget": u.max_budget, "spend": u.spend,
        "budget_duration": u.budget_duration, "budget_reset_at": iso(u.budget_reset_at), "metadata": u.metadata,
        "tpm_limit": u.tpm_limit, "rpm_limit": u.rpm_limit, "created_at": iso(u.created_at),
        "updated_at": iso(u.updated_at),
    }


async def find(user_id: str) -> User:
    u = await User.get_or_none(user_id=user_id)
    if u is None:
        raise NotFoundError(f"User not found, passed user_id={user_id}", param="user_id")
    return u


def _exists(user_id: str) -> BadRequestError:
    return BadRequestError(f"User id = {user_id} already exists. Please use a different user id.", param="user_id")


@bp.post("/user/new")
@document_request(NewBody)
@document_response(NewUser)
async def new() -> Any:
    """Create an internal user (admin), with a first key unless auto_create_key is false."""
    require_admin()
    body, _ = await read_body(NewBody)
    user_id = body.user_id or str(uuid.uuid4())
    reset_at = next_reset(body.budget_duration)
    expires = now() + parse_duration(body.duration, "duration") if body.duration else None
    fields = {f: getattr(body, f) for f in EDITABLE if f != "spend" and getattr(body, f, None) is not None}
    if await User.exists(user_id=user_id):
        raise _exists(user_id)
    if body.auto_create_key:
        await _alias_free(body.key_alias)
    raw = generate_key() if body.auto_create_key else None
    try:
        async with in_transaction():
            u = await User.create(user_id=user_id, budget_reset_at=reset_at, **fields)
            k = None
            if raw is not None:
                k = await Key.create(token=hash_key(raw), key_name=key_name(raw), key_alias=body.key_alias,
                                     user_id=user_id, models=list(u.models or []), expires=expires,
                                     created_by=g.principal.user_id)
    except IntegrityError:
        raise _exists(user_id) from None
    info = user_info(u)
    created = {f: info[f] for f in CREATED_VALUES if info[f] is not None and not (f == "metadata" and not info[f])}
    await record_change("user", "created", user_id, None, created)
    if k is None:
        return info
    await record_change("key", "created", k.token, None, key_info(k))
    return {**info, "key": raw, "token": k.token, "key_name": k.key_name, "key_alias": k.key_alias,
            "expires": iso(k.expires)}


@bp.post("/user/update")
@document_request(UpdateBody)
@document_response(UserInfo)
async def update() -> Any:
    """Change a user (admin): only the fields sent change. An unknown user id is created with the
    fields sent, as LiteLLM does."""
    require_admin()
    body, sent = await read_body(UpdateBody)
    u = await User.get_or_none(user_id=body.user_id)
    if u is None:
        fields = {f: v for f, v in changes_from(body, sent, EDITABLE, DEFAULTS).items() if v is not None}
        try:
            u = await User.create(user_id=body.user_id, **fields)
        except IntegrityError:
            raise _exists(body.user_id) from None
        info = user_info(u)
        created = {f: info[f] for f in CREATED_VALUES if info[f] is not None and not (f == "metadata" and not info[f])}
        await record_change("user", "created", u.user_id, None, created)
        return info
    before = user_info(u)
    changes = changes_from(body, sent, EDITABLE, DEFAULTS)
    u.update_from_dict(changes)
    await u.save()
    after = user_info(u)
    await record_change("user", "updated", u.user_id, before, {f: after[f] for f in changes if f in after})
    return after


@bp.post("/user/delete")
@document_request(DeleteBody)
@document_response(DeletedUsers)
async def delete() -> Any:
    """Deletes the users and their keys, and takes them out of their teams."""
    require_admin()
    body, _ = await read_body(DeleteBody)
    ids = list(dict.fromkeys(body.user_ids))
    users = [await find(user_id) for user_id in ids]
    directory = current_app.gateway.directory
    deleted_keys: list[str] = []
    for u in users:
        keys = await Key.filter(user_id=u.user_id).order_by("created_at", "token")
        before_keys = [key_info(k) for k in keys]
        before = user_info(u)
        memberships = await TeamMembership.filter(user_id=u.user_id).values_list("team_id", flat=True)
        async with in_transaction():
            await Key.filter(user_id=u.user_id).delete()
            await User.filter(user_id=u.user_id).delete()
            await TeamMembership.filter(user_id=u.user_id).delete()
            await OrganizationMembership.filter(user_id=u.user_id).delete()
        for team_id in memberships:
            await directory.changed("team_member", member_ident(team_id, u.user_id))
        for info in before_keys:
            await record_change("key", "deleted", info["token"], info, None)
            deleted_keys.append(info["token"])
        await record_change("user", "deleted", u.user_id, before, None)
        for t in await Team.filter(team_id__in=list(u.teams or [])):
            t.members_with_roles = [m for m in t.members_with_roles or () if m.get("user_id") != u.user_id]
            t.admins = [a for a in t.admins or () if a != u.user_id]
            t.members = [a for a in t.members or () if a != u.user_id]
            await t.save(update_fields=["members_with_roles", "admins", "members", "updated_at"])
            await directory.changed("team", t.team_id)
    return {"deleted_users": ids, "deleted_keys": deleted_keys}


@bp.get("/user/info")
@document_querystring(UserInfoQuery)
@document_response(UserInfoReply)
async def info() -> Any:
    """The user, their keys (never a raw key) and their teams. A non-admin key may read its own user."""
    principal = g.principal
    user_id = request.args.get("user_id") or (None if principal.is_admin else principal.user_id)
    if not user_id:
        raise BadRequestError("Pass ?user_id=<user id>", param="user_id")
    if not principal.is_admin and user_id != principal.user_id:
        raise PermissionDeniedError("You can only view information about your own user")
    u = await find(user_id)
    keys = await Key.filter(user_id=user_id).order_by("created_at", "token")
    teams = await Team.filter(team_id__in=list(u.teams or [])).order_by("created_at", "team_id")
    return {"user_id": user_id, "user_info": user_info(u), "keys": [key_info(k) for k in keys],
            "teams": [team_info(t) for t in teams], "team_memberships": await team_memberships(user_id=user_id)}


@bp.get("/user/list")
@document_querystring(UserListQuery)
@document_response(UserList)
async def list_users() -> Any:
    """Users, paginated (admin), filtered as LiteLLM's: `role`, `user_ids` (comma-separated),
    `user_email` (contains, any case), `team`; sorted by `sort_by` (default: oldest first). Each
    with its `key_count`, as LiteLLM's."""
    require_admin()
    args = request.args
    page, size = page_args("page_size", 25)
    query = User.all()
    if args.get("role"):
        query = query.filter(user_role=args["role"])
    if args.get("user_ids"):
        query = query.filter(user_id__in=[u.strip() for u in args["user_ids"].split(",") if u.strip()])
    if args.get("user_email"):
        query = query.filter(user_email__icontains=args["user_email"])
    if args.get("team"):  # `teams` is a JSON list: matched here, the same on every database
        team = args["team"]
        ids = [uid for uid, teams in await query.values_list("user_id", "teams") if team in (teams or ())]
        query = query.filter(user_id__in=ids)
    order = order_args(SORTABLE, "user_id")
    total = await query.count()
    rows = await query.order_by(*order).offset((page - 1) * size).limit(size)
    counted = Key.filter(user_id__in=[u.user_id for u in rows]).group_by("user_id").annotate(n=Count("token"))
    keys = dict(await counted.values_list("user_id", "n"))
    return {"users": [{**user_info(u), "key_count": keys.get(u.user_id, 0)} for u in rows], "total": total,
            "page": page, "page_size": size,
            "total_pages": max(1, math.ceil(total / size))}
