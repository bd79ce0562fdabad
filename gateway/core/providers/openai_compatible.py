"""Calls to any upstream that speaks the OpenAI wire format (OpenAI, Azure, vLLM, Groq, ...).

The request path calls upstreams with the gateway's own HTTP/1.1 client (`gateway.core.upstream_http`,
keep-alive connections per origin on httptools' parser): the benchmark (bench/README.md) showed
httpx's own pool as the bottleneck under concurrency (encode/httpx#3215), httpx's API layer over the
aiohttp transport costing about a fifth of the gateway's CPU, and aiohttp's client alone ~78 us per
call against ~26 (bench/upstream_client.py). Plugins get httpx's API over the aiohttp transport
(`Gateway.http_client`, `library_clients`); `GATEWAY_HTTP_TRANSPORT=aiohttp|httpx-aiohttp|httpx` puts
the request path on those, for comparison.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any, AsyncIterator

from gateway.core import upstream_http
from gateway.core.logsafe import capped_body, safe_headers
from gateway.core.providers.deployment import Deployment
from gateway.core.providers.urls import safe_url
from gateway.core.providers.translated import TranslatedReply
from gateway.errors import BadRequestError, UpstreamConnectionError, UpstreamTimeoutError

log = logging.getLogger("gateway.upstream")

LIBRARY_CLIENTS = frozenset({"aiohttp", "httpx", "httpx_aiohttp"})
CALL_NAMES = {"acompletion": "chat completions", "atext_completion": "text completions", "aembedding": "embeddings",
              "aimage_generation": "image generations", "atranscription": "audio transcriptions",
              "aspeech": "audio speech", "amoderation": "moderations", "arerank": "rerank"}


class MappedReply:
    """What every transport's reply shares: its stream's failures told as the client sees them."""

    __slots__ = ()
    deployment: Deployment

    def _chunks(self) -> AsyncIterator[bytes]:
        raise NotImplementedError

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._chunks():
                yield chunk
        except Exception as exc:
            raise map_transport_error(exc, self.deployment) from None


def _is_timeout(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, upstream_http.ConnectTimeout):  # never connected: a connection error, retried elsewhere
            return False
        if type(seen).__module__.partition(".")[0] in LIBRARY_CLIENTS:  # only they raise their own errors
            from gateway.core.providers.library_clients import timeout_verdict

            verdict = timeout_verdict(seen)
            if verdict is not None:
                return verdict
        elif isinstance(seen, TimeoutError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def map_transport_error(exc: BaseException, dep: Deployment) -> Exception:
    """A transport failure as the client should see it: which deployment, never its key."""
    where = f"{dep.model_name} ({dep.provider} at {dep.display_base})"
    if isinstance(exc, (UpstreamConnectionError, UpstreamTimeoutError)):
        return exc  # type: ignore[return-value]
    if _is_timeout(exc):
        return UpstreamTimeoutError(f"{dep.provider_display}Exception - Request timed out calling deployment {where}")
    detail = type(exc.__cause__ or exc).__name__
    return UpstreamConnectionError(f"{dep.provider_display}Exception - Connection error calling deployment {where}: {detail}")


_contexts: dict[str, ssl.SSLContext] = {}


def tls_of(dep: Deployment) -> Any:
    """How to check the upstream's certificate: True (the default), False (`ssl_verify: false`),
    or a context trusting the deployment's CA bundle (`ssl_verify: /path/ca.pem`)."""
    if dep.ssl_verify is None:
        return True
    if dep.ssl_verify is False:
        return False
    context = _contexts.get(dep.ssl_verify)
    if context is None:
        context = _contexts[dep.ssl_verify] = ssl.create_default_context(cafile=dep.ssl_verify)
    return context


#: Fields every provider takes: what is called, how, and for whom.
ALWAYS_TAKEN = frozenset({"model", "messages", "prompt", "input", "stream", "stream_options", "user",
                          "encoding_format"})


def _request_drop(body: dict[str, Any]) -> tuple[bool | None, Any]:
    """The request's own `drop_params` / `additional_drop_params` (LiteLLM reads both per request);
    they are the gateway's to read, never the upstream's."""
    drop = body.pop("drop_params", None) if "drop_params" in body else None
    extra = body.pop("additional_drop_params", None) if "additional_drop_params" in body else None
    return drop, extra


def _unsupported(dep: Deployment, call_type: str, body: dict[str, Any]) -> list[str]:
    supported = dep.handler.params_for(dep, call_type)
    if supported is None:
        return []
    return [k for k, v in body.items()
            if k not in supported and k not in ALWAYS_TAKEN and v is not None
            and not (k == "n" and v == 1) and not (k == "logprobs" and v is False)]


