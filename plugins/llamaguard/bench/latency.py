"""Added latency of llamaguard_moderations, for the README.

The guard: the tests' SageMaker Runtime peer (tests/conftest.py) answering `safe` itself after 5 ms,
in a process of its own (in the measuring process, thread wake-ups add ~2 ms), because moto's server
alone already takes about 3-5 ms per call (measured in 1, and used end to end in 4).

1. One InvokeEndpoint through boto3, straight to the peer and straight to moto: the floor.
2. The plugin's `pre_request` alone (prompt, thread hop, boto3 call, verdict), median of N.
3. Two real gateways (`gateway --config`, one process each) in front of the same fake upstream, one
   with the plugin and one without, called alternately: median client latency and median
   `x-gateway-overhead-ms`.
4. As 3, with moto itself as the guard (a reply queued per call).

Run from the repository root:  uv run --no-sync python plugins/llamaguard/bench/latency.py [N]
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
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

from gateway import Principal, RequestContext
from gateway.testing import FakeUpstream

N = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 200
GUARD_MS = 5.0
HERE = Path(__file__).resolve().parent
ENDPOINT = "llama-guard-bench"


def load_peers():
    spec = importlib.util.spec_from_file_location("llamaguard_test_peers", HERE.parent / "tests" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


peers = load_peers()
AWS = {"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY": "fake-secret",
       "AWS_REGION_NAME": peers.REGION, "AWS_EC2_METADATA_DISABLED": "true",
       "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
med = statistics.median


def ms(samples: list[float]) -> str:
    return f"{med(samples):7.2f}"


def bench_floor(peer, moto) -> None:
    import boto3

    print(f"1. one InvokeEndpoint through boto3 (median of {N}, ms):")
    for label, url in ((f"peer answering after {GUARD_MS:g} ms", peer.url), ("moto's server", moto.url)):
        client = boto3.client("sagemaker-runtime", region_name=peers.REGION, endpoint_url=url)
        if url == moto.url:
            moto.queue(*[[{"generated_text": "safe"}]] * (N + 10))
        times = []
        for i in range(N + 10):
            t0 = time.perf_counter()
            client.invoke_endpoint(EndpointName=ENDPOINT, Body=json.dumps({"inputs": f"call {i}"}),
                                   ContentType="application/json")["Body"].read()
            if i >= 10:
                times.append((time.perf_counter() - t0) * 1e3)
        client.close()
        print(f"   {label:<34} {ms(times)}")


async def bench_plugin(peer) -> None:
    from gateway_plugin_llamaguard import LlamaGuard, LlamaGuardConfig

    os.environ["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] = peer.url
    plugin = LlamaGuard(LlamaGuardConfig(llamaguard_model_name=f"sagemaker/{ENDPOINT}"), None)
    await plugin.startup(None)
    try:
        times = []
        for i in range(N + 10):
            ctx = RequestContext(request_id="b", call_type="acompletion", route="/chat/completions",
                                 body={"messages": [{"role": "user", "content": f"How do I bake bread? {i}"}]},
                                 principal=Principal())
            t0 = time.perf_counter()
            await plugin.pre_request(ctx)
            if i >= 10:
                times.append((time.perf_counter() - t0) * 1e3)
        print(f"\n2. pre_request alone, guard answering after {GUARD_MS:g} ms (median of {N}): {ms(times)} ms")
    finally:
        await plugin.shutdown(None)
        del os.environ["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"]


def start(upstream: FakeUpstream, guard_url: str | None, tmp: Path) -> tuple[subprocess.Popen, str]:
    """A gateway in its own process (`gateway --config ...`): two cannot share one process."""
    cfg = {
        "model_list": [{"model_name": "gpt-test", "litellm_params": {
            "model": "openai/upstream-model", "api_base": upstream.url, "api_key": "sk-upstream"}}],
        "general_settings": {"master_key": "sk-1234"},
    }
    env = {**os.environ, "GATEWAY_LOG_LEVEL": "ERROR"}
    tag = "with" if guard_url else "without"
    if guard_url:
        cfg["litellm_settings"] = {"callbacks": ["llamaguard_moderations"],
                                   "llamaguard_model_name": f"sagemaker/{ENDPOINT}"}
        env.update(AWS, AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME=guard_url)
    path = tmp / f"gw-{tag}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env["DATABASE_URL"] = f"sqlite://{tmp / f'db-{tag}.sqlite3'}"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
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


def bench_gateway(title: str, guard_url: str, before_each=None) -> None:
    upstream = FakeUpstream(reply="ok").start()
    walls: dict[bool, list[float]] = {False: [], True: []}
    overheads: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as d:
        servers = {False: start(upstream, None, Path(d)), True: start(upstream, guard_url, Path(d))}
        try:
            clients = {flag: httpx.Client(base_url=url, headers={"Authorization": "Bearer sk-1234"})
                       for flag, (_, url) in servers.items()}
            for i in range(N + 20):  # the two gateways alternate, so drift hits both alike
                body = {"model": "gpt-test", "messages": [{"role": "user", "content": f"How do I bake bread? {i}"}]}
                for flag, client in clients.items():
                    t0 = time.perf_counter()
                    r = client.post("/v1/chat/completions", json=body)
                    wall = time.perf_counter() - t0
                    assert r.status_code == 200, r.text
                    if i >= 20:  # after a warm-up
                        walls[flag].append(wall * 1e3)
                        overheads[flag].append(float(r.headers["x-gateway-overhead-ms"]))
            for c in clients.values():
                c.close()
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(30)
    upstream.stop()
    print(f"\n{title} (median of {N}, ms):")
    print("                      without    with   added")
    print(f"   client latency     {ms(walls[False])} {ms(walls[True])} {med(walls[True]) - med(walls[False]):+7.2f}")
    print(f"   x-gateway-overhead {ms(overheads[False])} {ms(overheads[True])} "
          f"{med(overheads[True]) - med(overheads[False]):+7.2f}")


class PeerProcess:
    """The peer in a child process (this script with --serve-peer), answering `safe` after 5 ms."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve-peer", str(GUARD_MS / 1000)],
                                     stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
        self.url = self.proc.stdout.readline().strip()

    def stop(self) -> None:
        self.proc.stdin.close()  # the child exits when its stdin closes
        self.proc.wait(10)


if __name__ == "__main__" and sys.argv[1:2] == ["--serve-peer"]:
    served = peers.SageMakerPeer()
    served.delay = float(sys.argv[2])
    print(served.url, flush=True)
    sys.stdin.read()
    served.stop()
elif __name__ == "__main__":
    os.environ.update(AWS)
    peer = PeerProcess()
    moto = peers.Moto()
    try:
        bench_floor(peer, moto)
        asyncio.run(bench_plugin(peer))
        bench_gateway(f"3. end to end, guard answering after {GUARD_MS:g} ms", peer.url)
        moto.reset()
        moto.queue(*[[{"generated_text": "safe"}]] * (N + 20))
        bench_gateway("4. end to end, moto's server as the guard", moto.url)
    finally:
        peer.stop()
        moto.stop()
