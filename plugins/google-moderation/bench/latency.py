"""Added latency of google_text_moderation, for the README.

1. Two real gateways (`gateway --config`, one process each) in front of the same fake OpenAI
   upstream, one with the plugin and one without, called alternately by one sequential client;
   the fake Google API (tests/conftest.py, in this process) answers each moderateText in 5 ms.
   Median client latency and median `x-gateway-overhead-ms`, without and with the guard, and the
   fake's own round trip from a bare HTTP client (what any 5 ms guard costs on this machine).
2. A slow guard: the fake answers in 30 s, the plugin has `timeout_s: 2`. Time until the client
   gets its answer (503 guardrail_unavailable), then whether the next call, with Google fast
   again, passes at once (the call timeout follows `timeout_s`, so no thread stays stuck).

Run from the repository root:  uv run --no-sync python plugins/google-moderation/bench/latency.py [N]
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

from gateway.testing import FakeUpstream

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import FakeGoogle  # noqa: E402  (the tests' fake, reused)

N = int(sys.argv[1]) if len(sys.argv) > 1 else 200
GOOGLE_DELAY_S = 0.005
BODY = {"model": "gpt-test", "messages": [{"role": "user", "content": "Write a haiku about the sea, please."}]}


def start(name: str, upstream: FakeUpstream, google: FakeGoogle, tmp: Path, plugin: dict | None) -> tuple[subprocess.Popen, str]:
    """A gateway in its own process: two cannot share one process."""
    cfg = {
        "model_list": [{"model_name": "gpt-test", "litellm_params": {
            "model": "openai/upstream-model", "api_base": upstream.url, "api_key": "sk-upstream"}}],
        "general_settings": {"master_key": "sk-1234"},
    }
    if plugin is not None:
        cfg["plugins"] = [{"name": "google_text_moderation", **plugin}]
    path = tmp / f"gw-{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "DATABASE_URL": f"sqlite://{tmp / f'db-{name}.sqlite3'}", "GATEWAY_LOG_LEVEL": "ERROR",
           "GOOGLE_MODERATION_API_ENDPOINT": google.url}
    gateway = Path(sys.executable).with_name("gateway")
    proc = subprocess.Popen([str(gateway), "--config", str(path), "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health/liveliness", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"gateway {name} did not start")


def main() -> None:
    upstream = FakeUpstream(reply="ok").start()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        google = FakeGoogle(tmp)
        servers = {
            "without": start("without", upstream, google, tmp, None),
            "with": start("with", upstream, google, tmp, {}),
            "slow": start("slow", upstream, google, tmp, {"timeout_s": 2}),
        }
        try:
            headers = {"Authorization": "Bearer sk-1234"}
            walls: dict[str, list[float]] = {"without": [], "with": []}
            overheads: dict[str, list[float]] = {"without": [], "with": []}
            google.delay = GOOGLE_DELAY_S
            with httpx.Client(headers=headers, timeout=60) as client:
                for i in range(N + 20):  # alternating, so drift hits both alike; 20 warm-up rounds
                    for name in ("without", "with"):
                        t0 = time.perf_counter()
                        r = client.post(servers[name][1] + "/v1/chat/completions", json=BODY)
                        wall = (time.perf_counter() - t0) * 1e3
                        assert r.status_code == 200, r.text
                        if i >= 20:
                            walls[name].append(wall)
                            overheads[name].append(float(r.headers["x-gateway-overhead-ms"]))
                calls = len(google.requests)
                assert calls == N + 20, calls  # the guarded gateway asked Google once per call
                # The reference: the same fake, called directly by a bare HTTP client.
                bare = []
                for i in range(N + 20):
                    t0 = time.perf_counter()
                    r = client.post(google.url + "/v2/documents:moderateText",
                                    json={"document": {"type": 1, "content": BODY["messages"][0]["content"]}})
                    assert r.status_code == 200, r.text
                    if i >= 20:
                        bare.append((time.perf_counter() - t0) * 1e3)

                google.reset()
                google.delay = 30
                slow_url = servers["slow"][1] + "/v1/chat/completions"
                t0 = time.perf_counter()
                r = client.post(slow_url, json=BODY)
                slow_s = time.perf_counter() - t0
                slow_answer = f"{r.status_code} {r.json()['error']['message']}"
                google.delay = GOOGLE_DELAY_S
                t0 = time.perf_counter()
                r = client.post(slow_url, json=BODY)
                next_ms = (time.perf_counter() - t0) * 1e3
                next_status = r.status_code
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(30)
            google.stop()
    upstream.stop()

    med = statistics.median
    w0, w1 = med(walls["without"]), med(walls["with"])
    o0, o1 = med(overheads["without"]), med(overheads["with"])
    print(f"fake Google answers in {GOOGLE_DELAY_S * 1e3:.0f} ms; one sequential client; median of {N} calls each")
    print("                     without guard   with guard    added")
    print(f"  client ms              {w0:8.2f}     {w1:8.2f}  {w1 - w0:+7.2f}")
    print(f"  x-gateway-overhead-ms  {o0:8.2f}     {o1:8.2f}  {o1 - o0:+7.2f}")
    print(f"  the fake Google itself, called by a bare HTTP client: {med(bare):.2f} ms, so the plugin's own cost "
          f"is about {(w1 - w0) - med(bare):+.2f} ms")
    print(f"\nGoogle answering in 30 s, timeout_s: 2 -> {slow_answer!r} after {slow_s:.2f} s;")
    print(f"the next call (Google fast again): {next_status} in {next_ms:.1f} ms")


if __name__ == "__main__":
    main()
