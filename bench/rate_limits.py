"""What rate limiting costs a call, counted in Redis: the same gateway, one key without limits and
one with `rpm_limit`, `tpm_limit` and `max_parallel_requests` (set too high to refuse anything),
so that every call of the second takes three claims in one Redis round trip and sends its token
count and slot release after the reply (bench/README.md).

The upstream is `gateway.testing.FakeUpstream` answering at once, in a process of its own; the
gateway is one real `gateway --config` process with `REDIS_URL`, on an SQLite file.

- c=1: one sequential client alternates the two keys (`--warmup` rounds, then N): median client
  latency and `x-gateway-overhead-ms` of each, and what the limits add.
- c=32: 32 concurrent clients (aiohttp) for `--seconds`, each key in turn, `--runs` times: req/s
  of each (median) and the ratio.

Run from the repository root, with Redis reachable:
    uv run --no-sync python bench/rate_limits.py [N] [--redis-url redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

MASTER_KEY = "sk-1234"
BODY = {"model": "bench", "messages": [{"role": "user", "content": "hi"}]}
LIMITS = {"rpm_limit": 10**9, "tpm_limit": 10**12, "max_parallel_requests": 10**6}


def serve_upstream() -> None:
    """`--serve`: a fake OpenAI upstream; prints its URL, runs until stdin closes."""
    from gateway.testing import FakeUpstream

    upstream = FakeUpstream().start()
    print(upstream.url, flush=True)
    sys.stdin.read()
    upstream.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(upstream: str, redis_url: str, tmp: Path) -> tuple[subprocess.Popen, str]:
    doc: dict[str, Any] = {
        "model_list": [{"model_name": "bench", "litellm_params": {
            "model": "openai/upstream-model", "api_base": upstream, "api_key": "sk-upstream",
            "input_cost_per_token": 0, "output_cost_per_token": 0}}],
        "general_settings": {"master_key": MASTER_KEY, "database_url": f"sqlite:///{tmp}/bench.db"},
    }
    path = tmp / "gateway.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    port = free_port()
    gateway = Path(sys.executable).with_name("gateway")
    env = {**os.environ, "REDIS_URL": redis_url, "GATEWAY_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen([str(gateway), "--config", str(path), "--port", str(port), "--host", "127.0.0.1"],
                            stdout=open(tmp / "gateway.log", "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"gateway exited: {(tmp / 'gateway.log').read_text()[-2000:]}")
        try:
            if httpx.get(url + "/health/readiness", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("gateway did not come up")
        time.sleep(0.2)


def sequential(url: str, keys: dict[str, str], n: int, warmup: int) -> dict[str, dict[str, float]]:
    walls: dict[str, list[float]] = {k: [] for k in keys}
    overheads: dict[str, list[float]] = {k: [] for k in keys}
    with httpx.Client(timeout=30) as client:
        for round_ in range(warmup + n):
            for name, key in (keys.items() if round_ % 2 else reversed(keys.items())):
                started = time.perf_counter()
                r = client.post(url + "/v1/chat/completions", json=BODY, headers={"Authorization": f"Bearer {key}"})
                took = (time.perf_counter() - started) * 1000
                if r.status_code != 200:
                    raise RuntimeError(f"{name}: {r.status_code} {r.text[:300]}")
                if round_ >= warmup:
                    walls[name].append(took)
                    overheads[name].append(float(r.headers["x-gateway-overhead-ms"]))
    return {k: {"p50_ms": statistics.median(walls[k]), "overhead_p50_ms": statistics.median(overheads[k])}
            for k in keys}


async def throughput(url: str, key: str, concurrency: int, seconds: float) -> float:
    import aiohttp

    done = 0
    stop = time.perf_counter() + seconds
    headers = {"Authorization": f"Bearer {key}"}

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal done
        while time.perf_counter() < stop:
            async with session.post(url + "/v1/chat/completions", json=BODY, headers=headers) as r:
                await r.read()
                if r.status != 200:
                    raise RuntimeError(f"{r.status}")
            done += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        return done / (time.perf_counter() - started)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("n", nargs="?", type=int, default=500)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        serve_upstream()
        return 0
    child = subprocess.Popen([sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True, start_new_session=True)
    upstream = child.stdout.readline().strip()  # type: ignore[union-attr]
    proc = None
    try:
        with tempfile.TemporaryDirectory() as tmpdir:
            proc, url = launch(upstream, args.redis_url, Path(tmpdir))
            admin = {"Authorization": f"Bearer {MASTER_KEY}"}
            keys = {}
            for name, body in (("limits off", {}), ("limits on", LIMITS)):
                r = httpx.post(url + "/key/generate", json=body, headers=admin, timeout=10)
                r.raise_for_status()
                keys[name] = r.json()["key"]
            seq = sequential(url, keys, args.n, args.warmup)
            rates: dict[str, list[float]] = {k: [] for k in keys}
            asyncio.run(throughput(url, keys["limits off"], args.concurrency, 1.0))  # warm-up
            for _ in range(args.runs):
                for name, key in keys.items():
                    rates[name].append(asyncio.run(throughput(url, key, args.concurrency, args.seconds)))
            limits = httpx.get(url + "/plugins", headers=admin, timeout=10).json()["limits"]
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=20)
        child.communicate(timeout=20)
    if limits["counted_in"] != "redis" or limits["redis_fallbacks"]:
        print(f"Redis was not used throughout: {limits}", file=sys.stderr)
        return 1
    rps = {k: statistics.median(v) for k, v in rates.items()}
    print(f"c=1, N={args.n} calls per key; c={args.concurrency}, {args.runs} x {args.seconds:g} s per key; Redis")
    print(f"{'key':<12} {'p50 ms':>8} {'overhead p50':>13} {'req/s c=' + str(args.concurrency):>12}")
    for name in keys:
        print(f"{name:<12} {seq[name]['p50_ms']:8.3f} {seq[name]['overhead_p50_ms']:13.3f} {rps[name]:12.0f}")
    added = seq["limits on"]["p50_ms"] - seq["limits off"]["p50_ms"]
    added_overhead = seq["limits on"]["overhead_p50_ms"] - seq["limits off"]["overhead_p50_ms"]
    ratio = rps["limits on"] / rps["limits off"]
    print(f"rate limits add {added:.3f} ms p50 at c=1 ({added_overhead:.3f} ms of x-gateway-overhead-ms); "
          f"req/s at c={args.concurrency}: {ratio:.2f}x")
    print(json.dumps({"sequential": seq, "req_per_s": rps, "runs": rates, "added_p50_ms": added,
                      "added_overhead_p50_ms": added_overhead, "req_per_s_ratio": ratio}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
