"""`/spend/tags` for a non-admin key over a large spend log, on SQLite, through a real gateway.

    uv run --no-sync python bench/spend_tags.py --rows 1000000

Makes a fresh SQLite file in a temp directory, migrates it, bulk-inserts `--rows` spend rows all
made by one virtual key (~50 distinct tags, 1-3 per row, a few much more common, spread over 90
days), fills the roll-ups from those rows exactly as the spend writer keeps them (`spend_daily`,
`spend_tag_daily`, and `spend_key_tag_daily`, per day, key and tag), starts the `gateway` CLI on it
and times, cold (first call) and warm (median of 5):

- the key's `/spend/tags` (the per-key roll-up), with and without a 30-day range;
- the admin's `/spend/tags` (the overall roll-up);
- the key's `/global/spend/tags` (30 days);
- for reference, the scan the key's `/spend/tags` used to make: every one of its rows read and its
  tags counted (timed in this process on the same file, without HTTP).

Prints a table; exit status 1 when the key's `/spend/tags` misses the target (warm < 50 ms), or when
its answer differs from the scan's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import httpx

MASTER_KEY = "sk-bench-1234"
KEY = "sk-bench-tags-key-0000000001"
GATEWAY_BIN = str(Path(sys.executable).parent / "gateway")
TARGET_MS = 50.0
DAYS = 90
CHUNK = 50_000
TAGS = ([f"app-{a}-{env}" for a in ("search", "chat", "support", "billing", "docs") for env in ("prod", "staging")]
        + [f"team-{t}" for t in ("core", "ml", "growth", "infra", "risk", "sales", "ops", "data")]
        + [f"job-{j}" for j in ("summary", "classify", "extract", "translate", "moderate", "embed", "rerank", "eval")]
        + [f"feature-{f}" for f in ("autocomplete", "rewrite", "summarise", "ask-docs", "agent", "voice", "vision",
                                     "sql", "email", "review", "tickets", "onboarding", "alerts", "search-v2",
                                     "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
                                     "lambda")])
INSERT = ("INSERT INTO spend_logs (request_id, call_type, api_key, spend, prompt_tokens, completion_tokens, "
          "total_tokens, start_time, end_time, model, model_group, api_base, user, end_user, team_id, request_tags, "
          "metadata, status, http_status, blocked_by, usage_estimated) "
          "VALUES (?, 'acompletion', ?, ?, ?, ?, ?, ?, ?, 'gpt-4o-mini', 'bench', 'https://api.example.com/v1', "
          "'bench-user', NULL, NULL, ?, '{}', 'success', 200, NULL, 0)")
# The roll-ups as the spend writer keeps them: per UTC day (start_time is stored in UTC).
ROLLUPS = (
    'INSERT INTO spend_daily (day, api_key, model, "user", log_count, total_spend) '
    "SELECT date(start_time), api_key, model, user, count(*), sum(spend) FROM spend_logs GROUP BY 1, 2, 3, 4",
    "INSERT INTO spend_tag_daily (day, tag, log_count, total_spend) "
    "SELECT date(s.start_time), t.value, count(*), sum(s.spend) FROM spend_logs s, json_each(s.request_tags) t "
    "GROUP BY 1, 2",
    "INSERT INTO spend_key_tag_daily (day, api_key, tag, log_count, total_spend) "
    "SELECT date(s.start_time), s.api_key, t.value, count(*), sum(s.spend) "
    "FROM spend_logs s, json_each(s.request_tags) t GROUP BY 1, 2, 3",
)


def rows(n: int, token: str, seed: int = 7) -> Iterator[tuple[Any, ...]]:
    rnd = random.Random(seed)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    start = now - timedelta(days=DAYS)
    span = (now - start).total_seconds()
    weights = [1.0 / (i + 1) ** 0.8 for i in range(len(TAGS))]  # a few tags are much more common
    for i in range(n):
        t0 = start + timedelta(seconds=int(rnd.random() * span))
        prompt, completion = rnd.randint(5, 3000), rnd.randint(1, 800)
        tags = list(dict.fromkeys(rnd.choices(TAGS, weights=weights, k=rnd.randint(1, 3))))
        yield (f"chatcmpl-bench{i:010d}", token, prompt * 1.5e-07 + completion * 6e-07, prompt, completion,
               prompt + completion, t0.isoformat(sep=" "), (t0 + timedelta(seconds=2)).isoformat(sep=" "),
               json.dumps(tags))


def load(path: Path, n: int, token: str) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode")  # whatever the gateway set; bulk load in big transactions
        it = rows(n, token)
        loaded, t0 = 0, time.perf_counter()
        while loaded < n:
            chunk = [r for _, r in zip(range(min(CHUNK, n - loaded)), it)]
            conn.execute("BEGIN")
            conn.executemany(INSERT, chunk)
            conn.execute("COMMIT")
            loaded += len(chunk)
            if loaded % 200_000 == 0 or loaded == n:
                print(f"  loaded {loaded:>10,} rows ({time.perf_counter() - t0:5.1f} s)", flush=True)
        t1 = time.perf_counter()
        conn.execute("BEGIN")
        for sql in ROLLUPS:
            conn.execute(sql)
        conn.execute("COMMIT")
        counts = [conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                  for t in ("spend_daily", "spend_tag_daily", "spend_key_tag_daily")]
        print(f"  roll-ups: spend_daily {counts[0]:,}, spend_tag_daily {counts[1]:,}, spend_key_tag_daily "
              f"{counts[2]:,} rows ({time.perf_counter() - t1:.1f} s)", flush=True)
        conn.execute("ANALYZE")
    finally:
        conn.close()


def scan(path: Path, token: str) -> tuple[float, dict[str, tuple[int, float]]]:
    """The old way: read each of the key's rows and count its tags. (ms, {tag: (calls, spend)})."""
    conn = sqlite3.connect(path)
    try:
        t0 = time.perf_counter()
        totals: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
        for tags, spend in conn.execute("SELECT request_tags, spend FROM spend_logs WHERE api_key = ?", (token,)):
            for tag in json.loads(tags):
                totals[tag][0] += 1
                totals[tag][1] += spend
        return (time.perf_counter() - t0) * 1000, {t: (int(c), s) for t, (c, s) in totals.items()}
    finally:
        conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gateway(url: str, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    config = workdir / "config.yaml"
    config.write_text(json.dumps({  # JSON is YAML
        "model_list": [{"model_name": "bench", "litellm_params": {"model": "fake/bench"}}],
        "general_settings": {"master_key": MASTER_KEY},
    }))
    port = free_port()
    log = workdir / "gateway.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([GATEWAY_BIN, "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
                                env={**os.environ, "DATABASE_URL": url}, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"gateway exited:\n{log.read_text()}")
        try:
            if httpx.get(base + "/health/liveliness", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"gateway did not start:\n{log.read_text()}")
        time.sleep(0.1)


