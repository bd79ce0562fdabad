"""`GET /spend/logs/ui`: spend logs in a time range, newest first, a page at a time, with filters
(LiteLLM's logs page, and the admin UI's request logs). A non-admin key sees only its own calls.

Two ways to page. LiteLLM's (`page`): an offset and a `total`, which counts every matching row.
The admin UI's (`cursor`): the next page starts after the last row of the page before (its time
and id), nothing is counted, and every page costs the same at any depth: each filter has an index
on (column, start_time, id) that the database walks newest first. A tag is looked up in
`spend_log_tags` (`gateway.core.spend.log_tags`), newest first, and its logs read by id. The
routes hang on `routes.bp` (imported from reports).
"""

from __future__ import annotations

import base64
import binascii
import math
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Callable

from pydantic import BaseModel, Field
from quart import request
from quart_schema import document_querystring, document_response
from tortoise.expressions import Q, Subquery

from gateway.core.db.models import Key, SpendLog, SpendLogTag
from gateway.core.keys import token_of
from gateway.core.management.common import page_args
from gateway.core.spend.routes import bp, json_reply, own_scope, row_out
from gateway.errors import BadRequestError

MOMENT = "A UTC time, `2024-06-30 13:45:00` (LiteLLM's form), ISO 8601, or a day"
STATUSES = ("success", "failure", "blocked")
#: The filters that match one column exactly: (query parameter, column).
EXACT = (("user_id", "user"), ("team_id", "team_id"), ("request_id", "request_id"), ("model", "model"),
         ("model_group", "model_group"), ("end_user", "end_user"), ("blocked_by", "blocked_by"))
#: With a tag and another filter, how many tag rows one request reads at most before it answers
#: with what it found (and a cursor to go on from there).
MAX_TAG_SCAN = 20_000


class LogsUiQuery(BaseModel):
    start_date: str = Field(description=MOMENT)
    end_date: str = Field(description=MOMENT + " (a day: to its end)")
    page: int | None = Field(1, ge=1, description="LiteLLM's paging: the page, from 1 (with `total`)")
    page_size: int | None = Field(50, ge=1, le=1000)
    cursor: str | None = Field(None, description="Keyset paging: `first`, then the `next_cursor` of the page "
                                                 "before; nothing is counted (`total` is null)")
    api_key: str | None = Field(None, description="A raw key or its hash")
    key_alias: str | None = Field(None, description="A key's alias: that key's calls")
    user_id: str | None = None
    team_id: str | None = None
    request_id: str | None = None
    model: str | None = Field(None, description="The upstream model")
    model_group: str | None = Field(None, description="The model name the caller asked for")
    end_user: str | None = None
    status_filter: str | None = Field(None, description="success, failure (anything but success) or blocked")
    blocked_by: str | None = Field(None, description="The guardrail or plugin that blocked the call")
    tag: str | None = Field(None, description="One request tag")
    min_spend: float | None = None
    max_spend: float | None = None


class LogsPage(BaseModel):
    data: list[dict[str, Any]] = Field(description="Spend-log rows (as `/spend/logs`), with `http_status` "
                                                   "and `blocked_by`")
    total: int | None = Field(description="Every matching row (null with `cursor`)")
    page: int | None = Field(description="Null with `cursor`")
    page_size: int
    total_pages: int | None = Field(description="Null with `cursor`")
    next_cursor: str | None = Field(None, description="With `cursor`: the next page's, null on the last page")


def _moment(name: str, end: bool) -> datetime:
    value = request.args.get(name)
    if not value:
        raise BadRequestError("Start date and end date are required", param=name)
    text = value.strip().replace(" ", "T", 1) if len(value.strip()) > 10 else value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            if day >= date.max:
                raise ValueError
            return datetime.combine(day + timedelta(days=1) if end else day, time.min, tzinfo=timezone.utc)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequestError(f"{name} must be a time like 2024-06-30 13:45:00 or a day; got {value!r}",
                              param=name) from None
    moment = moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
    return moment + timedelta(microseconds=1) if end else moment  # an end time is included


def _number(name: str) -> float | None:
    value = request.args.get(name)
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise BadRequestError(f"{name} must be a number", param=name)
    return number


def _text(name: str) -> str | None:
    return request.args.get(name) or None  # at most 255 characters: `check_query`


def encode_cursor(start_time: datetime, row_id: int) -> str:
    return base64.urlsafe_b64encode(f"{start_time.astimezone(timezone.utc).isoformat()}|{row_id}".encode()).decode()


