"""What the gateway is: the landing page, its routes, and its plugins (admin)."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, current_app, g

import gateway
from gateway.errors import PermissionDeniedError

bp = Blueprint("info", __name__)


@bp.get("/")
async def home() -> Any:
    return {"name": "gateway", "version": gateway.__version__, "health": "/health/liveliness",
            "models": "/v1/models", "routes": "/routes"}


@bp.get("/routes")
async def routes() -> Any:
    rules = []
    for rule in current_app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        methods = sorted(m for m in (rule.methods or ()) if m not in ("HEAD", "OPTIONS"))
        rules.append({"path": rule.rule, "methods": methods, "endpoint": rule.endpoint})
    rules.sort(key=lambda r: r["path"])
    return {"routes": rules}


@bp.get("/plugins")
async def plugins() -> Any:
    if not g.principal.is_admin:
        raise PermissionDeniedError("Only proxy admin can access this route. Route=/plugins")
    gw = current_app.gateway
    out = gw.host.describe()
    out["counters"] = gw.dispatcher.counters()
    out["order"] = {hook: gw.dispatcher.plugins_for(hook) for hook in gw.dispatcher.chains}
    return out
