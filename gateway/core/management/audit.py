"""`GET /audit`: the audit log (admin only), newest first, filtered and paginated; `GET
/audit/verify`: its hash chain checked, as `gateway audit verify` does it.

Filters of `/audit`: `object_id`, `table_name`, `action`, `changed_by` (exact), `start_date`, `end_date`
(`YYYY-MM-DD` or ISO 8601; a bare date as `end_date` includes that whole day; times without an
offset are UTC). `page` (from 1) and `page_size` (default 50, at most 1000).
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta, timezone
from typing import Any

from pydantic import BaseModel, Field
from quart import Blueprint, request
from quart_schema import document_querystring, document_response, tag_blueprint

from gateway.core.audit_chain import row_dict, verify_chain
from gateway.core.db.models import AuditLog
from gateway.core.management.common import MAX_PAGE, TABLE, check_query, require_admin
from gateway.core.route_groups import MANAGEMENT, declare
from gateway.errors import BadRequestError

bp = declare(Blueprint("audit", __name__), MANAGEMENT)
bp.before_request(check_query)
tag_blueprint(bp, ["Audit"])

ACTIONS = ("created", "updated", "deleted", "blocked", "unblocked", "regenerated")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


class AuditQuery(BaseModel):
    object_id: str | None = None
    table_name: str | None = Field(None, description=", ".join(TABLE.values()))
    action: str | None = Field(None, description=", ".join(ACTIONS))
    changed_by: str | None = None
    start_date: str | None = Field(None, description="YYYY-MM-DD or ISO 8601 (UTC without an offset)")
    end_date: str | None = Field(None, description="A bare date includes that whole day")
    page: int | None = Field(None, ge=1, le=MAX_PAGE)
    page_size: int | None = Field(None, ge=1, le=MAX_PAGE_SIZE, description=f"default {DEFAULT_PAGE_SIZE}")


class AuditRow(BaseModel):
    id: str
    updated_at: str | None
    changed_by: str | None
    changed_by_api_key: str | None
    action: str
    table_name: str
    object_id: str
    before_value: Any
    updated_values: Any
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    """Audit rows, newest first; each row's `hash` chains it to the one before."""

    audit_logs: list[AuditRow]
    total: int
    page: int
    page_size: int


class ChainVerdict(BaseModel):
    """What `gateway audit verify` prints, as JSON."""

    ok: bool = Field(description="true when every row's hash matches its contents and links to the row before")
    rows: int = Field(description="How many rows, from the first, were checked intact")
    message: str = Field(description="`audit log intact: N rows`, or which row was edited or removed and how")


def _when(name: str, value: str) -> tuple[datetime, bool]:
    """A parsed date or datetime (UTC) and whether it was a bare date."""
    try:
        if DATE_RE.match(value):
            return datetime.combine(datetime.strptime(value, "%Y-%m-%d").date(), time(), timezone.utc), True
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequestError(f"{name} must be a date (YYYY-MM-DD) or an ISO 8601 time; got {value!r}",
                              param=name) from None
    return (dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)), False


def _whole(name: str, value: str | None, default: int, low: int, high: int | None) -> int:
    if value is None or value == "":
        return default
    try:
        n = int(value)
    except ValueError:
        n = None
    if n is None or n < low or (high is not None and n > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise BadRequestError(f"{name} must be a whole number {bound}; got {value!r}", param=name)
    return n


@bp.get("/audit")
@document_querystring(AuditQuery)
@document_response(AuditPage)
async def list_audit() -> Any:
    """The audit log (admin), newest first, filtered and paginated."""
    require_admin()
    args = request.args
    page = _whole("page", args.get("page"), 1, 1, MAX_PAGE)
    size = _whole("page_size", args.get("page_size"), DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
    query = AuditLog.all()
    for name in ("object_id", "changed_by"):
        if args.get(name):
            query = query.filter(**{name: args[name]})
    for name, allowed in (("table_name", tuple(TABLE.values())), ("action", ACTIONS)):
        value = args.get(name)
        if value:
            if value not in allowed:
                raise BadRequestError(f"{name} must be one of {', '.join(allowed)}; got {value!r}", param=name)
            query = query.filter(**{name: value})
    start = end = None
    if args.get("start_date"):
        start, _ = _when("start_date", args["start_date"])
        query = query.filter(updated_at__gte=start)
    if args.get("end_date"):
        end, bare = _when("end_date", args["end_date"])
        query = query.filter(updated_at__lt=end + timedelta(days=1)) if bare else query.filter(updated_at__lte=end)
    if start is not None and end is not None and start > end:
        raise BadRequestError("start_date is after end_date", param="start_date")
    total = await query.count()
    rows = await query.order_by("-seq").offset((page - 1) * size).limit(size)
    return {"audit_logs": [row_dict(r) for r in rows], "total": total, "page": page, "page_size": size}


@bp.get("/audit/verify")
@document_response(ChainVerdict)
async def verify_audit() -> Any:
    """The hash chain walked from the first row (admin): intact, or the first row edited or
    removed. A 200 either way: the check itself succeeded."""
    require_admin()
    verdict = await verify_chain()
    return {"ok": verdict.ok, "rows": verdict.rows, "message": verdict.message}
