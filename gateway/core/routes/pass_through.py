"""Pass-through endpoints (`general_settings.pass_through_endpoints`): a path of the gateway
forwarded to a target as it is, the reply relayed as it comes.

The request goes out with its method, query string, body and content type; the client's other
headers only with `forward_headers: true`, and never the gateway key it authenticated with. The
entry's `headers` (provider keys) are added last. The reply's status, headers and body are relayed
chunk by chunk as they arrive, so server-sent events and chunked replies stream through. With
`auth: true` a gateway key is required, budgets are checked as on the LLM routes, and each call
writes a spend row (`call_type` pass_through_endpoint, `model` the path, `spend` the entry's
`cost_per_request`). Entries are checked at start-up (gateway/core/pass_through_config.py), and a
path that collides with a gateway route stops start-up too.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, AsyncIterator, Iterable
from urllib.parse import quote, unquote

from quart import Blueprint, Quart, Response, current_app, g, request
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import RequestRedirect

from gateway.context import Outcome, RequestContext
from gateway.core import auth, route_groups
from gateway.core.access import RouteSet
from gateway.core.limits.budgets import check_budget
from gateway.core.pass_through_config import PassThroughConfigError, PassThroughEndpoint, collision, parse
from gateway.errors import BadRequestError, GatewayError, UpstreamConnectionError, UpstreamError, UpstreamTimeoutError

if TYPE_CHECKING:  # httpx is loaded with the first pass-through call (gateway.core.providers.library_clients)
    import httpx

log = logging.getLogger("gateway.pass_through")

CALL_TYPE = "pass_through_endpoint"
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]  # LiteLLM's; HEAD and OPTIONS come with them
CONNECT_TIMEOUT_S = 10.0
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
                        "te", "trailer", "trailers", "transfer-encoding", "upgrade"})
#: Never taken from the client: the transport sets them for the target.
NOT_FORWARDED = HOP_BY_HOP | {"host", "content-length", "expect"}
#: What goes out without `forward_headers`: what the body needs to be read right, and the encodings
#: the client can read (the reply is relayed as encoded; none asked for: "identity").
BODY_HEADERS = ("content-type", "content-encoding", "accept-encoding")
KEY_HEADERS = ("authorization", "api-key", "x-api-key")
#: Never relayed from the target: hop-by-hop, the length (the relay is chunked) and the gateway's own.
NOT_RELAYED = HOP_BY_HOP | {"content-length", "x-request-id", "date", "server"}
#: An error reply is read whole (up to this) so that the entry's secrets can be masked in it.
ERROR_BODY_LIMIT = 1 << 20
MIN_SECRET_LEN = 8


def install(app: Quart, gw: Any) -> None:
    """Mount the configured pass-through endpoints on `app`; call it after every other route.

    Raises PassThroughConfigError (one line naming the entry and key) for an entry that cannot be
    served, a path that collides with a gateway route included."""
    endpoints = parse(gw.settings.file.general_settings)
    if not endpoints:
        return
    _check_collisions(app, endpoints, gw.access.groups)
    bp = route_groups.declare(Blueprint("pass_through", __name__))  # in no group: each entry says who may call it
    for ep in endpoints:
        view = _view(ep)
        bp.add_url_rule(ep.path, f"entry_{ep.index}", view, methods=METHODS)
        if ep.include_subpath:
            bp.add_url_rule(ep.routes()[1], f"entry_{ep.index}_subpath", view, methods=METHODS)
            if ep.path != "/":
                bp.add_url_rule(ep.path + "/", f"entry_{ep.index}_slash", view, methods=METHODS)
    app.register_blueprint(bp)
    gw.access.add_routes(public=[r for ep in endpoints if not ep.auth for r in ep.routes()],
                         keyed=[r for ep in endpoints if ep.auth for r in ep.routes()])
    for ep in endpoints:  # the target as it may be written: no userinfo, no secret query values
        log.info("pass-through endpoint %s%s -> %s (auth %s)", ep.path, "/*" if ep.include_subpath else "",
                 ep.display_target, "on" if ep.auth else "off")


def _check_collisions(app: Quart, endpoints: Iterable[PassThroughEndpoint], groups: dict[str, frozenset[str]]) -> None:
    """Every mounted route and every route in a route group (`/metrics` without its plugin) is off limits."""
    adapter = app.url_map.bind("gateway.invalid")
    reserved = sorted({r for group in groups.values() for r in group})
    reserved_set = RouteSet(reserved)
    mounted = [rule.rule for rule in app.url_map.iter_rules()]

    def served(path: str) -> bool:
        if reserved_set.matches(path):
            return True
        try:
            adapter.match(path, method="GET")
        except NotFound:
            return False
        except (MethodNotAllowed, RequestRedirect):
            return True
        return True

    for ep in endpoints:
        clash = collision(ep, served, [*mounted, *reserved])
        if clash is not None:
            raise PassThroughConfigError(
                f"general_settings.pass_through_endpoints[{ep.index}].path: {ep.path} collides with the gateway "
                f"route {clash}; choose another path")


def _view(ep: PassThroughEndpoint) -> Any:
    async def pass_through(subpath: str = "") -> Response:
        return await _forward(current_app.gateway, ep)  # type: ignore[attr-defined]

    pass_through.__doc__ = "A pass-through endpoint: the request is forwarded to its configured target."
    return pass_through


async def _forward(gw: Any, ep: PassThroughEndpoint) -> Response:
    url = target_url(ep, _raw_tail(ep), request.query_string)
    principal = g.principal if ep.auth else None
    ctx = _context(ep, principal) if principal is not None else None
    if ctx is not None:
        try:
            _check_budgets(principal)
        except GatewayError as exc:
            _finish(gw, ep, ctx, "failure", exc.status, error=exc)
            raise
    gateway_key = auth.key_from_headers(request.headers) if ep.auth else None
    headers = outgoing_headers(ep, request.headers.items(), gateway_key, gw.master_key)
    body = await request.get_data(cache=False)
    method = request.method
    client = gw.http_client(url)
    import httpx  # imported with that client's pool, not at start-up (library_clients.py)

    outgoing = client.build_request(method, url, headers=headers, content=body or None,
                                    timeout=httpx.Timeout(ep.timeout, connect=min(ep.timeout, CONNECT_TIMEOUT_S)))
    if log.isEnabledFor(logging.DEBUG):  # header names only: the entry's values are secrets
        log.debug("pass-through %s %s -> %s headers=%s", method, ep.path, ep.display_target,
                  sorted({name.lower() for name, _ in headers}))
    before_call = time.perf_counter()
    try:
        reply = await client.send(outgoing, stream=True)
    except asyncio.CancelledError:  # the client went away before the target answered
        _finish(gw, ep, ctx, "failure", 499)
        raise
    except Exception as exc:
        error = transport_error(ep, exc)
        _finish(gw, ep, ctx, "failure", error.status, error=error)
        raise error from None
    overhead_ms = f"{(before_call - g.started) * 1000:.3f}"
    ok = reply.status_code < 400
    line = (getattr(g, "request_id", "-"), method, request.path, principal, ep.path if ctx else None, g.started)
    if not ok and not _is_stream(reply):  # small, and may echo the entry's key: read it whole, masked
        content = await _read_error_body(ep, reply)
        _finish(gw, ep, ctx, "failure", reply.status_code, error=_target_status_error(ep, reply.status_code))
        resp = Response(content, status=reply.status_code)
        _copy_reply_headers(reply.headers, resp, decoded=True)
    else:
        resp = Response(_relay(gw, ep, ctx, reply, line), status=reply.status_code)
        g.call.streaming = True  # the access line is written when the relay ends
        _copy_reply_headers(reply.headers, resp)
    resp.headers["x-gateway-overhead-ms"] = overhead_ms
    return resp


def _context(ep: PassThroughEndpoint, principal: Any) -> RequestContext:
    ctx = RequestContext(request_id=g.request_id, call_type=CALL_TYPE, route=request.path, body={},
                         principal=principal, model=ep.path, api=CALL_TYPE)
    ctx.started = g.started
    g.call.model = ep.path
    return ctx


def _check_budgets(principal: Any) -> None:
    """The key's, team's, user's, team member's and organization's budgets, as on the LLM routes."""
    extra = principal.extra or {}
    now = datetime.now(timezone.utc)
    for record in (*(extra.get("records") or ()), extra.get("team_member"), extra.get("organization")):
        check_budget(record, now)


