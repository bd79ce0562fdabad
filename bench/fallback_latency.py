"""What a fallback costs when the first deployment refuses connections (issue 14's measure).

One real `gateway --config` process, the fake upstream in a process of its own (both as
bench/rate_limits.py starts them), three model groups:

- `direct`: the fake upstream;
- `primary`: a port nothing listens on (connection refused at once), with `fallbacks` to `backup`
  (the fake upstream), `num_retries` as given (LiteLLM's default is 2: three refused connects);
- `primary-pooled`: `primary` and the fake upstream in one group: the refused deployment is tried
  once, then cooled down, so later calls go straight to the healthy one.

Prints the median and p90 client latency of each over N sequential calls, and what the fallback adds.

Run from the repository root:
    uv run --no-sync python bench/fallback_latency.py [N] [--num-retries 2]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from rate_limits import MASTER_KEY, free_port, serve_upstream  # noqa: E402

CLOSED = "http://127.0.0.1:9/v1"


def config(upstream: str, num_retries: int, tmp: Path) -> dict[str, Any]:
    def dep(name: str, base: str) -> dict[str, Any]:
        return {"model_name": name, "litellm_params": {"model": "openai/m", "api_base": base, "api_key": "sk-up",
                                                       "input_cost_per_token": 0, "output_cost_per_token": 0}}
    return {
        "model_list": [dep("direct", upstream), dep("primary", CLOSED), dep("backup", upstream),
                       dep("primary-pooled", CLOSED), dep("primary-pooled", upstream)],
        "router_settings": {"num_retries": num_retries, "fallbacks": [{"primary": ["backup"]}], "cooldown_time": 60},
        "general_settings": {"master_key": MASTER_KEY, "database_url": f"sqlite:///{tmp}/bench.db"},
    }


def start(doc: dict[str, Any], tmp: Path) -> tuple[subprocess.Popen, str]:
    path = tmp / "gateway.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    port = free_port()
    gateway = Path(sys.executable).with_name("gateway")
    proc = subprocess.Popen([str(gateway), "--config", str(path), "--port", str(port), "--host", "127.0.0.1"],
                            stdout=open(tmp / "gateway.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health/readiness", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"gateway did not start: {(tmp / 'gateway.log').read_text()[-2000:]}")


def timings(client: httpx.Client, url: str, model: str, n: int) -> list[float]:
    out = []
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    for _ in range(n):
        started = time.perf_counter()
        r = client.post(url + "/v1/chat/completions", json=body)
        out.append((time.perf_counter() - started) * 1000)
        assert r.status_code == 200, r.text
    return out


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("n", nargs="?", type=int, default=300)
    p.add_argument("--num-retries", type=int, default=2)
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        serve_upstream()
        return 0
    child = subprocess.Popen([sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    upstream = child.stdout.readline().strip()  # type: ignore[union-attr]
    with tempfile.TemporaryDirectory() as folder:
        proc, url = start(config(upstream, args.num_retries, Path(folder)), Path(folder))
        try:
            with httpx.Client(headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=30) as client:
                for model in ("direct", "primary", "primary-pooled"):
                    timings(client, url, model, 20)  # warm-up (and the pooled group's one refused try)
                results = {m: timings(client, url, m, args.n) for m in ("direct", "primary", "primary-pooled")}
        finally:
            proc.terminate()
            proc.wait(10)
            child.stdin.close()  # type: ignore[union-attr]
            child.wait(10)
    base = statistics.median(results["direct"])
    print(f"{args.n} sequential calls each, num_retries={args.num_retries}; client latency in ms")
    for model, values in results.items():
        p50, p90 = statistics.median(values), statistics.quantiles(values, n=10)[-1]
        print(f"  {model:15s} p50 {p50:7.3f}  p90 {p90:7.3f}  added p50 {p50 - base:+7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
