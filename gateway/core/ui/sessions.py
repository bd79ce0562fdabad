"""Admin UI sessions: a login becomes an HttpOnly cookie, and every page's API call is made with it.

The raw key is sent once, with the login; the browser keeps only a random session id (in a cookie
scripts cannot read) and the server only an HMAC of it under the master key, with the sha256 of the
key that logged in. A session is re-checked on every call as the key itself would be (a blocked or
deleted key ends it at once), a new master key ends every session, and logout deletes it.

Every change made with a session (any method but GET, HEAD, OPTIONS) must carry the session's CSRF
token in `X-CSRF-Token`; the page reads it from `GET /ui/session`. The cookie is also
`SameSite=Strict`. Calls with a key in the headers are not sessions and need no token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta, timezone
from http.cookies import CookieError, SimpleCookie
from typing import Any

from gateway.context import Principal
from gateway.core import auth
from gateway.errors import AuthenticationError, PermissionDeniedError

COOKIE = "gateway_session"
CSRF_HEADER = "x-csrf-token"
TTL = timedelta(hours=12)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
EXPIRED = "Authentication Error, the admin UI session has ended: log in again."


def cookie_from(headers: Any) -> str | None:
    """The session cookie's value from a `Cookie` header, or None."""
    raw = headers.get("cookie")
    if not raw or COOKIE not in raw:
        return None
    try:
        morsel = SimpleCookie(raw).get(COOKIE)
    except CookieError:
        return None
    return morsel.value if morsel is not None and morsel.value else None


class Sessions:
    """The sessions of one gateway, kept in the database (every worker and instance sees them) and
    cached in the identity cache (kind `ui_session`; logout evicts it everywhere)."""

    def __init__(self, gateway: Any) -> None:
        self.gateway = gateway

    def _mac(self, purpose: bytes, cookie: str) -> str:
        secret = (self.gateway.master_key or "").encode()
        return hmac.new(secret, purpose + cookie.encode(), hashlib.sha256).hexdigest()

    def csrf_token(self, cookie: str) -> str:
        """The CSRF token of a session: derived from it, so nothing more is stored."""
        return self._mac(b"csrf:", cookie)

    async def create(self, token: str | None) -> tuple[str, datetime]:
        """A new session for the key whose sha256 is `token` (None: the master key). Returns the
        cookie's value and when the session ends."""
        from gateway.core.db.models import UISession

        cookie = secrets.token_urlsafe(32)
        now = datetime.now(timezone.utc)
        await UISession.create(id=self._mac(b"session:", cookie), token=token, created_at=now, expires_at=now + TTL)
        await UISession.filter(expires_at__lt=now).delete()  # logins clear the sessions that ran out
        return cookie, now + TTL

    async def find(self, cookie: str) -> Any:
        """The session row of a cookie, or None (unknown, ended or expired)."""
        from gateway.core.db.models import UISession

        ident = self._mac(b"session:", cookie)
        directory = self.gateway.directory
        row = await directory.cache.get("ui_session", ident, lambda: directory._load(UISession.get_or_none(id=ident)))
        if row is None or row.expires_at <= datetime.now(timezone.utc):
            return None
        return row

    async def end(self, cookie: str) -> None:
        from gateway.core.db.models import UISession

        ident = self._mac(b"session:", cookie)
        await UISession.filter(id=ident).delete()
        await self.gateway.directory.changed("ui_session", ident)

    async def principal(self, cookie: str, method: str, headers: Any) -> Principal:
        """Who is calling with this session cookie; raises the 401 (no such session, the key is
        no longer valid) or the 403 (a change without the CSRF token) the page gets."""
        row = await self.find(cookie)
        if row is None:
            raise AuthenticationError(EXPIRED)
        if method not in SAFE_METHODS:
            sent = headers.get(CSRF_HEADER) or ""
            if not hmac.compare_digest(sent.encode(), self.csrf_token(cookie).encode()):
                raise PermissionDeniedError(
                    "CSRF token missing or invalid: a change made with an admin UI session must send the "
                    "session's token (GET /ui/session) in the X-CSRF-Token header")
        if row.token is None:
            return auth.MASTER
        lookup = self.gateway.key_principal
        principal = await lookup(row.token) if lookup is not None else None
        if principal is None:
            raise AuthenticationError(EXPIRED)
        return principal