def time_route(client: httpx.Client, path: str, params: dict[str, str]) -> tuple[float, float, Any]:
    """(cold ms, median of 5 warm ms, the answer)."""
    times, body = [], None
    for _ in range(6):
        t0 = time.perf_counter()
        r = client.get(path, params=params)
        times.append((time.perf_counter() - t0) * 1000)
        if r.status_code != 200:
            raise SystemExit(f"{path} {params}: {r.status_code} {r.text[:300]}")
        body = r.json()
    return times[0], statistics.median(times[1:]), body


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    args = p.parse_args()
    token = hashlib.sha256(KEY.encode()).hexdigest()
    results: list[tuple[str, float, float, int]] = []
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.sqlite3"
        url = f"sqlite://{db}"
        from gateway.testing import migrate_database

        migrate_database(url)
        t0 = time.perf_counter()
        load(db, args.rows, token)
        print(f"loaded {args.rows:,} rows for one key in {time.perf_counter() - t0:.1f} s", flush=True)
        scan_ms, expected = scan(db, token)
        proc, base = start_gateway(url, Path(tmp))
        try:
            today = datetime.now(timezone.utc).date()
            month = {"start_date": (today - timedelta(days=29)).isoformat(), "end_date": today.isoformat()}
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=300) as c:
                c.post("/key/generate", json={"key": KEY}).raise_for_status()
                cold, warm, body = time_route(c, "/spend/tags", {})
                results.append(("admin: /spend/tags (overall roll-up)", cold, warm, len(body)))
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {KEY}"}, timeout=300) as c:
                cold, warm, own = time_route(c, "/spend/tags", {})
                results.append(("key: /spend/tags (per-key roll-up)", cold, warm, len(own)))
                key_warm = warm
                cold, warm, body = time_route(c, "/spend/tags", month)
                results.append(("key: /spend/tags, 30 days", cold, warm, len(body)))
                cold, warm, body = time_route(c, "/global/spend/tags", month)
                results.append(("key: /global/spend/tags, 30 days", cold, warm, len(body["spend_per_tag"])))
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(60)
    results.append(("reference: scan of the key's rows (no HTTP)", scan_ms, scan_ms, len(expected)))
    got = {t["individual_request_tag"]: (t["log_count"], t["total_spend"]) for t in own}
    same = set(got) == set(expected) and all(
        got[t][0] == expected[t][0] and abs(got[t][1] - expected[t][1]) <= 1e-9 * max(1.0, expected[t][1])
        for t in expected)
    print(f"\n{args.rows:,} spend rows of one key, SQLite; times in ms (cold = first call, warm = median of 5)\n")
    print(f"{'what':<46} {'cold':>9} {'warm':>9} {'tags':>6}")
    for label, cold, warm, size in results:
        print(f"{label:<46} {cold:>9.1f} {warm:>9.1f} {size:>6}")
    print(f"\nthe key's /spend/tags equals the scan's counts and spend: {'yes' if same else 'NO'}")
    ok = key_warm < TARGET_MS
    print(f"key /spend/tags warm < {TARGET_MS:.0f} ms: {'ok' if ok else 'MISSED'}")
    return 0 if ok and same else 1


if __name__ == "__main__":
    sys.exit(main())
