"""How fast `/spend/*` answers over a large spend log, on PostgreSQL, through a real gateway.

    uv run --no-sync python bench/spend_rows.py \
        --database-url postgresql://postgres@127.0.0.1:5432/gateway_bench_spend --rows 1000000

Creates the named database (it must not exist), migrates it, bulk-loads synthetic spend rows with
COPY (realistic tags: ~50 distinct, 1-3 per row, a few much more common than the rest, spread over
90 days), fills the per-day tag roll-up from those rows exactly as the spend writer would, runs
ANALYZE, starts the `gateway` CLI on the database and times the read routes: the first (cold) call
and the median of 5 warm calls each. Drops the database at the end (unless --keep).
Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import httpx

MASTER_KEY = "sk-bench-1234"
HEAVY_KEY = "sk-bench-heavy-key-0000000001"  # a virtual key with 10% of all rows: what a busy service sees
GATEWAY_BIN = str(Path(sys.executable).parent / "gateway")
TARGET_MS = 200.0
DAYS = 90
CHUNK = 100_000
COLUMNS = ("request_id", "call_type", "api_key", "spend", "prompt_tokens", "completion_tokens", "total_tokens",
           "start_time", "end_time", "model", "model_group", "api_base", "user", "end_user", "team_id",
           "request_tags", "metadata", "status", "http_status", "blocked_by", "usage_estimated")
MODELS = [("gpt-4o", "gpt-4o", 2.5e-06, 1e-05), ("gpt-4o-mini", "gpt-4o-mini", 1.5e-07, 6e-07),
          ("claude-3-5-sonnet-20241022", "claude", 3e-06, 1.5e-05), ("text-embedding-3-small", "embed", 2e-08, 0.0)]
TAG_NAMES = ([f"app-{a}-{env}" for a in ("search", "chat", "support", "billing", "docs", "ingest")
              for env in ("prod", "staging")]
             + [f"team-{t}" for t in ("core", "ml", "growth", "infra", "risk", "sales", "ops", "data")]
             + [f"job-{j}" for j in ("nightly-summary", "classify", "extract", "translate", "moderate", "embed-docs",
                                      "rerank", "qa-eval", "backfill", "digest")]
             + [f"customer-tier-{t}" for t in ("free", "pro", "enterprise")]
             + [f"feature-{f}" for f in ("autocomplete", "rewrite", "summarise", "ask-docs", "agent", "voice",
                                          "vision", "sql-assist", "email-draft", "code-review", "tickets",
                                          "onboarding", "alerts", "search-v2", "beta")]
             + ["model-anthropic-claude-v2.1"])


def admin_url(url: str) -> tuple[str, str]:
    """The server's maintenance database URL, and the name of the database to create."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name or name in ("postgres", "template0", "template1"):
        raise SystemExit(f"--database-url must name a new database to create (got {name or 'none'!r})")
    return parts._replace(path="/postgres").geturl(), name


