"""Added latency of banned_keywords, for the README.

1. The hooks alone, called as the gateway calls them (median of N calls):
   - `pre_request` on one clean message of 1, 10 and 100 KiB (the worst case: no keyword, so the
     whole text is read), with 10, 1,000 and 10,000 keywords; the same for a JSON reply;
   - `stream_chunk` per chunk, the 10 KiB message streamed in word-sized chunks (about 7 characters)
     and in 100-character chunks.
2. One gateway (in this process) with 10,000 keywords from a file and two virtual keys called
   alternately, one with `permissions.banned_keywords: false` (the plugin returns at once): the
   difference of the median `x-gateway-overhead-ms` is what the plugin adds to a real call.

Keywords are random lower-case pseudo-words of 5 to 14 letters (none occurs in the message).

Run from the repository root:  uv run --no-sync python plugins/banned-keywords/bench/latency.py [N]
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import string
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml
from gateway_plugin_banned_keywords import BannedKeywords, BannedKeywordsConfig

from gateway import Principal, RequestContext
from gateway.testing import FakeUpstream, GatewayServer

N = int(sys.argv[1]) if len(sys.argv) > 1 else 200
COUNTS = (10, 1_000, 10_000)
SIZES_KIB = (1, 10, 100)
PARA = ("The committee reviewed the quarterly report and agreed that the migration to the new billing "
        "system should proceed in two phases, starting with the European accounts. Nobody objected, "
        "although the finance team asked for another week to reconcile the ledgers before the switch.\n")


def keywords(count: int) -> list[str]:
    rng = random.Random(count)
    out: set[str] = set()
    while len(out) < count:
        out.add("".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(5, 14))))
    return sorted(out)


def message(kib: int) -> str:
    size = kib * 1024
    return (PARA * (size // len(PARA) + 1))[:size]


def ctx_for(body: dict, stream: bool = False) -> RequestContext:
    return RequestContext(request_id="b", call_type="acompletion", route="/chat/completions", body=body,
                          principal=Principal(), stream=stream)


def median_ms(times: list[float]) -> float:
    return statistics.median(times) * 1e3


async def bench_hooks() -> None:
    print(f"hooks alone, median of {N} calls (ms):")
    print("  keywords  build |" + "".join(f"  request {k:>3} KiB" for k in SIZES_KIB)
          + " |" + "".join(f"  reply {k:>3} KiB" for k in SIZES_KIB))
    for count in COUNTS:
        cfg = BannedKeywordsConfig(banned_keywords_list=keywords(count))
        t0 = time.perf_counter()
        plugin = BannedKeywords(cfg, None)  # the automaton is built here
        build = time.perf_counter() - t0
        row = [f"  {count:>8} {build * 1e3:6.1f} |"]
        for hook in ("pre_request", "post_response"):
            for kib in SIZES_KIB:
                text = message(kib)
                assert plugin.matcher.find(text) is None
                body = {"messages": [{"role": "user", "content": text}]}
                reply = {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}
                times = []
                for _ in range(N):
                    ctx = ctx_for(body)
                    t0 = time.perf_counter()
                    if hook == "pre_request":
                        await plugin.pre_request(ctx)
                    else:
                        await plugin.post_response(ctx, reply)
                    times.append(time.perf_counter() - t0)
                row.append(f"  {median_ms(times):15.4f}")
            row.append(" |")
        print("".join(row)[:-2])

    print(f"\nstream_chunk per chunk, the 10 KiB message streamed, median over {N} streams (microseconds):")
    print("  keywords   ~7-char chunks   100-char chunks")
    text = message(10)
    words = text.split(" ")
    small = [w if i == 0 else " " + w for i, w in enumerate(words)]
    big = [text[i:i + 100] for i in range(0, len(text), 100)]
    for count in COUNTS:
        plugin = BannedKeywords(BannedKeywordsConfig(banned_keywords_list=keywords(count)), None)
        row = [f"  {count:>8}"]
        for pieces in (small, big):
            per_chunk = []
            for _ in range(N):
                ctx = ctx_for({}, stream=True)
                chunks = [{"choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]} for p in pieces]
                chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                t0 = time.perf_counter()
                for c in chunks:
                    await plugin.stream_chunk(ctx, c)
                per_chunk.append((time.perf_counter() - t0) / len(chunks))
                assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == text
            row.append(f"  {statistics.median(per_chunk) * 1e6:15.2f}")
        print("".join(row))


def bench_gateway() -> None:
    """Plugin on vs off per key, in one gateway: the same process, app and database for both."""
    upstream = FakeUpstream(reply="ok").start()
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "keywords.txt").write_text("\n".join(keywords(10_000)) + "\n")
        cfg = {"model_list": [{"model_name": "gpt-test", "litellm_params": {
                   "model": "openai/upstream-model", "api_base": upstream.url, "api_key": "sk-upstream"}}],
               "general_settings": {"master_key": "sk-1234"},
               "litellm_settings": {"callbacks": ["banned_keywords"], "banned_keywords_list": "keywords.txt"}}
        path = Path(d) / "gw.yaml"
        path.write_text(yaml.safe_dump(cfg))
        os.environ["DATABASE_URL"] = f"sqlite://{Path(d) / 'db.sqlite3'}"
        server = GatewayServer(path).start()
        try:
            admin = {"Authorization": "Bearer sk-1234"}
            keys = {
                "off": httpx.post(server.url + "/key/generate", headers=admin,
                                  json={"permissions": {"banned_keywords": False}}).json()["key"],
                "on": httpx.post(server.url + "/key/generate", headers=admin, json={}).json()["key"],
            }
            print(f"\none gateway, 10,000 keywords, plugin on vs off per key, alternating "
                  f"(median x-gateway-overhead-ms of {N}):")
            print("  message      off      on   added")
            with httpx.Client(base_url=server.url) as client:
                for kib in SIZES_KIB:
                    body = {"model": "gpt-test", "messages": [{"role": "user", "content": message(kib)}]}
                    got: dict[str, list[float]] = {"off": [], "on": []}
                    for i in range(N + 20):
                        for name, key in keys.items():
                            r = client.post("/v1/chat/completions", json=body,
                                            headers={"Authorization": f"Bearer {key}"})
                            assert r.status_code == 200, r.text
                            if i >= 20:  # after a warm-up
                                got[name].append(float(r.headers["x-gateway-overhead-ms"]))
                    off, on = statistics.median(got["off"]), statistics.median(got["on"])
                    print(f"  {kib:>3} KiB  {off:7.3f} {on:7.3f} {on - off:+7.3f}")
        finally:
            server.stop()
    upstream.stop()


if __name__ == "__main__":
    import logging

    logging.getLogger("gateway").setLevel(logging.ERROR)
    asyncio.run(bench_hooks())
    bench_gateway()
