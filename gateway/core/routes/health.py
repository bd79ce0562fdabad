"""Health: liveness never touches the database or an upstream; readiness runs the checks."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from quart import Blueprint, current_app
from quart_schema import document_response, tag_blueprint

import gateway

bp = Blueprint("health", __name__)
tag_blueprint(bp, ["Health"])


class Readiness(BaseModel):
    """Each check is `connected` or `unavailable: <error type>`; any unavailable one gives 503."""

    status: str
    version: str
    checks: dict[str, str]
    plugins: list[str]


@bp.get("/health/liveliness")
@bp.get("/health/liveness")
async def liveness() -> Any:
    """The process answers (the text `I'm alive!`); touches no database and no upstream."""
    return "I'm alive!"


@bp.get("/health/readiness")
@document_response(Readiness, 200)
@document_response(Readiness, 503)
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
