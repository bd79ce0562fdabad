"""Probing a deployment for `/health`: the cheapest way its provider allows, each within its timeout.

A probe is a models listing (`GET {api_base}/models` for the OpenAI family, Anthropic's and Cohere's
`/v1/models`, Gemini's model resource, Ollama's `/api/tags`), never a billed call, unless the
deployment asks for a call as LiteLLM configures one: `model_info.mode` (chat, completion, embedding)
or `model_info.health_check_model` make a 1-token call of that kind. A provider with no listing known
here gets its call URL fetched with its credentials: reachable, and the credentials not refused.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from quart import current_app

from gateway.core.providers import anthropic, cohere, gemini, ollama, openai_compatible
from gateway.core.providers.azure import AZURE_V1_VERSIONS, Azure
from gateway.core.providers.openai_family import OpenAICompatible
from gateway.core.router import upstream_error
from gateway.errors import GatewayError

DEFAULT_TIMEOUT_S = 60.0  # LiteLLM's HEALTH_CHECK_TIMEOUT_SECONDS
DEFAULT_INTERVAL_S = 300.0  # LiteLLM's health_check_interval
CALL_MODES = {"chat": "acompletion", "completion": "atext_completion", "embedding": "aembedding"}
#: Statuses that say a reachable endpoint refused the credentials or failed (the generic probe).
REFUSED = frozenset({401, 403, 407})


async def cached(gw: Any, deps: list[Any]) -> list[tuple[str, str | None]]:
    """`background_health_checks: true`: results are reused for `health_check_interval` seconds, so
    that `/health` polled often does not reach each upstream each time (kept per app)."""
    interval = float(gw.settings.file.general_settings.get("health_check_interval") or DEFAULT_INTERVAL_S)
    stamp, known = current_app.extensions.get("health_results", (0.0, {}))
    if time.monotonic() - stamp > interval:
        known = {}
    missing = [d for d in deps if d.id not in known]
    if missing:
        for dep, result in zip(missing, await probe_all(gw, missing)):
            known[dep.id] = result
        if not stamp or time.monotonic() - stamp > interval:
            stamp = time.monotonic()
        current_app.extensions["health_results"] = (stamp, known)
    return [known[d.id] for d in deps]


async def probe_all(gw: Any, deps: list[Any]) -> list[tuple[str, str | None]]:
    general = gw.settings.file.general_settings
    limit = asyncio.Semaphore(int(general.get("health_check_concurrency") or 100))

    async def one(dep: Any) -> tuple[str, str | None]:
        async with limit:
            return await _probe(gw, dep, _timeout_of(dep, general))

    return list(await asyncio.gather(*(one(d) for d in deps)))


def _timeout_of(dep: Any, general: dict[str, Any]) -> float:
    for value in (dep.model_info.get("health_check_timeout"), general.get("health_check_timeout"),
                  os.environ.get("HEALTH_CHECK_TIMEOUT_SECONDS")):
        try:
            if value is not None and float(value) > 0:
                return float(value)
        except (TypeError, ValueError):
            continue
    return DEFAULT_TIMEOUT_S


async def _probe(gw: Any, dep: Any, timeout: float) -> tuple[str, str | None]:
    """(the probe used, None when healthy or why not)."""
    if dep.provider == "fake" or dep.handler is None:
        return "none", None
    info = dep.model_info or {}
    mode = info.get("mode")
    kind = "call" if info.get("health_check_model") or mode in CALL_MODES else "models"
    try:
        async with asyncio.timeout(timeout):
            if dep.handler.prepare is not None:  # a credential to fetch first (Entra ID, Vertex)
                await dep.handler.prepare(dep, "acompletion")
            if kind == "call":
                return kind, await _call(gw, dep, CALL_MODES.get(mode, "acompletion"))
            return await _listing(gw, dep, timeout)
    except TimeoutError:
        return kind, f"Health check timed out after {timeout:g}s"
    except GatewayError as exc:
        return kind, exc.message
    except Exception as exc:
        return kind, openai_compatible.map_transport_error(exc, dep).message


async def _call(gw: Any, dep: Any, call_type: str) -> str | None:
    """A 1-token call (LiteLLM's health check), to `health_check_model` when set."""
    target = dep.model_info.get("health_check_model")
    if isinstance(target, str) and target:
        prefix = f"{dep.provider}/"
        dep = dataclasses.replace(dep, upstream_model=target[len(prefix):] if target.startswith(prefix) else target)
    max_tokens = int(dep.model_info.get("health_check_max_tokens") or 1)
    body: dict[str, Any] = {
        "acompletion": {"messages": [{"role": "user", "content": "ping"}], "max_tokens": max_tokens},
        "atext_completion": {"prompt": "ping", "max_tokens": max_tokens},
        "aembedding": {"input": ["ping"]},
    }[call_type]
    reply = await openai_compatible.send(gw.router.upstreams, dep, call_type, body, False)
    data = await reply.read()
    return upstream_error(dep, reply.status, data).message if reply.status >= 400 else None


def _minimal_request(dep: Any) -> Any:
    """The provider's own request for a tiny call: its URL and credential headers (never sent)."""
    types = dep.handler.call_types
    call = "acompletion" if "acompletion" in types else sorted(types)[0]
    body = {"model": dep.upstream_model, "messages": [{"role": "user", "content": "ping"}], "prompt": "ping",
            "input": ["ping"], "max_tokens": 1}
    body = {k: v for k, v in body.items() if k in {"acompletion": ("model", "messages", "max_tokens"),
                                                   "atext_completion": ("model", "prompt", "max_tokens"),
                                                   "aembedding": ("model", "input")}[call]}
    return dep.handler.build_request(dep, call, body, False)


def _listing_url(dep: Any, call_url: str) -> str | None:
    """Where the provider lists models (or describes this one); None: none known here."""
    handler = getattr(dep.handler, "parent", dep.handler)  # the Responses bridge serves its parent's family
    if isinstance(handler, Azure):
        base = handler.base(dep)
        if dep.api_version in AZURE_V1_VERSIONS:
            return f"{base}/openai/v1/models"
        return f"{base}/openai/models?api-version={dep.api_version}"
    if isinstance(handler, OpenAICompatible):  # `{api_base}/models`, keeping a query (`?api-version=`)
        parts = urlsplit(dep.api_base)
        return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/models"))
    if isinstance(handler, anthropic.Anthropic):
        return anthropic.messages_url(dep.api_base)[: -len("/messages")] + "/models"
    if isinstance(handler, cohere.Cohere):
        return cohere.base_url(dep.api_base) + "/v1/models"
    if isinstance(handler, ollama.Ollama):
        return ollama.base_url(dep.api_base) + "/api/tags"
    if isinstance(handler, gemini.Gemini):  # the model's own resource: models/{model}
        path, sep, query = call_url.partition("?")
        head, colon, _ = path.rpartition(":")
        return (head if colon and "/models/" in head else path) + sep + query
    return None


async def _listing(gw: Any, dep: Any, timeout: float) -> tuple[str, str | None]:
    custom = getattr(dep.handler, "health_probe", None)  # a provider distribution may offer its own
    req = custom(dep) if callable(custom) else _minimal_request(dep)
    url = req.url if callable(custom) else _listing_url(dep, req.url)
    kind = "models" if url is not None else "endpoint"
    url = url or req.url
    headers = {k: v for k, v in req.headers.items() if k.lower() != "content-type"}
    verify = openai_compatible.tls_of(dep)
    client = gw.router.pool.get(url, True if verify is True else verify)
    import httpx  # loaded with the pool above

    sent = client.build_request("GET", url, headers=headers, timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)))
    response = await client.send(sent, stream=True)
    try:
        data = await response.aread()
    finally:
        await response.aclose()
    status = response.status_code
    failed = status >= 400 if kind == "models" else (status in REFUSED or status >= 500)
    return kind, upstream_error(dep, status, data).message if failed else None
