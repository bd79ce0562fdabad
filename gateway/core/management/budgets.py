"""`/budget/*`: budgets as objects (LiteLLM's `LiteLLM_BudgetTable`), admin only.

A budget holds limits, never spend: `max_budget`, `soft_budget` (an alert, never a refusal),
`budget_duration` (its period), `rpm_limit`, `tpm_limit`, `max_parallel_requests` and
`model_max_budget` (stored and shown; not enforced yet). End users link to one by `budget_id`
(`/customer/new|update`); the directory then applies it to them (`identity.EndUserRecord`). A
change to a budget evicts its end users from every cache at once. Deleting a budget unlinks what
was linked to it, as LiteLLM's `ON DELETE SET NULL` does, with an audit row per unlinked record.

The end-user loader raises soft budget alerts through `Directory.alert` (the gateway's alert path).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, RootModel
from quart import Blueprint, current_app, request
from quart_schema import document_querystring, document_request, document_response, tag_blueprint
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from gateway.context import AuditEvent
from gateway.core.db.models import Budget, EndUser, Key, Organization, TeamMembership
from gateway.core.management.common import (
    TABLE,
    caller_id,
    caller_key_hash,
    check_query,
    iso,
    next_reset,
    parse_duration,
    read_body,
    record_change,
    require_admin,
)
from gateway.core.route_groups import MANAGEMENT, declare
from gateway.errors import BadRequestError, NotFoundError

bp = declare(Blueprint("budgets", __name__), MANAGEMENT)
bp.before_request(check_query)
tag_blueprint(bp, ["Budgets"])

BUDGET_TABLE = "LiteLLM_BudgetTable"  # LiteLLM's name, as the other audit rows use theirs
LIMITS = ("max_budget", "soft_budget", "max_parallel_requests", "tpm_limit", "rpm_limit", "model_max_budget",
          "budget_duration")
FIELDS = ("budget_id", *LIMITS, "budget_reset_at", "created_at", "created_by", "updated_at", "updated_by")


class ModelBudget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_budget: float | None = Field(None, ge=0)
    budget_duration: str | None = None
    tpm_limit: int | None = Field(None, ge=0)
    rpm_limit: int | None = Field(None, ge=0)


class BudgetLimits(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt limit is a 400, never silently unset

    max_budget: float | None = Field(None, ge=0, description="USD; calls are refused once spend reaches it")
    soft_budget: float | None = Field(None, ge=0, description="USD; an alert once spend reaches it")
    max_parallel_requests: int | None = Field(None, ge=0, le=2**31 - 1)  # an INTEGER column
    tpm_limit: int | None = Field(None, ge=0)
    rpm_limit: int | None = Field(None, ge=0)
    model_max_budget: dict[str, ModelBudget] | None = Field(
        None, description="Per model: max_budget, budget_duration, tpm_limit, rpm_limit (stored, not enforced yet)")
    budget_duration: str | None = Field(None, description="The period: 30s, 30m, 30h, 30d, 2w, 1mo")
    budget_reset_at: datetime | None = Field(None, description="End of the first period (default: now + duration)")


class NewBody(BudgetLimits):
    budget_id: str | None = Field(None, min_length=1, max_length=255, description="Default: a new uuid")


class UpdateBody(BudgetLimits):
    budget_id: str = Field(min_length=1, max_length=255)


class InfoBody(BaseModel):
    budgets: list[str] = Field(min_length=1)


class InfoQuery(BaseModel):
    budget_id: str


class DeleteBody(BaseModel):
    id: str = Field(min_length=1, max_length=255)


class BudgetInfo(BaseModel):
    budget_id: str
    max_budget: float | None
    soft_budget: float | None
    max_parallel_requests: int | None
    tpm_limit: int | None
    rpm_limit: int | None
    model_max_budget: dict[str, Any] | None
    budget_duration: str | None
    budget_reset_at: str | None
    created_at: str | None
    created_by: str | None
    updated_at: str | None
    updated_by: str | None


class BudgetList(RootModel[list[BudgetInfo]]):
    """Budgets, oldest first."""


def budget_info(b: Budget) -> dict[str, Any]:
    out = {f: getattr(b, f) for f in FIELDS}
    for f in ("budget_reset_at", "created_at", "updated_at"):
        out[f] = iso(out[f])
    return out


async def find(budget_id: str, param: str = "budget_id") -> Budget:
    b = await Budget.get_or_none(budget_id=budget_id)
    if b is None:
        raise NotFoundError(f"Budget not found, passed budget_id={budget_id}", param=param)
    return b


async def linked(budget_id: str | None, param: str = "budget_id") -> Budget | None:
    """The budget an end user (or key) is to be linked to: an unknown id is the caller's mistake (400)."""
    if budget_id is None:
        return None
    b = await Budget.get_or_none(budget_id=budget_id)
    if b is None:
        raise BadRequestError(f"Budget not found, passed budget_id={budget_id}. Create it with /budget/new first.",
                              param=param)
    return b


