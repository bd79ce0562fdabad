"""Added latency of hide_secrets, for the README.

1. The plugin's `pre_request` alone (pre-filter on the loop, then the scan job through the
   scanner thread), median of N calls per message kind.
2. One gateway with the plugin, two virtual keys called alternately, one of them with
   `permissions.hide_secrets: false`: the difference of the median `x-gateway-overhead-ms`.
3. Two real gateways (`gateway --config`, one process each) in front of the same fake upstream,
   one with the plugin and one without, called alternately: median client latency and median
   `x-gateway-overhead-ms` (two processes: noisier than 2).

Run from the repository root:  uv run --no-sync python plugins/hide-secrets/bench/latency.py [N]
"""

from __future__ import annotations

import asyncio
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
from gateway_plugin_hide_secrets import HideSecrets, HideSecretsConfig

from gateway import Principal, RequestContext
from gateway.testing import FakeUpstream

N = int(sys.argv[1]) if len(sys.argv) > 1 else 200

PARA = ("The committee reviewed the quarterly report and agreed that the migration to the new billing "
        "system should proceed in two phases, starting with the European accounts. Nobody objected, "
        "although the finance team asked for another week to reconcile the ledgers before the switch.\n")
SECRETS = ("Here is my config: API_KEY = 'sk_1234567890abcdef' and the deploy token "
           + "gh" + "p_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8" + "\n")


