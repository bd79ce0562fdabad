"""Health: liveness never touches the database or an upstream; readiness runs the checks; `/health`
probes each deployment the cheapest way its provider allows.

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

import httpx
from pydantic import BaseModel, Field
from quart import Blueprint, current_app, g, request
from quart_schema import document_querystring, document_response, tag_blueprint
from tortoise import connections

import gateway
from gateway.builtins.virtual_keys import model_allowed
from gateway.context import AlertEvent
from gateway.core.providers import anthropic, cohere, gemini, ollama, openai_compatible
from gateway.core.providers.azure import AZURE_V1_VERSIONS, Azure
from gateway.core.providers.openai_family import OpenAICompatible
from gateway.core.router import upstream_error
from gateway.errors import AuthenticationError, BadRequestError, GatewayError

bp = Blueprint("health", __name__)
tag_blueprint(bp, ["Health"])

DEFAULT_TIMEOUT_S = 60.0  # LiteLLM's HEALTH_CHECK_TIMEOUT_SECONDS
DEFAULT_INTERVAL_S = 300.0  # LiteLLM's health_check_interval
CALL_MODES = {"chat": "acompletion", "completion": "atext_completion", "embedding": "aembedding"}
#: Statuses that say a reachable endpoint refused the credentials or failed (the generic probe).
REFUSED = frozenset({401, 403, 407})
SERVICES = ("database", "redis", "slack", "slack_budget_alerts")


class Readiness(BaseModel):
    """Each check is `connected` or `unavailable: <error type>`; any unavailable one gives 503.
    `db`, `cache` and `litellm_version` are LiteLLM's fields."""

    status: str
    db: str = Field(description="`connected` or `disconnected`")
    cache: str | None = Field(description="The response cache's type, or null when off")
    litellm_version: str = Field(description="The gateway's version (LiteLLM's field name)")
    version: str
    checks: dict[str, str]
    plugins: list[str]


class ReadinessDetails(BaseModel):
    """Readiness per component: database, Redis, the spend writer's queue, plugins."""

    status: str
    version: str
    components: dict[str, Any]


class HealthQuery(BaseModel):
    model: str | None = Field(None, description="One model group (or alias, or wildcard match) to check")
    model_id: str | None = Field(None, description="One deployment, by its model_info.id")


class Endpoint(BaseModel):
    """A deployment as `/health` shows it: never its key."""

    model_config = {"extra": "allow"}

    model: str = Field(description="The deployment's `litellm_params.model`")
    model_name: str | None = None
    model_id: str | None = None
    custom_llm_provider: str | None = None
    api_base: str | None = Field(None, description="Admins only")
    health_check: str | None = Field(None, description="The probe used: models, call, none, endpoint")
    error: str | None = Field(None, description="Why it is unhealthy (keys masked)")


class HealthReport(BaseModel):
    healthy_endpoints: list[Endpoint]
    unhealthy_endpoints: list[Endpoint]
    healthy_count: int
    unhealthy_count: int


class ServiceQuery(BaseModel):
    service: str = Field(description="One of: " + ", ".join(SERVICES))


class ServiceHealth(BaseModel):
    model_config = {"extra": "allow"}

    status: str
    message: str


@bp.get("/health/liveliness")
@bp.get("/health/liveness")
async def liveness() -> Any:
    """The process answers (the text `I'm alive!`); touches no database and no upstream."""
    return "I'm alive!"


async def _run_checks(gw: Any) -> tuple[bool, dict[str, str]]:
    results: dict[str, str] = {}
    healthy = True
    for name, check in gw.readiness_checks.items():
        try:
            await check()
            results[name] = "connected"
        except Exception as exc:
            healthy = False
            results[name] = f"unavailable: {type(exc).__name__}"
    return healthy, results


def _cache_type(gw: Any) -> str | None:
    if gw.cache is None:
        return None
    params = gw.settings.file.litellm_settings.get("cache_params") or {}
    return str(params.get("type") or "local")


@bp.get("/health/readiness")
@document_response(Readiness, 200)
@document_response(Readiness, 503)
async def readiness() -> Any:
    """Each readiness check (the database's, plugins' ...) must pass for a 200."""
    gw = current_app.gateway
    healthy, results = await _run_checks(gw)
    body = {"status": "healthy" if healthy else "unhealthy",
            "db": "connected" if results.get("database") == "connected" else "disconnected",
            "cache": _cache_type(gw), "litellm_version": gateway.__version__, "version": gateway.__version__,
            "checks": results, "plugins": [s.name for s in gw.host.ordered()]}
    return body, (200 if healthy else 503)


