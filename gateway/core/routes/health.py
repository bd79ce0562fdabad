"""Health: liveness never touches the database or an upstream; readiness runs the checks."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, current_app

import gateway

bp = Blueprint("health", __name__)


@bp.get("/health/liveliness")
@bp.get("/health/liveness")
async def liveness() -> Any:
    return "I'm alive!"


@bp.get("/health/readiness")
async def readiness() -> Any:
    """Each readiness check (the database's, plugins' ...) must pass for a 200."""
    gw = current_app.gateway
    results: dict[str, str] = {}
    healthy = True
    for name, check in gw.readiness_checks.items():
        try:
            await check()
            results[name] = "connected"
        except Exception as exc:
            healthy = False
            results[name] = f"unavailable: {type(exc).__name__}"
    body = {"status": "healthy" if healthy else "unhealthy", "version": gateway.__version__,
            "checks": results, "plugins": [s.name for s in gw.host.ordered()]}
    return body, (200 if healthy else 503)
