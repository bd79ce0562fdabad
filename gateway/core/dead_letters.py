"""Dead letters: what a background writer could not store, kept where an operator can read it.

A writer (spend, audit) that meets a value it cannot write isolates it and hands it here, so that
the rest of its batch and every later batch are written. Each letter says which writer, the row's
reference (request id, audit row id), what happened (`repaired`: stored after making it storable;
`dropped`: not stored), why, and the value as JSON text: raw keys masked, cut to `PAYLOAD_CHARS`.
Letters live in the `dead_letters` table, kept to the newest `keep` rows; when even that write
fails, the letter goes to the log (reason and reference, never the value). `GET /dead_letters`
(admin) lists them with the counts since start.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
from collections import Counter
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, Field
from quart import Blueprint, current_app, request
from quart_schema import document_querystring, document_response, tag_blueprint
from tortoise.exceptions import ValidationError

from gateway.core.route_groups import MANAGEMENT, declare
from gateway.core.storable import clean_text, storable

log = logging.getLogger("gateway.dead_letters")

PAYLOAD_CHARS = 16_384
REASON_CHARS = 1_000
DEFAULT_KEEP = 10_000
RAW_KEY = re.compile(r"sk-(?!\.\.\.)[A-Za-z0-9_\-]{17,}")


def _mask(text: str) -> str:
    """Storable text with every raw-looking key shown as its key name (`sk-...abcd`)."""
    return RAW_KEY.sub(lambda m: "sk-..." + m.group(0)[-4:], clean_text(text))


def data_fault(exc: BaseException) -> bool:
    """Whether a write failed for what the row holds, not because the database is away: a value
    tortoise, the JSON encoder or a driver cannot turn into SQL (too deep, not JSON, a number out
    of range, a field missing or of the wrong kind), or a PostgreSQL data, integrity or size error
    (SQLSTATE classes 22, 23, 54) and SQLite's equivalents. Retrying such a write never helps."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (ValidationError, sqlite3.DataError, sqlite3.IntegrityError, TypeError, ValueError,
                             RecursionError, OverflowError, UnicodeError, AttributeError, LookupError)):
            return True
        state = getattr(seen, "sqlstate", None)
        if isinstance(state, str) and state[:2] in ("22", "23", "54"):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def describe(exc: BaseException) -> str:
    """An error as a reason: its type and message, masked and bounded."""
    return _mask(f"{type(exc).__name__}: {exc}")[:REASON_CHARS]


class DeadLetters:
    """The dead-letter store of one process; `counts` are per (source, outcome) since start."""

    def __init__(self, keep: int = DEFAULT_KEEP) -> None:
        self.keep = keep
        self.counts: Counter[tuple[str, str]] = Counter()

    async def record(self, source: str, ref: str | None, outcome: str, reason: str, value: Any,
                     using_db: Any = None) -> None:
        """Keep one letter. Never raises: a letter that cannot be stored is logged instead."""
        from gateway.core.db.models import DeadLetter

        self.counts[(source, outcome)] += 1
        ref = _mask(str(ref))[:255] if ref is not None else None
        level = logging.WARNING if outcome == "repaired" else logging.ERROR
        log.log(level, "%s writer: %s %s (%s)", source, "stored a repaired copy of" if outcome == "repaired"
                else "dropped", ref or "a row", reason)
        try:
            payload = json.dumps(storable(value, _mask), ensure_ascii=False, default=str)[:PAYLOAD_CHARS]
            row = await DeadLetter.create(created_at=datetime.now(timezone.utc), source=source, ref=ref,
                                          outcome=outcome, reason=reason, payload=payload, using_db=using_db)
            if row.id % 100 == 0:  # trim now and then, not on every letter
                await DeadLetter.filter(id__lte=row.id - self.keep).using_db(using_db).delete()
        except Exception as exc:
            log.error("%s writer: the dead letter for %s could not be stored either (%s)", source,
                      ref or "a row", describe(exc))

    def summary(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for (source, outcome), n in sorted(self.counts.items()):
            out.setdefault(source, {})[outcome] = n
        return out


bp = declare(Blueprint("dead_letters", __name__), MANAGEMENT)
tag_blueprint(bp, ["Dead letters"])


class LettersQuery(BaseModel):
    source: str | None = Field(None, description="spend or audit")
    page: int | None = Field(None, ge=1)
    page_size: int | None = Field(None, ge=1, le=1000, description="default 50")


class Letter(BaseModel):
    id: int
    created_at: str
    source: str
    ref: str | None
    outcome: str = Field(description="repaired (stored after making it storable) or dropped")
    reason: str
    payload: str = Field(description="The value as JSON text, raw keys masked, cut to 16384 characters")


class LettersPage(BaseModel):
    dead_letters: list[Letter]
    total: int
    page: int
    page_size: int
    since_start: dict[str, dict[str, int]] = Field(description="source -> outcome -> count, this process")


@bp.before_request
async def _check_query() -> None:
    """The query string holds what a column can, as on every management route (a NUL: 400)."""
    from gateway.core.management.common import check_query

    await check_query()


@bp.get("/dead_letters")
@document_querystring(LettersQuery)
@document_response(LettersPage)
async def list_dead_letters() -> Any:
    """The newest letters first; `source` filters (spend, audit); `page`, `page_size`."""
    from gateway.core.db.models import DeadLetter
    from gateway.core.management.common import iso, page_args, require_admin

    require_admin()
    page, size = page_args("page_size", 50)
    query = DeadLetter.all()
    if request.args.get("source"):
        query = query.filter(source=request.args["source"])
    total = await query.count()
    rows = await query.order_by("-id").offset((page - 1) * size).limit(size)
    letters = [{"id": r.id, "created_at": iso(r.created_at), "source": r.source,
                "ref": r.ref, "outcome": r.outcome, "reason": r.reason, "payload": r.payload} for r in rows]
    return {"dead_letters": letters, "total": total, "page": page, "page_size": size,
            "since_start": current_app.gateway.dead_letters.summary()}
