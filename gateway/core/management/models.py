"""`/model/new`, `/model/update`, `/model/delete`: models added at runtime (LiteLLM's routes).

With `general_settings.store_model_in_db: true` (or `STORE_MODEL_IN_DB=True`), a model is checked
the way a `model_list` entry is (a 400 naming the key, never stored when invalid), stored in
`proxy_models` with its credentials encrypted (`model_store`), and served by every worker and
instance without a restart: the change goes out as a `model` invalidation (a file between workers,
Redis between instances), on which each router re-reads that row off the request path. Each
router also reads every stored model at start-up and once per `user_api_key_cache_ttl` (so a
missed message is made good). Models from the config file cannot be changed here.

Proxy admins manage every stored model. A team admin may add, change and delete models of their
own team (`model_info.team_id`): as LiteLLM does, the model is stored under an internal name
(`model_name_<team>_<uuid>`) and called by its public name (`model_info.team_public_model_name`)
by that team's keys only; the name joins the team's `models` when the team lists any (ours: a
team allowed every model is not narrowed to it).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any, AsyncIterator

from pydantic import BaseModel, Field
from quart import Blueprint, current_app, g, request
from quart_schema import document_request, document_response, tag_blueprint
from tortoise.exceptions import IntegrityError

from gateway.core import model_store
from gateway.core.db.models import ProxyModel, Team
from gateway.core.management.common import caller_id, check_query, iso, read_body, record_change
from gateway.core.providers.deployment import DeploymentError
from gateway.core.route_groups import MANAGEMENT, declare
from gateway.errors import BadRequestError, NotFoundError, PermissionDeniedError

bp = declare(Blueprint("models", __name__), MANAGEMENT)
bp.before_request(check_query)
tag_blueprint(bp, ["Models"])

NOT_ENABLED = ("Set `'STORE_MODEL_IN_DB='True'` in your env to enable this feature "
               "(or general_settings.store_model_in_db: true in the config file).")


class NewBody(BaseModel):
    model_name: str = Field(min_length=1, max_length=255, description="The name clients call")
    litellm_params: dict[str, Any] = Field(description="As in model_list: model, api_base, api_key, ...")
    model_info: dict[str, Any] = Field(default_factory=dict, description="id (default: a new uuid), team_id, "
                                       "mode, access_groups, max_input_tokens, ...")


class UpdateBody(BaseModel):
    id: str | None = Field(None, description="The model's id (or model_info.id)")
    model_name: str | None = Field(None, min_length=1, max_length=255)
    litellm_params: dict[str, Any] | None = Field(None, description="Only the keys sent change; null removes one")
    model_info: dict[str, Any] | None = Field(None, description="Must hold `id` unless `id` is sent")


class DeleteBody(BaseModel):
    id: str = Field(min_length=1, max_length=255)


class StoredModelView(BaseModel):
    model_id: str
    model_name: str
    litellm_params: dict[str, Any] = Field(description="Without any credential")
    model_info: dict[str, Any]
    team_id: str | None
    created_at: str | None
    created_by: str | None
    updated_at: str | None
    updated_by: str | None


class Deleted(BaseModel):
    message: str


def view(row: ProxyModel, params: dict[str, Any], for_audit: bool = False) -> dict[str, Any]:
    """A stored model as a route (or, with `for_audit`, an audit row) shows it: never a credential."""
    show = model_store.audit_params if for_audit else model_store.public_params
    return {"model_id": row.model_id, "model_name": row.model_name, "litellm_params": show(params),
            "model_info": {**(row.model_info or {}), "id": row.model_id, "db_model": True},
            "team_id": row.team_id, "created_at": iso(row.created_at), "created_by": row.created_by,
            "updated_at": iso(row.updated_at), "updated_by": row.updated_by}


def _store() -> Any:
    gw = current_app.gateway
    if gw.router.stored is None:
        raise BadRequestError(NOT_ENABLED)
    return gw.router.stored


def _is_team_admin(team_id: str) -> bool:
    principal = g.principal
    records = principal.extra.get("records") or ()
    team = records[1] if len(records) > 1 else None
    uid = principal.user_id
    if principal.team_id != team_id or team is None or not uid:
        return False
    return uid in (team.admins or []) or any(
        isinstance(m, dict) and m.get("role") == "admin" and m.get("user_id") == uid for m in team.members_with_roles or [])


def _admin_or_team_admin() -> None:
    """Before reading the body: a key that is neither a proxy admin nor a team admin is refused."""
    principal = g.principal
    if not principal.is_admin and not (principal.team_id and _is_team_admin(principal.team_id)):
        raise PermissionDeniedError(f"Only proxy admin can access this route. Route={request.path}")


def _may_manage(team_id: Any) -> None:
    """Proxy admins manage every stored model; a team admin, their team's."""
    if g.principal.is_admin:
        return
    if isinstance(team_id, str) and team_id and _is_team_admin(team_id):
        return
    if team_id:
        raise PermissionDeniedError(f"Only a proxy admin or an admin of team {team_id} can manage its models. "
                                    f"Route={request.path}")
    raise PermissionDeniedError(f"Only proxy admin can access this route. Route={request.path}")


