"""`/organization/member_add`, `/organization/member_update`, `/organization/member_delete`: who
is in an organization, with which role (`org_admin`, `internal_user`, `internal_user_viewer`), and
each member's budget in it (`max_budget_in_organization`, kept on the membership row). The routes
hang on `organizations.bp` (this module is imported at the end of organizations.py)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from quart_schema import document_request, document_response

from gateway.core.db.models import OrganizationMembership, User
from gateway.core.management.common import (
    member_ident,
    own_budget,
    read_body,
    record_change,
    require_admin,
    user_for_member,
)
from gateway.core.management.organizations import MembershipInfo, bp, find, memberships
from gateway.core.management.users import user_info
from gateway.errors import BadRequestError, NotFoundError

OrgRole = Literal["org_admin", "internal_user", "internal_user_viewer"]


class OrgMember(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: OrgRole = "internal_user"
    user_id: str | None = Field(None, min_length=1)
    user_email: str | None = Field(None, description="Looked up; a user is created (internal_user) if none has it")


class MemberAddBody(BaseModel):
    organization_id: str = Field(min_length=1)
    member: OrgMember | list[OrgMember]
    max_budget_in_organization: float | None = Field(None, ge=0, description="Each new member's budget in the "
                                                     "organization (stored and shown; not enforced yet)")


class MemberRef(BaseModel):
    organization_id: str = Field(min_length=1)
    user_id: str | None = Field(None, min_length=1)
    user_email: str | None = None


class MemberUpdateBody(MemberRef):
    role: OrgRole | None = None
    max_budget_in_organization: float | None = Field(None, ge=0)


class MembersAdded(BaseModel):
    organization_id: str
    updated_users: list[dict[str, Any]]
    updated_organization_memberships: list[MembershipInfo]


async def _set_budget(m: OrganizationMembership, max_budget: float) -> None:
    budget, created = await own_budget(m.budget_id, max_budget)
    if created:
        m.budget_id = budget.budget_id
        await m.save(update_fields=["budget_id", "updated_at"])


@bp.post("/organization/member_add")
@document_request(MemberAddBody)
@document_response(MembersAdded)
async def member_add() -> Any:
    """Add members (admin) by user_id or user_email (a user is created, as an internal_user, for an
    e-mail no user has), each with a role in the organization."""
    require_admin()
    body, _ = await read_body(MemberAddBody)
    o = await find(body.organization_id)
    adding = body.member if isinstance(body.member, list) else [body.member]
    if not adding:
        raise BadRequestError("member must name at least one member", param="member")
    ids: list[str] = []
    for i, m in enumerate(adding):
        if m.user_id is None and m.user_email is None:
            raise BadRequestError("Either user_id or user_email must be given", param=f"member.{i}.user_id")
    current = set(await OrganizationMembership.filter(organization_id=o.organization_id)
                  .values_list("user_id", flat=True))
    for m in adding:
        user_id, _ = await user_for_member(m.user_id, m.user_email, "member")
        if not await User.exists(user_id=user_id):  # a new id becomes an internal user, as LiteLLM does
            await User.create(user_id=user_id, user_email=m.user_email, user_role="internal_user")
            await record_change("user", "created", user_id, None, {"user_id": user_id, "user_email": m.user_email,
                                                                   "user_role": "internal_user"})
        if user_id in current or user_id in ids:
            raise BadRequestError(f"User={user_id} is already a member of organization={o.organization_id}",
                                  param="member")
        ids.append(user_id)
    for m, user_id in zip(adding, ids):
        row = await OrganizationMembership.create(organization_id=o.organization_id, user_id=user_id,
                                                  user_role=m.role)
        if body.max_budget_in_organization is not None:
            await _set_budget(row, body.max_budget_in_organization)
        await record_change("organization_member", "created", member_ident(o.organization_id, user_id), None,
                            {"organization_id": o.organization_id, "user_id": user_id, "user_role": m.role,
                             "budget_id": row.budget_id})
    users = {u.user_id: user_info(u) for u in await User.filter(user_id__in=ids)}
    return {"organization_id": o.organization_id, "updated_users": [users[i] for i in ids if i in users],
            "updated_organization_memberships": await memberships(organization_id=o.organization_id,
                                                                  user_id__in=ids)}


async def _membership(ref: MemberRef) -> OrganizationMembership:
    await find(ref.organization_id)
    user_id = ref.user_id
    if user_id is None:
        if ref.user_email is None:
            raise BadRequestError("Either user_id or user_email needs to be passed in", param="user_id")
        found = await User.filter(user_email=ref.user_email).values_list("user_id", flat=True)
        user_id = next(iter(await OrganizationMembership.filter(organization_id=ref.organization_id,
                                                                user_id__in=list(found))
                            .values_list("user_id", flat=True)), None) if found else None
    m = await OrganizationMembership.get_or_none(organization_id=ref.organization_id, user_id=user_id) \
        if user_id is not None else None
    if m is None:
        raise NotFoundError(f"Member not found in organization for user_id={user_id or ref.user_email}",
                            param="user_id")
    return m


@bp.route("/organization/member_update", methods=["PATCH", "POST"])
@document_request(MemberUpdateBody)
@document_response(MembershipInfo)
async def member_update() -> Any:
    """Change a member's role and/or budget in the organization (admin)."""
    require_admin()
    body, _ = await read_body(MemberUpdateBody)
    m = await _membership(body)
    ident = member_ident(m.organization_id, m.user_id)
    (before,) = await memberships(id=m.id)
    if body.role is not None and body.role != m.user_role:
        m.user_role = body.role
        await m.save(update_fields=["user_role", "updated_at"])
    if body.max_budget_in_organization is not None:
        await _set_budget(m, body.max_budget_in_organization)
    (after,) = await memberships(id=m.id)
    changed = {f: after[f] for f in ("user_role", "budget_id") if after[f] != before[f]}
    if changed:
        await record_change("organization_member", "updated", ident, before, changed)
    return after


@bp.route("/organization/member_delete", methods=["DELETE", "POST"])
@document_request(MemberRef)
@document_response(MembershipInfo)
async def member_delete() -> Any:
    """Take a user out of an organization (admin); a non-member is a 404."""
    require_admin()
    body, _ = await read_body(MemberRef)
    m = await _membership(body)
    (before,) = await memberships(id=m.id)
    await m.delete()
    await record_change("organization_member", "deleted", member_ident(m.organization_id, m.user_id), before, None)
    return before