async def _timed(check: Any) -> tuple[str | None, float]:
    started = time.perf_counter()
    try:
        await check()
        error = None
    except Exception as exc:
        error = type(exc).__name__
    return error, round((time.perf_counter() - started) * 1000, 3)


async def _database(gw: Any) -> dict[str, Any]:
    error, ms = await _timed(gw.db.ping)
    try:
        dialect = connections.get("default").capabilities.dialect
    except Exception:
        dialect = None
    out = {"status": "connected" if error is None else "disconnected", "dialect": dialect,
           "url": gw.db.display_url, "latency_ms": ms}
    return {**out, "error": error} if error else out


async def _redis(gw: Any) -> dict[str, Any]:
    guard = gw.redis
    if guard is None:
        return {"status": "not_configured"}
    error, ms = await _timed(lambda: guard.call("health check", guard.client.ping))
    out = {"status": "connected" if error is None else "disconnected", "where": guard.where, "latency_ms": ms,
           "skipped_while_down": dict(guard.skipped)}
    return {**out, "error": error} if error else out


def _spend_writer(gw: Any) -> dict[str, Any]:
    writer = gw.spend_writer
    if writer is None:
        return {"status": "not_running"}
    task = getattr(writer, "_task", None)
    running = task is not None and not task.done()
    return {"status": "running" if running else "stopped", "queued": len(writer.queue),
            "max_queued": writer.max_queued, "written": writer.written, "lost": writer.lost,
            "failures": writer.failures, "repaired": writer.repaired}


@bp.get("/health/readiness/details")
@document_response(ReadinessDetails, 200)
@document_response(ReadinessDetails, 503)
async def readiness_details() -> Any:
    """Admin: each component's state (database, Redis, spend writer queue, plugins); 503 when a
    readiness check fails."""
    gw = current_app.gateway
    healthy, results = await _run_checks(gw)
    host = gw.host
    plugins = [{"name": s.name, "version": s.version, "distribution": s.distribution, "priority": s.priority,
                "enabled_by": s.enabled_by, "mode": s.mode, "on_error": s.on_error, "hooks": host.hooks_of(s),
                "running": s.instance is not None} for s in host.ordered()]
    components = {"database": await _database(gw), "redis": await _redis(gw), "spend_writer": _spend_writer(gw),
                  "plugins": plugins, "checks": results}
    body = {"status": "healthy" if healthy else "unhealthy", "version": gateway.__version__, "components": components}
    return body, (200 if healthy else 503)


# -- /health/services ---------------------------------------------------------------------------
@bp.get("/health/services")
@document_querystring(ServiceQuery)
@document_response(ServiceHealth)
async def health_services() -> Any:
    """Admin: check one connected service (`database`, `redis`, `slack`). `slack` sends a test
    alert, as LiteLLM does."""
    gw = current_app.gateway
    service = request.args.get("service")
    if not service:
        raise BadRequestError("Service must be specified.", param="service")
    if service not in SERVICES:
        raise BadRequestError(f"Service must be in list. Service={service} not in {list(SERVICES)}", param="service")
    if service == "database":
        error, ms = await _timed(gw.db.ping)
        return _service("Database", error, ms)
    if service == "redis":
        if gw.redis is None:
            raise _not_configured("redis", "REDIS_URL")
        error, ms = await _timed(lambda: gw.redis.call("health check", gw.redis.client.ping))
        return _service("Redis", error, ms)
    slot = gw.host.slots.get("slack_alerting")
    if slot is None or slot.instance is None:
        raise _not_configured("slack", "general_settings.alerting (with SLACK_WEBHOOK_URL)")
    config = slot.instance.config
    kinds = config.wanted_kinds() if hasattr(config, "wanted_kinds") else None
    kind = sorted(kinds)[0] if kinds else "test_alert"
    await slot.instance.alert(AlertEvent(kind=kind, message="This is a test slack alert message", level="info",
                                         details={"sent_by": "/health/services"}))
    return {"status": "success", "alert_types": list(getattr(config, "alert_types", None) or []),
            "message": "Mock Slack Alert sent, verify Slack Alert Received on your channel"}


def _service(name: str, error: str | None, ms: float) -> dict[str, Any]:
    if error is None:
        return {"status": "healthy", "message": f"{name} is healthy", "latency_ms": ms}
    return {"status": "unhealthy", "message": f"{name} is unavailable ({error})", "latency_ms": ms}


def _not_configured(service: str, where: str) -> GatewayError:
    return GatewayError(f'"{service}" not in proxy config: {where}. Unable to test this.', status=422,
                        type="bad_request_error", param="service")


