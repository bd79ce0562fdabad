"""The tags of each spend log, one row per tag in `spend_log_tags`, written by the spend writer in
the flush that writes the logs.

The logs page filters on a tag. `request_tags` is a JSON list, which no index of SQLite (and no
portable one of PostgreSQL) can search, so a tag filter would read every row's JSON: seconds at a
million rows. Each (tag, time, log id) row here is found through an index on (tag, start_time,
log_id), newest first, and the logs are then read by their primary key.
"""

from __future__ import annotations

from typing import Any

from gateway.core.spend.log_rows import row_values
from gateway.core.spend.record import SpendRow

#: How many logs one lookup of their ids asks for at a time (a bound on query parameters).
SLICE = 500


async def write_log_tags(conn: Any, batch: list[SpendRow]) -> None:
    """Add the tag rows of `batch`'s logs, just inserted on `conn` (in the same transaction). The
    writer's bulk insert returns no ids: they are read back by request id and start time."""
    from gateway.core.db.models import SpendLog, SpendLogTag

    tagged = [r for r in batch if r.request_tags]
    if not tagged:
        return
    ids: dict[tuple[str, Any], list[int]] = {}
    for start in range(0, len(tagged), SLICE):
        part = tagged[start:start + SLICE]
        found = await SpendLog.filter(request_id__in=list({r.request_id for r in part}),
                                      start_time__gte=min(r.start_time for r in part),
                                      start_time__lte=max(r.start_time for r in part)) \
            .using_db(conn).order_by("id").values_list("id", "request_id", "start_time")
        for log_id, request_id, start_time in found:
            ids.setdefault((request_id, start_time.timestamp()), []).append(log_id)
    plan = row_values(conn, SpendLogTag)  # as the writer inserts the logs: no model objects
    values = []
    for r in tagged:
        same = ids.get((r.request_id, r.start_time.timestamp()))
        if not same:
            continue
        log_id = same.pop(0)  # two rows of one request id at one moment: one id each, in order
        for tag in r.request_tags:
            values.append(plan.values({"log_id": log_id, "tag": tag, "start_time": r.start_time, "api_key": r.api_key}))
    if values:
        await conn.execute_many(plan.insert_query, values)
