"""`/organization/*`: organizations (LiteLLM's `LiteLLM_OrganizationTable`). An organization holds
teams under one list of allowed models and one budget: a call by a key of a team in the
organization is refused once the organization's spend reached its budget, and may use only the
models the organization allows (both enforced by the virtual-key plugin, from the cached record).

The budget is the organization's own `max_budget` / `budget_duration` / `tpm_limit` / `rpm_limit`,
or, where it sets none, those of a linked budget (`budget_id`, from /budget/new). Members have a
role in it (`org_admin`, `internal_user`, `internal_user_viewer`). Update and delete answer PATCH
and DELETE as LiteLLM does, and POST too. Deleting an organization deletes its teams (and their
keys) and its memberships, as LiteLLM does. The member routes live in organization_members.py,
on this module's `bp`.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, RootModel
from quart import Blueprint, g, request
from quart_schema import document_querystring, document_request, document_response, tag_blueprint
from tortoise.exceptions import IntegrityError

from gateway.core.db.models import Budget, Organization, OrganizationMembership, Team
from gateway.core.management import budgets
from gateway.core.management.common import (
    budget_tables,
    caller_id,
    changes_from,
    check_query,
    iso,
    member_ident,
    next_reset,
    read_body,
    record_change,
    require_admin,
)
from gateway.core.management.teams import TeamInfo, delete_teams, team_info
from gateway.core.route_groups import INFO, MANAGEMENT, declare
from gateway.errors import BadRequestError, NotFoundError, PermissionDeniedError

bp = declare(Blueprint("organizations", __name__), MANAGEMENT, info=INFO, info_many=INFO)
bp.before_request(check_query)
tag_blueprint(bp, ["Organizations"])

EDITABLE = ("organization_alias", "models", "metadata", "budget_id", "max_budget", "budget_duration", "tpm_limit",
            "rpm_limit", "spend")
DEFAULTS: dict[str, Any] = {"models": [], "metadata": {}, "spend": 0.0}
LIMITS = ("max_budget", "budget_duration", "budget_reset_at", "tpm_limit", "rpm_limit")


class OrgFields(BaseModel):
    model_config = ConfigDict(extra="ignore")

    organization_alias: str | None = None
    models: list[str] | None = Field(None, description="Models the organization's teams may use (empty: all)")
    metadata: dict[str, Any] | None = None
    budget_id: str | None = Field(None, description="A budget (/budget/new) whose limits apply where the "
                                  "organization sets none of its own")
    max_budget: float | None = Field(None, ge=0, description="USD; calls of its teams' keys are refused once reached")
    budget_duration: str | None = Field(None, description="The budget period: 30s, 30m, 30h, 30d, 2w, 1mo")
    tpm_limit: int | None = Field(None, ge=0)
    rpm_limit: int | None = Field(None, ge=0)


class NewBody(OrgFields):
    organization_id: str | None = Field(None, min_length=1, max_length=255, description="Default: a new uuid")


class UpdateBody(OrgFields):
    organization_id: str = Field(min_length=1)
    spend: float | None = Field(None, ge=0)


class DeleteBody(BaseModel):
    organization_ids: list[str] = Field(min_length=1)


class InfoBody(BaseModel):
    organizations: list[str] = Field(min_length=1)


class InfoQuery(BaseModel):
    organization_id: str


class MembershipInfo(BaseModel):
    """LiteLLM's `LiteLLM_OrganizationMembership`."""

    user_id: str
    organization_id: str
    user_role: str
    spend: float
    budget_id: str | None
    created_at: str | None
    updated_at: str | None
    litellm_budget_table: dict[str, Any] | None


class OrgInfo(BaseModel):
    """LiteLLM's `LiteLLM_OrganizationTableWithMembers`, with the organization's own limits."""

    organization_id: str
    organization_alias: str | None
    budget_id: str | None
    metadata: dict[str, Any]
    models: list[str]
    spend: float
    max_budget: float | None
    budget_duration: str | None
    budget_reset_at: str | None
    tpm_limit: int | None
    rpm_limit: int | None
    created_at: str | None
    created_by: str | None
    updated_at: str | None
    updated_by: str | None
    litellm_budget_table: dict[str, Any] | None
    members: list[MembershipInfo]
    teams: list[TeamInfo]


