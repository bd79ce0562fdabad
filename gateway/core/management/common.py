"""What every management route shares: body parsing, admin checks, durations, change records."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from quart import current_app, g, request

from gateway.context import AuditEvent
from gateway.core.json_body import parse_json_object
from gateway.core.keys import hash_key
from gateway.errors import BadRequestError, PermissionDeniedError

M = TypeVar("M", bound=BaseModel)

DURATION_RE = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w|mo)\s*$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "mo": 2592000}
MAX_DURATION = 100 * 365 * 86400  # a datetime must still hold now + the duration
MAX_PAGE = 1_000_000  # page * size must stay a database offset
MAX_NAME = 255  # ids, aliases and other top-level strings: the width of their columns
MAX_INT = 2**63 - 1  # a BIGINT column (and a JSON number every reader takes)
MAX_DEPTH = 32  # nesting in metadata-like objects (storable.MAX_DEPTH; orjson stops at 255)

# Audit table names are the LiteLLM proxy's, so that existing audit readers keep working.
TABLE = {"key": "LiteLLM_VerificationToken", "team": "LiteLLM_TeamTable", "user": "LiteLLM_UserTable",
         "end_user": "LiteLLM_EndUserTable", "budget": "LiteLLM_BudgetTable",
         "organization": "LiteLLM_OrganizationTable", "organization_member": "LiteLLM_OrganizationMembership",
         "team_member": "LiteLLM_TeamMembership", "model": "LiteLLM_ProxyModelTable",
         "config": "LiteLLM_Config"}  # a config reload (POST /config/reload)
# Kinds whose records the identity directory caches (the others have nothing to evict).
CACHED = ("key", "team", "user", "end_user", "organization", "team_member")


def parse_duration(value: str, field: str) -> timedelta:
    """`30s`, `30m`, `30h`, `30d`, `2w`, `1mo` (30 days)."""
    m = DURATION_RE.match(value) if isinstance(value, str) else None
    if not m:
        raise BadRequestError(f"{field} must look like 30s, 30m, 30h, 30d, 2w or 1mo; got {value!r}", param=field)
    seconds = int(m.group(1)) * UNITS[m.group(2)]
    if seconds > MAX_DURATION:
        raise BadRequestError(f"{field} must be at most 100 years", param=field)
    return timedelta(seconds=seconds)


def now() -> datetime:
    return datetime.now(timezone.utc)


def iso(dt: datetime | None, timespec: str = "auto") -> str | None:
    """`dt` in UTC as ISO 8601 text (None stays None): the one way replies and messages write a
    time. `timespec="microseconds"` always writes the fraction (a fixed form, as a hash needs)."""
    return dt.astimezone(timezone.utc).isoformat(timespec=timespec) if dt is not None else None


async def read_body(model: type[M]) -> tuple[M, set[str]]:
    """The JSON body validated by `model`, and the set of fields the client actually sent."""
    raw = await request.get_data(cache=False)
    data = parse_json_object(raw) if raw.strip() else {}
    for name, value in data.items():
        check_value(value, name, top=True)
    try:
        parsed = model.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or None
        raise BadRequestError(f"Invalid value for {field}: {first['msg']}", param=field) from None
    return parsed, set(data) & set(model.model_fields)


def check_value(value: Any, field: str, top: bool = False, depth: int = 0) -> None:
    """A 400 naming `field` for what no column of ours can hold: NUL characters (PostgreSQL text
    and jsonb refuse them), top-level strings wider than their column, integers beyond 64 bits,
    nesting deeper than `MAX_DEPTH`. Checked before the model, so every management route has it."""
    if isinstance(value, str):
        if "\x00" in value:
            raise BadRequestError(f"Invalid value for {field}: must not contain NUL characters", param=field)
        if top and len(value) > MAX_NAME:
            raise BadRequestError(f"Invalid value for {field}: must be at most {MAX_NAME} characters", param=field)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if not -MAX_INT <= value <= MAX_INT:
            raise BadRequestError(f"Invalid value for {field}: must be between {-MAX_INT} and {MAX_INT}", param=field)
    elif isinstance(value, (dict, list)):
        if depth >= MAX_DEPTH:
            raise BadRequestError(f"Invalid value for {field}: must not be nested more than {MAX_DEPTH} levels deep", param=field)
        if isinstance(value, dict):
            for k, v in value.items():
                check_value(k, field, depth=depth + 1)
                check_value(v, field, depth=depth + 1)
        else:  # lists of names (models, tags, keys) are as wide as a name
            for v in value:
                check_value(v, field, top=top, depth=depth + 1)


async def check_query() -> None:
    """Before every management and spend route: the query string holds what a column can (a NUL
    character would make PostgreSQL refuse the lookup)."""
    for name, value in request.args.items(multi=True):
        check_value(value, name, top=True)


def page_args(size_name: str, default_size: int) -> tuple[int, int]:
    """`?page=` (from 1) and a page size (1 to 1000) from the query string, or a 400."""
    try:
        page = max(1, int(request.args.get("page", 1)))
        size = min(1000, max(1, int(request.args.get(size_name, default_size))))
    except ValueError:
        raise BadRequestError(f"page and {size_name} must be whole numbers", param="page") from None
    if page > MAX_PAGE:
        raise BadRequestError(f"page must be at most {MAX_PAGE}", param="page")
    return page, size


def order_args(sortable: tuple[str, ...], tiebreak: str) -> tuple[str, str]:
    """`?sort_by=` (one of `sortable`, default `created_at`) and `?sort_order=` (`asc`, the default,
    or `desc`) as the two `order_by` terms, the second on `tiebreak` (a unique column); else a 400."""
    sort_by, order = request.args.get("sort_by") or "created_at", request.args.get("sort_order") or "asc"
    if sort_by not in sortable:
        raise BadRequestError(f"sort_by must be one of {', '.join(sortable)}", param="sort_by")
    if order not in ("asc", "desc"):
        raise BadRequestError("sort_order must be asc or desc", param="sort_order")
    sign = "-" if order == "desc" else ""
    return sign + sort_by, sign + tiebreak


def require_admin() -> None:
    if not g.principal.is_admin:
        raise PermissionDeniedError(f"Only proxy admin can access this route. Route={request.path}")


def caller_id() -> str:
    """Who made a change: the changed-by header, else the caller's user id, else default_user_id."""
    header = request.headers.get("gateway-changed-by") or request.headers.get("litellm-changed-by")
    if header:
        return header
    if g.principal.user_id:
        return g.principal.user_id
    return current_app.gateway.settings.file.general_settings.get("default_user_id") or "default_user_id"


