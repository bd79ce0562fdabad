"""`/model/info`, `/v2/model/info`, `/model_group/info`: what a key may call, described (LiteLLM's).

`/model/info` (also under `/v1`) lists each deployment the caller may use (its key's and its
team's models, access groups expanded): its group name, its `litellm_params` minus every
credential (`model_store.public_params`: keys, secrets, tokens, userinfo or secret query values in
`api_base`), and its `model_info` with its `id`, `db_model` (true for a model added with
`/model/new`) and what the hub knows (mode, limits, prices, features). `?litellm_model_id=` picks
one deployment (400 `Model id = <id> not found on litellm proxy` when the caller has none such),
`?model=` one group. `/v2/model/info` is the same list paginated (`page`, `size`), searchable
(`search`, `modelId`, `teamId`) and sortable (`sortBy`, `sortOrder`), as LiteLLM's v2.
`/model_group/info` lists each group with the model hub's fields plus its rpm/tpm, a wildcard
group also as each concrete name it serves. The routes for adding models are in
`management/models.py` (`models_bp`, mounted beside this blueprint).
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

from pydantic import BaseModel, Field
from quart import Blueprint, current_app, g, request
from quart_schema import document_querystring, document_response, tag_blueprint

from gateway.core.management.models import bp as models_bp
from gateway.core.model_access import may_use, visible_models
from gateway.core.model_store import public_params
from gateway.core.route_groups import INFO, declare
from gateway.core.routes.model_hub import _describe, hub_entries
from gateway.errors import BadRequestError

bp = declare(Blueprint("model_info", __name__), INFO)
tag_blueprint(bp, ["Models"])

__all__ = ["bp", "models_bp"]


class InfoQuery(BaseModel):
    litellm_model_id: str | None = Field(None, description="One deployment, by its model_info.id")
    model: str | None = Field(None, description="One model group")


class V2Query(BaseModel):
    model: str | None = None
    modelId: str | None = Field(None, description="One deployment, by its id")  # noqa: N815 (LiteLLM's name)
    teamId: str | None = Field(None, description="Only that team's models")  # noqa: N815
    search: str | None = Field(None, description="Part of the model name, any case")
    sortBy: str | None = Field(None, description="model_name, provider, mode, created_at or updated_at")  # noqa: N815
    sortOrder: str | None = Field(None, description="asc (default) or desc")  # noqa: N815
    page: int | None = Field(None, ge=1)
    size: int | None = Field(None, ge=1, le=1000)


class ModelInfoList(BaseModel):
    data: list[dict[str, Any]] = Field(description="{model_name, litellm_params (no credentials), model_info}")


class ModelInfoPage(ModelInfoList):
    total_count: int
    current_page: int
    total_pages: int
    size: int


def _entries(gw: Any, principal: Any) -> list[dict[str, Any]]:
    """Every deployment the caller may use, as LiteLLM's `/model/info` shapes it."""
    allowed = set(visible_models(gw, principal))
    data = []
    for name, deployments in gw.router.groups.items():
        shown = name
        team_name = deployments[0].model_info.get("team_public_model_name") if deployments else None
        if team_name and principal is not None and not principal.is_admin:
            shown = team_name  # the team's own model, by the name its keys call
        if shown not in allowed:
            continue
        for dep in deployments:
            params = public_params(dep.params)
            if dep.display_base:
                params["api_base"] = dep.display_base
            if dep.api_version:
                params["api_version"] = dep.api_version
            described = _describe(gw, dep)
            info = {**dep.model_info, **described, "id": dep.id, "db_model": bool(dep.model_info.get("db_model")),
                    "litellm_provider": dep.provider, "max_tokens": described.get("max_output_tokens")}
            data.append({"model_name": shown, "litellm_params": params, "model_info": info})
    return data


@bp.get("/model/info")
@bp.get("/v1/model/info")
@document_querystring(InfoQuery)
@document_response(ModelInfoList)
async def model_info() -> Any:
    """Each deployment the key may call: group, params without credentials, and model_info."""
    gw = current_app.gateway
    data = _entries(gw, g.principal)
    wanted_id = request.args.get("litellm_model_id")
    if wanted_id:
        data = [d for d in data if d["model_info"]["id"] == wanted_id]
        if not data:
            raise BadRequestError(f"Model id = {wanted_id} not found on litellm proxy", param="litellm_model_id")
    asked = request.args.get("model") or request.args.get("model_group")
    if asked:
        data = [d for d in data if d["model_name"] == asked]
    return {"data": data}


