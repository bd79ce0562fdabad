"""The library HTTP clients: httpx (over aiohttp's transport, or its own pool) and aiohttp's sessions.

Plugins' `Gateway.http_client`, the health probes, Anthropic's token count and pass-through routes use
httpx's API; `GATEWAY_HTTP_TRANSPORT=aiohttp|httpx-aiohttp|httpx` puts the request path on these too.
Nothing imports this module until one of those is first used: a worker on the default transport
never loads httpx or aiohttp (12 MiB of RSS per worker, bench/README.md "Memory (`rss_after_100k`)").
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, AsyncIterator
from urllib.parse import urlsplit

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from gateway.core.providers.deployment import Deployment
from gateway.core.providers.openai_compatible import MappedReply, map_transport_error, tls_of


def timeout_verdict(exc: BaseException) -> bool | None:
    """Is this httpx or aiohttp failure a timeout (True), a connection error (False), or neither (None)?
    Never connected in time is a connection error: it is retried elsewhere."""
    if isinstance(exc, (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout)):
        return False
    if isinstance(exc, (TimeoutError, aiohttp.ServerTimeoutError, httpx.TimeoutException)):
        return True
    if isinstance(exc, (aiohttp.ClientConnectionError, httpx.TransportError)):
        return False
    return None


class HttpReply(MappedReply):
    """An upstream HTTP response, read whole or streamed; closing returns the connection."""

    __slots__ = ("response", "status", "headers", "deployment", "deadline")

    def __init__(self, response: httpx.Response, deployment: Deployment, deadline: float) -> None:
        self.response = response
        self.status = response.status_code
        self.headers = response.headers
        self.deployment = deployment
        self.deadline = deadline  # loop time by which the whole call must be done

    async def read(self) -> bytes:
        try:
            async with asyncio.timeout_at(self.deadline):
                return await self.response.aread()
        except Exception as exc:
            raise map_transport_error(exc, self.deployment) from None
        finally:
            await self.response.aclose()

    def _chunks(self) -> AsyncIterator[bytes]:
        return self.response.aiter_bytes()

    async def close(self) -> None:
        await self.response.aclose()


class ClientPool:
    """One pooled httpx client (aiohttp transport) per upstream scheme+host+port, reused.

    `transport="httpx"` uses httpx's own pool instead: kept only so the benchmark can show why not.
    """

    def __init__(self, max_connections: int = 1000, transport: str = "httpx-aiohttp") -> None:
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._max = max_connections
        self._transport = transport

    def get(self, url: str, verify: Any = True) -> httpx.AsyncClient:
        """`verify`: True, False, or an `ssl.SSLContext` (a deployment's `ssl_verify`)."""
        parts = urlsplit(url)
        key = f"{parts.scheme}://{parts.netloc}" + ("" if verify is True else f"#{id(verify) if verify else 'insecure'}")
        client = self._clients.get(key)
        if client is None:
            limits = httpx.Limits(max_connections=self._max, max_keepalive_connections=self._max)
            if self._transport == "httpx":
                client = httpx.AsyncClient(limits=limits, timeout=None, trust_env=False, verify=verify)
            else:
                client = httpx.AsyncClient(
                    transport=AiohttpTransport(limits=limits, trust_env=False, verify=verify), timeout=None,
                    trust_env=False,
                )
            self._clients[key] = client
        return client

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for c in clients:
            await c.aclose()


class SessionReply(MappedReply):
    """An upstream reply on an aiohttp session, read whole or streamed; closing frees the connection."""

    __slots__ = ("response", "status", "headers", "deployment", "deadline")

    def __init__(self, response: aiohttp.ClientResponse, deployment: Deployment, deadline: float | None) -> None:
        self.response = response
        self.status = response.status
        self.headers = response.headers
        self.deployment = deployment
        self.deadline = deadline

    async def read(self) -> bytes:
        try:
            if self.deadline is None:  # aiohttp's own total timeout bounds the read
                return await self.response.read()
            async with asyncio.timeout_at(self.deadline):
                return await self.response.read()
        except Exception as exc:
            raise map_transport_error(exc, self.deployment) from None
        finally:
            self.response.release()

    def _chunks(self) -> AsyncIterator[bytes]:
        return self.response.content.iter_any()

    async def close(self) -> None:
        self.response.release()


class SessionPool:
    """One aiohttp session (its own connection pool) per upstream scheme+host+port, reused."""

    def __init__(self, max_connections: int = 1000) -> None:
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._max = max_connections

    def get(self, url: str) -> aiohttp.ClientSession:
        parts = urlsplit(url)
        key = f"{parts.scheme}://{parts.netloc}"
        session = self._sessions.get(key)
        if session is None:
            connector = aiohttp.TCPConnector(limit=self._max, limit_per_host=self._max, keepalive_timeout=60)
            session = aiohttp.ClientSession(connector=connector, trust_env=False, skip_auto_headers=("User-Agent",))
            self._sessions[key] = session
        return session

    async def close(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for s in sessions:
            await s.close()


@functools.lru_cache(maxsize=64)
def _client_timeout(timeout: float, stream: bool) -> aiohttp.ClientTimeout:
    """aiohttp's timeout for a deployment's `timeout`: one object per value, not one per call.
    A stream: `timeout` for each wait on the next bytes; else for the whole call, body included."""
    if stream:
        return aiohttp.ClientTimeout(total=None, sock_connect=min(timeout, 10.0), sock_read=timeout)
    return aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, 10.0))


async def send_httpx(pool: ClientPool, dep: Deployment, url: str, headers: dict[str, str], content: bytes,
                      timeout: float, deadline: float) -> HttpReply:
    verify = tls_of(dep)
    client = pool.get(url, True if verify is True else verify)
    request = client.build_request(
        "POST", url, headers=headers, content=content,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
    )
    try:
        async with asyncio.timeout_at(deadline):
            response = await client.send(request, stream=True)
    except Exception as exc:
        raise map_transport_error(exc, dep) from None
    return HttpReply(response, dep, deadline)


async def send_on_session(pool: SessionPool, dep: Deployment, url: str, headers: dict[str, str], content: bytes,
                          stream: bool, timeout: float, deadline: float) -> SessionReply:
    session = pool.get(url)
    try:
        if stream:  # `timeout` until the headers, then for each wait for the next bytes
            async with asyncio.timeout_at(deadline):
                response = await session.post(url, data=content, headers=headers,
                                              timeout=_client_timeout(timeout, True), ssl=tls_of(dep))
        else:  # `timeout` for the whole call, body included: aiohttp's one timer does it (not three)
            response = await session.post(url, data=content, headers=headers,
                                          timeout=_client_timeout(timeout, False), ssl=tls_of(dep))
    except Exception as exc:
        raise map_transport_error(exc, dep) from None
    return SessionReply(response, dep, deadline if stream else None)
