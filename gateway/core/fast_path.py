"""The fast path: the hot LLM routes served beneath Quart's routing.

Quart's request machinery (contexts pushed and popped, URL matching, blueprint lookups, the
werkzeug request and its headers, the before/after hook loops) cost about a fifth of the CPU of a
chat call (bench/README.md). `POST` on `/chat/completions`, `/completions` and `/embeddings` (with
or without `/v1`) skips it: the ASGI messages go straight to the same steps Quart's routes take,
`call.begin` / `call.admit` / `request_path.serve` / `call.stamp`, with the same error envelopes. Every
other request, and these routes too when something would see the difference, goes through Quart.

The fast path is off when it could change what a plugin sees: a plugin with `before_app_request`
/ `after_app_request` functions (they would not run), or an `auth` plugin that takes `request`
(it is handed Quart's request; the built-in virtual keys do not take it). `GATEWAY_FAST_PATH=0` turns it off. Start-up logs which it is, and why.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, Awaitable, Callable

from quart.wrappers.response import DataBody

from gateway.core.call import admit, begin, check_body_size, check_declared_size, stamp
from gateway.core.errors import error_response, unexpected_error_response
from gateway.core.http_protocol import OneWriteCycle
from gateway.core.json_body import parse_json_object
from gateway.errors import GatewayError

log = logging.getLogger("gateway.fast_path")

ROUTES = {f"{prefix}/{path}": call_type for prefix in ("", "/v1")
          for path, call_type in (("chat/completions", "acompletion"), ("completions", "atext_completion"),
                                  ("embeddings", "aembedding"))}

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class FastPath:
    """ASGI middleware in front of the Quart app; `enabled` is decided at start-up (`decide`)."""

    def __init__(self, app: Any, gw: Any) -> None:
        self.app = app
        self.gw = gw
        self.enabled = False
        self.core_functions: tuple[Any, ...] = ()

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        call_type = ROUTES.get(scope.get("path", "")) if self.enabled and scope["type"] == "http" else None
        if call_type is None or scope["method"] != "POST" or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        gw = self.gw
        headers = {"remote-addr": (scope.get("client") or ("<local>",))[0]}  # as Quart's request has it
        for name, value in scope["headers"]:
            headers[name.decode("latin1").lower()] = value.decode("latin1")
        call = begin("POST", scope["path"], headers)
        try:  # refused before the body is read: the client may wait for the answer to send it
            declared = bool(gw.body_refusals) and check_declared_size(gw, call)
        except GatewayError as exc:
            await self._send(call, error_response(exc, call.request_id), send)
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # gone before its request was read: nothing was started
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        # As with Quart, a disconnect cancels the call (the handler then records it as abandoned,
        # nginx's 499); unlike Quart, the call runs in this task. Under the gateway's own uvicorn
        # protocol the connection says when the client left; elsewhere one watcher task does.
        task = asyncio.current_task()
        assert task is not None
        left: list[bool] = []

        def client_left() -> None:
            left.append(True)
            task.cancel()

        cycle = getattr(receive, "__self__", None)
        watcher = None
        if isinstance(cycle, OneWriteCycle):
            cycle.on_disconnect = client_left
        else:
            watcher = asyncio.ensure_future(_cancel_on_disconnect(receive, client_left))
        try:
            await self._respond(call, call_type, b"".join(chunks), send, not declared)
        except asyncio.CancelledError:
            if not left:
                raise  # cancelled by someone else: theirs to handle
            task.uncancel()  # the client left; nothing is owed to it
        finally:
            if watcher is None:
                cycle.on_disconnect = None  # the call has ended: a later disconnect cancels nothing
            else:
                watcher.cancel()  # no await since the call ended: the watcher cannot cancel it now

    async def _respond(self, call: Any, call_type: str, raw: bytes, send: Send, measure: bool) -> None:
        from gateway.core import request_path  # it imports this module's neighbours

        gw = self.gw
        try:
            if measure and gw.body_refusals:  # no content-length: the body as read (at most the limit + 1)
                check_body_size(gw, call, len(raw), read=True)
            await admit(gw, call)
            response = await request_path.serve(call_type, parse_json_object(raw), call=call, gw=gw)
        except GatewayError as exc:
            response = error_response(exc, call.request_id)
        except Exception as exc:
            response = unexpected_error_response(gw, exc, call.request_id)
        await self._send(call, response, send)

    async def _send(self, call: Any, response: Any, send: Send) -> None:
        stamp(self.gw, call, response)
        await send({"type": "http.response.start", "status": response.status_code,
                    "headers": [(k.lower().encode("latin1"), v.encode("latin1")) for k, v in response.headers.items()]})
        body = response.response
        if type(body) is DataBody:  # a whole reply (no range requests here): one message
            await send({"type": "http.response.body", "body": body.data, "more_body": False})
            return
        async with body:
            async for data in body:
                await send({"type": "http.response.body", "body": data.encode() if isinstance(data, str) else data,
                            "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _cancel_on_disconnect(receive: Receive, client_left: Callable[[], None]) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    client_left()


def install(app: Any, gw: Any) -> FastPath:
    """Put the fast path in front of Quart's own ASGI app (so inside any body limit wrapped around
    it later). It decides at start-up, once every plugin's routes and request functions are
    registered; `core_functions` are the core's own (`identify`, `stamp_response`)."""
    fast = FastPath(app.asgi_app, gw)
    app.asgi_app = fast

    @app.before_serving
    async def decide() -> None:
        fast.enabled, why = _eligible(app, gw, fast.core_functions)
        log.info("fast path for the LLM routes: %s", "on" if fast.enabled else f"off ({why})")

    return fast


def _eligible(app: Any, gw: Any, core_functions: tuple[Any, ...]) -> tuple[bool, str]:
    if os.environ.get("GATEWAY_FAST_PATH", "1").strip().lower() in ("0", "false", "no", "off"):
        return False, "GATEWAY_FAST_PATH=0"
    others = [f for funcs in (app.before_request_funcs, app.after_request_funcs, app.teardown_request_funcs)
              for f in funcs.get(None, []) if f not in core_functions]
    if others:
        names = ", ".join(sorted({(getattr(f, "__module__", None) or "?").split(".")[0] for f in others}))
        return False, f"request functions of {names} run on every request"
    plugins = sorted({impl.plugin for impl in gw.dispatcher.chains["auth"] if "request" in impl.argnames})
    if plugins:
        return False, f"auth plugin(s) {', '.join(plugins)} take Quart's request"
    return True, ""
