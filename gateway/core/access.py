"""Route control: which routes need a key, which are admin only, which are exposed at all.

`general_settings.public_routes`, `admin_only_routes` and `allowed_routes` list paths or route
groups (`LiteLLMRoutes.public_routes`, also spelled `GatewayRoutes.public_routes`). A non-admin key
reaches the LLM routes, the info routes (their handlers show only the caller's own records) and the
spend routes (scoped to the caller); every other management route is admin only.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from gateway.errors import PermissionDeniedError

LLM_ROUTES = frozenset(
    f"{prefix}/{path}" for prefix in ("", "/v1") for path in ("chat/completions", "completions", "embeddings", "models")
) | frozenset({
    "/models/{model}", "/v1/models/{model}",
    *(f"{form}/{path}" for form in ("/engines/{model}", "/openai/deployments/{model}")
      for path in ("chat/completions", "completions", "embeddings")),
    # The other APIs (issue 16): Anthropic's Messages, OpenAI's Responses, images, audio,
    # moderations, and Cohere-style rerank.
    *(f"{prefix}/v1/messages{tail}" for prefix in ("", "/anthropic") for tail in ("", "/count_tokens")),
    *(f"{prefix}/responses{tail}" for prefix in ("", "/v1")
      for tail in ("", "/{response_id}", "/{response_id}/input_items")),
    *(f"{prefix}/{path}" for prefix in ("", "/v1")
      for path in ("images/generations", "audio/transcriptions", "audio/speech", "moderations", "rerank")),
    "/v2/rerank",
})

# Public only with `general_settings.enable_public_model_hub: true`; admin only otherwise.
MODEL_HUB_ROUTES = frozenset({"/model_hub", "/public/model_hub"})

GROUPS: dict[str, frozenset[str]] = {
    "public_routes": frozenset({"/", "/health/liveliness", "/health/liveness", "/health/readiness", "/routes",
                                "/metrics", "/openapi.json", "/docs", "/redoc", "/docs-assets/{name}"}),
    # Issue 15's routes are listed here ahead of their handlers (a path with no handler is a 404).
    "openai_routes": LLM_ROUTES,
    "info_routes": frozenset({"/key/info", "/team/info", "/user/info", "/model/info", "/v1/model/info",
                              "/v2/model/info", "/model_group/info", "/health", "/guardrails/list",
                              "/organization/info"}),
    "management_routes": frozenset({
        *(f"/key/{a}" for a in ("generate", "update", "delete", "info", "list", "block", "unblock", "regenerate")),
        *(f"/team/{a}" for a in ("new", "update", "delete", "info", "list", "block", "unblock", "member_add",
                                 "member_delete", "member_update")),
        *(f"/user/{a}" for a in ("new", "info", "update", "delete", "unblock", "list")),
        *(f"/organization/{a}" for a in ("new", "update", "delete", "info", "list", "member_add", "member_update",
                                         "member_delete")),
        *(f"/model/{a}" for a in ("new", "update", "delete")), "/model/{model_id}/update",
        "/health/readiness/details", "/health/services",
        *(f"/{p}/{a}" for p in ("customer", "end_user") for a in ("new", "info", "update", "delete", "list",
                                                                "block", "unblock")),
        *(f"/budget/{a}" for a in ("new", "update", "info", "list", "delete")),
        "/audit", "/plugins", "/dead_letters", "/config/reload",
    }),
    "spend_tracking_routes": frozenset({"/spend/logs", "/spend/tags", "/spend/keys", "/spend/users",
                                        "/spend/calculate", "/spend/logs/ui", "/global/spend/logs",
                                        "/global/spend/keys", "/global/spend/teams", "/global/spend/tags",
                                        "/global/spend/report"}),
}
GROUP_PREFIXES = ("LiteLLMRoutes.", "GatewayRoutes.")


def hub_is_public(general: dict[str, Any]) -> bool:
    """`general_settings.enable_public_model_hub`: true (or "true" through `os.environ/...`)."""
    value = general.get("enable_public_model_hub")
    return value is True or (isinstance(value, str) and value.strip().lower() in ("true", "1", "yes"))


class RouteConfigError(ValueError):
    """A route list names an unknown group or is not a list of strings."""


def _template_regex(route: str) -> re.Pattern[str] | None:
    """`/a/{x}/b` or `/a/<path:x>/b` as a regex; None for a plain path."""
    if "{" not in route and "<" not in route:
        return None
    parts = re.split(r"(\{[^}]+\}|<[^>]+>)", route)
    pattern = "".join(
        (".+" if p.startswith("<path:") else "[^/]+") if p.startswith(("{", "<")) else re.escape(p) for p in parts
    )
    return re.compile(f"^{pattern}$")


class RouteSet:
    """Paths and templates; `matches(path)` is a set look-up for plain paths."""

    def __init__(self, routes: Iterable[str]) -> None:
        self.plain: set[str] = set()
        self.templates: list[re.Pattern[str]] = []
        for r in routes:
            self.add(r)

    def add(self, route: str) -> None:
        regex = _template_regex(route)
        if regex is None:
            self.plain.add(route.rstrip("/") or "/")
        else:
            self.templates.append(regex)

    def matches(self, path: str) -> bool:
        if path in self.plain or (path.rstrip("/") or "/") in self.plain:
            return True
        return any(t.match(path) for t in self.templates)

    def __bool__(self) -> bool:
        return bool(self.plain or self.templates)


def expand(setting: str, value: Any, groups: dict[str, frozenset[str]] = GROUPS) -> list[str]:
    """A route list from the config, with group names expanded; unknown groups are an error."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RouteConfigError(f"general_settings.{setting}: must be a list of routes (strings)")
    out: list[str] = []
    for item in value:
        prefix = next((p for p in GROUP_PREFIXES if item.startswith(p)), None)
        if prefix is None:
            out.append(item if item.startswith("/") else "/" + item)
            continue
        group = item[len(prefix):]
        if group not in groups:
            raise RouteConfigError(
                f"general_settings.{setting}: unknown route group {item!r}; known: "
                + ", ".join(f"{prefix}{g}" for g in sorted(groups))
            )
        out.extend(sorted(groups[group]))
    return out