def _checked(model_name: str, params: dict[str, Any], info: dict[str, Any]) -> None:
    """The deployment the router would serve, or a 400 naming the key (nothing stored)."""
    try:
        current_app.gateway.router.build(model_name, params, info)
    except DeploymentError as exc:
        message = str(exc)
        raise BadRequestError(message, param=message.split(":", 1)[0]) from None


def _encoded(store: Any, params: dict[str, Any]) -> str:
    try:
        return store.vault.encode(params)
    except model_store.ModelStoreError as exc:
        raise BadRequestError(str(exc), param="litellm_params") from None


async def _find(model_id: str) -> ProxyModel:
    gw = current_app.gateway
    if model_id in gw.router.config_ids:
        raise BadRequestError(f"Model id = {model_id} is defined in the config file (model_list): models from the "
                              "config file can only be changed there, not through the API. Add a model with "
                              "/model/new to manage it here.", param="id")
    row = await ProxyModel.get_or_none(model_id=model_id)
    if row is None:
        raise NotFoundError(f"Model with id={model_id} not found in db", param="id")
    return row


async def _team_models(team_id: str, add: str | None = None, drop: str | None = None) -> None:
    """Keep a team's `models` list naming its own models (only a team that lists models)."""
    team = await Team.get_or_none(team_id=team_id)
    if team is None or not team.models:
        return
    before = list(team.models)
    after = [m for m in before if m != drop]
    if add and add not in after:
        after.append(add)
    if after != before:
        await Team.filter(team_id=team_id).update(models=after)
        await record_change("team", "updated", team_id, {"models": before}, {"models": after})


@bp.post("/model/new")
@document_request(NewBody)
@document_response(StoredModelView)
async def model_new() -> Any:
    """Add a model (a deployment) at runtime; every worker and instance serves it at once."""
    _admin_or_team_admin()
    body, _ = await read_body(NewBody)
    info = dict(body.model_info)
    team_id = info.get("team_id")
    _may_manage(team_id)
    store = _store()
    gw = current_app.gateway
    model_id = str(info.pop("id", None) or uuid.uuid4())
    if model_id in gw.router.config_ids:
        raise BadRequestError(f"Model id = {model_id} already exists (in the config file)", param="model_info.id")
    model_name = body.model_name
    if team_id is not None:
        if not isinstance(team_id, str) or await Team.get_or_none(team_id=team_id) is None:
            raise BadRequestError(f"Team not found, passed team_id={team_id}", param="model_info.team_id")
        info["team_public_model_name"] = body.model_name
        model_name = f"model_name_{team_id}_{uuid.uuid4()}"
    _checked(model_name, body.litellm_params, {**info, "id": model_id})
    who = caller_id()
    try:
        row = await ProxyModel.create(model_id=model_id, model_name=model_name, model_info=info, team_id=team_id,
                                      litellm_params=_encoded(store, body.litellm_params), created_by=who,
                                      updated_by=who)
    except IntegrityError:
        raise BadRequestError(f"Model id = {model_id} already exists", param="model_info.id") from None
    if team_id is not None:
        await _team_models(team_id, add=body.model_name)
    await current_app.gateway.directory.changed("model", model_id)  # every router re-reads it
    await record_change("model", "created", model_id, None, view(row, body.litellm_params, for_audit=True))
    await gw.router.settle()
    return view(row, body.litellm_params)