class OrgList(RootModel[list[OrgInfo]]):
    """Organizations, oldest first."""


def _row(o: Organization) -> dict[str, Any]:
    """The organization's own columns (what the audit rows show)."""
    return {"organization_id": o.organization_id, "organization_alias": o.organization_alias,
            "budget_id": o.budget_id, "metadata": o.metadata, "models": o.models, "spend": o.spend,
            "max_budget": o.max_budget, "budget_duration": o.budget_duration,
            "budget_reset_at": iso(o.budget_reset_at), "tpm_limit": o.tpm_limit, "rpm_limit": o.rpm_limit,
            "created_at": iso(o.created_at), "created_by": o.created_by, "updated_at": iso(o.updated_at),
            "updated_by": o.updated_by}


async def memberships(**where: Any) -> list[dict[str, Any]]:
    rows = await OrganizationMembership.filter(**where).order_by("created_at", "user_id")
    tables = await budget_tables(r.budget_id for r in rows)
    return [{"user_id": r.user_id, "organization_id": r.organization_id, "user_role": r.user_role,
             "spend": r.spend, "budget_id": r.budget_id, "created_at": iso(r.created_at),
             "updated_at": iso(r.updated_at), "litellm_budget_table": tables.get(r.budget_id or "")} for r in rows]


async def org_info(o: Organization) -> dict[str, Any]:
    """The organization with its budget (`litellm_budget_table`: the linked budget, else its own
    limits), its members and its teams."""
    out = _row(o)
    if o.budget_id:
        out["litellm_budget_table"] = (await budget_tables([o.budget_id])).get(o.budget_id)
    elif any(out[f] is not None for f in LIMITS):
        out["litellm_budget_table"] = {"budget_id": None, **{f: out[f] for f in LIMITS}}
    else:
        out["litellm_budget_table"] = None
    out["members"] = await memberships(organization_id=o.organization_id)
    teams = await Team.filter(organization_id=o.organization_id).order_by("created_at", "team_id")
    out["teams"] = [team_info(t) for t in teams]
    return out


async def find(organization_id: str, param: str = "organization_id") -> Organization:
    o = await Organization.get_or_none(organization_id=organization_id)
    if o is None:
        raise NotFoundError(f"Organization not found for organization_id={organization_id}", param=param)
    return o


async def check_team(organization_id: str | None, models: list[str] | None, max_budget: float | None) -> None:
    """A team in an organization: the organization exists, and the team gets no model the
    organization does not allow and no budget above the organization's (400s)."""
    if organization_id is None:
        return
    org = await Organization.get_or_none(organization_id=organization_id)
    if org is None:
        raise BadRequestError(f"Organization not found, passed organization_id={organization_id}. "
                              "Create it with /organization/new first.", param="organization_id")
    allowed = list(org.models or [])
    if allowed and "all-proxy-models" not in allowed and "*" not in allowed:
        for m in models or ():
            if m not in allowed:
                raise BadRequestError(f"Model={m} not in the organization's allowed models={allowed}. "
                                      f"Organization id={organization_id}", param="models")
    limit = org.max_budget
    if limit is None and org.budget_id:
        budget = await Budget.get_or_none(budget_id=org.budget_id)
        limit = budget.max_budget if budget is not None else None
    if max_budget is not None and limit is not None and max_budget > limit:
        raise BadRequestError(f"max_budget={max_budget} is above the organization's max_budget={limit}",
                              param="max_budget")


def _exists(organization_id: str) -> BadRequestError:
    return BadRequestError(f"Organization id = {organization_id} already exists. Please use a different "
                           "organization id.", param="organization_id")


