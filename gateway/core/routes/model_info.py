"""`/model/info` and `/model_group/info`: what a key may call, described (LiteLLM's info routes).

`/model/info` (also under `/v1`) lists each deployment the caller may use: its group name, its
`litellm_params` as written minus every credential (the key, and userinfo or secret query values in
`api_base`), and its `model_info` with what the hub knows (mode, limits, prices, features).
`/model_group/info` lists each model group with the model hub's fields. A non-admin key sees only
the groups it may call; `?model=` (or `model_group=`) narrows to one.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, current_app, g, request
from quart_schema import tag_blueprint

from gateway.core.routes.llm import visible_models
from gateway.core.routes.model_hub import _describe, hub_entries

bp = Blueprint("model_info", __name__)
tag_blueprint(bp, ["Models"])


def _wanted(gw: Any) -> set[str]:
    names = set(visible_models(gw, g.principal))
    asked = request.args.get("model") or request.args.get("model_group")
    return names & {asked} if asked else names


@bp.get("/model/info")
@bp.get("/v1/model/info")
async def model_info() -> Any:
    """Each deployment the key may call: group, params without credentials, and model_info."""
    gw = current_app.gateway
    wanted = _wanted(gw)
    data = []
    for name, deployments in gw.router.groups.items():
        if name not in wanted:
            continue
        for dep in deployments:
            params = {"model": f"{dep.provider}/{dep.upstream_model}", "api_base": dep.display_base}
            if dep.api_version:
                params["api_version"] = dep.api_version
            info = {**dep.model_info, **_describe(gw, dep), "id": dep.id}
            data.append({"model_name": name, "litellm_params": params, "model_info": info})
    return {"data": data}


@bp.get("/model_group/info")
async def model_group_info() -> Any:
    """Each model group the key may call, with the model hub's fields."""
    gw = current_app.gateway
    wanted = _wanted(gw)
    return {"data": [e for e in hub_entries(gw) if e["model_group"] in wanted]}
