"""`/customer/*` (also `/end_user/*`): end users, the `user` field of an OpenAI request. Each has
its own budget and spend; a blocked one is refused on every LLM call by the core (the built-in
`virtual_keys`), plugin or not. `/customer/block` creates the records it does not find, so that
anyone can be blocked before their first call; `/user/unblock` is the seed's alias of
`/customer/unblock`. Every change evicts the cached record on every worker and instance.

Budgets (`/budget/*`): `budget_id` links an end user to one (an unknown id is a 400), and the
info routes show it as `litellm_budget_table`, as LiteLLM does. `/customer/new` with limits only a
budget can hold (`soft_budget`, `rpm_limit`, `tpm_limit`, `max_parallel_requests`,
`model_max_budget`) creates a budget for that customer holding every limit sent, as LiteLLM does;
`max_budget` and `budget_duration` alone stay on the end user's own row, as before. The end
user's own `max_budget` / `budget_duration`, where set, win over its budget's."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, RootModel
from quart import Blueprint, request
from quart_schema import document_querystring, document_request, document_response, tag_blueprint
from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q

from gateway.core.db.models import Budget, EndUser
from gateway.core.management import budgets
from gateway.core.management.common import (changes_from, check_query, iso, next_reset, page_args, read_body,
                                             record_change, require_admin)
from gateway.core.route_groups import MANAGEMENT, declare
from gateway.errors import BadRequestError, NotFoundError

bp = declare(Blueprint("end_users", __name__), MANAGEMENT)
bp.before_request(check_query)
tag_blueprint(bp, ["End users"])

PREFIXES = ("/customer", "/end_user")
EDITABLE = ("alias", "max_budget", "budget_duration", "spend", "blocked", "metadata", "budget_id")
CREATED_VALUES = ("user_id", "alias", "max_budget", "budget_duration", "spend", "blocked", "metadata", "budget_id")
DEFAULTS: dict[str, Any] = {"metadata": {}, "spend": 0.0, "blocked": False}
#: Limits only a budget holds: sent to /customer/new, they create a budget for the customer.
BUDGET_ONLY = ("soft_budget", "rpm_limit", "tpm_limit", "max_parallel_requests", "model_max_budget")


def _storable_id(user_id: str) -> str:
    if "\x00" in user_id:  # PostgreSQL stores no NUL: a 400 here rather than a 500 from the database
        raise ValueError("must not contain NUL characters")
    return user_id


#: An end-user id as a request's `user` can carry it: 1 to 255 characters, no NUL.
EndUserId = Annotated[str, Field(min_length=1, max_length=255), AfterValidator(_storable_id)]


class EndUserFields(BaseModel):
    model_config = ConfigDict(extra="ignore")

    alias: str | None = None
    max_budget: float | None = Field(None, ge=0)
    budget_duration: str | None = None
    spend: float | None = Field(None, ge=0)
    blocked: bool | None = None
    metadata: dict[str, Any] | None = None
    budget_id: str | None = Field(None, min_length=1, max_length=255, description="A budget from /budget/new")
    # Limits only a budget holds: on /customer/new they create one; on /customer/update, a 400.
    soft_budget: float | None = Field(None, ge=0)
    rpm_limit: int | None = Field(None, ge=0)
    tpm_limit: int | None = Field(None, ge=0)
    max_parallel_requests: int | None = Field(None, ge=0, le=2**31 - 1)  # an INTEGER column
    model_max_budget: dict[str, budgets.ModelBudget] | None = None


class NewBody(EndUserFields):
    user_id: EndUserId


class UpdateBody(EndUserFields):
    user_id: EndUserId


class IdsBody(BaseModel):
    user_ids: list[EndUserId] = Field(min_length=1)


class EndUserInfo(BaseModel):
    user_id: str
    alias: str | None
    spend: float
    max_budget: float | None
    budget_duration: str | None
    budget_reset_at: str | None
    blocked: bool
    metadata: dict[str, Any]
    created_at: str | None
    updated_at: str | None
    budget_id: str | None
    litellm_budget_table: budgets.BudgetInfo | None


class EndUserPage(BaseModel):
    """One page of end users (with `page` or `page_size` in the query)."""

    customers: list[EndUserInfo]
    total: int
    page: int
    page_size: int
    total_pages: int


class EndUserList(RootModel[list[EndUserInfo] | EndUserPage]):
    """End users, oldest first: every one as a list (LiteLLM's reply), or one page of them."""


class EndUserListQuery(BaseModel):
    page: int | None = Field(None, ge=1, description="With page or page_size, the reply is one page")
    page_size: int | None = Field(None, ge=1, le=1000, description="End users per page (default 25)")
    search: str | None = Field(None, description="End users whose id or alias contains this (any case)")


class EndUserQuery(BaseModel):
    end_user_id: str | None = Field(None, description="The end user (`user_id` is accepted too)")
    user_id: str | None = None


class DeletedEndUsers(BaseModel):
    deleted_customers: list[str]


class BlockedEndUsers(BaseModel):
    blocked_users: list[str]


class UnblockedEndUsers(BaseModel):
    unblocked_users: list[str]


def end_user_info(e: EndUser, budget: Budget | None = None) -> dict[str, Any]:
    """The end user as the routes show it; `litellm_budget_table` is its linked budget (LiteLLM's name)."""
    return {
        "user_id": e.user_id, "alias": e.alias, "spend": e.spend, "max_budget": e.max_budget,
        "budget_duration": e.budget_duration, "budget_reset_at": iso(e.budget_reset_at), "blocked": e.blocked,
        "metadata": e.metadata, "created_at": iso(e.created_at), "updated_at": iso(e.updated_at),
        "budget_id": e.budget_id,
        "litellm_budget_table": budgets.budget_info(budget) if budget is not None else None,
    }


def audited(e: EndUser) -> dict[str, Any]:
    """The end user's own columns, for an audit row's `before_value`."""
    info = end_user_info(e)
    del info["litellm_budget_table"]
    return info


async def described(e: EndUser) -> dict[str, Any]:
    """`end_user_info` with the linked budget read from the database."""
    budget = await Budget.get_or_none(budget_id=e.budget_id) if e.budget_id else None
    return end_user_info(e, budget)


async def _own_budget(body: NewBody) -> Budget | None:
    """The budget `/customer/new` links: the one named by `budget_id`, or a new one for this customer
    when limits only a budget holds were sent (with every limit sent), or None."""
    limits = [f for f in ("max_budget", "budget_duration", *BUDGET_ONLY) if getattr(body, f) is not None]
    if body.budget_id is not None:
        if limits:
            raise BadRequestError(f"Pass either budget_id or budget limits ({', '.join(limits)}), not both",
                                  param="budget_id")
        return await budgets.linked(body.budget_id)
    if not any(getattr(body, f) is not None for f in BUDGET_ONLY):
        return None
    limits_body = budgets.BudgetLimits(**{f: getattr(body, f) for f in limits})
    return await budgets.create(budgets.checked_limits(limits_body, set(limits)))


async def find(user_id: str, param: str = "user_id") -> EndUser:
    e = await EndUser.get_or_none(user_id=user_id)
    if e is None:
        raise NotFoundError(f"End user not found, passed user_id={user_id}", param=param)
    return e


def _routes(suffix: str, method: str = "POST", extra: tuple[str, ...] = ()) -> Any:
    """Mount a view under every prefix (and at any extra path)."""

    def mount(view: Any) -> Any:
        for path in (*(p + suffix for p in PREFIXES), *extra):
            bp.add_url_rule(path, f"{view.__name__}{path}", view, methods=[method])
        return view

    return mount


@_routes("/new")
@document_request(NewBody)
@document_response(EndUserInfo)
async def new() -> Any:
    """Create an end user (admin): a budget for one `user` of the LLM calls."""
    require_admin()
    body, _ = await read_body(NewBody)
    exists = BadRequestError(f"End user id = {body.user_id} already exists. Please use a different user id.",
                             param="user_id")
    if await EndUser.exists(user_id=body.user_id):
        raise exists
    budget = await _own_budget(body)
    fields = {f: getattr(body, f) for f in EDITABLE if getattr(body, f, None) is not None}
    if budget is not None:  # the limits sent are the budget's
        fields = {f: v for f, v in fields.items() if f not in ("max_budget", "budget_duration")}
        fields["budget_id"] = budget.budget_id
    reset_at = next_reset(fields.get("budget_duration"))
    try:
        e = await EndUser.create(user_id=body.user_id, budget_reset_at=reset_at, **fields)
    except IntegrityError:
        raise exists from None
    info = end_user_info(e, budget)
    created = {f: info[f] for f in CREATED_VALUES if info[f] is not None and not (f == "metadata" and not info[f])}
    await record_change("end_user", "created", e.user_id, None, created)
    return info


@_routes("/info", method="GET")
@document_querystring(EndUserQuery)
@document_response(EndUserInfo)
async def info() -> Any:
    """An end user's record (admin)."""
    require_admin()
    user_id = request.args.get("end_user_id") or request.args.get("user_id")
    if not user_id:
        raise BadRequestError("Pass ?end_user_id=<user id>", param="end_user_id")
    if "\x00" in user_id:
        raise BadRequestError("end_user_id must not contain NUL characters", param="end_user_id")
    return await described(await find(user_id, "end_user_id"))


@_routes("/update")
@document_request(UpdateBody)
@document_response(EndUserInfo)
async def update() -> Any:
    """Change an end user (admin): only the fields sent change."""
    require_admin()
    body, sent = await read_body(UpdateBody)
    budget_only = [f for f in BUDGET_ONLY if f in sent]
    if budget_only:
        raise BadRequestError(f"{budget_only[0]} is a budget's limit: change it with /budget/update, or link a "
                              "budget with budget_id", param=budget_only[0])
    e = await find(body.user_id)
    before = audited(e)
    changes = changes_from(body, sent, EDITABLE, DEFAULTS)
    budget = await budgets.linked(changes["budget_id"]) if "budget_id" in changes else None
    if "spend" in changes:
        changes["soft_budget_alerted_at"] = None  # a spend set by hand may cross the soft budget again
    e.update_from_dict(changes)
    await e.save()
    if "budget_id" not in changes and e.budget_id:
        budget = await Budget.get_or_none(budget_id=e.budget_id)
    after = end_user_info(e, budget)
    await record_change("end_user", "updated", e.user_id, before, {f: after[f] for f in changes if f in after})
    return after


@_routes("/delete")
@document_request(IdsBody)
@document_response(DeletedEndUsers)
async def delete() -> Any:
    """Delete end users (admin)."""
    require_admin()
    body, _ = await read_body(IdsBody)
    ids = list(dict.fromkeys(body.user_ids))
    found = [await find(user_id, "user_ids") for user_id in ids]
    for e in found:
        before = audited(e)
        await e.delete()
        await record_change("end_user", "deleted", e.user_id, before, None)
    return {"deleted_customers": ids}


@_routes("/list", method="GET")
@document_querystring(EndUserListQuery)
@document_response(EndUserList)
async def list_end_users() -> Any:
    """End users, oldest first (admin): all of them as a list, as LiteLLM answers; with `page` or
    `page_size`, one page of them with the total, as `/user/list` answers."""
    require_admin()
    args = request.args
    query = EndUser.all()
    if args.get("search"):
        query = query.filter(Q(user_id__icontains=args["search"]) | Q(alias__icontains=args["search"]))
    query = query.order_by("created_at", "user_id")
    paged = "page" in args or "page_size" in args
    if paged:
        page, size = page_args("page_size", 25)
        total = await query.count()
        query = query.offset((page - 1) * size).limit(size)
    rows = await query
    ids = {e.budget_id for e in rows if e.budget_id}
    found = {b.budget_id: b for b in await Budget.filter(budget_id__in=ids)} if ids else {}
    records = [end_user_info(e, found.get(e.budget_id or "")) for e in rows]
    if not paged:
        return records
    return {"customers": records, "total": total, "page": page, "page_size": size,
            "total_pages": max(1, math.ceil(total / size))}


@_routes("/block")
@document_request(IdsBody)
@document_response(BlockedEndUsers)
async def block() -> Any:
    """Blocks the end users, creating those not seen before: their next call is refused."""
    require_admin()
    body, _ = await read_body(IdsBody)
    ids = list(dict.fromkeys(body.user_ids))
    for user_id in ids:
        e = await EndUser.get_or_none(user_id=user_id)
        before = audited(e) if e is not None else None
        if e is None:
            e, _ = await EndUser.get_or_create(user_id=user_id, defaults={"blocked": True})
        if not e.blocked:
            e.blocked = True
            await e.save(update_fields=["blocked", "updated_at"])
        await record_change("end_user", "blocked", user_id, before, {"blocked": True})
    return {"blocked_users": ids}


@_routes("/unblock", extra=("/user/unblock",))
@document_request(IdsBody)
@document_response(UnblockedEndUsers)
async def unblock() -> Any:
    """Unblock end users (admin); `/user/unblock` is the seed's name for it."""
    require_admin()
    body, _ = await read_body(IdsBody)
    ids = list(dict.fromkeys(body.user_ids))
    found = [await find(user_id, "user_ids") for user_id in ids]
    for e in found:
        before = audited(e)
        if e.blocked:
            e.blocked = False
            await e.save(update_fields=["blocked", "updated_at"])
        await record_change("end_user", "unblocked", e.user_id, before, {"blocked": False})
    return {"unblocked_users": ids}
