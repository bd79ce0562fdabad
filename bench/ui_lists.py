"""How fast the admin UI's lists answer over a big database, through a real gateway.

    uv run --no-sync python bench/ui_lists.py                      # SQLite, in a temporary directory
    uv run --no-sync python bench/ui_lists.py \
        --database-url postgresql://postgres@127.0.0.1:5432/gateway_bench_ui   # PostgreSQL

Builds the database (SQLite: a new file; PostgreSQL: the named database, which must not exist, and
is dropped at the end unless --keep), migrates it, loads 1M spend rows (bench/spend_rows.py's
rows: 200 keys, one of them with 10% of the rows, 100 users, 20 teams, 5,000 end users, ~50 tags,
3% failures and blocks, over 90 days) with their tag rows and daily roll-ups, plus 2,000 keys, 200
teams, 1,000 users, 5,000 end users and 100,000 audit rows. Starts the `gateway` CLI on it and
times every list call the UI's pages make (ENDPOINTS below): the first call (cold) and the median
of 5 more (warm). Exit status 1 when a warm median of a gated row is over 200 ms.

SQLite is not ANALYZEd (a gateway's own SQLite file never is); PostgreSQL is (autovacuum would).
To add a page's calls, add rows to ENDPOINTS: (page, label, path, params, who, gated).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import signal
import sqlite3
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import spend_rows  # noqa: E402  (bench/spend_rows.py: the rows, the PostgreSQL loader, the gateway)

TARGET_MS = 200.0
KEYS, TEAMS, USERS, END_USERS, AUDIT_ROWS = 2_000, 200, 1_000, 5_000, 100_000
WEEK = {"start_date": "{week_start}", "end_date": "{today}"}  # the logs page's default range
QUARTER = {"start_date": "{quarter_start}", "end_date": "{today}"}

#: Every list call of the UI's pages: (page, label, path, query params, who, gated). `who` is
#: "admin" (the master key) or "key" (an internal user's key holding 10% of the spend rows);
#: `gated` rows count toward the exit status. `{name}` in a value is filled from facts().
ENDPOINTS: list[tuple[str, str, str, dict[str, Any], str, bool]] = [
    ("keys", "first page", "/key/list", {"page": 1, "size": 25, "return_full_object": "true"}, "admin", True),
    ("keys", "page 40", "/key/list", {"page": 40, "size": 25, "return_full_object": "true"}, "admin", True),
    ("keys", "user filter", "/key/list", {"page": 1, "size": 25, "return_full_object": "true", "user_id": "user-7"}, "admin", True),
    ("keys", "alias filter", "/key/list", {"page": 1, "size": 25, "return_full_object": "true", "key_alias": "svc-5"}, "admin", True),
    ("keys", "an internal user's", "/key/list", {"page": 1, "size": 25, "return_full_object": "true"}, "key", True),
    ("teams", "first page", "/v2/team/list", {"page": 1, "page_size": 25}, "admin", True),
    ("teams", "page 8", "/v2/team/list", {"page": 8, "page_size": 25}, "admin", True),
    ("teams", "alias search", "/v2/team/list", {"page": 1, "page_size": 25, "team_alias": "team-1"}, "admin", True),
    ("users", "first page", "/user/list", {"page": 1, "page_size": 25}, "admin", True),
    ("users", "page 40", "/user/list", {"page": 40, "page_size": 25}, "admin", True),
    ("users", "e-mail search", "/user/list", {"page": 1, "page_size": 25, "user_email": "user-42"}, "admin", True),
    ("end users", "first page", "/customer/list", {"page": 1, "page_size": 25}, "admin", True),
    ("end users", "page 200", "/customer/list", {"page": 200, "page_size": 25}, "admin", True),
    ("end users", "search", "/customer/list", {"page": 1, "page_size": 25, "search": "end-user-42"}, "admin", True),
    ("models", "deployments", "/v2/model/info", {"page": 1, "size": 25, "sortBy": "model_name"}, "admin", True),
    ("models", "groups", "/model_group/info", {}, "admin", True),
    ("audit", "first page", "/audit", {"page": 1, "page_size": 25}, "admin", True),
    ("audit", "page 2000", "/audit", {"page": 2000, "page_size": 25}, "admin", True),
    ("audit", "table + action", "/audit", {"page": 1, "page_size": 25, "table_name": "LiteLLM_TeamTable", "action": "updated"}, "admin", True),
    ("audit", "object id", "/audit", {"page": 1, "page_size": 25, "object_id": "team-9"}, "admin", True),
    ("audit", "date range", "/audit", {"page": 1, "page_size": 25, "start_date": "{month_start}", "end_date": "{today}"}, "admin", True),
    ("guardrails", "blocked calls", "/guardrails/blocked", {"page": 1, "page_size": 25}, "admin", True),
    ("guardrails", "blocked, one guard", "/guardrails/blocked", {"page": 1, "page_size": 25, "guardrail": "banned_keywords"}, "admin", True),
    ("guardrails", "blocked, page 100", "/guardrails/blocked", {"page": 100, "page_size": 25}, "admin", True),
    ("guardrails", "an internal user's blocked", "/guardrails/blocked", {"page": 1, "page_size": 25}, "key", True),
    ("logs", "last 7 days", "/spend/logs/ui", {**WEEK, "cursor": "first", "page_size": 25}, "admin", True),
    ("logs", "90 days", "/spend/logs/ui", {**QUARTER, "cursor": "first", "page_size": 25}, "admin", True),
    ("logs", "deep page (60 days back)", "/spend/logs/ui", {**QUARTER, "cursor": "{deep_cursor}", "page_size": 25}, "admin", True),
    ("logs", "key (hash)", "/spend/logs/ui", {**QUARTER, "cursor": "first", "page_size": 25, "api_key": "{some_key}"}, "admin", True),
    ("logs", "key (alias)", "/spend/logs/ui", {**QUARTER, "cursor": "first", "page_size": 25, "key_alias": "svc-5"}, "admin", True),
    ("logs", "team", "/spend/logs/ui", {**QUARTER, "cursor": "first", "page_size": 25, "team_id": "team-3"}, "admin", True),
    ("logs", "user", "/spend/logs/ui", {**QUARTER, "cursor": "first", "page_size": 25, "user_id": "user-5"}, "admin", True),
    ("logs", "end user", "/spend/logs/ui", {**QUARTER, "cursor": "first", "page_size": 25, "end_user": "end-user-42"}, "admin", True),
    ("logs", "model", "/spend/logs/ui", {**QUARTER, "cursor": "first", "page_size": 25, "model_group": "claude"}, "admin", True),
    ("logs", "status success", "/spend/logs/ui", {**QUARTER, "cursor": "first", "page_size": 25, "status_filter": "success"}, "admin", True),
    ("logs", "status failure", "/spend/logs/ui", {**QUARTER, "cursor": "first", "page_size": 25, "status_filter": "failure"}, "admin", True),
    ("logs", "status blocked", "/spend/logs/ui", {**QUARTER, "cursor": "first", "page_size": 25, "status_filter": "blocked"}, "admin", True),
    ("logs", "blocked by", "/spend/logs/ui", {**QUARTER, "cursor": "first", "page_size": 25, "blocked_by": "banned_keywords"}, "admin", True),
    ("logs", "tag (common)", "/spend/logs/ui", {**QUARTER, "cursor": "first", "page_size": 25, "tag": "app-search-prod"}, "admin", True),
    ("logs", "tag (rare)", "/spend/logs/ui", {**QUARTER, "cursor": "first", "page_size": 25, "tag": "model-anthropic-claude-v2.1"}, "admin", True),
    ("logs", "tag + status blocked", "/spend/logs/ui", {**QUARTER, "cursor": "first", "page_size": 25, "tag": "app-search-prod", "status_filter": "blocked"}, "admin", True),
    ("logs", "tag, deep page", "/spend/logs/ui", {**QUARTER, "cursor": "{deep_cursor}", "page_size": 25, "tag": "app-search-prod"}, "admin", True),
    ("logs", "request id", "/spend/logs/ui", {**QUARTER, "cursor": "first", "page_size": 25, "request_id": "{request_id}"}, "admin", True),
    ("logs", "team + model + success", "/spend/logs/ui", {**QUARTER, "cursor": "first", "page_size": 25, "team_id": "team-3", "model_group": "claude", "status_filter": "success"}, "admin", True),
    ("logs", "an internal user's, 90 days", "/spend/logs/ui", {**QUARTER, "cursor": "first", "page_size": 25}, "key", True),
    ("logs", "an internal user's, tag", "/spend/logs/ui", {**QUARTER, "cursor": "first", "page_size": 25, "tag": "team-core"}, "key", True),
    ("logs", "an internal user's, deep", "/spend/logs/ui", {**QUARTER, "cursor": "{deep_cursor}", "page_size": 25}, "key", True),
    ("spend", "by key, 30 days", "/spend/daily", {"group_by": "key"}, "admin", True),
    ("spend", "by team, 30 days", "/spend/daily", {"group_by": "team"}, "admin", True),
    ("spend", "by user, 30 days", "/spend/daily", {"group_by": "user"}, "admin", True),
    ("spend", "by tag, 30 days", "/spend/daily", {"group_by": "tag"}, "admin", True),
    ("spend", "by model, 30 days", "/spend/daily", {"group_by": "model"}, "admin", True),
    ("spend", "by key, page 2", "/spend/daily", {"group_by": "key", "page": 2}, "admin", True),
    ("spend", "by team, a year", "/spend/daily", {"group_by": "team", "start_date": "{year_ago}", "end_date": "{today}"}, "admin", True),
    ("spend", "CSV page of 1000 keys", "/spend/daily", {"group_by": "key", "page_size": 1000}, "admin", True),
    ("spend", "an internal user's, by model", "/spend/daily", {"group_by": "model"}, "key", True),
    # LiteLLM's paging (its UI, not ours): an offset and a count of every matching row. Reported, not gated.
    ("logs (LiteLLM paging)", "7 days, page 1 + total", "/spend/logs/ui", {**WEEK, "page": 1, "page_size": 50}, "admin", False),
    ("logs (LiteLLM paging)", "90 days, page 1 + total", "/spend/logs/ui", {**QUARTER, "page": 1, "page_size": 50}, "admin", False),
    ("logs (LiteLLM paging)", "90 days, page 400", "/spend/logs/ui", {**QUARTER, "page": 400, "page_size": 50}, "admin", False),
]

SQLITE_ROLLUPS = [
    "INSERT INTO spend_log_tags (log_id, tag, start_time, api_key) "
    "SELECT s.id, j.value, s.start_time, s.api_key FROM spend_logs s, json_each(s.request_tags) AS j",
    "INSERT INTO spend_tag_daily (day, tag, log_count, total_spend) SELECT date(s.start_time), j.value, count(*), "
    "sum(s.spend) FROM spend_logs s, json_each(s.request_tags) AS j GROUP BY 1, 2",
    "INSERT INTO spend_key_tag_daily (day, api_key, tag, log_count, total_spend) SELECT date(s.start_time), s.api_key, "
    "j.value, count(*), sum(s.spend) FROM spend_logs s, json_each(s.request_tags) AS j "
    "WHERE s.api_key IS NOT NULL GROUP BY 1, 2, 3",
    'INSERT INTO spend_daily (day, api_key, model, "user", log_count, total_spend) SELECT date(start_time), '
    "coalesce(api_key, ''), model, coalesce(\"user\", ''), count(*), sum(spend) FROM spend_logs GROUP BY 1, 2, 3, 4",
]
PG_TAGS = ("INSERT INTO spend_log_tags (log_id, tag, start_time, api_key) SELECT s.id, t.tag, s.start_time, s.api_key "
           "FROM spend_logs s, jsonb_array_elements_text(s.request_tags::jsonb) AS t(tag)")


def load_sqlite(path: str, n: int) -> None:
    con = sqlite3.connect(path)
    try:
        columns = ", ".join(f'"{c}"' for c in spend_rows.COLUMNS)
        sql = f"INSERT INTO spend_logs ({columns}) VALUES ({', '.join('?' * len(spend_rows.COLUMNS))})"
        t0 = time.perf_counter()
        chunk: list[tuple[Any, ...]] = []
        for i, row in enumerate(spend_rows.rows(n), 1):
            chunk.append(tuple(str(v) if isinstance(v, datetime) else v for v in row))
            if len(chunk) == spend_rows.CHUNK or i == n:
                con.executemany(sql, chunk)
                con.commit()
                chunk = []
                print(f"  loaded {i:>10,} rows ({time.perf_counter() - t0:5.1f} s)", flush=True)
        for statement in SQLITE_ROLLUPS:
            con.execute(statement)
        con.commit()
        print(f"  tag rows and roll-ups ({time.perf_counter() - t0:5.1f} s)", flush=True)
    finally:
        con.close()


async def load_pg_tags(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(PG_TAGS)
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def load_people(url: str) -> None:
    """Keys (the spend rows' 200, then more), teams, users, end users and audit rows, through the ORM."""
    from gateway.core.db import Database
    from gateway.core.db.models import AuditLog, EndUser, Key, SpendLog, Team, User

    db = Database(url)
    await db.connect()
    try:
        used = await SpendLog.filter(api_key__not_isnull=True).distinct().values_list("api_key", flat=True)
        heavy = hashlib.sha256(spend_rows.HEAVY_KEY.encode()).hexdigest()
        tokens = [heavy] + sorted(set(used) - {heavy})
        tokens += [hashlib.sha256(f"extra-{i}".encode()).hexdigest() for i in range(KEYS - len(tokens))]
        await Key.bulk_create([Key(token=t, key_name=f"sk-...{t[-4:]}", key_alias=f"svc-{i}", user_id=f"user-{i % 100}",
                                   team_id=f"team-{i % 20}") for i, t in enumerate(tokens)], batch_size=1000)
        await Team.bulk_create([Team(team_id=f"team-{i}", team_alias=f"team-{i}-alias") for i in range(TEAMS)])
        await User.bulk_create([User(user_id=f"user-{i}", user_email=f"user-{i}@example.com", user_role="internal_user")
                                for i in range(USERS)], batch_size=1000)
        await EndUser.bulk_create([EndUser(user_id=f"end-user-{i}") for i in range(END_USERS)], batch_size=1000)
        now = datetime.now(timezone.utc)
        tables = ("LiteLLM_VerificationToken", "LiteLLM_TeamTable", "LiteLLM_UserTable", "LiteLLM_EndUserTable")
        for start in range(0, AUDIT_ROWS, 10_000):
            await AuditLog.bulk_create([AuditLog(
                id=str(uuid.uuid4()), updated_at=now - timedelta(seconds=(AUDIT_ROWS - i) * 60),
                changed_by=f"user-{i % USERS}", action=("created", "updated", "deleted")[i % 3],
                table_name=tables[i % 4], object_id=f"team-{i % TEAMS}" if i % 4 == 1 else f"obj-{i % 5000}",
                before_value=None, updated_values={"n": i}, prev_hash="0" * 64, hash=f"{i:064x}")
                for i in range(start, min(start + 10_000, AUDIT_ROWS))], batch_size=1000)
    finally:
        await db.close()


def facts(url: str) -> dict[str, str]:
    from gateway.core.spend.logs_ui import encode_cursor

    today = datetime.now(timezone.utc).date()
    heavy = hashlib.sha256(spend_rows.HEAVY_KEY.encode()).hexdigest()
    return {"today": today.isoformat(), "week_start": (today - timedelta(days=6)).isoformat(),
            "month_start": (today - timedelta(days=29)).isoformat(),
            "year_ago": (today - timedelta(days=365)).isoformat(),
            "quarter_start": (today - timedelta(days=spend_rows.DAYS)).isoformat(),
            "deep_cursor": encode_cursor(datetime.now(timezone.utc) - timedelta(days=60), 2**62),
            "request_id": f"chatcmpl-bench{123_457:010d}", "some_key": heavy}


def fill(params: dict[str, Any], known: dict[str, str]) -> dict[str, Any]:
    return {k: v.format(**known) if isinstance(v, str) else v for k, v in params.items()}


def time_call(client: httpx.Client, path: str, params: dict[str, Any]) -> tuple[float, float, int]:
    """(cold ms, median of 5 warm ms, rows in the answer)."""
    cold, warm, body = spend_rows.timed_get(client, path, params)
    found = body if isinstance(body, list) else next((v for v in body.values() if isinstance(v, list)), [])
    return cold, warm, len(found)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--database-url", help="postgresql://user@host:port/<new database name> (default: SQLite)")
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--keep", action="store_true", help="keep the database (PostgreSQL) or print its path (SQLite)")
    p.add_argument("--sqlite-path", help="SQLite: build the database in this file and keep it; a file already "
                                         "there is reused as it is (no load)")
    args = p.parse_args()
    from gateway.testing import migrate_database

    tmp = tempfile.mkdtemp(prefix="ui-lists-")
    postgres = bool(args.database_url)
    if postgres:
        url = args.database_url.replace("postgres://", "postgresql://", 1)
        maintenance, name = spend_rows.admin_url(url)
        asyncio.run(spend_rows.admin(maintenance, f'CREATE DATABASE "{name}"'))
    else:
        path = str(Path(args.sqlite_path or Path(tmp) / "gateway.sqlite3").resolve())
        url = f"sqlite://{path}"
    reuse = not postgres and Path(path).exists()
    proc = None
    results = []
    try:
        migrate_database(url)
        t0 = time.perf_counter()
        if reuse:
            print(f"reusing {path}", flush=True)
        elif postgres:
            asyncio.run(spend_rows.load(url, args.rows))
            asyncio.run(load_people(url))
            asyncio.run(load_pg_tags(url))
        else:
            load_sqlite(path, args.rows)
            asyncio.run(load_people(url))
        print(f"database built in {time.perf_counter() - t0:.1f} s", flush=True)
        known = facts(url)
        proc, base, _ = spend_rows.start_gateway(url, Path(tmp))
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {spend_rows.MASTER_KEY}"}, timeout=120) as admin, \
                httpx.Client(base_url=base, headers={"Authorization": f"Bearer {spend_rows.HEAVY_KEY}"}, timeout=120) as key:
            for page, label, path_, params, who, gated in ENDPOINTS:
                cold, warm, size = time_call(admin if who == "admin" else key, path_, fill(params, known))
                results.append((page, label, path_, cold, warm, size, gated))
                print(f"  {page}: {label}: {warm:.1f} ms", flush=True)
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        proc = None
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        if postgres and not args.keep:
            asyncio.run(spend_rows.admin(maintenance, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        elif not postgres:
            if args.keep or args.sqlite_path:
                print(f"database kept: {path}")
            else:
                Path(path).unlink(missing_ok=True)

    missed = 0
    print(f"\n{args.rows:,} spend rows, {KEYS:,} keys, {TEAMS} teams, {USERS:,} users, {END_USERS:,} end users, "
          f"{AUDIT_ROWS:,} audit rows; {'PostgreSQL' if postgres else 'SQLite'}; ms (cold = first call, "
          "warm = median of 5)\n")
    print(f"| {'page':<22} | {'call':<30} | {'path':<20} | {'cold':>7} | {'warm':>7} | {'rows':>4} | target |")
    print(f"|{'-' * 24}|{'-' * 32}|{'-' * 22}|{'-' * 9}|{'-' * 9}|{'-' * 6}|--------|")
    for page, label, path_, cold, warm, size, gated in results:
        ok = warm < TARGET_MS
        missed += gated and not ok
        verdict = ("ok" if ok else "MISSED") if gated else "-"
        print(f"| {page:<22} | {label:<30} | {path_:<20} | {cold:>7.1f} | {warm:>7.1f} | {size:>4} | {verdict:<6} |")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
