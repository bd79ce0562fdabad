"""The request path of DESIGN.md section 4, for every route that calls a model (the OpenAI routes,
/v1/messages, /v1/responses, images, audio, moderations, rerank; and the fast path beneath them).

auth (done before the route) -> parse and check the body -> `pre_request` -> choose a deployment
and call it (with retries) -> `stream_chunk` / `post_response` -> reply -> `request_finished`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from quart import Response, current_app, g, request

from gateway.context import Outcome, RequestContext
from gateway.core import apis, enforced_params, streaming
from gateway.core.cache import CachedReply
from gateway.core.call import Call
from gateway.core.errors import error_response
from gateway.core.json_body import parse_json_object
from gateway.core.model_access import check_model_access
from gateway.errors import BadRequestError, GatewayError

# Request fields the gateway consumes; never sent upstream.
GATEWAY_FIELDS = ("metadata", "tags", "guardrails", "cache")
#: The call types of the request path, and the request field each one cannot do without.
REQUIRED_INPUT = {"acompletion": "messages", "atext_completion": "prompt", "aembedding": "input",
                  "aimage_generation": "prompt", "aspeech": "input", "amoderation": "input", "arerank": "query",
                  "atranscription": "file"}
#: The call types that stream (`stream: true`); the others refuse it rather than ignore it.
STREAMING = frozenset({"acompletion", "atext_completion"})
#: The call types whose reply is not JSON (audio): relayed as it comes, with the upstream's type.
BINARY_REPLIES = frozenset({"aspeech"})
#: The call types whose reply may be plain text (a transcription as `text`, `srt` or `vtt`): the
#: reply hooks see it as `{"text": ...}`, and the client gets the text back as it came, or rewritten.
TEXT_REPLIES = frozenset({"atranscription"})


async def read_json_body() -> dict[str, Any]:
    return parse_json_object(await request.get_data(cache=False))


def _check_types(call_type: str, body: dict[str, Any], path: str) -> None:
    """Reject wrong field types with a 400 naming the field (the upstream checks the rest)."""
    field = REQUIRED_INPUT[call_type]
    value = body.get(field)
    if value is None:
        raise BadRequestError(f"Missing required parameter: {field}", param=field)
    if call_type == "acompletion":
        if not isinstance(value, list) or not value:
            raise BadRequestError("messages must be a non-empty list of message objects", param="messages")
        for i, m in enumerate(value):
            if not isinstance(m, dict) or not isinstance(m.get("role"), str):
                raise BadRequestError(f"messages[{i}] must be an object with a string 'role'", param=f"messages[{i}]")
    elif call_type in ("aimage_generation", "aspeech", "arerank") and not isinstance(value, str):
        raise BadRequestError(f"{field} must be a string", param=field)
    elif call_type != "atranscription" and not isinstance(value, (str, list)):
        raise BadRequestError(f"{field} must be a string or a list", param=field)
    if body.get("stream") is True and call_type not in STREAMING and call_type != "aembedding":
        raise BadRequestError(f"stream: {path} does not stream through the gateway; "
                              "leave `stream` out", param="stream")
    checks = (("stream", bool), ("user", str), ("metadata", dict), ("tags", list), ("stream_options", dict),
              ("drop_params", bool), ("additional_drop_params", list), ("fallbacks", list))
    for name, kind in checks:
        v = body.get(name)
        if v is not None and not isinstance(v, kind):
            raise BadRequestError(f"{name} must be of type {kind.__name__}", param=name)
    fallbacks = body.get("fallbacks")
    if fallbacks is not None and not all(isinstance(f, str) and f for f in fallbacks):
        raise BadRequestError("fallbacks must be a list of model names", param="fallbacks")
    dropped = body.get("additional_drop_params")
    if dropped is not None and not all(isinstance(d, str) for d in dropped):
        raise BadRequestError("additional_drop_params must be a list of parameter names", param="additional_drop_params")
    user = body.get("user")
    if isinstance(user, str) and len(user) > 255:  # end users are tracked by this id
        raise BadRequestError("user must be at most 255 characters", param="user")
    if isinstance(user, str) and "\x00" in user:  # no database stores it as an id
        raise BadRequestError("user must not contain NUL characters", param="user")


def _upstream_body(ctx: RequestContext) -> tuple[dict[str, Any], bool]:
    """What goes upstream; for streams, usage is always asked for (and hidden if not wanted)."""
    body = {k: v for k, v in ctx.body.items() if k not in GATEWAY_FIELDS}
    wants_usage = True
    if ctx.call_type not in STREAMING:
        body.pop("stream", None)
    elif ctx.stream:
        options = dict(body.get("stream_options") or {})
        wants_usage = bool(options.get("include_usage"))
        options["include_usage"] = True
        body["stream_options"] = options
    return body, wants_usage


def _usage_of(data: Any) -> dict[str, Any] | None:
    usage = data.get("usage") if isinstance(data, dict) else None
    return usage if isinstance(usage, dict) else None


async def serve(call_type: str, body: dict[str, Any], adapter: Any = None, call: Call | None = None,
                gw: Any = None) -> Response:
    """One LLM call on the request path, for any route: `call_type` names it (REQUIRED_INPUT's
    keys), `body` is the request as a dict. With an `adapter` (gateway/core/apis), `body` is the
    client's request in the adapter's API: it is translated into a chat request first, and the
    reply (and any error) is rendered back by the adapter. `call` is the request (Quart's
    routes: the one `identify` began; the fast path passes its own, and the gateway)."""
    if call is None:
        call, gw = g.call, current_app.gateway
    try:
        if adapter is not None:
            body = await adapter.to_chat(body, call.principal)
            call_type = "acompletion"
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise BadRequestError("model must be a non-empty string", param="model")
        _check_types(call_type, body, call.path)
        if gw.enforced_params:
            enforced_params.check(body, gw.enforced_params)
    except GatewayError as exc:
        if adapter is None:
            raise
        return _error(exc, call.request_id, adapter)
    if adapter is None and call_type == "acompletion" and "," in model and gw.router.names.find(model) is None:
        return await _batch(gw, call, body, model)
    return await _handle(gw, call, call_type, body, model, call.request_id, adapter)


def _error(exc: GatewayError, request_id: str, adapter: Any) -> Response:
    """The error envelope: OpenAI's, or the adapter's API's."""
    if adapter is None:
        return error_response(exc, request_id)
    headers = {**exc.headers, "x-request-id": request_id}
    return Response(orjson.dumps(adapter.error_body(exc)), status=exc.status, headers=headers,
                    content_type="application/json")


