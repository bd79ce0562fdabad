"""One HTTP request as the request path sees it, whichever way it came in: through Quart's routing
(every route), or through the fast path beneath it (`fast_path.py`, the hot LLM routes).

Both ways run the same steps, defined here once: `begin` (the request id and the clock),
`check_declared_size` / `check_body_size` (a size-limit plugin's limit, before anything else), `admit` (who is calling,
and whether the route rules let them), and `stamp` (the response's
`x-request-id`, the overhead header and the access line). The request path in between
(`request_path.py`) is the same code too; it reads the request from the `Call`, never from Quart.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from gateway.core import auth
from gateway.core.request_id import request_id_from
from gateway.core.ui.sessions import cookie_from
from gateway.errors import GatewayError


@dataclass(slots=True, eq=False)
class Call:
    """What the request path knows of a request; the handler fills in `model` and `streaming`."""

    method: str
    path: str
    #: Header names to values: Quart's case-insensitive Headers, or (fast path) a dict keyed by
    #: lower-case names. Read with lower-case names.
    headers: Any
    request_id: str
    started: float
    principal: Any = None
    model: str | None = None
    #: A streamed reply writes its access line when the stream ends, not when the response starts.
    streaming: bool = False
    #: Quart's request, handed to `auth` plugins (the fast path runs only when none is enabled).
    request: Any = None


def begin(method: str, path: str, headers: Any, request: Any = None) -> Call:
    """A request starts: its id (the client's `x-request-id` when sane) and its clock."""
    return Call(method, path, headers, request_id_from(headers.get("x-request-id")), time.perf_counter(),
                request=request)


async def admit(gw: Any, call: Any) -> None:
    """Who is calling (`call.principal`), and whether the route rules let them call `call.path`:
    raises the GatewayError the client gets (401, 403) otherwise."""
    gw.directory.invalidator.poll()
    policy = gw.access
    if policy.is_public(call.path):
        if policy.allowed is not None:
            key = auth.key_from_headers(call.headers)
            master = bool(key and gw.master_key and auth.is_master_key(key, gw.master_key))
            policy.check(call.path, None, master)
        return
    sessions = gw.ui_sessions
    cookie = cookie_from(call.headers) if sessions is not None and gw.master_key is not None else None
    if cookie is not None and auth.key_from_headers(call.headers) is None:  # a page of the admin UI
        call.principal = await sessions.principal(cookie, call.method, call.headers)
    else:
        call.principal = await auth.authenticate(call.headers, gw, call.request)
    policy.check(call.path, call.principal, call.principal is auth.MASTER or call.principal is auth.DEV_MODE)


def check_declared_size(gw: Any, call: Call) -> bool:
    """First thing for every request, before its body is read: the size the client declared
    (`content-length`) against a size-limit plugin's limit (`Gateway.limit_request_body`). False
    when it declared none: the caller then measures the body it reads (`check_body_size`)."""
    declared = call.headers.get("content-length")
    if declared is None or not declared.isdigit():
        return False
    check_body_size(gw, call, int(declared), read=False)
    return True


def check_body_size(gw: Any, call: Call, size: int, read: bool) -> None:
    """A body over a size-limit plugin's limit is refused with the plugin's error. `read`: whether
    the body was read; if not, the server will close the connection after the reply, and the reply
    says so."""
    for limit, refuse in gw.body_refusals:
        if size > limit:
            err = refuse(size, call.path, call.request_id)
            if not read and isinstance(err, GatewayError):
                err.headers = {**err.headers, "Connection": "close"}
            raise err


def stamp(gw: Any, call: Call, response: Any) -> None:
    """The response leaves: its request id, the gateway's overhead (all of the time, when no
    upstream was called and the handler did not set it), and the access line."""
    headers = response.headers
    headers["x-request-id"] = call.request_id
    if "x-gateway-overhead-ms" not in headers:
        headers["x-gateway-overhead-ms"] = f"{(time.perf_counter() - call.started) * 1000:.3f}"
    if not call.streaming:
        gw.access_log.response(call.request_id, call.method, call.path, call.principal, call.model,
                               response.status_code, call.started)
