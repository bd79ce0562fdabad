"""What the gateway is: the landing page, its routes, and its plugins (admin)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from quart import Blueprint, current_app, g
from quart_schema import document_response, tag_blueprint

import gateway
from gateway.core.openapi import OPENAPI_PATH
from gateway.core.route_groups import MANAGEMENT, PUBLIC, declare
from gateway.core.routes.docs import prefers_html, swagger_page
from gateway.errors import PermissionDeniedError

bp = declare(Blueprint("info", __name__), home=PUBLIC, routes=PUBLIC, plugins=MANAGEMENT)
tag_blueprint(bp, ["Gateway"])


class Landing(BaseModel):
    """What this server is and where to look next (browsers get Swagger UI instead)."""

    name: str
    version: str
    openapi: str
    docs: str | None
    redoc: str | None
    health: str
    models: str
    routes: str


class RouteInfo(BaseModel):
    path: str
    methods: list[str]
    endpoint: str


class RouteList(BaseModel):
    """Every route this gateway serves."""

    routes: list[RouteInfo]


class PluginList(BaseModel):
    """Installed and enabled plugins (`gateway plugins --json`), this worker's counters, hook order."""

    model_config = ConfigDict(extra="allow")

    installed: list[dict[str, Any]]
    enabled: list[dict[str, Any]] = Field(description="In run order, with knobs, hooks and why each is on")
    counters: dict[str, Any] = Field(description="Errors, blocks, monitored per plugin (this worker)")
    order: dict[str, list[str]] = Field(description="hook -> plugins, in the order they run")


@bp.get("/")
@document_response(Landing)
async def home() -> Any:
    """Swagger UI for a browser; this landing JSON for anything else (`Accept: application/json`)."""
    docs = current_app.gateway.docs
    if "/" in docs.swagger_paths and prefers_html():
        return swagger_page()
    return {"name": "gateway", "version": gateway.__version__, "openapi": OPENAPI_PATH,
            "docs": docs.swagger_paths[-1] if docs.swagger_paths else None, "redoc": docs.redoc_path,
            "health": "/health/liveliness", "models": "/v1/models", "routes": "/routes"}


@bp.get("/routes")
@document_response(RouteList)
async def routes() -> Any:
    """Every route this gateway serves, with its methods."""
    rules = []
    for rule in current_app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        methods = sorted(m for m in (rule.methods or ()) if m not in ("HEAD", "OPTIONS"))
        rules.append({"path": rule.rule, "methods": methods, "endpoint": rule.endpoint})
    rules.sort(key=lambda r: r["path"])
    return {"routes": rules}


@bp.get("/plugins")
@document_response(PluginList)
async def plugins() -> Any:
    """Installed and enabled plugins, their hooks and order (admin only)."""
    if not g.principal.is_admin:
        raise PermissionDeniedError("Only proxy admin can access this route. Route=/plugins")
    gw = current_app.gateway
    out = gw.host.describe()
    out["counters"] = gw.dispatcher.counters()
    out["limits"] = gw.limits.counters()  # where budget reservations and rate limits are counted; Redis fallbacks
    out["order"] = {hook: gw.dispatcher.plugins_for(hook) for hook in gw.dispatcher.chains}
    return out