async def _batch(gw: Any, call: Call, body: dict[str, Any], model: str) -> Response:
    """LiteLLM's batch completions: `model: "a,b"` asks each model the same thing, at once, and
    answers a list, one reply (or error envelope) per model, in the order asked. Each call is a
    request of its own to the hooks and on the spend rows (`<request id>-<n>`)."""
    models = [m.strip() for m in model.split(",")]
    if not all(models) or len(models) > 20:
        raise BadRequestError("model: a batch names 2 to 20 model groups, comma-separated", param="model")
    if body.get("stream") is True:
        raise BadRequestError("stream: batch completions (model: \"a,b\") do not stream", param="stream")
    replies = await asyncio.gather(*(_handle(gw, call, "acompletion", {**body, "model": m}, m, f"{call.request_id}-{i}")
                                     for i, m in enumerate(models)))
    out = [orjson.loads(await r.get_data()) for r in replies]
    resp = Response(orjson.dumps(out), status=200, content_type="application/json")
    resp.headers["x-gateway-overhead-ms"] = max((r.headers.get("x-gateway-overhead-ms", "0") for r in replies), key=float)
    return resp


async def _handle(gw: Any, call: Call, call_type: str, body: dict[str, Any], model: str, request_id: str,
                  adapter: Any = None) -> Response:
    metadata = body.get("metadata") or {}
    ctx = RequestContext(
        request_id=request_id, call_type=call_type, route=call.path, body=body,
        principal=call.principal, headers={k.lower(): v for k, v in call.headers.items()}, model=model,
        stream=body.get("stream") is True and call_type in STREAMING,
        end_user=body.get("user"), metadata=metadata, api=adapter.api if adapter is not None else call_type,
    )
    ctx.started = call.started
    call.model = model
    dispatcher = gw.dispatcher
    data: Any = None
    try:
        if gw.router.pending:  # a model changed elsewhere is being re-read: serve what it is now
            await gw.router.settle()
        try:
            gw.router.group(model, ctx.principal)
        except BadRequestError:  # no such model: a key barred from the name gets its 401 first (LiteLLM)
            check_model_access(gw, ctx.principal, model)
            raise
        if gw.guardrails or "guardrails" in body or "guardrails" in metadata:
            ctx.guardrails = gw.guardrails.active(body, ctx.principal)
        if dispatcher.runs("pre_request", ctx):
            await dispatcher.run_chain("pre_request", ctx)
        upstream_body, wants_usage = _upstream_body(ctx)
        plan = gw.cache.plan(call_type, ctx.model, upstream_body, ctx.body.get("cache")) if gw.cache else None
        hit = await gw.cache.lookup(plan) if plan is not None else None
        if hit is not None:
            if dispatcher.runs("during_call", ctx):  # no upstream call to overlap: judged first
                await dispatcher.run_chain("during_call", ctx)
            reply, raw = _cache_hit(gw, ctx, hit)
        elif dispatcher.runs("during_call", ctx):
            reply, raw = await _call_during_guards(gw, ctx, call_type, upstream_body)
        else:
            reply, raw = await _call(gw, ctx, call_type, upstream_body)
        if ctx.stream:
            return _stream_response(gw, call, ctx, reply, wants_usage, plan if hit is None else None, adapter)
        content_type = reply.headers.get("content-type") or "application/octet-stream"
        if call_type in BINARY_REPLIES or (call_type in TEXT_REPLIES and "json" not in content_type):
            return await _not_json(gw, ctx, raw, content_type)
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise GatewayError(f"{ctx.deployment.provider_display}Exception - upstream returned invalid JSON",
                               status=502, type="api_error") from None
        if dispatcher.runs("post_response", ctx):
            await dispatcher.run_chain("post_response", ctx, response=data)
            raw = orjson.dumps(data)
    except asyncio.CancelledError:  # the client went away: release what the call holds (nginx's 499)
        finish(gw, ctx, "failure", 499)
        raise
    except GatewayError as exc:
        finish(gw, ctx, "blocked" if ctx.blocked_by else "failure", exc.status, error=exc)
        resp = _error(exc, ctx.request_id, adapter)
        _stamp(gw, ctx, resp)
        return resp
    rendered = adapter.from_chat(data, ctx) if adapter is not None else None
    finish(gw, ctx, "success", 200, response=_as_seen(data, rendered), usage=_usage_of(data))
    if plan is not None and hit is None:
        gw.cache.keep(plan, raw)
    if rendered is not None:
        await apis.stored(adapter, ctx, rendered)
        raw = orjson.dumps(rendered)
    resp = Response(raw, status=200, content_type="application/json")
    _stamp(gw, ctx, resp)
    return resp


