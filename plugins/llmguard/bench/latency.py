"""Added latency of llmguard_moderations, for the README and the note of issue #9.

1. The guard alone: a fake LLM Guard API on loopback that answers `/analyze/prompt` after 5 ms
   (`GUARD_MS`), asked directly with a pooled client: its median answer time.
2. One gateway with the plugin in `llm_guard_mode: key-specific`, two virtual keys called
   alternately, one with `permissions.enable_llm_guard_check: true` (checked) and one without (the
   plugin returns at once): the difference of the median `x-gateway-overhead-ms` and of the median
   client time is what the check adds.
3. What a 30 s guard does under `timeout_s: 2`: the time to the 503 (fail_closed) and to the
   reply (fail_open).

Run from the repository root:  uv run --no-sync python plugins/llmguard/bench/latency.py [N] [GUARD_MS]
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import yaml

from gateway.testing import FakeUpstream, GatewayServer

N = int(sys.argv[1]) if len(sys.argv) > 1 else 300
GUARD_MS = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
WARMUP = 20


class SlowGuard:
    """A minimal LLM Guard API: `/analyze/prompt` answers the seed's verdict after `delay` seconds."""

    def __init__(self, delay: float) -> None:
        self.delay = delay

    async def _analyze(self, request):
        from aiohttp import web

        body = await request.json()
        await asyncio.sleep(self.delay)
        return web.json_response({"sanitized_prompt": body["prompt"], "is_valid": True, "scanners": {"Regex": 0.0}})

    def start(self) -> "SlowGuard":
        from aiohttp import web

        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="slow-guard", daemon=True).start()
        app = web.Application()
        app.router.add_post("/analyze/prompt", self._analyze)

        async def boot() -> int:
            self.runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1)
            await self.runner.setup()
            await web.TCPSite(self.runner, "127.0.0.1", 0).start()
            return self.runner.addresses[0][1]

        self.url = f"http://127.0.0.1:{asyncio.run_coroutine_threadsafe(boot(), self.loop).result(10)}"
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


def gateway(upstream: FakeUpstream, guard: SlowGuard, tmp: Path, name: str, **plugin) -> GatewayServer:
    cfg = {"model_list": [{"model_name": "gpt-test", "litellm_params": {
               "model": "openai/upstream-model", "api_base": upstream.url, "api_key": "sk-upstream"}}],
           "general_settings": {"master_key": "sk-1234"},
           "plugins": [{"name": "llmguard_moderations", **plugin}]}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    os.environ["LLM_GUARD_API_BASE"] = guard.url
    os.environ["DATABASE_URL"] = f"sqlite://{tmp / f'{name}.sqlite3'}"
    return GatewayServer(path).start()


def bench_guard_alone(guard: SlowGuard) -> float:
    times = []
    with httpx.Client() as client:
        for i in range(N + WARMUP):
            t0 = time.perf_counter()
            client.post(guard.url + "/analyze/prompt", json={"prompt": "hello world"}).raise_for_status()
            if i >= WARMUP:
                times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def bench_per_key(upstream: FakeUpstream, guard: SlowGuard, tmp: Path) -> None:
    server = gateway(upstream, guard, tmp, "per-key", config={"llm_guard_mode": "key-specific"})
    try:
        admin = {"Authorization": "Bearer sk-1234"}
        keys = {
            "off": httpx.post(server.url + "/key/generate", headers=admin, json={}).json()["key"],
            "on": httpx.post(server.url + "/key/generate", headers=admin,
                             json={"permissions": {"enable_llm_guard_check": True}}).json()["key"],
        }
        body = {"model": "gpt-test", "messages": [{"role": "user", "content": "hello world"}]}
        overhead: dict[str, list[float]] = {"off": [], "on": []}
        wall: dict[str, list[float]] = {"off": [], "on": []}
        with httpx.Client(base_url=server.url) as client:
            for i in range(N + WARMUP):  # alternating, so drift hits both alike
                for name, key in keys.items():
                    t0 = time.perf_counter()
                    r = client.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})
                    elapsed = (time.perf_counter() - t0) * 1e3
                    assert r.status_code == 200, r.text
                    if i >= WARMUP:
                        overhead[name].append(float(r.headers["x-gateway-overhead-ms"]))
                        wall[name].append(elapsed)
        med = statistics.median
        print(f"\none gateway, check on vs off per key, alternating (median of {N}):")
        print("                           off       on    added")
        print(f"  x-gateway-overhead-ms {med(overhead['off']):8.3f} {med(overhead['on']):8.3f} "
              f"{med(overhead['on']) - med(overhead['off']):+8.3f}")
        print(f"  client ms             {med(wall['off']):8.3f} {med(wall['on']):8.3f} "
              f"{med(wall['on']) - med(wall['off']):+8.3f}")
    finally:
        server.stop()


def bench_slow_guard(upstream: FakeUpstream, tmp: Path) -> None:
    guard = SlowGuard(30.0).start()
    try:
        print("\nLLM Guard answering in 30 s, `timeout_s: 2`:")
        for on_error in ("fail_closed", "fail_open"):
            server = gateway(upstream, guard, tmp, on_error, timeout_s=2, on_error=on_error)
            try:
                t0 = time.perf_counter()
                r = httpx.post(server.url + "/v1/chat/completions", timeout=60,
                               headers={"Authorization": "Bearer sk-1234"},
                               json={"model": "gpt-test", "messages": [{"role": "user", "content": "hello world"}]})
                elapsed = time.perf_counter() - t0
                answer = r.json().get("error", {}).get("message") if r.status_code != 200 else "the model's reply"
                print(f"  {on_error:<11}  HTTP {r.status_code} after {elapsed:.2f} s: {json.dumps(answer)}")
            finally:
                server.stop()
    finally:
        guard.stop()


if __name__ == "__main__":
    guard = SlowGuard(GUARD_MS / 1e3).start()
    upstream = FakeUpstream(reply="ok").start()
    try:
        print(f"fake LLM Guard answering after {GUARD_MS:g} ms; asked directly, median of {N}: "
              f"{bench_guard_alone(guard):.3f} ms")
        with tempfile.TemporaryDirectory() as d:
            bench_per_key(upstream, guard, Path(d))
            bench_slow_guard(upstream, Path(d))
    finally:
        guard.stop()
        upstream.stop()
