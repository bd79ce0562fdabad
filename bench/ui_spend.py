"""How fast the admin UI's Spend page gets its data (`GET /spend/daily`) over a million spend rows.

    uv run --no-sync python bench/ui_spend.py                  # SQLite, in a temporary directory
    uv run --no-sync python bench/ui_spend.py \
        --database-url postgresql://postgres@127.0.0.1:5432/gateway_bench_ui_spend   # PostgreSQL

Builds a database with --rows synthetic spend rows over 90 days (bench/spend_rows.py's generator:
200 keys in 20 teams, 100 users, 4 models, ~50 tags) and the daily roll-ups the spend writer would
have kept for them (on PostgreSQL, bench/spend_rows.py's loader does both), plus the 200 keys
with their teams; starts the `gateway` CLI on it and times every request the Spend page makes,
as an admin and as a busy key (10% of all rows) that sees only its own spend: the first (cold)
call and the median of 5 warm calls each. Not a test: a measurement. Exit status 1 when a warm
median is over 200 ms. The PostgreSQL database must not exist; it is dropped at the end (unless
--keep).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import signal
import sqlite3
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from spend_rows import (  # noqa: E402  (bench/ is not a package: its loader, generator and gateway starter)
    CHUNK, COLUMNS, HEAVY_KEY, MASTER_KEY, admin, admin_url, load, rows, start_gateway, timed_get)

TARGET_MS = 200.0
KEYS, TEAMS = 200, 20


def key_rows() -> list[tuple[Any, ...]]:
    """The keys of the generated rows (all but the busy one, which is made through the API), each in
    its team as spend_rows.rows() puts it, so that grouping by team joins real keys."""
    import random

    rnd = random.Random(7)  # the same draws as spend_rows.rows(): its keys' hashes come first
    hashes = [hashlib.sha256(HEAVY_KEY.encode()).hexdigest()] + [f"{rnd.getrandbits(256):064x}" for _ in range(KEYS - 1)]
    now = datetime.now(timezone.utc)
    return [(h, f"sk-...{i:04d}", f"svc-{i}", f"user-{i % 100}", f"team-{i % TEAMS}", now, now)
            for i, h in enumerate(hashes) if i]


KEY_INSERT = ('INSERT INTO keys (token, key_name, key_alias, user_id, team_id, spend, models, metadata, permissions, '
              'tags, blocked, created_at, updated_at) VALUES ({}, 0, \'[]\', \'{{}}\', \'{{}}\', \'[]\', {}, {}, {})')


def load_sqlite(path: Path, n: int) -> None:
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA synchronous = OFF")
        marks = ", ".join("?" for _ in COLUMNS)
        names = ", ".join(f'"{c}"' for c in COLUMNS)
        insert = f"INSERT INTO spend_logs ({names}) VALUES ({marks})"
        it, loaded, t0 = rows(n), 0, time.perf_counter()
        while loaded < n:
            chunk = [(*r[:7], r[7].isoformat(sep=" "), r[8].isoformat(sep=" "), *r[9:])
                     for _, r in zip(range(min(CHUNK, n - loaded)), it)]
            con.executemany(insert, chunk)
            con.commit()
            loaded += len(chunk)
            print(f"  loaded {loaded:>10,} rows ({time.perf_counter() - t0:5.1f} s)", flush=True)
        t1 = time.perf_counter()
        # The roll-ups as the spend writer keeps them: per UTC day (times are stored in UTC).
        con.execute('INSERT INTO spend_daily (day, api_key, model, "user", log_count, total_spend) '
                    "SELECT substr(start_time, 1, 10), coalesce(api_key, ''), model, coalesce(\"user\", ''), "
                    "count(*), sum(spend) FROM spend_logs GROUP BY 1, 2, 3, 4")
        con.execute("INSERT INTO spend_tag_daily (day, tag, log_count, total_spend) "
                    "SELECT substr(s.start_time, 1, 10), t.value, count(*), sum(s.spend) "
                    "FROM spend_logs s, json_each(s.request_tags) t GROUP BY 1, 2")
        con.execute("INSERT INTO spend_key_tag_daily (day, api_key, tag, log_count, total_spend) "
                    "SELECT substr(s.start_time, 1, 10), s.api_key, t.value, count(*), sum(s.spend) "
                    "FROM spend_logs s, json_each(s.request_tags) t WHERE s.api_key IS NOT NULL GROUP BY 1, 2, 3")
        con.executemany(KEY_INSERT.format("?, ?, ?, ?, ?", "0", "?", "?"),
                        [(*r[:5], r[5].isoformat(sep=" "), r[6].isoformat(sep=" ")) for r in key_rows()])
        con.commit()
        con.execute("ANALYZE")
        daily = con.execute("SELECT count(*) FROM spend_daily").fetchone()[0]
        print(f"  roll-ups: spend_daily {daily:,} rows ({time.perf_counter() - t1:.1f} s)", flush=True)
    finally:
        con.close()


async def load_keys_postgres(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.executemany(KEY_INSERT.format("$1, $2, $3, $4, $5", "false", "$6", "$7"), key_rows())
        await conn.execute("ANALYZE keys")
    finally:
        await conn.close()


def time_route(client: httpx.Client, params: dict[str, Any]) -> tuple[float, float, int]:
    """(cold ms, median of 5 warm ms, groups in the answer)."""
    cold, warm, body = timed_get(client, "/spend/daily", params)
    return cold, warm, body["total"]


def cases() -> tuple[list[tuple[str, dict[str, Any]]], list[tuple[str, dict[str, Any]]]]:
    today = datetime.now(timezone.utc).date()
    page = {"top": 5, "page": 1, "page_size": 25}  # what the page asks (its default range: the last 30 days)
    year = {"start_date": (today - timedelta(days=365)).isoformat(), "end_date": today.isoformat()}
    admin_cases = [(f"group_by={g} (30 days)", {**page, "group_by": g}) for g in ("key", "team", "user", "tag", "model")]
    admin_cases += [
        ("group_by=key page 2 of 25", {**page, "group_by": "key", "page": 2}),
        ("top spenders CSV: group_by=key page_size=1000", {"group_by": "key", "top": 5, "page": 1, "page_size": 1000}),
        ("group_by=team, 366 days", {**page, **year, "group_by": "team"}),
        ("group_by=tag, 366 days", {**page, **year, "group_by": "tag"}),
        ("group_by=key, 366 days", {**page, **year, "group_by": "key"}),
    ]
    key_cases = [(f"key: group_by={g} (30 days)", {**page, "group_by": g}) for g in ("key", "team", "tag", "model")]
    key_cases.append(("key: group_by=model, 366 days", {**page, **year, "group_by": "model"}))
    return admin_cases, key_cases


def measure(base: str) -> list[tuple[str, float, float, int]]:
    admin_cases, key_cases = cases()
    results = []
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=120) as c:
        c.post("/key/generate", json={"key": HEAVY_KEY, "key_alias": "svc-0", "team_id": "team-0",
                                      "user_id": "user-0"}).raise_for_status()
        for label, params in admin_cases:
            results.append((label, *time_route(c, params)))
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {HEAVY_KEY}"}, timeout=120) as c:
        for label, params in key_cases:
            results.append((label, *time_route(c, params)))
    return results


def run(url: str, workdir: Path) -> list[tuple[str, float, float, int]]:
    proc, base, _ = start_gateway(url, workdir)
    try:
        return measure(base)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except Exception:
            proc.kill()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--database-url", help="postgresql://user@host:port/<new database name>; default: SQLite")
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--keep", action="store_true", help="keep the PostgreSQL database at the end")
    args = p.parse_args()
    from gateway.testing import migrate_database

    with tempfile.TemporaryDirectory() as tmp:
        if not args.database_url:
            backend = "SQLite"
            path = Path(tmp) / "spend.sqlite3"
            url = f"sqlite://{path}"
            migrate_database(url)
            t0 = time.perf_counter()
            load_sqlite(path, args.rows)
            print(f"loaded {args.rows:,} rows in {time.perf_counter() - t0:.1f} s", flush=True)
            results = run(url, Path(tmp))
        else:
            backend = "PostgreSQL"
            url = args.database_url.replace("postgres://", "postgresql://", 1)
            maintenance, name = admin_url(url)
            asyncio.run(admin(maintenance, f'CREATE DATABASE "{name}"'))
            try:
                migrate_database(url)
                t0 = time.perf_counter()
                asyncio.run(load(url, args.rows))
                asyncio.run(load_keys_postgres(url))
                print(f"loaded {args.rows:,} rows in {time.perf_counter() - t0:.1f} s", flush=True)
                results = run(url, Path(tmp))
            finally:
                if not args.keep:
                    asyncio.run(admin(maintenance, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                    print(f"database {name}: dropped", flush=True)

    missed = 0
    print(f"\n{args.rows:,} spend rows, {backend}; GET /spend/daily, times in ms "
          "(cold = first call, warm = median of 5)\n")
    print(f"{'request':<50} {'cold':>8} {'warm':>8} {'groups':>7}  < {TARGET_MS:.0f} ms warm")
    for label, cold, warm, groups in results:
        ok = warm < TARGET_MS
        missed += not ok
        print(f"{label:<50} {cold:>8.1f} {warm:>8.1f} {groups:>7}  {'ok' if ok else 'MISSED'}")
    print(json.dumps({"backend": backend, "rows": args.rows, "missed": missed}))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