def _int_arg(name: str, default: int, top: int) -> int:
    try:
        value = int(request.args.get(name, default))
    except ValueError:
        raise BadRequestError(f"{name} must be a whole number", param=name) from None
    if not 1 <= value <= top:
        raise BadRequestError(f"{name} must be between 1 and {top}", param=name)
    return value


SORT_KEYS = {"model_name": lambda d: d["model_name"], "provider": lambda d: d["model_info"].get("litellm_provider") or "",
             "mode": lambda d: d["model_info"].get("mode") or "",
             "created_at": lambda d: d["model_info"].get("created_at") or "",
             "updated_at": lambda d: d["model_info"].get("updated_at") or ""}


@bp.get("/v2/model/info")
@document_querystring(V2Query)
@document_response(ModelInfoPage)
async def model_info_v2() -> Any:
    """`/model/info` paginated, searchable and sortable (LiteLLM's v2)."""
    gw = current_app.gateway
    data = _entries(gw, g.principal)
    args = request.args
    if args.get("model"):
        data = [d for d in data if d["model_name"] == args["model"]]
    model_id = args.get("modelId") or args.get("litellm_model_id")
    if model_id:
        data = [d for d in data if d["model_info"]["id"] == model_id]
    if args.get("teamId"):
        data = [d for d in data if d["model_info"].get("team_id") == args["teamId"]]
    if args.get("search"):
        needle = args["search"].lower()
        data = [d for d in data if needle in d["model_name"].lower()]
    sort_by = args.get("sortBy")
    if sort_by:
        if sort_by not in SORT_KEYS:
            raise BadRequestError(f"sortBy must be one of: {', '.join(SORT_KEYS)}", param="sortBy")
        order = (args.get("sortOrder") or "asc").lower()
        if order not in ("asc", "desc"):
            raise BadRequestError("sortOrder must be asc or desc", param="sortOrder")
        data.sort(key=SORT_KEYS[sort_by], reverse=order == "desc")
    page, size = _int_arg("page", 1, 1_000_000), _int_arg("size", 50, 1000)
    total = len(data)
    return {"data": data[(page - 1) * size: page * size], "total_count": total, "current_page": page,
            "total_pages": math.ceil(total / size), "size": size}


def _limit_sum(deployments: list[Any], name: str) -> int | None:
    """A group's rpm or tpm: the sum of its deployments', when each has one."""
    values = [d.params.get(name) for d in deployments]
    return sum(values) if values and all(isinstance(v, int) for v in values) else None


@bp.get("/model_group/info")
@document_response(ModelInfoList)
async def model_group_info() -> Any:
    """Each model group the key may call, with the model hub's fields, rpm and tpm; a wildcard
    group also as each concrete name it serves."""
    gw = current_app.gateway
    router = gw.router
    principal = g.principal
    groups: dict[str, list[Any]] = {}
    for name in router.names.listed(router.known_models):
        deps = router.groups.get(name) if name in router.groups else router.names.find(name)
        if not deps:
            continue
        owner = deps[0].model_info.get("team_id")
        if owner and principal is not None and not principal.is_admin:
            if principal.team_id != owner:
                continue
            name = deps[0].model_info.get("team_public_model_name") or name
        if may_use(gw, principal, name):
            groups[name] = deps
    asked = request.args.get("model_group") or request.args.get("model")
    if asked:
        groups = {n: d for n, d in groups.items() if n == asked}
    entries = hub_entries(SimpleNamespace(router=SimpleNamespace(groups=groups), prices=gw.prices))
    for entry in entries:
        deps = groups[entry["model_group"]]
        entry["rpm"] = _limit_sum(deps, "rpm")
        entry["tpm"] = _limit_sum(deps, "tpm")
        entry["model_ids"] = [d.id for d in deps]
    return {"data": entries}
