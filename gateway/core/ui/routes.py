"""The admin UI at `/ui`: one HTML page, its scripts and styles from this package (nothing from
outside), and the login, logout and session calls. The pages call the gateway's own management and
spend API with the session cookie (`sessions.py`); nothing here duplicates that API.

`general_settings.ui_path` moves it (default `/ui`); `general_settings.disable_admin_ui: true` (or
LiteLLM's `DISABLE_ADMIN_UI=true` in the environment) switches it off: its paths are then 404s.
"""

from __future__ import annotations

import logging
import mimetypes
import os
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import orjson
from quart import Blueprint, Response, current_app, request

from gateway.core import auth
from gateway.core.keys import hash_key
from gateway.core.route_groups import PUBLIC, declare
from gateway.core.ui.sessions import COOKIE, TTL, Sessions, cookie_from
from gateway.errors import AuthenticationError, BadRequestError, NotFoundError

log = logging.getLogger("gateway.ui")

#: No inline script or style, nothing from elsewhere, no framing.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@dataclass(frozen=True)
class UISettings:
    """Whether the admin UI is served, and where."""

    enabled: bool
    path: str


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() in ("true", "1", "yes"))


def ui_settings(general: dict[str, Any]) -> UISettings:
    """Where the UI is served, and whether it is at all."""
    disabled = _truthy(general.get("disable_admin_ui")) or _truthy(os.environ.get("DISABLE_ADMIN_UI"))
    path = general.get("ui_path") or "/ui"
    if not isinstance(path, str) or not path.startswith("/") or path.rstrip("/") == "":
        raise ValueError(f"general_settings.ui_path: must be a path like /ui, got {path!r}")
    return UISettings(enabled=not disabled, path=path.rstrip("/"))


@lru_cache(maxsize=None)
def _asset(name: str) -> bytes | None:
    """A file of `static/`, read once; None for anything else (no `..`, no directories)."""
    if not name or name.startswith("/") or any(part in ("", ".", "..") for part in name.split("/")):
        return None
    path = resources.files("gateway.core.ui").joinpath("static", *name.split("/"))
    return path.read_bytes() if path.is_file() else None


def _page(ui_path: str) -> bytes:
    page = _asset("index.html")
    assert page is not None, "gateway/core/ui/static/index.html is missing from the package"
    return page.replace(b"__UI_PATH__", ui_path.encode())


def _reply(body: Any, status: int = 200, content_type: str = "application/json") -> Response:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    response = Response(data, status=status, content_type=content_type)
    response.headers.update(SECURITY_HEADERS)
    response.headers["Cache-Control"] = "no-store" if content_type == "application/json" else "no-cache"
    return response


def _is_https() -> bool:
    forwarded = request.headers.get("x-forwarded-proto", "")
    return request.scheme == "https" or forwarded.split(",")[0].strip().lower() == "https"


def session_info(principal: Any, csrf_token: str, expires_at: Any, dev_mode: bool = False) -> dict[str, Any]:
    """What the page knows of who is logged in (never the key)."""
    return {
        "logged_in": True, "user_id": principal.user_id, "user_role": principal.user_role or ("proxy_admin" if principal.is_admin else
                                                                           "internal_user"),
        "is_admin": bool(principal.is_admin), "key_name": principal.key_name, "key_alias": principal.key_alias,
        "team_id": principal.team_id, "csrf_token": csrf_token, "dev_mode": dev_mode,
        "expires_at": expires_at.isoformat() if expires_at is not None else None,
    }


