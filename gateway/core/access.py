"""Route control: which routes need a key, which are admin only, which are exposed at all.

`general_settings.public_routes`, `admin_only_routes` and `allowed_routes` list paths or route
groups (`LiteLLMRoutes.public_routes`, also spelled `GatewayRoutes.public_routes`). A non-admin key
reaches the LLM routes, the info routes (their handlers show only the caller's own records) and the
spend routes (scoped to the caller); every other management route is admin only. The groups are
read off the app's routes (`route_groups.py`): the lists are checked when the policy is made, and
applied once the app's routes are mounted (`mount`).
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

from gateway.core.route_groups import INFO, MODEL_HUB, NAMED, OPENAI, PUBLIC, SPEND, derive
from gateway.errors import PermissionDeniedError

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


def expand(setting: str, value: Any, groups: Mapping[str, Iterable[str]]) -> list[str]:
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
        if group not in NAMED:
            raise RouteConfigError(
                f"general_settings.{setting}: unknown route group {item!r}; known: "
                + ", ".join(f"{prefix}{g}" for g in sorted(NAMED))
            )
        out.extend(sorted(groups[group]))
    return out


class AccessPolicy:
    """The route rules of one gateway, built once from `general_settings`."""

    #: The route lists of `general_settings` this policy applies.
    SETTINGS = ("public_routes", "admin_only_routes", "allowed_routes")

    def __init__(self, general: dict[str, Any]) -> None:
        """Check the route lists of `general_settings` (a bad list or an unknown group stops
        start-up here); they apply from `mount`. Until then no route is public and a non-admin key
        may use none."""
        self.lists = {setting: general.get(setting) for setting in self.SETTINGS}
        unresolved = {name: () for name in NAMED}
        for setting, value in self.lists.items():
            expand(setting, value, unresolved)
        self.hub_public = hub_is_public(general)
        self.groups: dict[str, frozenset[str]] = {}
        self.public, self.admin_only, self.llm, self.info, self.spend = (RouteSet(()) for _ in range(5))
        self.allowed: RouteSet | None = RouteSet(()) if self.lists["allowed_routes"] is not None else None
        # Management routes whose handlers decide who may call them (a team admin adds its team's models).
        self.self_checked = RouteSet(["/model/new", "/model/update", "/model/delete", "/model/{model_id}/update",
                                      "/key/generate", "/key/list", "/key/delete"])
        self.keyed = RouteSet(())  # routes any key may call (pass-through endpoints with auth: true)

    def mount(self, app: Any) -> None:
        """Apply the rules to `app`'s routes: the groups as its routes declare them (the docs and
        the admin UI wherever they are mounted; the model hub in the public group when
        `enable_public_model_hub` is on), and the config's lists with their groups expanded."""
        groups = dict(derive(app))
        if self.hub_public:  # the hub joins the public group
            groups[PUBLIC] |= groups[MODEL_HUB]
        self.groups = groups
        self.public = RouteSet([*groups[PUBLIC], *expand("public_routes", self.lists["public_routes"], groups)])
        self.admin_only = RouteSet(expand("admin_only_routes", self.lists["admin_only_routes"], groups))
        allowed = self.lists["allowed_routes"]
        self.allowed = RouteSet(expand("allowed_routes", allowed, groups)) if allowed is not None else None
        self.llm = RouteSet(groups[OPENAI])
        self.info = RouteSet(groups[INFO])
        self.spend = RouteSet(groups[SPEND])

    def add_routes(self, *, public: Iterable[str] = (), keyed: Iterable[str] = ()) -> None:
        """Routes mounted from the config (pass-through endpoints), after `mount`: `public` need no
        key (auth: false, LiteLLM's default); `keyed` take any valid key, as the LLM routes do.
        `allowed_routes` and `admin_only_routes` apply to them as to every route."""
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