def build_request(dep: Deployment, call_type: str, body: dict[str, Any], stream: bool = False) -> tuple[str, dict[str, str], bytes]:
    """URL, headers and body bytes for one upstream call, in the deployment's provider's format.

    Fields the provider does not honour are refused with a 400 naming them, unless `drop_params` is
    on (the request's, else the deployment's, else `litellm_settings`'), which drops them: a
    client never believes a parameter was applied when it was not."""
    body = {**dep.defaults, **body} if dep.defaults else dict(body)
    body["model"] = dep.upstream_model
    request_drop, request_extra = _request_drop(body)
    dropped = (*dep.drop_params, *request_extra) if request_extra else dep.drop_params
    for name in dropped:
        body.pop(name, None)
    unsupported = _unsupported(dep, call_type, body)
    if unsupported:
        if not (dep.drop_unsupported if request_drop is None else request_drop):
            raise BadRequestError(
                f"{dep.provider_display}Exception - {dep.provider} does not support parameters: "
                f"{', '.join(sorted(unsupported))}, for model={dep.upstream_model}. To drop these, set "
                "`drop_params: true` (in the request, the deployment's litellm_params or litellm_settings), "
                "or list them in `additional_drop_params`", param=sorted(unsupported)[0])
        for name in unsupported:
            body.pop(name)
    if dep.extra_body:
        body.update(dep.extra_body)
        for name in dropped:
            body.pop(name, None)
    req = dep.handler.build_request(dep, call_type, body, stream)
    return req.url, req.headers, req.body


class DirectReply(MappedReply):
    """An upstream reply on the gateway's own client, read whole or streamed; closing frees the connection."""

    __slots__ = ("reply", "status", "headers", "deployment")

    def __init__(self, reply: upstream_http.Reply, deployment: Deployment) -> None:
        self.reply = reply
        self.status = reply.status
        self.headers = reply.headers
        self.deployment = deployment

    async def read(self) -> bytes:
        try:
            return await self.reply.read()
        except Exception as exc:
            raise map_transport_error(exc, self.deployment) from None

    def _chunks(self) -> AsyncIterator[bytes]:
        return self.reply.iter_bytes()

    async def close(self) -> None:
        await self.reply.close()


def _log_outgoing(url: str, headers: dict[str, str], content: bytes) -> None:
    if log.isEnabledFor(logging.DEBUG):  # credential-bearing headers masked, the body capped
        kind = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
        # A multipart body carries audio: its size is logged, never its bytes.
        shown = f"<{kind.split(';')[0]}, {len(content)} bytes>" if kind.startswith("multipart/") else capped_body(content)
        log.debug("POST Request Sent from gateway: POST %s headers=%s body=%s", safe_url(url),
                  safe_headers(headers), shown)


async def send(pool: Any, dep: Deployment, call_type: str, body: dict[str, Any], stream: bool,
               extra_headers: dict[str, str] | None = None) -> Any:
    """POST one call upstream; returns once the status and headers are in. `extra_headers` (a
    hook's, `ctx.upstream_headers`) are added where the request does not set the same name."""
    if call_type not in dep.handler.call_types:
        raise BadRequestError(f"{dep.provider_display}Exception - {dep.provider} does not serve {CALL_NAMES[call_type]} "
                              f"(deployment {dep.model_name})")
    prepare = dep.handler.prepare
    if prepare is not None:
        await prepare(dep, call_type)
    url, headers, content = build_request(dep, call_type, body, stream)
    if extra_headers:
        own = {k.lower() for k in headers}
        headers = {**{k: v for k, v in extra_headers.items() if k.lower() not in own}, **headers}
    _log_outgoing(url, headers, content)
    timeout = dep.stream_timeout if stream else dep.timeout
    deadline = asyncio.get_running_loop().time() + timeout
    if isinstance(pool, upstream_http.UpstreamPool):
        # `timeout` until the headers, then a stream's for each wait on the next bytes, else the whole call's
        try:
            direct = await pool.post(url, headers, content, verify=tls_of(dep), connect_timeout=min(timeout, 10.0),
                                     deadline=deadline, stream_idle=timeout if stream else None)
        except Exception as exc:
            raise map_transport_error(exc, dep) from None
        reply: Any = DirectReply(direct, dep)
    else:  # GATEWAY_HTTP_TRANSPORT=aiohttp|httpx-aiohttp|httpx: the library clients, loaded only then
        from gateway.core.providers import library_clients

        if isinstance(pool, library_clients.SessionPool):
            reply = await library_clients.send_on_session(pool, dep, url, headers, content, stream, timeout, deadline)
        else:
            reply = await library_clients.send_httpx(pool, dep, url, headers, content, timeout, deadline)
    return reply if dep.handler.passthrough else TranslatedReply(reply, dep, call_type, stream)


