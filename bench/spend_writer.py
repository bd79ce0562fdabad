"""CPU per spend row the spend writer writes, without a gateway around it.

    uv run --no-sync python bench/spend_writer.py [--database-url sqlite:///tmp/w.db] [--batches 10] [--runs 3]

Migrates a fresh database (default: an SQLite file in a temporary folder), then hands the writer's
`_write` batches of 500 rows shaped like the benchmark's calls (a virtual key, no tags, a small
metadata dict) and prints the process CPU time per row (every thread: SQLite's work in aiosqlite's
thread included) and the wall time per row, for each run. The spend writer shares the worker's core,
so this is what spend logging costs each request beyond building its row.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gateway.core.db import Database  # noqa: E402
from gateway.core.spend.record import SpendRow  # noqa: E402
from gateway.core.spend.writer import SpendWriter  # noqa: E402

BATCH = 500


def bench_row(i: int) -> SpendRow:
    now = datetime.now(timezone.utc)
    return SpendRow(
        request_id=f"chatcmpl-bench-{i:012d}", call_type="acompletion", api_key="a" * 64, spend=2.1e-05,
        prompt_tokens=9, completion_tokens=12, total_tokens=21, start_time=now, end_time=now, model="bench",
        model_group="bench", api_base="http://127.0.0.1:8080/v1", user=None, end_user=None, team_id=None,
        request_tags=[], metadata={"user_api_key_alias": None, "user_api_key_team_id": None},
        status="success", http_status=200)


class NoDirectory:
    """The writer tells the identity cache what changed; here nobody listens."""

    class invalidator:
        @staticmethod
        def publish_elsewhere(changes: Any) -> None:
            pass

    async def changed(self, *args: Any, **kwargs: Any) -> None:
        pass


async def run(url: str, batches: int, runs: int) -> None:
    db = Database(url)
    await db.connect()
    try:
        await db.migrate()
        writer = SpendWriter(NoDirectory(), ping=db.ping, dead_letters=None)  # type: ignore[arg-type]
        written = 0
        for n in range(1, runs + 1):
            work = [[bench_row(written + b * BATCH + i) for i in range(BATCH)] for b in range(batches)]
            written += batches * BATCH
            cpu, wall = time.process_time(), time.perf_counter()
            for batch in work:
                await writer._write(batch)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            rows = batches * BATCH
            print(f"run {n}: {rows:,} rows, {1e6 * cpu / rows:.1f} us CPU/row, {1e6 * wall / rows:.1f} us wall/row",
                  flush=True)
    finally:
        await db.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--database-url", default="", help="default: an SQLite file in a temporary folder")
    p.add_argument("--batches", type=int, default=10, help="batches of 500 rows per run (default 10)")
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(a.database_url or f"sqlite://{tmp}/spend.db", a.batches, a.runs))


if __name__ == "__main__":
    main()