@bp.post("/organization/new")
@document_request(NewBody)
@document_response(OrgInfo)
async def new() -> Any:
    """Create an organization (admin): its models, and its budget (own limits or a `budget_id`)."""
    require_admin()
    body, _ = await read_body(NewBody)
    organization_id = body.organization_id or str(uuid.uuid4())
    await budgets.linked(body.budget_id)
    fields = {f: getattr(body, f) for f in EDITABLE if f != "spend" and getattr(body, f, None) is not None}
    reset_at = next_reset(body.budget_duration)
    if await Organization.exists(organization_id=organization_id):
        raise _exists(organization_id)
    who = caller_id()
    try:
        o = await Organization.create(organization_id=organization_id, budget_reset_at=reset_at, created_by=who,
                                      updated_by=who, **fields)
    except IntegrityError:
        raise _exists(organization_id) from None
    row = _row(o)
    await record_change("organization", "created", organization_id, None,
                        {f: v for f, v in row.items() if v not in (None, {}) and f not in ("created_at", "updated_at")})
    return await org_info(o)


@bp.route("/organization/update", methods=["PATCH", "POST"])
@document_request(UpdateBody)
@document_response(OrgInfo)
async def update() -> Any:
    """Change an organization (admin): only the fields sent change (null clears one). Applies to
    its teams' keys on their next call."""
    require_admin()
    body, sent = await read_body(UpdateBody)
    o = await find(body.organization_id)
    changes = changes_from(body, sent, EDITABLE, DEFAULTS)
    if changes.get("budget_id") is not None:
        await budgets.linked(changes["budget_id"])
    before = _row(o)
    o.update_from_dict({**changes, "updated_by": caller_id()})
    await o.save()
    after = _row(o)
    await record_change("organization", "updated", o.organization_id, before,
                        {f: after[f] for f in changes if f in after})
    return await org_info(o)


@bp.route("/organization/delete", methods=["DELETE", "POST"])
@document_request(DeleteBody)
@document_response(OrgList)
async def delete() -> Any:
    """Delete organizations (admin) with their teams (and the teams' keys) and memberships."""
    require_admin()
    body, _ = await read_body(DeleteBody)
    orgs = [await find(i, "organization_ids") for i in dict.fromkeys(body.organization_ids)]
    out = []
    for o in orgs:
        info = await org_info(o)
        await delete_teams(await Team.filter(organization_id=o.organization_id).order_by("created_at", "team_id"))
        for m in info["members"]:
            await record_change("organization_member", "deleted", member_ident(o.organization_id, m["user_id"]),
                                m, None)
        await OrganizationMembership.filter(organization_id=o.organization_id).delete()
        await Organization.filter(organization_id=o.organization_id).delete()
        await record_change("organization", "deleted", o.organization_id, _row(o), None)
        out.append(info)
    return out


async def _check_readable(organization_id: str) -> None:
    """A non-admin key reads the organization of its own team, or one its user is a member of."""
    principal = g.principal
    if principal.is_admin:
        return
    team = (principal.extra.get("records") or (None, None))[1]
    if getattr(team, "organization_id", None) == organization_id:
        return
    if principal.user_id is None or not await OrganizationMembership.exists(organization_id=organization_id,
                                                                            user_id=principal.user_id):
        raise PermissionDeniedError("You can only view information about your own organization")


@bp.get("/organization/info")
@document_querystring(InfoQuery)
@document_response(OrgInfo)
async def info() -> Any:
    """One organization, its budget, members and teams. A non-admin key may read the organization
    of its own team, or one its user is a member of."""
    organization_id = request.args.get("organization_id")
    if not organization_id:
        raise BadRequestError("Pass ?organization_id=<organization id>", param="organization_id")
    o = await find(organization_id)
    await _check_readable(organization_id)
    return await org_info(o)


@bp.post("/organization/info")
@document_request(InfoBody)
@document_response(OrgList)
async def info_many() -> Any:
    """The organizations named in `organizations` (LiteLLM's older form of /organization/info)."""
    body, _ = await read_body(InfoBody)
    out = []
    for organization_id in dict.fromkeys(body.organizations):
        o = await find(organization_id, "organizations")
        await _check_readable(organization_id)
        out.append(await org_info(o))
    return out


@bp.get("/organization/list")
@document_response(OrgList)
async def list_orgs() -> Any:
    """Every organization (admin), oldest first, with members and teams."""
    require_admin()
    return [await org_info(o) for o in await Organization.all().order_by("created_at", "organization_id")]


# Its routes hang on `bp`: imported here, after everything it uses from this module, so that whoever
# imports organizations (app.py registers `bp`) gets every /organization/* route.
from gateway.core.management import organization_members  # noqa: E402,F401
