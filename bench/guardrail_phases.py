"""What a guardrail's phase costs: the same 50 ms guard as `pre_call` and as `during_call`, in
front of an upstream that takes 200 ms (bench/README.md).

The guard is `probe_guard_a` (tests/dists/gateway-plugin-probe: a remote guard that waits
`--guard-ms`, then passes; `concurrent = True`). The upstream is `gateway.testing.FakeUpstream`
with a `--upstream-ms` delay, in a process of its own. Three real gateways (`gateway --config`, one
process each) in front of it:

- `none`:        no guardrail; what the others are measured against
- `during_call`: the guard as a `during_call` guardrail, `default_on: true`
- `pre_call`:    the same guard as a `pre_call` guardrail, `default_on: true`

One sequential client calls the upstream directly and every gateway once per round, in a shuffled
order, `--warmup` rounds then N. For each: the median client latency and what it adds over `none`.

Goal: `during_call` adds under 5 ms over `none` (the guard hides behind the upstream); `pre_call`
adds about the guard's 50 ms. The exit status is 1 when `during_call` misses its goal.

Run from the repository root:
    uv run --no-sync python bench/guardrail_phases.py [N] [--guard-ms 50] [--upstream-ms 200]
"""

from __future__ import annotations

import argparse
import json
import random
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
GOAL_MS = 5.0
BODY = {"model": "gpt-test", "messages": [{"role": "user", "content": "Write a haiku about the sea."}]}


def serve_upstream(delay_s: float) -> None:
    """`--serve`: a fake OpenAI upstream answering after `delay_s`; prints its URL, runs until stdin closes."""
    from gateway.testing import FakeUpstream

    upstream = FakeUpstream(delay=delay_s).start()
    print(upstream.url, flush=True)
    sys.stdin.read()
    upstream.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(name: str, phase: str | None, guard_s: float, upstream: str, tmp: Path) -> tuple[subprocess.Popen, str]:
    doc: dict[str, Any] = {
        "model_list": [{"model_name": "gpt-test", "litellm_params": {
            "model": "openai/upstream-model", "api_base": upstream, "api_key": "sk-upstream",
            "input_cost_per_token": 0, "output_cost_per_token": 0}}],
        "general_settings": {"master_key": MASTER_KEY, "database_url": f"sqlite:///{tmp}/{name}.db"},
    }
    if phase:
        doc["guardrails"] = [{"guardrail_name": "probe", "litellm_params": {
            "guardrail": "probe_guard_a", "mode": phase, "default_on": True, "seconds": guard_s}}]
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    port = free_port()
    gateway = Path(sys.executable).with_name("gateway")
    proc = subprocess.Popen([str(gateway), "--config", str(path), "--port", str(port), "--host", "127.0.0.1"],
                            stdout=open(tmp / f"{name}.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    return proc, f"http://127.0.0.1:{port}"


def wait_up(url: str, proc: subprocess.Popen, tmp: Path, name: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gateway {name} exited: {(tmp / f'{name}.log').read_text()[-2000:]}")
        try:
            if httpx.get(url + "/health/readiness", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gateway {name} did not come up")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("n", nargs="?", type=int, default=100)
    p.add_argument("--guard-ms", type=float, default=50.0)
    p.add_argument("--upstream-ms", type=float, default=200.0)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--delay", type=float, default=0.0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        serve_upstream(args.delay)
        return 0
    child = subprocess.Popen([sys.executable, __file__, "--serve", "--delay", str(args.upstream_ms / 1000)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)
    upstream = child.stdout.readline().strip()  # type: ignore[union-attr]
    procs: list[subprocess.Popen] = []
    try:
        with tempfile.TemporaryDirectory() as tmpdir:
            tmp = Path(tmpdir)
            targets = {"direct": upstream + "/chat/completions"}
            for name, phase in (("none", None), ("during_call", "during_call"), ("pre_call", "pre_call")):
                proc, url = launch(name, phase, args.guard_ms / 1000, upstream, tmp)
                procs.append(proc)
                wait_up(url, proc, tmp, name)
                targets[name] = url + "/v1/chat/completions"
            walls: dict[str, list[float]] = {k: [] for k in targets}
            headers = {"Authorization": f"Bearer {MASTER_KEY}"}
            rng = random.Random(args.seed)
            with httpx.Client(timeout=30) as client:
                for round_ in range(args.warmup + args.n):
                    order = list(targets)
                    rng.shuffle(order)
                    for name in order:
                        started = time.perf_counter()
                        r = client.post(targets[name], json=BODY, headers=headers)
                        took = (time.perf_counter() - started) * 1000
                        if r.status_code != 200:
                            raise RuntimeError(f"{name}: {r.status_code} {r.text[:300]}")
                        if round_ >= args.warmup:
                            walls[name].append(took)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=20)
        child.communicate(timeout=20)
    med = {k: statistics.median(v) for k, v in walls.items()}
    print(f"guard {args.guard_ms:g} ms, upstream {args.upstream_ms:g} ms, N={args.n} sequential calls each")
    print(f"{'target':<12} {'p50 ms':>9} {'over none':>10} {'over direct':>12}")
    for name, value in med.items():
        print(f"{name:<12} {value:9.2f} {value - med['none']:10.2f} {value - med['direct']:12.2f}")
    added = med["during_call"] - med["none"]
    verdict = "met" if added < GOAL_MS else "MISSED"
    print(f"during_call adds {added:.2f} ms over no guardrail: goal < {GOAL_MS:g} ms {verdict}")
    print(json.dumps({"median_ms": med, "during_call_added_ms": added, "goal_met": added < GOAL_MS}))
    return 0 if added < GOAL_MS else 1


if __name__ == "__main__":
    sys.exit(main())
