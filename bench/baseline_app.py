"""The floor under the gateway: a bare Quart app that forwards the chat call, nothing else.

`bash bench/run.sh --app baseline` serves this with hypercorn (one worker) in place of the gateway,
so the gateway's figures can be read against what Quart + hypercorn + the HTTP client cost alone.
BENCH_API_BASE is the upstream; BASELINE_CLIENT picks the client:
  httpx-aiohttp  httpx on the aiohttp transport, as the gateway does (default)
  aiohttp        aiohttp's ClientSession directly (what the httpx layer costs)
  httpx          httpx with its own pool

Streams (for bench/goals.py): a body whose first 64 bytes say `"stream": true` is forwarded to
BENCH_STREAM_API_BASE (default: BENCH_API_BASE with its trailing /v1 replaced by /stream/v1) and
relayed piece by piece as the upstream sends them. Only the head is looked at, so that non-streamed
bodies (up to 1 MiB in the goals) cost the floor no scan and no JSON parse; goals.py writes "stream"
as the first key.
"""

from __future__ import annotations

import os
import re

from quart import Quart, Response, request

BASE = os.environ["BENCH_API_BASE"].rstrip("/")
UPSTREAM = BASE + "/chat/completions"
STREAM_UPSTREAM = (os.environ.get("BENCH_STREAM_API_BASE") or re.sub(r"/v1$", "/stream/v1", BASE)).rstrip("/")
STREAM_UPSTREAM += "/chat/completions"
CLIENT = os.environ.get("BASELINE_CLIENT", "httpx-aiohttp")
IS_STREAM = re.compile(rb'"stream"\s*:\s*true')
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
    if IS_STREAM.search(body, 0, 64):
        return await relay_stream(body)
    if CLIENT == "aiohttp":
        async with state["session"].post(UPSTREAM, data=body, headers=HEADERS) as r:
            raw = await r.read()
            status = r.status
    else:
        r = await state["client"].post(UPSTREAM, content=body, headers=HEADERS)
        raw, status = r.content, r.status_code
    return Response(raw, status=status, content_type="application/json")


async def relay_stream(body: bytes) -> Response:
    """Forward to the stream upstream and pass each piece on as it arrives, without parsing it."""
    if CLIENT == "aiohttp":
        r = await state["session"].post(STREAM_UPSTREAM, data=body, headers=HEADERS)
        status, pieces, close = r.status, r.content.iter_any(), r.release
    else:
        req = state["client"].build_request("POST", STREAM_UPSTREAM, content=body, headers=HEADERS)
        r = await state["client"].send(req, stream=True)
        status, pieces, close = r.status_code, r.aiter_raw(), r.aclose

    async def relay():  # type: ignore[no-untyped-def]
        try:
            async for piece in pieces:
                yield piece
        finally:
            result = close()
            if result is not None:
                await result

    return Response(relay(), status=status, content_type="text/event-stream")


@app.get("/health/liveliness")
async def health() -> str:
    return "ok"
