"""CPU per upstream call of each client the request path can use, without a gateway around it.

    uv run --no-sync python bench/upstream_client.py [--calls 16000] [--concurrency 16] [--runs 3]

Starts nginx (bench/goals_servers.py's config: the fixed chat completion and the 200-chunk stream)
on CPU 0, then, pinned to CPU 1 in this process, makes the same calls with the gateway's own client
(gateway/core/upstream_http.py) and with an aiohttp session set up as the `aiohttp` transport sets
it up: a POST of a small chat body, the reply read whole, and the stream read to its end. Prints
the process CPU time per call for each (and per chunk for the stream), run by run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import aiohttp  # noqa: E402
import goals_servers as gs  # noqa: E402
import uvloop  # noqa: E402

from gateway.core.upstream_http import UpstreamPool  # noqa: E402

BODY = b'{"model":"bench","messages":[{"role":"user","content":"hi"}]}'
HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer sk-upstream"}


Client = tuple[Callable[[], Awaitable[int]], Callable[[], Awaitable[None]]]  # (one call, close)


async def gateway_client(url: str, stream: bool) -> Client:
    pool = UpstreamPool()
    loop = asyncio.get_running_loop()

    async def call() -> int:
        reply = await pool.post(url, HEADERS, BODY, deadline=loop.time() + 60, stream_idle=60 if stream else None)
        if stream:
            return sum([len(c) async for c in reply.iter_bytes()])
        return len(await reply.read())
    return call, pool.close


async def aiohttp_client(url: str, stream: bool) -> Client:
    connector = aiohttp.TCPConnector(limit=1000, limit_per_host=1000, keepalive_timeout=60)
    session = aiohttp.ClientSession(connector=connector, trust_env=False, skip_auto_headers=("User-Agent",))
    timeout = aiohttp.ClientTimeout(total=None if stream else 60, sock_connect=10, sock_read=60 if stream else None)

    async def call() -> int:
        response = await session.post(url, data=BODY, headers=HEADERS, timeout=timeout)
        try:
            if stream:
                return sum([len(c) async for c in response.content.iter_any()])
            return len(await response.read())
        finally:
            response.release()
    return call, session.close


async def measure(make: Any, url: str, stream: bool, calls: int, concurrency: int) -> float:
    call, close = await make(url, stream)
    await asyncio.gather(*(call() for _ in range(concurrency)))  # connections open before the clock starts
    per_worker = calls // concurrency

    async def worker() -> None:
        for _ in range(per_worker):
            await call()
    started = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    spent = time.process_time() - started
    await close()
    return spent / (per_worker * concurrency)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=16000)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args()
    procs = gs.Procs()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        try:
            port = gs.free_port()
            conf = gs.write_nginx_conf(tmp, port)
            nginx = procs.spawn(["taskset", "-c", "0", gs.nginx_binary(), "-p", str(tmp / "nginx"), "-e",
                                 str(tmp / "nginx-error.log"), "-c", str(conf)], tmp / "nginx.out")
            base = f"http://127.0.0.1:{port}"
            gs.wait_http(base + "/", nginx, "nginx")
            os.sched_setaffinity(0, {1})
            uvloop.install()
            for run in range(1, a.runs + 1):
                for name, make in (("gateway", gateway_client), ("aiohttp", aiohttp_client)):
                    plain = asyncio.run(measure(make, base + "/v1/chat/completions", False, a.calls, a.concurrency))
                    streamed = asyncio.run(measure(make, base + "/stream/v1/chat/completions", True,
                                                   a.calls // 10, a.concurrency))
                    print(f"run {run} {name:8s} {plain * 1e6:6.1f} us CPU per call; stream "
                          f"{streamed * 1e6:7.1f} us per call, {streamed * 1e6 / 202:5.2f} us per SSE event", flush=True)
        finally:
            procs.stop_all()


if __name__ == "__main__":
    main()