async def _not_json(gw: Any, ctx: RequestContext, raw: bytes, content_type: str) -> Response:
    """A reply that is not JSON, relayed with the upstream's type: audio as it came (no text to
    judge), plain text (a transcription's `text`, `srt`, `vtt`) through `post_response` as
    `{"text": ...}`, so a reply guard sees it as it sees a JSON transcription's."""
    data = None
    if ctx.call_type in TEXT_REPLIES:
        data = {"text": raw.decode("utf-8", "replace")}
        if gw.dispatcher.runs("post_response", ctx):
            await gw.dispatcher.run_chain("post_response", ctx, response=data)
            raw = str(data.get("text") or "").encode()
    finish(gw, ctx, "success", 200, response=data)
    resp = Response(raw, status=200, content_type=content_type)
    _stamp(gw, ctx, resp)
    return resp


async def _call(gw: Any, ctx: RequestContext, call_type: str, body: dict[str, Any]) -> tuple[Any, bytes | None]:
    """The upstream call; a whole reply is read here (a stream is relayed later)."""
    reply = await gw.router.call(ctx, call_type, body, ctx.stream)
    if ctx.stream:
        return reply, None
    started = time.perf_counter()
    try:
        return reply, await reply.read()
    finally:
        ctx.upstream_seconds += time.perf_counter() - started


async def _call_during_guards(gw: Any, ctx: RequestContext, call_type: str,
                              body: dict[str, Any]) -> tuple[Any, bytes | None]:
    """`during_call` guardrails run while the upstream call does; the reply is held until they pass.
    A block cancels the upstream call (its connection is closed) and is what the client gets; an
    upstream failure is reported only once the guards have passed, so a block is never hidden."""
    guards = asyncio.ensure_future(gw.dispatcher.run_chain("during_call", ctx))
    call = asyncio.ensure_future(_call(gw, ctx, call_type, body))
    try:
        await asyncio.wait((guards, call), return_when=asyncio.FIRST_COMPLETED)
        await guards
        return await call
    finally:
        if not call.done():
            call.cancel()
        if not guards.done():
            guards.cancel()
        await asyncio.gather(guards, call, return_exceptions=True)
        if guards.done() and not guards.cancelled() and guards.exception() is not None:
            await _close_unused(call)