@bp.post("/model/update")
@document_request(UpdateBody)
@document_response(StoredModelView)
async def model_update() -> Any:
    """Change a stored model: only what is sent changes (credentials kept unless sent)."""
    return await _update(None)


@bp.patch("/model/<model_id>/update")
@document_request(UpdateBody)
@document_response(StoredModelView)
async def model_patch(model_id: str) -> Any:
    """LiteLLM's other form of `/model/update`: the id in the path, the changes in the body."""
    return await _update(model_id)


async def _update(path_id: str | None) -> Any:
    _admin_or_team_admin()
    body, sent = await read_body(UpdateBody)
    model_id = path_id or body.id or (body.model_info or {}).get("id")
    if not isinstance(model_id, str) or not model_id:
        raise BadRequestError("model_info.id is required: the id of the model to update", param="model_info.id")
    row = await _find(model_id)
    _may_manage(row.team_id)
    store = _store()
    old_params = store.row(row).params if row.litellm_params else {}
    before = view(row, old_params, for_audit=True)
    params = dict(old_params)
    for name, value in (body.litellm_params or {}).items():
        if value is None:
            params.pop(name, None)
        else:
            params[name] = value
    info = dict(row.model_info or {})
    for name, value in (body.model_info or {}).items():
        if name == "id":
            continue
        if name == "team_id" and value != row.team_id:
            raise BadRequestError("model_info.team_id cannot be changed: delete the model and add it again",
                                  param="model_info.team_id")
        info[name] = value
    model_name, old_public = row.model_name, None
    if "model_name" in sent and body.model_name:
        if row.team_id:
            old_public = info.get("team_public_model_name")
            info["team_public_model_name"] = body.model_name
        else:
            model_name = body.model_name
    _checked(model_name, params, {**info, "id": model_id})
    row.model_name, row.model_info, row.updated_by = model_name, info, caller_id()
    row.litellm_params = _encoded(store, params)
    await row.save()
    if row.team_id and old_public != info.get("team_public_model_name"):
        await _team_models(row.team_id, add=body.model_name, drop=old_public)
    await current_app.gateway.directory.changed("model", model_id)
    await record_change("model", "updated", model_id, before, view(row, params, for_audit=True))
    await current_app.gateway.router.settle()
    return view(row, params)


@bp.post("/model/delete")
@document_request(DeleteBody)
@document_response(Deleted)
async def model_delete() -> Any:
    """Delete a stored model; every worker and instance stops serving it at once."""
    _admin_or_team_admin()
    body, _ = await read_body(DeleteBody)
    row = await _find(body.id)
    _may_manage(row.team_id)
    store = _store()
    before = view(row, store.row(row).params, for_audit=True)
    await ProxyModel.filter(model_id=body.id).delete()
    if row.team_id:
        await _team_models(row.team_id, drop=(row.model_info or {}).get("team_public_model_name"))
    await current_app.gateway.directory.changed("model", body.id)
    await record_change("model", "deleted", body.id, before, None)
    await current_app.gateway.router.settle()
    return {"message": f"Model: {body.id} deleted successfully"}


async def _refresh(gw: Any, every_s: float) -> None:
    """Read every stored model now and then: what a missed invalidation left out is made good."""
    while True:
        await asyncio.sleep(every_s)
        await gw.router.load_stored()


@bp.while_app_serving
async def serve_stored_models() -> AsyncIterator[None]:
    """Once the database is up: the stored models, their invalidations, the periodic re-read."""
    gw = current_app.gateway
    if not model_store.enabled(gw.settings):
        yield
        return
    gw.router.stored = model_store.Store(model_store.Vault(model_store.salt_key(gw.settings)))
    gw.directory.invalidator.listeners["model"] = gw.router.stored_changed
    await gw.router.load_stored()
    every = float(gw.settings.file.general_settings.get("user_api_key_cache_ttl") or 60.0)
    task = asyncio.get_running_loop().create_task(_refresh(gw, max(every, 1.0)))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    await gw.router.settle()