def rows(n: int, seed: int = 7) -> Iterator[tuple[Any, ...]]:
    rnd = random.Random(seed)
    now = datetime.now(timezone.utc)
    start = now - timedelta(days=DAYS)
    span = (now - start).total_seconds()
    keys = [hashlib.sha256(HEAVY_KEY.encode()).hexdigest()] + [f"{rnd.getrandbits(256):064x}" for _ in range(199)]
    users = [f"user-{i}" for i in range(100)]
    teams = [f"team-{i}" for i in range(20)]
    weights = [1.0 / (i + 1) ** 0.8 for i in range(len(TAG_NAMES))]  # a few tags are much more common
    for i in range(n):
        model, group, pin, pout = MODELS[rnd.choices(range(4), weights=(5, 8, 3, 2))[0]]
        key = 0 if rnd.random() < 0.1 else rnd.randrange(1, len(keys))
        t0 = start + timedelta(seconds=rnd.random() * span)
        prompt = rnd.randint(5, 3000)
        completion = 0 if group == "embed" else rnd.randint(1, 800)
        roll = rnd.random()
        status, http, blocked = ("success", 200, None) if roll < 0.97 else \
            ("failure", 500, None) if roll < 0.99 else ("blocked", 400, "banned_keywords")
        spend = prompt * pin + completion * pout if status == "success" else 0.0
        tags = list(dict.fromkeys(rnd.choices(TAG_NAMES, weights=weights, k=rnd.randint(1, 3))))
        team = teams[key % len(teams)]
        meta = {"user_api_key": keys[key], "user_api_key_alias": f"svc-{key}", "user_api_key_team_id": team,
                "user_api_key_user_id": users[key % len(users)], "user_api_key_team_alias": f"{team}-alias",
                "spend_logs_metadata": {"env": "prod"} if key % 3 == 0 else None,
                "gateway_request_id": f"{rnd.getrandbits(128):032x}"}
        yield (f"chatcmpl-bench{i:010d}", "aembedding" if group == "embed" else "acompletion", keys[key], spend,
               prompt, completion, prompt + completion, t0, t0 + timedelta(milliseconds=rnd.randint(80, 9000)),
               model, group, "https://api.example.com/v1", users[key % len(users)],
               f"end-user-{rnd.randrange(5000)}" if rnd.random() < 0.4 else None, team, json.dumps(tags),
               json.dumps(meta), status, http, blocked, False)


