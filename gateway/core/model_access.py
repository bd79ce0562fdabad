"""Which models a key may call: its own `models` list and its team's, where `all-proxy-models`
or `*` allow everything, `prefix/*` a provider's models, and a model access group its members.

The LLM routes refuse a barred model with the reference's 401 (`check_model_access`; the
`virtual_keys` builtin checks the organization's list too), `/v1/models`, `/model/info` and
`/health` show only what the key may call.
"""

from __future__ import annotations

from typing import Any

from gateway.errors import AuthenticationError, GatewayError


def model_allowed(allowed: list[str], model: str) -> bool:
    """Whether one list (empty: no restriction) allows `model`."""
    if not allowed or "all-proxy-models" in allowed or "*" in allowed:
        return True
    if model in allowed:
        return True
    return any(a.endswith("/*") and model.startswith(a[:-1]) for a in allowed)


def _allowed_lists(gw: Any, principal: Any) -> list[list[str]]:
    """The key's `models` and its team's, each non-empty one with access groups expanded: a name
    must be in every one of them (an empty list allows every model)."""
    if principal is None:
        return []
    names = gw.router.names
    lists = []
    for allowed in (principal.models, principal.extra.get("team_models") or []):
        if allowed:
            lists.append(names.expand(allowed) if names.access_groups else list(allowed))
    return lists


def may_use(gw: Any, principal: Any, name: str) -> bool:
    """Whether the key (and its team) may call `name`; no key (a public route): any model."""
    return all(model_allowed(allowed, name) for allowed in _allowed_lists(gw, principal))


def check_model_access(gw: Any, principal: Any, model: str) -> None:
    """A virtual key (and its team) barred from `model` gets the 401 whether or not the name
    exists: the name the client sent, or the group it resolves to, must be allowed."""
    if principal is None or principal.api_key is None:
        return
    for allowed in _allowed_lists(gw, principal):
        if model_allowed(allowed, model):
            continue
        try:
            target = gw.router.resolve(model, principal)[0]
        except GatewayError:
            target = None
        if target is None or not model_allowed(allowed, target):
            raise AuthenticationError(
                "Authentication Error, API Key not allowed to access model. "
                f"This token can only access models={allowed}. Tried to access {model}", param="model")


def visible_models(gw: Any, principal: Any) -> list[str]:
    """The names this key may call, as `/v1/models` lists them: allowed by the key and by its
    team; a team's own models (added by its admin) under their public name, to that team only."""
    router = gw.router
    out: list[str] = []
    for name in router.model_names():
        deps = router.groups.get(name)
        owner = deps[0].model_info.get("team_id") if deps else None
        if owner and principal is not None and not principal.is_admin:
            if principal.team_id != owner:
                continue
            name = deps[0].model_info.get("team_public_model_name") or name
        if may_use(gw, principal, name):
            out.append(name)
    return list(dict.fromkeys(out))


def visible_access_groups(gw: Any, principal: Any) -> list[str]:
    """The model access groups (`model_info.access_groups`) this key may name."""
    lists = [] if principal is None else [a for a in (principal.models, principal.extra.get("team_models")) if a]
    return [n for n in gw.router.names.access_groups if all(model_allowed(a, n) for a in lists)]