# -- /health: the deployments -------------------------------------------------------------------
@bp.get("/health")
@document_querystring(HealthQuery)
@document_response(HealthReport)
async def health() -> Any:
    """Probe every deployment (the caller's, for a non-admin key) in parallel, each within its
    timeout; `?model=` or `?model_id=` checks one group or deployment."""
    gw = current_app.gateway
    principal = g.principal
    deps = _targets(gw, principal, request.args.get("model"), request.args.get("model_id"))
    general = gw.settings.file.general_settings
    details = general.get("health_check_details") is not False
    admin = principal is None or principal.is_admin
    cached = general.get("background_health_checks") in (True, "true", "True", "1")
    results = await _cached(gw, deps) if cached else await _probe_all(gw, deps)
    healthy, unhealthy = [], []
    for dep, (kind, error) in zip(deps, results):
        entry = _describe(dep, kind, error, admin=admin, details=details)
        (healthy if error is None else unhealthy).append(entry)
    return {"healthy_endpoints": healthy, "unhealthy_endpoints": unhealthy,
            "healthy_count": len(healthy), "unhealthy_count": len(unhealthy)}


def _may_use(gw: Any, principal: Any, name: str) -> bool:
    """A non-admin key sees the groups it may call (its own models, then its team's)."""
    if principal is None or principal.is_admin:
        return True
    names = gw.router.names
    for allowed in (principal.models, principal.extra.get("team_models") or []):
        if allowed and names.access_groups:
            allowed = names.expand(allowed)
        if not model_allowed(allowed, name):
            return False
    return True


def _targets(gw: Any, principal: Any, model: str | None, model_id: str | None) -> list[Any]:
    groups = gw.router.groups
    if model_id:
        found = [d for deps in groups.values() for d in deps
                 if d.id == model_id and _may_use(gw, principal, d.model_name)]
        if not found:
            raise GatewayError(f"Model with ID {model_id} not found", status=404, type="not_found_error",
                               param="model_id")
        return found
    if model:  # access is checked before existence, as on the LLM routes
        try:
            name, deps = gw.router.names.resolve(model, principal)
        except GatewayError:
            if not _may_use(gw, principal, model):
                raise _barred(principal, model) from None
            raise  # 400 naming the model
        if not (_may_use(gw, principal, model) or _may_use(gw, principal, name)):
            raise _barred(principal, model)
        return list(deps)
    return [d for name, deps in groups.items() if _may_use(gw, principal, name) for d in deps]


def _barred(principal: Any, model: str) -> AuthenticationError:
    return AuthenticationError("Authentication Error, API Key not allowed to access model. This token can only "
                               f"access models={principal.models}. Tried to access {model}", param="model")


def _describe(dep: Any, kind: str, error: str | None, *, admin: bool, details: bool) -> dict[str, Any]:
    safe = dep.describe()  # no key, api_base with credentials masked
    configured = dep.params.get("model") if isinstance(dep.params, dict) else None
    model = configured if configured and "*" not in configured else f"{dep.provider}/{dep.upstream_model}"
    if not details:  # `health_check_details: false`: LiteLLM's minimal form
        return {"model": model, "model_name": dep.model_name}
    out: dict[str, Any] = {"model": model, "model_name": dep.model_name, "model_id": safe["id"],
                           "custom_llm_provider": dep.provider, "health_check": kind}
    if admin:
        out["api_base"] = safe["api_base"]
    if error is not None:
        out["error"] = dep.redact(error)
    return out


async def _cached(gw: Any, deps: list[Any]) -> list[tuple[str, str | None]]:
    """`background_health_checks: true`: results are reused for `health_check_interval` seconds, so
    that `/health` polled often does not reach each upstream each time (kept per app)."""
    interval = float(gw.settings.file.general_settings.get("health_check_interval") or DEFAULT_INTERVAL_S)
    stamp, known = current_app.extensions.get("health_results", (0.0, {}))
    if time.monotonic() - stamp > interval:
        known = {}
    missing = [d for d in deps if d.id not in known]
    if missing:
        for dep, result in zip(missing, await _probe_all(gw, missing)):
            known[dep.id] = result
        if not stamp or time.monotonic() - stamp > interval:
            stamp = time.monotonic()
        current_app.extensions["health_results"] = (stamp, known)
    return [known[d.id] for d in deps]


async def _probe_all(gw: Any, deps: list[Any]) -> list[tuple[str, str | None]]:
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
    sent = client.build_request("GET", url, headers=headers, timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)))
    response = await client.send(sent, stream=True)
    try:
        data = await response.aread()
    finally:
        await response.aclose()
    status = response.status_code
    failed = status >= 400 if kind == "models" else (status in REFUSED or status >= 500)
    return kind, upstream_error(dep, status, data).message if failed else None
