"""`POST /config/reload` (admin): what `SIGHUP` does, with the outcome in the reply; `GET
/config/reload`: the last reload's outcome. The work is the supervisor's (`reload.py`)."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from quart import Blueprint, current_app, g
from quart_schema import document_response, tag_blueprint

from gateway.context import AuditEvent
from gateway.core.management.common import TABLE, caller_id, caller_key_hash
from gateway.core.reload import CHECK_TIMEOUT_S, ReloadStatus, reload_timeout
from gateway.core.route_groups import MANAGEMENT, declare
from gateway.core.supervisor import SUPERVISOR_ENV
from gateway.errors import BadRequestError, GatewayError, PermissionDeniedError

bp = declare(Blueprint("config_reload", __name__), MANAGEMENT)
tag_blueprint(bp, ["Gateway"])
FINAL = ("reloaded", "refused", "aborted")
POLL_S = 0.1


class ReloadOutcome(BaseModel):
    """One reload: `state` is `reloaded`, `refused` (the file has problems: `problems`) or
    `aborted` (a new worker did not start); the previous workers serve on in the last two."""

    model_config = ConfigDict(extra="allow")

    id: int = Field(description="Reloads since the gateway started (0: none yet)")
    state: str
    config: str | None = None
    sha256: str | None = Field(None, description="Digest of the config file this reload read")
    previous_sha256: str | None = None
    problems: list[str] | None = None
    workers: int | None = None


def _admin(path: str) -> None:
    if not g.principal.is_admin:
        raise PermissionDeniedError(f"Only proxy admin can access this route. Route={path}")


def _status() -> tuple[ReloadStatus, int]:
    status, supervisor = ReloadStatus.from_env(), os.environ.get(SUPERVISOR_ENV)
    if status is None or not supervisor:
        raise BadRequestError("this gateway cannot reload its config: it runs without the `gateway` command's "
                              "supervisor (an in-process server, or --server hypercorn); restart it to load a new config")
    return status, int(supervisor)


@bp.get("/config/reload")
@document_response(ReloadOutcome)
async def last_reload() -> Any:
    """The last config reload's outcome (admin only)."""
    _admin("/config/reload")
    status, _ = _status()
    return status.read()


@bp.post("/config/reload")
@document_response(ReloadOutcome)
async def reload_config() -> Any:
    """Re-read the config file, validate it, and swap every worker for one on it; or keep the
    running config and say why (400: the file's problems; 500: a new worker did not start)."""
    _admin("/config/reload")
    status, supervisor = _status()
    before = int(status.read().get("id") or 0)
    os.kill(supervisor, signal.SIGHUP)
    deadline = asyncio.get_running_loop().time() + CHECK_TIMEOUT_S + reload_timeout() + 30
    outcome = status.read()
    while not (int(outcome.get("id") or 0) > before and outcome.get("state") in FINAL):
        if asyncio.get_running_loop().time() > deadline:
            raise GatewayError("the config reload did not finish in time; GET /config/reload shows how it ended")
        await asyncio.sleep(POLL_S)
        outcome = await asyncio.to_thread(status.read)
    if outcome["state"] == "reloaded":  # the change, with which file was swapped for which
        current_app.gateway.audit(AuditEvent(
            action="updated", table_name=TABLE["config"], object_id=str(outcome.get("config") or "config"),
            changed_by=caller_id(), changed_by_api_key=caller_key_hash(),
            before_value={"sha256": outcome.get("previous_sha256")},
            updated_values={"sha256": outcome.get("sha256"), "workers": outcome.get("workers")}))
    if outcome["state"] == "refused":
        problems = outcome.get("problems") or []
        raise BadRequestError(f"config reload refused, still serving the previous config: {len(problems)} "
                              f"problem(s): " + "; ".join(problems))
    if outcome["state"] == "aborted":
        raise GatewayError("config reload aborted, still serving the previous config: "
                           + "; ".join(outcome.get("problems") or []))
    return outcome
