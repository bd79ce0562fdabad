"""Which route-control group each route is in, declared where the route is defined.

Route lists in the config (`public_routes`, `admin_only_routes`, `allowed_routes`) may name a
group (`LiteLLMRoutes.management_routes`), and a non-admin key may use the openai, info and spend
groups (`access.py`). Each of the core's blueprints declares its groups on the line that makes it:

    bp = declare(Blueprint("keys", __name__), MANAGEMENT, info=INFO)

every route of `keys` is a management route, and the routes of its view `info` (`/key/info`) are
info routes too. `derive(app)` reads the groups off the app's routes once every blueprint is
mounted. A core route in no group, or a declaration naming a view the blueprint does not have,
stops the app from being built: a new route cannot be left out of its group. A plugin's routes are
in none (admin only unless the config lists them).
"""

from __future__ import annotations

from typing import Any

PUBLIC = "public_routes"
OPENAI = "openai_routes"
INFO = "info_routes"
MANAGEMENT = "management_routes"
SPEND = "spend_tracking_routes"
#: The groups a route list may name, as LiteLLM names them.
NAMED = (PUBLIC, OPENAI, INFO, MANAGEMENT, SPEND)
#: The model hub's pages: public with `general_settings.enable_public_model_hub`, admin only otherwise.
MODEL_HUB = "model_hub"
#: Routes a plugin serves that LiteLLM's groups name: in their group whether the plugin is on or
#: not (so no pass-through endpoint takes them either). `/metrics` is the prometheus plugin's.
SERVED_BY_PLUGINS: dict[str, tuple[str, ...]] = {PUBLIC: ("/metrics",)}

_MARK = "route_groups"


def _checked(names: tuple[str, ...]) -> tuple[str, ...]:
    unknown = [n for n in names if n not in (*NAMED, MODEL_HUB)]
    if unknown:
        raise ValueError(f"unknown route group(s) {unknown}; the groups are {[*NAMED, MODEL_HUB]}")
    return names


def declare(blueprint: Any, *groups: str, **views: str | tuple[str, ...]) -> Any:
    """Put every route of `blueprint` in `groups`, and the routes of each view named in `views`
    (by function name) in its further group(s); returns `blueprint`. No groups and no views: its
    routes are in no group, on purpose (the pass-through endpoints, whose access the config sets)."""
    extra = {view: _checked((names,) if isinstance(names, str) else tuple(names)) for view, names in views.items()}
    setattr(blueprint, _MARK, (_checked(groups), extra))
    return blueprint


def derive(app: Any) -> dict[str, frozenset[str]]:
    """Group -> the route rules in it (`/key/<path:ref>/regenerate`), read off `app`'s url_map.

    Raises RuntimeError naming every core route (a view of the `gateway` package) in no group,
    and every declared view its blueprint does not serve."""
    found: dict[str, set[str]] = {name: set(SERVED_BY_PLUGINS.get(name, ())) for name in (*NAMED, MODEL_HUB)}
    problems = []
    seen: dict[str, set[str]] = {}  # blueprint name -> its views' names
    for rule in app.url_map.iter_rules():
        view = app.view_functions.get(rule.endpoint)
        name = rule.endpoint.rpartition(".")[0]
        declared = getattr(app.blueprints.get(name), _MARK, None)
        groups, extra = declared if declared is not None else ((), {})
        seen.setdefault(name, set()).add(getattr(view, "__name__", ""))
        names = (*groups, *extra.get(getattr(view, "__name__", ""), ()))
        for group in names:
            found[group].add(rule.rule)
        if not names and getattr(view, "__module__", "").startswith("gateway.") and (declared is None or extra):
            problems.append(f"{rule.rule} ({rule.endpoint}) is in no group")
    for name, blueprint in app.blueprints.items():
        declared = getattr(blueprint, _MARK, None)
        for view in sorted(set(declared[1]) - seen.get(name, set()) if declared else ()):
            problems.append(f"blueprint {name!r} declares groups for {view!r}, which serves no route of it")
    if problems:
        raise RuntimeError("route-control groups (gateway/core/route_groups.py): " + "; ".join(sorted(problems)))
    return {name: frozenset(rules) for name, rules in found.items()}