async def load(url: str, n: int) -> str:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        sample = None
        it = rows(n)
        loaded = 0
        t0 = time.perf_counter()
        while loaded < n:
            chunk = [r for _, r in zip(range(min(CHUNK, n - loaded)), it)]
            sample = sample or chunk[len(chunk) // 2][0]
            await conn.copy_records_to_table("spend_logs", records=chunk, columns=COLUMNS)
            loaded += len(chunk)
            print(f"  loaded {loaded:>10,} rows ({time.perf_counter() - t0:5.1f} s)", flush=True)
        t1 = time.perf_counter()
        # The roll-up as the spend writer keeps it: per UTC day and tag, every row counted.
        await conn.execute(
            "INSERT INTO spend_tag_daily (day, tag, log_count, total_spend) "
            "SELECT (s.start_time AT TIME ZONE 'UTC')::date, t.tag, count(*), sum(s.spend) "
            "FROM spend_logs s, jsonb_array_elements_text(s.request_tags) AS t(tag) GROUP BY 1, 2")
        await conn.execute(
            "INSERT INTO spend_key_tag_daily (day, api_key, tag, log_count, total_spend) "
            "SELECT (s.start_time AT TIME ZONE 'UTC')::date, s.api_key, t.tag, count(*), sum(s.spend) "
            "FROM spend_logs s, jsonb_array_elements_text(s.request_tags) AS t(tag) "
            "WHERE s.api_key IS NOT NULL GROUP BY 1, 2, 3")
        await conn.execute(
            'INSERT INTO spend_daily (day, api_key, model, "user", log_count, total_spend) '
            "SELECT (start_time AT TIME ZONE 'UTC')::date, coalesce(api_key, ''), model, coalesce(\"user\", ''), "
            "count(*), sum(spend) FROM spend_logs GROUP BY 1, 2, 3, 4")
        daily = await conn.fetchval("SELECT count(*) FROM spend_tag_daily")
        print(f"  spend_tag_daily: {daily:,} rows ({time.perf_counter() - t1:.1f} s)", flush=True)
        t2 = time.perf_counter()
        await conn.execute("ANALYZE")
        print(f"  ANALYZE ({time.perf_counter() - t2:.1f} s)", flush=True)
        assert sample is not None
        return sample
    finally:
        await conn.close()


async def admin(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gateway(url: str, workdir: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    config = workdir / "config.yaml"
    config.write_text(json.dumps({  # JSON is YAML
        "model_list": [{"model_name": "bench", "litellm_params": {"model": "fake/bench"}}],
        "general_settings": {"master_key": MASTER_KEY},
    }))
    port = free_port()
    log = workdir / "gateway.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([GATEWAY_BIN, "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
                                env={**os.environ, "DATABASE_URL": url}, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"gateway exited:\n{log.read_text()}")
        try:
            if httpx.get(base + "/health/liveliness", timeout=1).status_code == 200:
                return proc, base, log
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"gateway did not start:\n{log.read_text()}")
        time.sleep(0.1)


def timed_get(client: httpx.Client, path: str, params: dict[str, Any]) -> tuple[float, float, Any]:
    """(cold ms: the first call, warm ms: the median of 5 more, the answer); exits on a non-200."""
    times, body = [], None
    for _ in range(6):
        t0 = time.perf_counter()
        r = client.get(path, params=params)
        times.append((time.perf_counter() - t0) * 1000)
        if r.status_code != 200:
            raise SystemExit(f"{path} {params}: {r.status_code} {r.text[:300]}")
        body = r.json()
    return times[0], statistics.median(times[1:]), body


def time_route(client: httpx.Client, path: str, params: dict[str, str]) -> tuple[float, float, int]:
    """(cold ms, median of 5 warm ms, items in the answer)."""
    cold, warm, body = timed_get(client, path, params)
    return cold, warm, len(body)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--database-url", required=True, help="postgresql://user@host:port/<new database name>")
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--keep", action="store_true", help="keep the database at the end")
    args = p.parse_args()
    url = args.database_url.replace("postgres://", "postgresql://", 1)
    maintenance, name = admin_url(url)

    import asyncpg

    async def exists() -> bool:
        conn = await asyncpg.connect(maintenance)
        try:
            return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
        finally:
            await conn.close()

    if asyncio.run(exists()):
        raise SystemExit(f"database {name!r} already exists; name a new one (it is dropped at the end)")
    asyncio.run(admin(maintenance, f'CREATE DATABASE "{name}"'))
    proc = None
    try:
        from gateway.testing import migrate_database

        print(f"database {name}: created, migrating", flush=True)
        migrate_database(url)
        t0 = time.perf_counter()
        request_id = asyncio.run(load(url, args.rows))
        print(f"loaded {args.rows:,} rows in {time.perf_counter() - t0:.1f} s", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            proc, base, _ = start_gateway(url, Path(tmp))
            today = datetime.now(timezone.utc).date()
            month = {"start_date": (today - timedelta(days=29)).isoformat(), "end_date": today.isoformat()}
            cases = [
                ("/spend/tags", "/spend/tags", {}, True),
                ("/spend/tags?start_date&end_date (30 days)", "/spend/tags", month, True),
                ("/spend/logs?request_id=<existing>", "/spend/logs", {"request_id": request_id}, True),
                ("/spend/logs?start_date&end_date (30 days)", "/spend/logs", month, False),
            ]
            heavy = [  # the same routes as a non-admin key, which sees only its own rows
                ("key: /spend/tags", "/spend/tags", {}, False),
                ("key: /spend/tags?start_date&end_date (30 days)", "/spend/tags", month, False),
                ("key: /spend/logs (its latest 1000 rows)", "/spend/logs", {}, False),
            ]
            results = []
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=120) as c:
                for label, path, params, targeted in cases:
                    cold, warm, size = time_route(c, path, params)
                    results.append((label, cold, warm, size, targeted))
                c.post("/key/generate", json={"key": HEAVY_KEY}).raise_for_status()
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {HEAVY_KEY}"}, timeout=120) as c:
                for label, path, params, targeted in heavy:
                    cold, warm, size = time_route(c, path, params)
                    results.append((label, cold, warm, size, targeted))
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
            proc = None
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        if not args.keep:
            asyncio.run(admin(maintenance, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            print(f"database {name}: dropped", flush=True)

    missed = 0
    print(f"\n{args.rows:,} spend rows, PostgreSQL; times in ms (cold = first call, warm = median of 5)\n")
    print(f"{'route':<48} {'cold':>9} {'warm':>9} {'items':>7}  target")
    for label, cold, warm, size, targeted in results:
        verdict = "-"
        if targeted:
            ok = warm < TARGET_MS
            missed += not ok
            verdict = f"< {TARGET_MS:.0f} ms warm: {'ok' if ok else 'MISSED'}"
        print(f"{label:<48} {cold:>9.1f} {warm:>9.1f} {size:>7}  {verdict}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
