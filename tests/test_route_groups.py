"""Route-control groups are read off the app's routes, each declared where the route is defined
(issue 19): the groups a config names (`LiteLLMRoutes.management_routes`) hold what they held when
gateway/core/access.py listed them by hand, and a core route that declares no group stops the build."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from quart import Blueprint, Quart

from gateway.core.access import AccessPolicy, RouteConfigError
from gateway.core.route_groups import MANAGEMENT, MODEL_HUB, NAMED, PUBLIC, declare, derive

#: The groups as gateway/core/access.py listed them by hand, before they were derived.
LISTED: dict[str, set[str]] = {
    "public_routes": {"/", "/health/liveliness", "/health/liveness", "/health/readiness", "/routes", "/metrics",
                      "/openapi.json", "/docs", "/redoc", "/docs-assets/{name}", "/ui/", "/ui/static/{name}",
                      "/ui/login", "/ui/logout", "/ui/session"},
    "openai_routes": {
        *(f"{prefix}/{path}" for prefix in ("", "/v1") for path in ("chat/completions", "completions", "embeddings",
                                                                    "models")),
        "/models/{model}", "/v1/models/{model}",
        *(f"{form}/{path}" for form in ("/engines/{model}", "/openai/deployments/{model}")
          for path in ("chat/completions", "completions", "embeddings")),
        *(f"{prefix}/v1/messages{tail}" for prefix in ("", "/anthropic") for tail in ("", "/count_tokens")),
        *(f"{prefix}/responses{tail}" for prefix in ("", "/v1")
          for tail in ("", "/{response_id}", "/{response_id}/input_items")),
        *(f"{prefix}/{path}" for prefix in ("", "/v1")
          for path in ("images/generations", "audio/transcriptions", "audio/speech", "moderations", "rerank")),
        "/v2/rerank"},
    "info_routes": {"/key/info", "/team/info", "/user/info", "/model/info", "/v1/model/info", "/v2/model/info",
                    "/model_group/info", "/health", "/guardrails/list", "/guardrails/blocked", "/organization/info"},
    "management_routes": {
        *(f"/key/{a}" for a in ("generate", "update", "delete", "info", "list", "block", "unblock", "regenerate")),
        "/key/{key}/regenerate",
        *(f"/team/{a}" for a in ("new", "update", "delete", "info", "list", "block", "unblock", "member_add",
                                 "member_delete", "member_update")),
        "/v2/team/list",
        *(f"/user/{a}" for a in ("new", "info", "update", "delete", "unblock", "list")),
        *(f"/organization/{a}" for a in ("new", "update", "delete", "info", "list", "member_add", "member_update",
                                         "member_delete")),
        *(f"/model/{a}" for a in ("new", "update", "delete")), "/model/{model_id}/update",
        "/health/readiness/details", "/health/services",
        *(f"/{p}/{a}" for p in ("customer", "end_user") for a in ("new", "info", "update", "delete", "list", "block",
                                                                "unblock")),
        *(f"/budget/{a}" for a in ("new", "update", "info", "list", "delete")),
        "/audit", "/audit/verify", "/plugins", "/dead_letters", "/config/reload"},
    "spend_tracking_routes": {"/spend/logs", "/spend/tags", "/spend/keys", "/spend/users", "/spend/calculate",
                              "/spend/logs/ui", "/global/spend/logs", "/global/spend/keys", "/global/spend/teams",
                              "/global/spend/tags", "/global/spend/report", "/spend/daily"},
    "model_hub": {"/model_hub", "/public/model_hub"},
}


def shape(route: str) -> str:
    """`/key/<path:ref>/regenerate` and `/key/{key}/regenerate` alike: `/key/{}/regenerate`."""
    return re.sub(r"<[^>]+>|\{[^}]+\}", "{}", route)


def build(tmp_path: Any, monkeypatch: pytest.MonkeyPatch, general: dict[str, Any]) -> Any:
    from gateway.core.app import create_app, load

    monkeypatch.setenv("DATABASE_URL", f"sqlite://{tmp_path / 'gateway.db'}")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "general_settings": {"master_key": "sk-1234", **general},
        "litellm_settings": {"store_audit_logs": True, "callbacks": ["prometheus"]},
        "model_list": [{"model_name": "fake-gpt", "litellm_params": {"model": "fake/echo"}}],
    }))
    return create_app(load(str(path)))


@pytest.fixture(scope="module")
def groups(tmp_path_factory: pytest.TempPathFactory) -> dict[str, frozenset[str]]:
    with pytest.MonkeyPatch.context() as mp:
        return build(tmp_path_factory.mktemp("app"), mp, {}).gateway.access.groups


def test_the_derived_groups_hold_what_the_hand_lists_held(groups):
    derived = {name: {shape(r) for r in routes} for name, routes in groups.items()}
    for name, listed in LISTED.items():
        missing = {shape(r) for r in listed} - derived[name]
        assert not missing, f"{name} lost {sorted(missing)}"
    # Each route listed then is in the groups it was in then, and in no other.
    for route in {shape(r) for listed in LISTED.values() for r in listed}:
        then = sorted(name for name, listed in LISTED.items() if route in {shape(r) for r in listed})
        now = sorted(name for name, routes in derived.items() if route in routes)
        assert now == then, route
    # A public route needs no key: none joins the group without this list changing with it.
    assert derived[PUBLIC] == {shape(r) for r in LISTED[PUBLIC]}


def test_the_groups_follow_the_routes_where_they_are_mounted(tmp_path, monkeypatch):
    """The admin UI moved by `ui_path`, the docs by DOCS_URL, and the model hub made public: the
    public group is where the routes are."""
    monkeypatch.setenv("DOCS_URL", "/api-docs")
    app = build(tmp_path, monkeypatch, {"ui_path": "/console", "enable_public_model_hub": True})
    access = app.gateway.access
    public = {shape(r) for r in access.groups[PUBLIC]}
    assert {"/console/", "/console/login", "/console/static/{}", "/api-docs", "/model_hub",
            "/public/model_hub"} <= public
    assert not {"/ui/", "/ui/login", "/docs"} & public
    assert access.is_public("/console/static/app.js") and access.is_public("/api-docs")
    assert not access.is_public("/ui/login")  # not served here: nothing is public there


def test_a_config_names_groups_before_the_app_exists(tmp_path, monkeypatch):
    """`AccessPolicy` checks the lists' group names at once, and expands them once the routes are mounted."""
    with pytest.raises(RouteConfigError, match="unknown route group 'LiteLLMRoutes.nope'; known: "
                                               "LiteLLMRoutes.info_routes, LiteLLMRoutes.management_routes"):
        AccessPolicy({"admin_only_routes": ["LiteLLMRoutes.nope"]})
    app = build(tmp_path, monkeypatch, {"allowed_routes": ["LiteLLMRoutes.management_routes", "/chat/completions"],
                                        "admin_only_routes": ["GatewayRoutes.spend_tracking_routes"]})
    access = app.gateway.access
    assert access.allowed is not None and access.admin_only.matches("/global/spend/report")
    for path in ("/key/generate", "/key/someone/regenerate", "/team/member_add", "/chat/completions"):
        assert access.allowed.matches(path), path
    assert not access.allowed.matches("/v1/chat/completions")


