"""`GET /guardrails/list`: the configured guardrails, for clients choosing which to switch on."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from quart import Blueprint, current_app, g
from quart_schema import document_response, tag_blueprint

from gateway.core.guardrails import documented_params

bp = Blueprint("guardrails", __name__)
tag_blueprint(bp, ["Guardrails"])


class GuardrailParamsOut(BaseModel):
    guardrail: str = Field(description="The plugin (entry-point name) this guardrail runs")
    mode: str | list[str] = Field(description="Its phases: pre_call, during_call, post_call, logging_only")
    default_on: bool


class GuardrailOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    guardrail_name: str = Field(description="The name requests, keys and teams use to switch it on or off")
    litellm_params: GuardrailParamsOut
    guardrail_info: dict[str, Any] = Field(description="What the config's guardrail_info says (LiteLLM's field)")
    plugin: str
    phases: list[str]
    default_on: bool
    params: list[dict[str, Any]] = Field(description="The plugin's documented settings: name, type, description")


class GuardrailList(BaseModel):
    guardrails: list[GuardrailOut]


@bp.get("/guardrails/list")
@document_response(GuardrailList)
async def guardrails_list() -> Any:
    """The configured guardrails: name, plugin, phases, default_on and the plugin's documented
    params (never their values). Admins also see each guardrail's verdict counts."""
    gw = current_app.gateway
    verdicts = gw.dispatcher.counters()["verdicts"] if g.principal is not None and g.principal.is_admin else None
    out = []
    for slot in gw.host.ordered():
        spec = slot.guardrail
        if spec is None:
            continue
        entry: dict[str, Any] = {
            "guardrail_name": spec.group,
            "litellm_params": {"guardrail": slot.plugin, "mode": spec.phases[0] if len(spec.phases) == 1
                               else list(spec.phases), "default_on": spec.default_on},
            "guardrail_info": spec.info,
            "plugin": slot.plugin, "phases": list(spec.phases), "default_on": spec.default_on,
            "params": documented_params(slot.cls.Config),
        }
        if spec.name != spec.group:
            entry["instance"] = spec.name
        if verdicts is not None:
            entry["verdicts"] = verdicts.get(spec.name, {})
        out.append(entry)
    return {"guardrails": out}
