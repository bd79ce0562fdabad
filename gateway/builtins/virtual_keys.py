"""Virtual-key auth, as a built-in plugin on the `auth` hook (the core dogfoods its contract).

Recognises `sk-` keys issued by `/key/generate` from the in-memory directory (no database read in
steady state), and refuses blocked or expired keys with the reference's messages. Its
`pre_request` enforces, on LLM calls only, model access and the key, team, user and end-user budgets.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from gateway import (
    AuthenticationError,
    BudgetExceededError,
    GatewayError,
    Plugin,
    Principal,
    hookimpl,
)
from gateway.core.keys import hash_key

ADMIN_ROLES = ("proxy_admin",)


def _iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).isoformat()


def effective_spend(record: Any, now: datetime) -> float:
    """Spend in the current budget period (a period that ended counts as reset)."""
    if record.budget_reset_at is not None and record.budget_reset_at <= now:
        return 0.0
    return float(record.spend or 0.0)


def check_budget(record: Any, now: datetime) -> None:
    if record is None or record.max_budget is None:
        return
    spend = effective_spend(record, now)
    if spend >= record.max_budget:
        raise BudgetExceededError(f"Budget has been exceeded! Current cost: {spend}, Max budget: {record.max_budget}")


def model_allowed(allowed: list[str], model: str) -> bool:
    if not allowed or "all-proxy-models" in allowed or "*" in allowed:
        return True
    if model in allowed:
        return True
    return any(a.endswith("/*") and model.startswith(a[:-1]) for a in allowed)


class VirtualKeys(Plugin):
    name = "virtual_keys"
    priority = 1500

    @hookimpl
    async def auth(self, request: Any, api_key: str, gateway: Any) -> Principal | None:
        directory = gateway.directory
        key = await directory.key(hash_key(api_key))
        if key is None:
            return None
        if key.blocked:
            raise AuthenticationError("Authentication Error, Key is blocked.")
        now = datetime.now(timezone.utc)
        if key.expires is not None and key.expires <= now:
            raise AuthenticationError(
                f"Authentication Error - Expired Key. Key Expiry time {_iso(key.expires)} and current time {_iso(now)}",
                type="expired_key",
            )
        team = await directory.team(key.team_id) if key.team_id else None
        if team is not None and team.blocked:
            raise AuthenticationError(f"Authentication Error, Team={team.team_id} is blocked.")
        user = await directory.user(key.user_id) if key.user_id else None
        metadata = key.metadata or {}
        tags = list(dict.fromkeys([*(metadata.get("tags") or []), *(key.tags or [])]))
        role = user.user_role if user is not None else None
        return Principal(
            api_key=key.token, key_alias=key.key_alias, key_name=key.key_name, user_id=key.user_id,
            user_role=role, team_id=key.team_id, team_alias=team.team_alias if team else None,
            is_admin=role in ADMIN_ROLES, models=list(key.models or []),
            permissions=dict(key.permissions or {}), metadata=dict(metadata),
            team_metadata=dict(team.metadata or {}) if team else {}, tags=tags,
            extra={"team_models": list(team.models or []) if team else [], "records": (key, team, user)},
        )

    @hookimpl
    async def pre_request(self, ctx: Any) -> None:
        """LLM calls only: model access (key, then team), then budgets (key, team, user, end user)."""
        principal = ctx.principal
        now = datetime.now(timezone.utc)
        if principal.api_key is not None:
            for allowed in (principal.models, principal.extra.get("team_models") or []):
                if not model_allowed(allowed, ctx.model):
                    raise AuthenticationError(
                        "Authentication Error, API Key not allowed to access model. "
                        f"This token can only access models={allowed}. Tried to access {ctx.model}",
                        param="model",
                    )
            for record in principal.extra.get("records") or ():
                check_budget(record, now)
        if ctx.end_user:
            if not isinstance(ctx.end_user, str):
                raise GatewayError("user must be a string", status=400, type="bad_request_error", param="user")
            end_user = await self.gateway.directory.end_user(ctx.end_user)
            check_budget(end_user, now)