def message(kib: int, secret: bool) -> str:
    size = kib * 1024
    body = (PARA * (size // len(PARA) + 1))
    if secret:
        half = size // 2
        body = body[:half] + SECRETS + body[half:]
    return body[:size] if not secret else body[: size + len(SECRETS)]


KINDS = [(kib, secret) for kib in (1, 10) for secret in (False, True)]


def label(kib: int, secret: bool) -> str:
    return f"{kib:>2} KiB {'with secrets' if secret else 'clean       '}"


async def bench_plugin() -> None:
    plugin = HideSecrets(HideSecretsConfig(), None)
    await plugin.startup(None)
    try:
        print(f"pre_request alone (median of {N}):")
        for kib, secret in KINDS:
            text = message(kib, secret)
            times = []
            for _ in range(N):
                ctx = RequestContext(request_id="b", call_type="acompletion", route="/chat/completions",
                                     body={"messages": [{"role": "user", "content": text}]}, principal=Principal())
                t0 = time.perf_counter()
                await plugin.pre_request(ctx)
                times.append(time.perf_counter() - t0)
            assert ("[REDACTED]" in ctx.body["messages"][0]["content"]) == secret
            print(f"  {label(kib, secret)}  {statistics.median(times) * 1e3:7.3f} ms")
    finally:
        await plugin.shutdown(None)


def start(upstream: FakeUpstream, with_plugin: bool, tmp: Path) -> tuple[subprocess.Popen, str]:
    """A gateway in its own process (`gateway --config ...`): two cannot share one process."""
    cfg = {
        "model_list": [{"model_name": "gpt-test", "litellm_params": {
            "model": "openai/upstream-model", "api_base": upstream.url, "api_key": "sk-upstream"}}],
        "general_settings": {"master_key": "sk-1234"},
    }
    if with_plugin:
        cfg["litellm_settings"] = {"callbacks": ["hide_secrets"]}
    path = tmp / f"gw-{with_plugin}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "DATABASE_URL": f"sqlite://{tmp / f'db-{with_plugin}.sqlite3'}", "GATEWAY_LOG_LEVEL": "ERROR"}
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
    raise RuntimeError("gateway did not start")


def bench_gateway() -> None:
    upstream = FakeUpstream(reply="ok").start()
    walls: dict[tuple[bool, int, bool], list[float]] = {}
    overheads: dict[tuple[bool, int, bool], list[float]] = {}
    with tempfile.TemporaryDirectory() as d:
        servers = {flag: start(upstream, flag, Path(d)) for flag in (False, True)}
        try:
            clients = {flag: httpx.Client(base_url=url, headers={"Authorization": "Bearer sk-1234"})
                       for flag, (_, url) in servers.items()}
            for kib, secret in KINDS:
                body = {"model": "gpt-test", "messages": [{"role": "user", "content": message(kib, secret)}]}
                for i in range(N + 20):  # the two gateways alternate, so drift hits both alike
                    for flag, client in clients.items():
                        t0 = time.perf_counter()
                        r = client.post("/v1/chat/completions", json=body)
                        wall = time.perf_counter() - t0
                        assert r.status_code == 200, r.text
                        if i >= 20:  # after a warm-up
                            walls.setdefault((flag, kib, secret), []).append(wall * 1e3)
                            overhead = float(r.headers["x-gateway-overhead-ms"])
                            overheads.setdefault((flag, kib, secret), []).append(overhead)
            for c in clients.values():
                c.close()
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(30)
    upstream.stop()
    med = statistics.median
    print(f"\nend to end, one client, sequential, the two gateways alternating (median of {N}):")
    print("                      client ms: without    with   added | x-gateway-overhead-ms: without    with   added")
    for kib, secret in KINDS:
        w0, w1 = med(walls[(False, kib, secret)]), med(walls[(True, kib, secret)])
        o0, o1 = med(overheads[(False, kib, secret)]), med(overheads[(True, kib, secret)])
        print(f"  {label(kib, secret)}          {w0:7.3f} {w1:7.3f} {w1 - w0:+7.3f} |"
              f"                        {o0:7.3f} {o1:7.3f} {o1 - o0:+7.3f}")


def bench_per_key() -> None:
    """One gateway (in this process) with the plugin; two virtual keys called alternately, one with
    `permissions.hide_secrets: false` (the plugin returns at once): the difference is the plugin."""
    from gateway.testing import GatewayServer

    upstream = FakeUpstream(reply="ok").start()
    with tempfile.TemporaryDirectory() as d:
        cfg = {"model_list": [{"model_name": "gpt-test", "litellm_params": {
                   "model": "openai/upstream-model", "api_base": upstream.url, "api_key": "sk-upstream"}}],
               "general_settings": {"master_key": "sk-1234"}, "litellm_settings": {"callbacks": ["hide_secrets"]}}
        path = Path(d) / "gw.yaml"
        path.write_text(yaml.safe_dump(cfg))
        os.environ["DATABASE_URL"] = f"sqlite://{Path(d) / 'db.sqlite3'}"
        server = GatewayServer(path).start()
        try:
            admin = {"Authorization": "Bearer sk-1234"}
            keys = {
                "off": httpx.post(server.url + "/key/generate", headers=admin,
                                  json={"permissions": {"hide_secrets": False}}).json()["key"],
                "on": httpx.post(server.url + "/key/generate", headers=admin, json={}).json()["key"],
            }
            print(f"\none gateway, plugin on vs off per key, alternating (median x-gateway-overhead-ms of {N}):")
            print("                        off      on   added")
            with httpx.Client(base_url=server.url) as client:
                for kib, secret in KINDS:
                    body = {"model": "gpt-test", "messages": [{"role": "user", "content": message(kib, secret)}]}
                    got: dict[str, list[float]] = {"off": [], "on": []}
                    for i in range(N + 20):
                        for name, key in keys.items():
                            r = client.post("/v1/chat/completions", json=body,
                                            headers={"Authorization": f"Bearer {key}"})
                            assert r.status_code == 200, r.text
                            if i >= 20:
                                got[name].append(float(r.headers["x-gateway-overhead-ms"]))
                    off, on = statistics.median(got["off"]), statistics.median(got["on"])
                    print(f"  {label(kib, secret)}  {off:7.3f} {on:7.3f} {on - off:+7.3f}")
        finally:
            server.stop()
    upstream.stop()


if __name__ == "__main__":
    import logging

    # the WARNING per redacted request would be written to stderr N times: measured without it
    logging.getLogger("gateway.plugins.hide_secrets").setLevel(logging.ERROR)
    asyncio.run(bench_plugin())
    bench_per_key()
    bench_gateway()