async def _evict_linked(directory: Any, budget_id: str) -> None:
    """Organizations and team memberships under a budget see its change at once, everywhere."""
    from gateway.core.management.common import member_ident

    for org_id in await Organization.filter(budget_id=budget_id).values_list("organization_id", flat=True):
        await directory.changed("organization", org_id)
    for team_id, user_id in await TeamMembership.filter(budget_id=budget_id).values_list("team_id", "user_id"):
        await directory.changed("team_member", member_ident(team_id, user_id))


def checked_limits(body: BudgetLimits, sent: set[str]) -> dict[str, Any]:
    """The limits sent, with durations parsed (a 400 naming the field) and JSON-ready per-model budgets."""
    values = {f: getattr(body, f) for f in (*LIMITS, "budget_reset_at") if f in sent}
    if values.get("budget_duration") is not None:
        parse_duration(values["budget_duration"], "budget_duration")
    if values.get("model_max_budget") is not None:
        for model, limits in values["model_max_budget"].items():
            if limits.budget_duration is not None:
                parse_duration(limits.budget_duration, f"model_max_budget.{model}.budget_duration")
        values["model_max_budget"] = {m: v.model_dump(exclude_none=True) for m, v in values["model_max_budget"].items()}
    reset_at = values.get("budget_reset_at")
    if reset_at is not None and reset_at.tzinfo is None:
        values["budget_reset_at"] = reset_at.replace(tzinfo=timezone.utc)  # times without an offset are UTC
    return values