def test_a_core_route_in_no_group_stops_the_build():
    app = Quart("t")
    bp = Blueprint("new_feature", __name__)

    @bp.get("/new/thing")
    async def thing() -> str:
        return "ok"

    @bp.get("/new/other")
    async def other() -> str:
        return "ok"

    thing.__module__ = other.__module__ = "gateway.core.routes.new_feature"  # as if the core defined them
    app.register_blueprint(bp)
    with pytest.raises(RuntimeError, match=r"/new/other \(new_feature.other\) is in no group; "
                                           r"/new/thing \(new_feature.thing\) is in no group$"):
        derive(app)
    declare(bp, other=PUBLIC)  # one view declared: the other is still in no group
    with pytest.raises(RuntimeError, match=r": /new/thing \(new_feature.thing\) is in no group$"):
        derive(app)
    declare(bp, MANAGEMENT, other=PUBLIC)
    found = derive(app)
    assert "/new/thing" in found[MANAGEMENT] and "/new/other" in found[MANAGEMENT]
    assert "/new/other" in found[PUBLIC] and "/new/thing" not in found[PUBLIC]
    assert sorted(found) == sorted([*NAMED, MODEL_HUB])
    declare(bp, MANAGEMENT, renamed=PUBLIC)  # a view that is not there: a stale or mistyped name
    with pytest.raises(RuntimeError, match="blueprint 'new_feature' declares groups for 'renamed', which serves no route"):
        derive(app)
    with pytest.raises(ValueError, match="unknown route group"):
        declare(bp, "management")