async def _close_unused(call: "asyncio.Future[Any]") -> None:
    """A reply that will not be relayed (a guard blocked): close it, so the upstream stops."""
    if call.done() and not call.cancelled() and call.exception() is None:
        reply, _ = call.result()
        await reply.close()


def _as_seen(reply: dict[str, Any], rendered: dict[str, Any] | None) -> dict[str, Any]:
    """The chat reply for the spend row, under the id the client saw (`resp_...`, `msg_...`), so
    that `/spend/logs?request_id=` finds it by that id."""
    seen = rendered.get("id") if isinstance(rendered, dict) else None
    return {**reply, "id": seen} if isinstance(seen, str) else reply


def _stamp(gw: Any, ctx: RequestContext, resp: Response, streaming: bool = False) -> None:
    for name, value in ctx.response_headers.items():
        resp.headers[name] = value
    ctx.headers_sent = streaming  # a stream's later hooks can no longer add headers
    resp.headers["x-gateway-overhead-ms"] = overhead_ms(ctx)
    if ctx.verdicts or streaming:
        names = gw.dispatcher.applied(ctx, streaming)
        if names:
            resp.headers["x-gateway-guardrails"] = ",".join(names)


def overhead_ms(ctx: RequestContext) -> str:
    total = time.perf_counter() - ctx.started
    return f"{max(0.0, total - ctx.upstream_seconds) * 1000:.3f}"


def finish(gw: Any, ctx: RequestContext, status: str, http_status: int, *, response: Any = None,
           usage: dict[str, Any] | None = None, error: Exception | None = None, estimated: bool = False) -> None:
    """Record how the call ended: hand the outcome to the `request_finished` observers."""
    gw.router.finished(ctx, usage, status == "success")
    if gw.dispatcher.has("request_finished"):
        outcome = Outcome(status=status, http_status=http_status, response=response, usage=usage,
                          usage_estimated=estimated, error=error, annotations=ctx.annotations)
        gw.dispatcher.finished(ctx, outcome)


def _cache_hit(gw: Any, ctx: RequestContext, data: bytes) -> tuple[Any, bytes | None]:
    """Answer from the cache: no upstream call. The group's first deployment stands for the
    model on the spend row (at no cost)."""
    ctx.cache_hit = True
    ctx.deployment = gw.router.group(ctx.model, ctx.principal)[0]
    ctx.response_headers["x-gateway-cache-hit"] = "True"
    reply = CachedReply(data)
    return reply, None if ctx.stream else data


def _stream_response(gw: Any, call: Call, ctx: RequestContext, reply: Any, wants_usage: bool, plan: Any = None,
                     adapter: Any = None) -> Response:
    hold = gw.dispatcher.holds_stream(ctx)
    encoder = adapter.encoder(ctx) if adapter is not None else None

    def on_end(status: str, error: GatewayError | None, assembler: streaming.Assembler) -> None:
        result = assembler.result() if assembler.first is not None else None
        if plan is not None and status == "success" and result is not None:
            gw.cache.keep(plan, result)
        # No error but not a success: the client went away mid-stream (nginx's 499).
        http_status = 200 if status == "success" else (error.status if error else 499)
        if result is not None and getattr(encoder, "reply_id", None):
            result = {**result, "id": encoder.reply_id}  # the id the client saw, for the spend row
        finish(gw, ctx, status, http_status, response=result, usage=assembler.usage, error=error,
               estimated=assembler.usage_estimated)
        gw.access_log.stream_finished(ctx, http_status)
        if encoder is not None and status == "success" and hasattr(adapter, "stored"):
            apis.keep_after_stream(adapter, ctx, encoder)

    events = streaming.relay(ctx, reply, gw.dispatcher, chat=ctx.call_type == "acompletion",
                             client_wants_usage=wants_usage or encoder is not None, hold=hold, finish=on_end,
                             encoder=encoder)
    resp = Response(events, status=200, content_type="text/event-stream")
    resp.headers["cache-control"] = "no-cache"
    _stamp(gw, ctx, resp, streaming=True)
    call.streaming = True
    return resp
