"""Who is calling: the key from the headers, the master key, then the `auth` hook.

The master key is compared in constant time. With no master key configured every caller is
admin (development mode), which start-up announces loudly.
"""

from __future__ import annotations

import hmac
from typing import Any

from gateway.context import Principal
from gateway.errors import AuthenticationError

MASTER = Principal(key_name="master-key", key_alias=None, is_admin=True, user_role="proxy_admin")
DEV_MODE = Principal(key_name="no-auth (development mode)", is_admin=True, user_role="proxy_admin")


def key_from_headers(headers: Any) -> str | None:
    """The key from `Authorization: Bearer`, `api-key` or `x-api-key`, in that order."""
    value = headers.get("authorization")
    if value:
        scheme, _, rest = value.partition(" ")
        if scheme.lower() == "bearer" and rest.strip():
            return rest.strip()
        if not rest and value.startswith("sk-"):
            return value.strip()
    for name in ("api-key", "x-api-key"):
        value = headers.get(name)
        if value:
            return value.strip()
    return None


def is_master_key(key: str, master_key: str) -> bool:
    return hmac.compare_digest(key.encode(), master_key.encode())


async def authenticate(headers: Any, gateway: Any, request: Any = None) -> Principal:
    """The caller's Principal, or an AuthenticationError with the reference's exact message.
    `request` (Quart's, or None on the fast path) is what `auth` plugins are handed."""
    key = key_from_headers(headers)
    master_key = gateway.master_key
    if master_key is None:
        if key and key.startswith("sk-") and gateway.dispatcher.has("auth"):
            principal = await gateway.dispatcher.run_auth(request, key, gateway)
            if principal is not None:
                return principal
        return DEV_MODE
    if not key:
        raise AuthenticationError("Authentication Error, No api key passed in.")
    if is_master_key(key, master_key):
        return MASTER
    if not key.startswith("sk-"):
        raise AuthenticationError(
            f"Authentication Error, Virtual key expected. Received={key[:8]}..., expected to start with 'sk-'."
        )
    principal = await gateway.dispatcher.run_auth(request, key, gateway)
    if principal is None:
        raise AuthenticationError("Authentication Error, Invalid proxy server token passed")
    return principal