def caller_key_hash() -> str | None:
    principal = g.principal
    if principal.api_key:
        return principal.api_key
    master = current_app.gateway.master_key
    return hash_key(master) if (principal.is_admin and master) else None


async def record_change(kind: str, action: str, object_id: str, before: dict[str, Any] | None,
                        after: dict[str, Any] | None) -> None:
    """After a write: evict the record everywhere, then emit the audit event (off the call's path)."""
    gw = current_app.gateway
    if kind in CACHED:
        await gw.directory.changed(kind, object_id)
    gw.audit(AuditEvent(action=action, table_name=TABLE[kind], object_id=object_id, changed_by=caller_id(),
                        changed_by_api_key=caller_key_hash(), before_value=before, updated_values=after))


def next_reset(budget_duration: str | None, field: str = "budget_duration") -> datetime | None:
    return now() + parse_duration(budget_duration, field) if budget_duration else None


def changes_from(body: BaseModel, sent: set[str], editable: tuple[str, ...], defaults: dict[str, Any]) -> dict[str, Any]:
    """The fields an update sent (a null puts the field's default back), with the budget period
    restarted when `budget_duration` changes."""
    changes = {f: getattr(body, f) for f in editable if f in sent}
    for f, default in defaults.items():
        if f in changes and changes[f] is None:
            changes[f] = default
    if "budget_duration" in sent:
        changes["budget_reset_at"] = next_reset(body.budget_duration)
    return changes


def check_guardrail_metadata(metadata: dict[str, Any] | None, field: str = "metadata.guardrails") -> None:
    """`metadata.guardrails` of a key or team: a list of configured guardrail names, or a mapping
    of name to true/false (plus `modify_guardrails: false`, which bars requests from switching
    guardrails off)."""
    value = (metadata or {}).get("guardrails")
    if value is None:
        return
    selection = current_app.gateway.guardrails
    if isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            raise BadRequestError(f"{field} must be a list of guardrail names", param=field)
        selection.check_names(value, field)
    elif isinstance(value, dict):
        bad = [k for k, v in value.items() if not isinstance(v, bool)]
        if bad:
            raise BadRequestError(f"{field}.{bad[0]} must be true or false", param=f"{field}.{bad[0]}")
        selection.check_names([k for k in value if k != "modify_guardrails"], field)
    else:
        raise BadRequestError(f"{field} must be a list of guardrail names or a mapping of name to true/false",
                              param=field)


