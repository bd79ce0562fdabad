"""Self-service keys: what a key of a user may do with that user's own keys, by the user's role,
and the limits on a key a user makes for themselves (LiteLLM's rules, as 403s). /key/generate,
/key/delete and /key/list (keys.py) ask here; everything else on /key/* is the proxy admin's."""

from __future__ import annotations

from typing import TYPE_CHECKING

from quart import g, request

from gateway.core.db.models import Team, User
from gateway.errors import PermissionDeniedError

if TYPE_CHECKING:
    from gateway.core.management.keys import GenerateBody

# Self-service: what a key of a user may do with that user's keys, by the user's role (LiteLLM's
# roles: an internal_user creates, lists and deletes their own keys; a viewer lists them;
# a proxy_admin_viewer lists every key). A key with no user may do none of it.
SELF_SERVICE = {"generate": ("internal_user",), "delete": ("internal_user",),
                "list": ("internal_user", "internal_user_viewer", "proxy_admin_viewer")}
ADMIN_FIELDS = ("permissions", "guardrails")  # fields that loosen policy: the proxy admin's to set


def self_service(action: str) -> str | None:
    """None for an admin; else the calling user's id when their role allows `action`; else a 403."""
    principal = g.principal
    if principal.is_admin:
        return None
    if not principal.user_id or principal.user_role not in SELF_SERVICE[action]:
        raise PermissionDeniedError(f"Only proxy admin can access this route. Route={request.path}")
    return principal.user_id


async def check_own_key(body: GenerateBody, sent: set[str], me: str) -> None:
    """An internal user's key request: for themselves, in a team they belong to, within their own
    models, without the fields that loosen policy (LiteLLM's rules, as 403s)."""
    from gateway.core.management.teams import member_ids  # teams imports keys, which imports this module

    if body.user_id is not None and body.user_id != me:
        raise PermissionDeniedError(f"User can only create keys for themselves. Got user_id={body.user_id}, "
                                    f"Your ID={me}", param="user_id")
    body.user_id = me
    for field in ADMIN_FIELDS:
        if field in sent or (field == "guardrails" and "guardrails" in (body.metadata or {})):
            raise PermissionDeniedError(f"Only proxy admin can set {field}", param=field)
    if body.team_id is not None:
        team = await Team.get_or_none(team_id=body.team_id)
        if team is None or me not in member_ids(team):
            raise PermissionDeniedError(f"User={me} not assigned to team={body.team_id}", param="team_id")
    user = await User.get_or_none(user_id=me)
    allowed = list(user.models or []) if user is not None else []
    if allowed:
        if not body.models:
            body.models = allowed
        for m in body.models:
            if m not in allowed:
                raise PermissionDeniedError(f"Model={m} not in the user's allowed models={allowed}", param="models")
