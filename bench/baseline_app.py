"""The floor under the gateway: a bare Quart app that forwards the chat call, nothing else.

`bash bench/run.sh --app baseline` serves this with hypercorn (one worker) in place of the gateway,
so the gateway's figures can be read against what Quart + hypercorn + the HTTP client cost alone.
BENCH_API_BASE is the upstream; BASELINE_CLIENT picks the client:
  httpx-aiohttp  httpx on the aiohttp transport, as the gateway does (default)
  aiohttp        aiohttp's ClientSession directly (what the httpx layer costs)
  httpx          httpx with its own pool
"""

from __future__ import annotations

import os

from quart import Quart, Response, request

UPSTREAM = os.environ["BENCH_API_BASE"].rstrip("/") + "/chat/completions"
CLIENT = os.environ.get("BASELINE_CLIENT", "httpx-aiohttp")
HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-upstream"}

app = Quart(__name__)
state: dict = {}


@app.before_serving
async def start() -> None:
    if CLIENT == "aiohttp":
        import aiohttp

        state["session"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000))
    else:
        import httpx

        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
        if CLIENT == "httpx":
            state["client"] = httpx.AsyncClient(limits=limits, timeout=None)
        else:
            from httpx_aiohttp import AiohttpTransport

            state["client"] = httpx.AsyncClient(transport=AiohttpTransport(limits=limits), timeout=None)


@app.after_serving
async def stop() -> None:
    if "session" in state:
        await state["session"].close()
    if "client" in state:
        await state["client"].aclose()


@app.post("/v1/chat/completions")
async def chat() -> Response:
    body = await request.get_data()
    if CLIENT == "aiohttp":
        async with state["session"].post(UPSTREAM, data=body, headers=HEADERS) as r:
            raw = await r.read()
            status = r.status
    else:
        r = await state["client"].post(UPSTREAM, content=body, headers=HEADERS)
        raw, status = r.content, r.status_code
    return Response(raw, status=status, content_type="application/json")


@app.get("/health/liveliness")
async def health() -> str:
    return "ok"