def decode_cursor(value: str) -> tuple[datetime, int] | None:
    """None for the first page; (time, id) of the last row shown; else a 400."""
    if value in ("", "first"):
        return None
    try:
        moment, _, row_id = base64.urlsafe_b64decode(value.encode()).decode().partition("|")
        return datetime.fromisoformat(moment), int(row_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadRequestError("cursor must be `first` or the next_cursor of the page before", param="cursor") from None


def _after(query: Any, cursor: tuple[datetime, int] | None, id_column: str) -> Any:
    """The rows after `cursor` in newest-first order: older, or as old with a smaller id. The
    query's upper time bound must already be the cursor's (`_until`): with two upper bounds on
    start_time, SQLite walks the index from the wrong one (100 ms at a million rows, not 1)."""
    if cursor is None:
        return query
    moment, row_id = cursor
    return query.filter(Q(start_time__lt=moment) | Q(**{f"{id_column}__lt": row_id}))


def _until(hi: datetime, cursor: tuple[datetime, int] | None) -> datetime:
    """The exclusive upper time bound of a page: the range's end, or just after the cursor's time."""
    return hi if cursor is None else min(hi, cursor[0] + timedelta(microseconds=1))


async def _keys() -> list[str]:
    """The keys the rows must belong to: the caller's own (non-admin), `?api_key=`, `?key_alias=`
    (no key by that alias: none, so no row)."""
    scope, raw, alias = own_scope(), request.args.get("api_key"), _text("key_alias")
    named = (await Key.filter(key_alias=alias).values_list("token", flat=True) or ["-"]) if alias else []
    return list({k for k in (scope, token_of(raw) if raw else None, *named) if k is not None})


def _filtered(lo: datetime, hi: datetime, keys: list[str]) -> Any:
    query = SpendLog.filter(start_time__gte=lo, start_time__lt=hi)
    for key in keys:
        query = query.filter(api_key=key)
    for arg, column in EXACT:
        value = _text(arg)
        if value:
            query = query.filter(**{column: value})
    status = request.args.get("status_filter")
    if status:
        if status not in STATUSES:
            raise BadRequestError(f"status_filter must be one of: {', '.join(STATUSES)}; got {status!r}",
                                  param="status_filter")
        query = query.filter(status__in=["failure", "blocked"]) if status == "failure" else query.filter(status=status)
    for arg, op in (("min_spend", "gte"), ("max_spend", "lte")):
        bound = _number(arg)
        if bound is not None:
            query = query.filter(**{f"spend__{op}": bound})
    return query


def _tag_rows(tag: str, lo: datetime, hi: datetime, keys: list[str]) -> Any:
    query = SpendLogTag.filter(tag=tag, start_time__gte=lo, start_time__lt=hi)
    for key in keys:
        query = query.filter(api_key=key)
    return query


def _row(r: SpendLog) -> dict[str, Any]:
    return {**row_out(r), "http_status": r.http_status, "blocked_by": r.blocked_by}


def _reply(rows: list[SpendLog], size: int, **paging: Any) -> Any:
    return json_reply({"data": [_row(r) for r in rows], "page_size": size, **paging})


async def _tagged_page(query: Any, tags: Callable[[datetime], Any], hi: datetime, cursor: tuple[datetime, int] | None,
                       size: int, more_filters: bool) -> tuple[list[SpendLog], str | None]:
    """A page of logs with a tag: tag rows newest first, in growing batches, and the logs among
    them that pass the other filters, until the page is full, the tag has no more rows, or
    MAX_TAG_SCAN tag rows were read (then the cursor goes on from the last one read)."""
    found: list[SpendLog] = []
    batch, scanned = size + 1, 0
    while True:
        ids = await _after(tags(_until(hi, cursor)), cursor, "log_id").order_by("-start_time", "-log_id").limit(batch) \
            .values_list("start_time", "log_id")
        scanned += len(ids)
        if ids:
            rows = await query.filter(id__in=[i for _, i in ids]).order_by("-start_time", "-id")
            found += rows
            cursor = (ids[-1][0], ids[-1][1])
        if len(found) > size:
            last = found[size - 1]
            return found[:size], encode_cursor(last.start_time, last.id)
        if len(ids) < batch:
            return found, None
        if scanned >= MAX_TAG_SCAN:
            return found, encode_cursor(*cursor)
        batch = min(batch * 4, 5000) if more_filters else batch


@bp.get("/spend/logs/ui")
@document_querystring(LogsUiQuery)
@document_response(LogsPage)
async def spend_logs_ui() -> Any:
    """Spend logs in a time range, newest first, a page at a time, with filters (LiteLLM's logs
    page; the admin UI's request logs with `cursor`); a non-admin key sees only its own calls."""
    lo, hi = _moment("start_date", end=False), _moment("end_date", end=True)
    if lo >= hi:
        raise BadRequestError("start_date must not be after end_date", param="start_date")
    page, size = page_args("page_size", 50)
    keys = await _keys()
    cursor = decode_cursor(request.args["cursor"]) if "cursor" in request.args else None
    hi = _until(hi, cursor)
    query = _filtered(lo, hi, keys)
    tag = _text("tag")
    if "cursor" not in request.args:  # LiteLLM's paging: an offset, and every matching row counted
        if tag:
            query = query.filter(id__in=Subquery(_tag_rows(tag, lo, hi, keys).values("log_id")))
        total = await query.count()
        rows = await query.order_by("-start_time", "-id").offset((page - 1) * size).limit(size)
        return _reply(rows, size, total=total, page=page, total_pages=(total + size - 1) // size)
    if tag:
        more = any(request.args.get(a) for a, _ in EXACT) or any(
            request.args.get(a) for a in ("status_filter", "min_spend", "max_spend"))
        rows, next_cursor = await _tagged_page(query, lambda upper: _tag_rows(tag, lo, upper, keys), hi, cursor,
                                               size, more)
    else:
        rows = await _after(query, cursor, "id").order_by("-start_time", "-id").limit(size + 1)
        next_cursor = encode_cursor(rows[size - 1].start_time, rows[size - 1].id) if len(rows) > size else None
        rows = rows[:size]
    return _reply(rows, size, total=None, page=None, total_pages=None, next_cursor=next_cursor)