def _raw_tail(ep: PassThroughEndpoint) -> str:
    """The request's path after the entry's path, as the client encoded it ("" for the path itself)."""
    path = request.path
    raw = request.scope.get("raw_path")
    raw_path = raw.split(b"?", 1)[0].decode("ascii", "replace") if isinstance(raw, bytes) else ""
    prefix = "" if ep.path == "/" else ep.path
    if raw_path and unquote(raw_path) == path and raw_path.startswith(prefix):
        tail = raw_path[len(prefix):]
    else:
        tail = quote(path[len(prefix):], safe="/:@!$&'()*+,;=-._~")
    if any(segment in (".", "..") for segment in unquote(tail).split("/")):
        raise BadRequestError(f"Pass-through endpoint {ep.path}: the path must not contain '.' or '..' segments")
    return tail


def target_url(ep: PassThroughEndpoint, tail: str, query: bytes) -> str:
    """The target, with the request's subpath appended and its query string after the target's own."""
    base, _, own_query = ep.target.partition("?")
    if tail:
        base = base.rstrip("/") + tail
    queries = [q for q in (own_query, query.decode("ascii", "replace")) if q]
    return base + ("?" + "&".join(queries) if queries else "")


def _carries(value: str, keys: list[str]) -> bool:
    scheme, _, rest = value.strip().partition(" ")
    candidate = rest.strip() if rest else scheme
    return any(hmac.compare_digest(candidate.encode(), key.encode()) for key in keys)