class AccessPolicy:
    """The route rules of one gateway, built once from `general_settings`."""

    def __init__(self, general: dict[str, Any], extra_public: Iterable[str] = ()) -> None:
        """`extra_public`: routes public in this gateway only (the docs pages moved by DOCS_URL /
        REDOC_URL), which join the public group wherever a route list names it."""
        public = GROUPS["public_routes"] | frozenset(extra_public)
        if hub_is_public(general):  # the hub joins the public group
            public |= MODEL_HUB_ROUTES
        groups = {**GROUPS, "public_routes": public}
        self.public = RouteSet([*groups["public_routes"], *expand("public_routes", general.get("public_routes"), groups)])
        self.admin_only = RouteSet(expand("admin_only_routes", general.get("admin_only_routes"), groups))
        allowed = general.get("allowed_routes")
        self.allowed = RouteSet(expand("allowed_routes", allowed, groups)) if allowed is not None else None
        self.llm = RouteSet(LLM_ROUTES)
        self.info = RouteSet(GROUPS["info_routes"])
        self.spend = RouteSet(GROUPS["spend_tracking_routes"])
        # Management routes whose handlers decide who may call them (a team admin adds its team's models).
        self.self_checked = RouteSet(["/model/new", "/model/update", "/model/delete", "/model/{model_id}/update",
                                      "/key/generate", "/key/list", "/key/delete"])
        self.keyed = RouteSet(())  # routes any key may call (pass-through endpoints with auth: true)

    def add_routes(self, *, public: Iterable[str] = (), keyed: Iterable[str] = ()) -> None:
        """Routes mounted from the config (pass-through endpoints): `public` need no key (auth: false,
        LiteLLM's default); `keyed` take any valid key, as the LLM routes do. `allowed_routes` and
        `admin_only_routes` apply to them as to every route."""
        for route in public:
            self.public.add(route)
        for route in keyed:
            self.keyed.add(route)

    def is_public(self, path: str) -> bool:
        return self.public.matches(path)

    def check(self, path: str, principal: Any, is_master: bool) -> None:
        """Raise the reference's 403 when `principal` may not use `path`."""
        if self.allowed is not None and not is_master and not self.allowed.matches(path):
            raise PermissionDeniedError(f"Access forbidden: Route {path} not allowed")
        if principal is None:  # a public route
            return
        if principal.is_admin:
            return
        if self.admin_only.matches(path):
            raise PermissionDeniedError(f"user not allowed to access this route. Route={path} is an admin only route")
        if (self.llm.matches(path) or self.keyed.matches(path) or self.info.matches(path)
                or self.spend.matches(path) or self.self_checked.matches(path)):
            return
        raise PermissionDeniedError(f"Only proxy admin can access this route. Route={path}")
