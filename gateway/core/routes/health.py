"""Health: liveness never touches the database or an upstream; readiness runs the checks
(`/health/readiness/details` and `/health/services` show each component, for admins); `/health`
probes each deployment the caller may use, the cheapest way its provider allows
(`gateway/core/health_probes.py`).
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, Field
from quart import Blueprint, current_app, g, request
from quart_schema import document_querystring, document_response, tag_blueprint
from tortoise import connections

import gateway
from gateway.context import AlertEvent
from gateway.core import health_probes as probes
from gateway.core.model_access import may_use
from gateway.core.route_groups import INFO, MANAGEMENT, PUBLIC, declare
from gateway.errors import AuthenticationError, BadRequestError, GatewayError

bp = declare(Blueprint("health", __name__), liveness=PUBLIC, readiness=PUBLIC, health=INFO,
             readiness_details=MANAGEMENT, health_services=MANAGEMENT)
tag_blueprint(bp, ["Health"])

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
    results = await probes.cached(gw, deps) if cached else await probes.probe_all(gw, deps)
    healthy, unhealthy = [], []
    for dep, (kind, error) in zip(deps, results):
        entry = _describe(dep, kind, error, admin=admin, details=details)
        (healthy if error is None else unhealthy).append(entry)
    return {"healthy_endpoints": healthy, "unhealthy_endpoints": unhealthy,
            "healthy_count": len(healthy), "unhealthy_count": len(unhealthy)}


def _may_use(gw: Any, principal: Any, name: str) -> bool:
    """An admin sees every group; another key the groups it may call."""
    return principal is None or principal.is_admin or may_use(gw, principal, name)


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
                               f"access models={list(principal.models)}. Tried to access {model}", param="model")


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