def outgoing_headers(ep: PassThroughEndpoint, incoming: Iterable[tuple[str, str]], gateway_key: str | None,
                     master_key: str | None) -> list[tuple[str, str]]:
    """The headers sent to the target: the client's (all with `forward_headers`, else those the
    body needs), less any that carries the gateway key it used or the master key; then the entry's."""
    keys = [k for k in (gateway_key, master_key) if k]
    out: list[tuple[str, str]] = []
    for name, value in incoming:
        lower = name.lower()
        if not ep.forward_headers and lower not in BODY_HEADERS:
            continue
        if lower in NOT_FORWARDED or lower.startswith("x-gateway-"):
            continue
        if lower in KEY_HEADERS and keys and _carries(value, keys):
            continue
        out.append((name, value))
    own = {name.lower() for name in ep.headers}
    if not any(n.lower() == "accept-encoding" for n, _ in out) and "accept-encoding" not in own:
        out.append(("accept-encoding", "identity"))  # not the transport's default: the client may not read gzip
    return [(n, v) for n, v in out if n.lower() not in own] + list(ep.headers.items())


def transport_error(ep: PassThroughEndpoint, exc: BaseException, replying: bool = False) -> GatewayError:
    """The target could not be reached, did not answer, or (`replying`) broke off its reply: which
    endpoint and host, never a header."""
    import httpx

    timed_out = isinstance(exc, (httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout, TimeoutError)) or (
        isinstance(exc, httpx.TimeoutException) and isinstance(exc.__cause__, TimeoutError))
    if timed_out:
        return UpstreamTimeoutError(
            f"Pass-through endpoint {ep.path}: the target ({ep.where}) did not answer within {ep.timeout:g} s")
    detail = type(exc.__cause__ or exc).__name__
    what = "broke off its reply" if replying else "could not be reached"
    return UpstreamConnectionError(f"Pass-through endpoint {ep.path}: the target ({ep.where}) {what}: {detail}")