def with_guardrails(metadata: dict[str, Any] | None, guardrails: list[str] | None) -> dict[str, Any]:
    """The metadata with the top-level `guardrails` field of a key or team call folded in (LiteLLM
    keeps it in `metadata.guardrails`); None takes it out."""
    out = dict(metadata or {})
    current = out.get("guardrails")
    bar = ({"modify_guardrails": current["modify_guardrails"]}
           if isinstance(current, dict) and "modify_guardrails" in current else None)
    if guardrails is None:
        if bar is None:
            out.pop("guardrails", None)
        else:
            out["guardrails"] = bar
    else:
        current_app.gateway.guardrails.check_names(guardrails, "guardrails")
        # A bar on switching guardrails off (`modify_guardrails: false`) lives in the mapping form:
        # keep it, with the names switched on beside it.
        out["guardrails"] = guardrails if bar is None else {**bar, **{name: True for name in guardrails}}
    return out


def with_metadata_field(metadata: dict[str, Any] | None, name: str, value: Any) -> dict[str, Any]:
    """The metadata with a top-level field of a key or team call folded in under `name` (model
    aliases live there, as the router reads them); None takes it out."""
    out = dict(metadata or {})
    if value is None:
        out.pop(name, None)
    else:
        out[name] = value
    return out


# -- members given by e-mail, and the membership rows of teams --------------------------------------


async def user_for_member(user_id: str | None, user_email: str | None, field: str) -> tuple[str, bool]:
    """The user id of a member given by `user_id` or `user_email`: a user with that e-mail is looked
    up, and created as an `internal_user` when there is none (LiteLLM's rule). (id, created)."""
    from gateway.core.db.models import User

    if user_id is not None:
        return user_id, False
    if user_email is None:
        raise BadRequestError("Either user_id or user_email must be given", param=field)
    found = await User.filter(user_email=user_email).order_by("created_at").limit(2)
    if len(found) > 1:
        raise BadRequestError("Multiple users with this email found in db. Please use 'user_id' instead.",
                              param=field)
    if found:
        return found[0].user_id, False
    u = await User.create(user_id=str(uuid.uuid4()), user_email=user_email, user_role="internal_user")
    await record_change("user", "created", u.user_id, None,
                        {"user_id": u.user_id, "user_email": user_email, "user_role": "internal_user"})
    return u.user_id, True


def member_ident(team_id: str, user_id: str) -> str:
    """One string for a (team, user) pair that no other pair gives (ids may hold any character)."""
    return orjson.dumps([team_id, user_id]).decode()


async def sync_team_memberships(team_id: str, before: set[str], after: set[str]) -> None:
    """Membership rows (in-team spend and budget) for the users who joined; gone for those who left."""
    from gateway.core.db.models import TeamMembership

    joined, left = sorted(after - before), sorted(before - after)
    if joined:
        await TeamMembership.bulk_create([TeamMembership(team_id=team_id, user_id=u) for u in joined],
                                         ignore_conflicts=True)
    if left:
        await TeamMembership.filter(team_id=team_id, user_id__in=left).delete()
    directory = current_app.gateway.directory
    for user_id in (*joined, *left):
        await directory.changed("team_member", member_ident(team_id, user_id))


async def budget_tables(budget_ids: Any) -> dict[str, dict[str, Any]]:
    """`litellm_budget_table` of each budget id (the budget as /budget/info shows it)."""
    from gateway.core.db.models import Budget
    from gateway.core.management.budgets import budget_info

    ids = sorted({b for b in budget_ids if b})
    return {b.budget_id: budget_info(b) for b in await Budget.filter(budget_id__in=ids)} if ids else {}


async def team_memberships(**where: Any) -> list[dict[str, Any]]:
    """Team membership rows in LiteLLM's shape (`LiteLLM_TeamMembership`), with their budget."""
    from gateway.core.db.models import TeamMembership

    rows = await TeamMembership.filter(**where).order_by("team_id", "user_id")
    budgets = await budget_tables(r.budget_id for r in rows)
    return [{"user_id": r.user_id, "team_id": r.team_id, "budget_id": r.budget_id, "spend": r.spend,
             "litellm_budget_table": budgets.get(r.budget_id or "")} for r in rows]


async def own_budget(budget_id: str | None, max_budget: float) -> tuple[Any, bool]:
    """A member's budget of its own (in a team or an organization): created, or its max_budget
    changed, with its audit row. (the budget, whether it was created)."""
    from gateway.core.db.models import Budget
    from gateway.core.management import budgets

    budget = await Budget.get_or_none(budget_id=budget_id) if budget_id else None
    if budget is None:
        return await budgets.create({"max_budget": max_budget}), True
    if budget.max_budget != max_budget:
        before = budgets.budget_info(budget)
        budget.max_budget = max_budget
        await budget.save(update_fields=["max_budget", "updated_at"])
        await record_change("budget", "updated", budget.budget_id, before, {"max_budget": max_budget})
    return budget, False