def blueprint(settings: UISettings, gateway: Any) -> Blueprint:
    """The UI's routes under `settings.path`; `gateway.ui_sessions` is set for the request path."""
    bp = declare(Blueprint("admin_ui", __name__), PUBLIC)
    sessions = Sessions(gateway)
    gateway.ui_sessions = sessions
    base = settings.path

    @bp.get(base + "/")  # `/ui` is redirected here, so that the page's relative links resolve
    async def page() -> Response:
        """The admin UI's page (HTML; its scripts and styles come from /ui/static/)."""
        return _reply(_page(base), content_type="text/html; charset=utf-8")

    @bp.get(base + "/static/<path:name>")
    async def static(name: str) -> Response:
        """A script, style sheet or image of the admin UI."""
        data = _asset(name)
        if data is None:
            raise NotFoundError(f"no such file in the admin UI: {name}")
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind in ("application/javascript", "image/svg+xml"):
            kind += "; charset=utf-8"
        return _reply(data, content_type=kind)

    @bp.post(base + "/login")
    async def login() -> Response:
        """Log in to the admin UI with a key (`{"key": "sk-..."}`: the master key or a virtual key) or
        with `UI_USERNAME` / `UI_PASSWORD` (`{"username", "password"}`); sets the session cookie."""
        gw = current_app.gateway  # type: ignore[attr-defined]
        if gw.master_key is None:
            return _reply(session_info(auth.DEV_MODE, "", None, dev_mode=True))
        if request.mimetype != "application/json":  # a form on another site cannot send JSON without CORS
            raise BadRequestError("send the login as JSON: {\"key\": \"sk-...\"} or {\"username\": ..., \"password\": ...}")
        body = await request.get_json(silent=True)
        if not isinstance(body, dict):
            raise BadRequestError("the login must be a JSON object: {\"key\": \"sk-...\"} or "
                                  "{\"username\": ..., \"password\": ...}")
        principal, token = await _check_login(gw, body)
        cookie, expires_at = await sessions.create(token)
        response = _reply(session_info(principal, sessions.csrf_token(cookie), expires_at))
        response.set_cookie(COOKIE, cookie, max_age=int(TTL.total_seconds()), path="/", httponly=True,
                            samesite="Strict", secure=_is_https())
        log.info("admin UI: %s logged in", principal.display_name)
        return response

    @bp.get(base + "/session")
    async def session() -> Response:
        """Who is logged in to the admin UI with this cookie, and the session's CSRF token."""
        gw = current_app.gateway  # type: ignore[attr-defined]
        if gw.master_key is None:
            return _reply(session_info(auth.DEV_MODE, "", None, dev_mode=True))
        cookie = cookie_from(request.headers)
        if cookie is None:
            return _reply({"logged_in": False})
        principal = await sessions.principal(cookie, "GET", request.headers)
        row = await sessions.find(cookie)
        return _reply(session_info(principal, sessions.csrf_token(cookie), row.expires_at if row else None))

    @bp.post(base + "/logout")
    async def logout() -> Response:
        """End the admin UI session (the cookie stops working on every worker and instance)."""
        gw = current_app.gateway  # type: ignore[attr-defined]
        cookie = cookie_from(request.headers)
        if cookie is not None and gw.master_key is not None:
            await sessions.principal(cookie, "POST", request.headers)  # the CSRF token, as for any change
            await sessions.end(cookie)
        response = _reply({"logged_out": True})
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="Strict", secure=_is_https())
        return response

    return bp


async def _check_login(gw: Any, body: dict[str, Any]) -> tuple[Any, str | None]:
    """The Principal a login is for and the sha256 of its key (None: admin by master key or
    UI_USERNAME/UI_PASSWORD); a 401 naming no secret otherwise."""
    import hmac

    username, password, key = body.get("username"), body.get("password"), body.get("key")
    if isinstance(username, str) and isinstance(password, str):
        expected_user = os.environ.get("UI_USERNAME", "admin")
        expected_password = os.environ.get("UI_PASSWORD") or gw.master_key
        user_ok = hmac.compare_digest(username.encode(), expected_user.encode())
        password_ok = hmac.compare_digest(password.encode(), expected_password.encode())
        if user_ok and password_ok:
            return auth.MASTER, None
        log.warning("admin UI: failed login for username %r", username[:64])
        raise AuthenticationError("Authentication Error, invalid username or password.")
    if not isinstance(key, str) or not key.strip():
        raise BadRequestError("the login needs a key (\"key\") or a username and password")
    key = key.strip()
    if auth.is_master_key(key, gw.master_key):
        return auth.MASTER, None
    if not key.startswith("sk-"):
        raise AuthenticationError(
            f"Authentication Error, Virtual key expected. Received={key[:8]}..., expected to start with 'sk-'.")
    lookup = gw.key_principal
    principal = await lookup(hash_key(key)) if lookup is not None else None  # blocked, expired: its 401
    if principal is None:
        log.warning("admin UI: failed login with an unknown key")
        raise AuthenticationError("Authentication Error, Invalid proxy server token passed")
    return principal, hash_key(key)