def _target_status_error(ep: PassThroughEndpoint, status: int) -> GatewayError:
    """For the spend row: the target's status, never its body."""
    return UpstreamError(f"Pass-through endpoint {ep.path}: the target answered {status}", status=status)


def _is_stream(reply: httpx.Response) -> bool:
    return "text/event-stream" in (reply.headers.get("content-type") or "")


def _copy_reply_headers(headers: httpx.Headers, resp: Response, decoded: bool = False) -> None:
    """The target's headers on the relayed reply; `decoded`: the body was decoded (no content-encoding)."""
    if "content-type" not in headers:  # Quart's default type is not the target's
        del resp.headers["content-type"]
    for name, value in headers.multi_items():
        lower = name.lower()
        if lower in NOT_RELAYED or lower.startswith("x-gateway-") or (decoded and lower == "content-encoding"):
            continue
        if lower == "content-type":
            resp.headers["content-type"] = value
        else:
            resp.headers.add(name, value)


def _secrets(ep: PassThroughEndpoint) -> list[str]:
    """The entry's header values (of `Bearer <key>`, the key), longest first."""
    found: set[str] = set()
    for value in ep.headers.values():
        found.add(value.partition(" ")[2].strip() or value.strip())
    return sorted((s for s in found if len(s) >= MIN_SECRET_LEN), key=len, reverse=True)


def mask_secrets(ep: PassThroughEndpoint, content: bytes) -> bytes:
    for secret in _secrets(ep):
        raw = secret.encode()
        if raw in content:
            content = content.replace(raw, raw[:4] + b"*" * 12)
    return content


async def _read_error_body(ep: PassThroughEndpoint, reply: httpx.Response) -> bytes:
    """An error reply, decoded (a gzipped body would hide a secret from the mask), capped, masked."""
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in reply.aiter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size > ERROR_BODY_LIMIT:
                break
    except Exception:  # what arrived is what the client gets; the status already says it failed
        pass
    finally:
        await reply.aclose()
    return mask_secrets(ep, b"".join(chunks)[:ERROR_BODY_LIMIT])


async def _relay(gw: Any, ep: PassThroughEndpoint, ctx: RequestContext | None, reply: httpx.Response,
                 line: tuple[Any, ...]) -> AsyncIterator[bytes]:
    """The target's body, chunk by chunk as it arrives; the outcome recorded once it ends.

    A target that breaks off mid-reply breaks off the client's reply too (never a clean end that
    would pass for the whole body); a client that goes away closes the target's connection."""
    status, http_status, error = "failure", 499, None  # until the last byte: the client went away
    try:
        async for chunk in reply.aiter_raw():
            yield chunk
        http_status = reply.status_code
        status = "success" if reply.status_code < 400 else "failure"
        if status == "failure":
            error = _target_status_error(ep, reply.status_code)
    except Exception as exc:
        error = transport_error(ep, exc, replying=True)
        http_status = error.status
        log.warning("request %s: %s", line[0], error.message)
        raise error from None
    finally:
        await reply.aclose()
        _finish(gw, ep, ctx, status, http_status, error=error)
        rid, method, path, principal, model, started = line
        gw.access_log.response(rid, method, path, principal, model, http_status, started)


def _finish(gw: Any, ep: PassThroughEndpoint, ctx: RequestContext | None, status: str, http_status: int, *,
            error: Exception | None = None) -> None:
    """Hand the outcome to the `request_finished` observers (the spend row); only keyed calls have
    one. `cost_per_request` is spent on a success; a failure costs nothing."""
    if ctx is None or not gw.dispatcher.has("request_finished"):
        return
    cost = ep.cost_per_request if status == "success" else 0.0
    outcome = Outcome(status=status, http_status=http_status, error=error, annotations=ctx.annotations,
                      usage={"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}, cost=cost)
    gw.dispatcher.finished(ctx, outcome)