def _audit(action: str, budget_id: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> None:
    current_app.gateway.audit(AuditEvent(
        action=action, table_name=BUDGET_TABLE, object_id=budget_id, changed_by=caller_id(),
        changed_by_api_key=caller_key_hash(), before_value=before, updated_values=after))


async def create(values: dict[str, Any], budget_id: str | None = None) -> Budget:
    """Store a new budget (also used by `/customer/new` for a customer's own budget) and audit it."""
    budget_id = budget_id or str(uuid.uuid4())
    if values.get("budget_duration") and values.get("budget_reset_at") is None:
        values["budget_reset_at"] = next_reset(values["budget_duration"])
    exists = BadRequestError(f"Budget with id '{budget_id}' already exists.", param="budget_id")
    if await Budget.exists(budget_id=budget_id):
        raise exists
    who = caller_id()
    try:
        b = await Budget.create(budget_id=budget_id, created_by=who, updated_by=who,
                                **{f: v for f, v in values.items() if v is not None})
    except IntegrityError:
        raise exists from None
    info = budget_info(b)
    _audit("created", budget_id, None, {f: v for f, v in info.items()
                                        if v is not None and f not in ("created_at", "updated_at")})
    return b


@bp.post("/budget/new")
@document_request(NewBody)
@document_response(BudgetInfo)
async def new() -> Any:
    """Create a budget (admin). Link end users to it with `/customer/new` or `/customer/update`."""
    require_admin()
    body, sent = await read_body(NewBody)
    return budget_info(await create(checked_limits(body, sent), body.budget_id))


@bp.post("/budget/update")
@document_request(UpdateBody)
@document_response(BudgetInfo)
async def update() -> Any:
    """Change a budget (admin): only the fields sent change (null clears one). A new
    `budget_duration` starts a new period. Takes effect for every linked end user at once."""
    require_admin()
    body, sent = await read_body(UpdateBody)
    b = await find(body.budget_id)
    changes = checked_limits(body, sent)
    if "budget_duration" in changes and "budget_reset_at" not in changes:
        changes["budget_reset_at"] = next_reset(changes["budget_duration"])
    before = budget_info(b)
    b.update_from_dict({**changes, "updated_by": caller_id()})
    if b.budget_duration and b.budget_reset_at is None:  # a period always has an end
        changes["budget_reset_at"] = b.budget_reset_at = next_reset(b.budget_duration)
    await b.save()
    after = budget_info(b)
    _audit("updated", b.budget_id, before, {f: after[f] for f in changes})
    if "soft_budget" in changes:  # a new soft budget alerts again once crossed
        await EndUser.filter(budget_id=b.budget_id).update(soft_budget_alerted_at=None)
    ids = await EndUser.filter(budget_id=b.budget_id).values_list("user_id", flat=True)
    directory = current_app.gateway.directory
    await directory.end_users_changed(ids)
    for token in await Key.filter(budget_id=b.budget_id).values_list("token", flat=True):
        await directory.changed("key", token)
    await _evict_linked(directory, b.budget_id)
    return after


@bp.post("/budget/info")
@document_request(InfoBody)
@document_response(BudgetList)
async def info() -> Any:
    """The budgets named in `budgets` (admin), in that order; an unknown id is a 404."""
    require_admin()
    body, _ = await read_body(InfoBody)
    return [budget_info(await find(budget_id, "budgets")) for budget_id in dict.fromkeys(body.budgets)]


@bp.get("/budget/info")
@document_querystring(InfoQuery)
@document_response(BudgetInfo)
async def info_one() -> Any:
    """One budget (admin): `?budget_id=`."""
    require_admin()
    budget_id = request.args.get("budget_id")
    if not budget_id:
        raise BadRequestError("Pass ?budget_id=<budget id>", param="budget_id")
    return budget_info(await find(budget_id))


@bp.get("/budget/list")
@document_response(BudgetList)
async def list_budgets() -> Any:
    """Every budget (admin), oldest first."""
    require_admin()
    return [budget_info(b) for b in await Budget.all().order_by("created_at", "budget_id")]


@bp.post("/budget/delete")
@document_request(DeleteBody)
@document_response(BudgetInfo)
async def delete() -> Any:
    """Delete a budget (admin). End users and keys linked to it are unlinked (each gets an audit row)
    and fall back to their own limits."""
    require_admin()
    body, _ = await read_body(DeleteBody)
    b = await find(body.id, "id")
    info = budget_info(b)
    end_users = await EndUser.filter(budget_id=b.budget_id).order_by("user_id")
    keys = await Key.filter(budget_id=b.budget_id).order_by("token")
    directory = current_app.gateway.directory
    await _evict_linked(directory, b.budget_id)  # read before they are unlinked
    async with in_transaction():
        await EndUser.filter(budget_id=b.budget_id).update(budget_id=None)
        await Key.filter(budget_id=b.budget_id).update(budget_id=None)
        await Organization.filter(budget_id=b.budget_id).update(budget_id=None)
        await TeamMembership.filter(budget_id=b.budget_id).update(budget_id=None)
        await Budget.filter(budget_id=b.budget_id).delete()
    _audit("deleted", b.budget_id, info, None)
    await directory.end_users_changed([e.user_id for e in end_users])
    for e in end_users:
        await _audit_unlink("end_user", e.user_id, b.budget_id)
    for k in keys:
        await record_change("key", "updated", k.token, {"budget_id": b.budget_id}, {"budget_id": None})
    return info


async def _audit_unlink(kind: str, object_id: str, budget_id: str) -> None:
    gw = current_app.gateway
    gw.audit(AuditEvent(action="updated", table_name=TABLE[kind], object_id=object_id, changed_by=caller_id(),
                        changed_by_api_key=caller_key_hash(), before_value={"budget_id": budget_id},
                        updated_values={"budget_id": None}))
