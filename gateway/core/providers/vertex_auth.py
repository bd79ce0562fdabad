"""OAuth2 access tokens for the `vertex_ai/` provider.

Auth is an OAuth2 bearer token from google-auth credentials (scope cloud-platform): a service-account
JSON given as `vertex_credentials` (a path, or the JSON itself), else GOOGLE_APPLICATION_CREDENTIALS
or application default credentials. google-auth refreshes synchronously (an HTTP call to the token
endpoint), and a provider does no I/O while it builds a request, so tokens are fetched in a worker
thread: once at start-up (`check`), and again in the background when the token in hand nears its
expiry (the last quarter of its life, at most 5 minutes), while calls go on with the one in hand.
`prepare(dep)` is an async hook that waits, off the event loop, for a token when none is usable (the
first call, or the first after an idle hour); a core that awaits it before `build_request` never
blocks. Without it, `build_request` falls back to waiting for that refresh itself, bounded by
TOKEN_TIMEOUT, which blocks the loop for that one call.

google-auth is imported lazily, so the core imports without it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any
from urllib.parse import urlsplit

from gateway.errors import GatewayError

log = logging.getLogger("gateway.providers.vertex")

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
PREFIX = "VertexAIException - "
#: The longest a token fetch may take (the token endpoint's connect + read).
TOKEN_TIMEOUT = 10.0
#: Refresh ahead of expiry: the last quarter of a token's life, at most this many seconds.
REFRESH_AHEAD = 300.0
#: A token this close to its expiry is not sent.
EXPIRY_SKEW = 10.0

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="vertex-token")
        return _executor


_tls_context: Any = None


def _tls() -> Any:
    """One TLS context for every token fetch (building one costs tens of milliseconds)."""
    global _tls_context
    if _tls_context is None:
        import ssl

        _tls_context = ssl.create_default_context()
    return _tls_context


# -- tokens -------------------------------------------------------------------------------------

class _HttpxRequest:
    """google-auth's transport interface (`google.auth.transport.Request`) over a sync httpx client,
    so the core needs no `requests`; every call is bounded by TOKEN_TIMEOUT. One per refresh (an
    hourly call needs no pooled connection), closed when it is done."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __call__(self, url: str, method: str = "GET", body: Any = None, headers: Any = None,
                 timeout: Any = None, **kwargs: Any) -> Any:
        import httpx
        from google.auth import exceptions

        try:
            r = self._client.request(method, url, content=body, headers=headers,
                                     timeout=min(float(timeout or TOKEN_TIMEOUT), TOKEN_TIMEOUT))
        except httpx.HTTPError as exc:
            raise exceptions.TransportError(f"{type(exc).__name__} calling {urlsplit(url).netloc}") from None

        class Response:
            status = r.status_code
            headers = r.headers
            data = r.content

        return Response()


class TokenError(GatewayError):
    """No access token could be had; the message names why and never carries a credential."""


class TokenSource:
    """One set of google-auth credentials and the access token they last gave."""

    def __init__(self, credentials: Any, label: str) -> None:
        self.credentials = credentials
        self.label = label  # says which credentials, never what they hold
        self.project: str | None = None  # the project the credentials name
        self.token: str | None = None
        self.refresh_at = 0.0  # monotonic: refresh in the background from here
        self.expires_at = 0.0  # monotonic: never sent from here
        self.error: TokenError | None = None
        self._future: Future[None] | None = None
        self._lock = threading.Lock()

    def usable(self) -> str | None:
        return self.token if time.monotonic() < self.expires_at else None

    def refresh(self) -> Future[None]:
        """The refresh under way, or a new one in a worker thread."""
        with self._lock:
            if self._future is None or self._future.done():
                self._future = _pool().submit(self._refresh)
            return self._future

    def _refresh(self) -> None:
        import httpx
        from google.auth import exceptions

        started = time.monotonic()
        try:
            with httpx.Client(timeout=TOKEN_TIMEOUT, trust_env=True, verify=_tls()) as client:
                self.credentials.refresh(_HttpxRequest(client))
        except exceptions.RefreshError as exc:
            self.error = TokenError(f"{PREFIX}could not get an access token for {self.label}: "
                                    f"{_refresh_reason(exc)}", status=401, type="authentication_error")
            raise self.error from None
        except (exceptions.TransportError, OSError) as exc:
            self.error = TokenError(f"{PREFIX}could not reach Google's token endpoint for {self.label}: "
                                    f"{type(exc).__name__}", status=502, type="api_connection_error")
            raise self.error from None
        except Exception as exc:  # google-auth's other failures: say what kind, not what it held
            self.error = TokenError(f"{PREFIX}could not get an access token for {self.label}: "
                                    f"{type(exc).__name__}", status=401, type="authentication_error")
            raise self.error from None
        expiry = getattr(self.credentials, "expiry", None)  # naive UTC datetime, or None
        life = 3600.0
        if expiry is not None:
            from datetime import datetime, timezone

            life = max((expiry.replace(tzinfo=timezone.utc) - datetime.now(timezone.utc)).total_seconds(), 0.0)
        now = time.monotonic()
        with self._lock:
            self.token = self.credentials.token
            self.expires_at = started + life - min(EXPIRY_SKEW, life / 10)
            self.refresh_at = started + life - min(REFRESH_AHEAD, life / 4)
            self.error = None
        log.debug("vertex_ai: new access token for %s, valid %.0f s (fetched in %.0f ms)", self.label, life,
                  (now - started) * 1000)

    def get(self) -> str | None:
        """The token to send now, refreshing in the background when it nears its expiry; None
        when there is none usable (wait for `refresh()`)."""
        now = time.monotonic()
        token = self.token
        if token is not None and now < self.refresh_at:
            return token
        self.refresh()
        return token if now < self.expires_at else None

    async def ready(self) -> str:
        """A usable token, waiting for a refresh off the event loop if need be."""
        token = self.get()
        if token is not None:
            return token
        try:
            await asyncio.wait_for(asyncio.wrap_future(self.refresh()), TOKEN_TIMEOUT + 1)
        except TokenError:
            raise
        except (asyncio.TimeoutError, FutureTimeout):
            raise TokenError(f"{PREFIX}timed out getting an access token for {self.label}", status=504,
                             type="timeout") from None
        return self._after_wait()

    def wait(self) -> str:
        """As `ready`, blocking: the fallback when the core did not await `prepare`."""
        token = self.get()
        if token is not None:
            return token
        try:
            self.refresh().result(TOKEN_TIMEOUT + 1)
        except TokenError:
            raise
        except FutureTimeout:
            raise TokenError(f"{PREFIX}timed out getting an access token for {self.label}", status=504,
                             type="timeout") from None
        return self._after_wait()

    def _after_wait(self) -> str:
        token = self.usable()
        if token is None:
            raise self.error or TokenError(f"{PREFIX}Google gave an access token for {self.label} that has "
                                           "already expired", status=401, type="authentication_error")
        return token


def _refresh_reason(exc: Exception) -> str:
    """google-auth's RefreshError as `error: description` from the token endpoint's reply."""
    args = getattr(exc, "args", ())
    if len(args) > 1 and isinstance(args[1], dict):
        body = args[1]
        reason = str(body.get("error") or "")
        if body.get("error_description"):
            reason += f": {body['error_description']}"
        if reason:
            return reason[:300]
    text = str(args[0]) if args else type(exc).__name__
    return text.split("\n")[0][:300]


def _from_info(info: Any, where: str) -> tuple[Any, str | None, str]:
    """Credentials of the types a `vertex_credentials` JSON may hold (each through its own loader,
    as google-auth recommends for configurations it did not validate)."""
    if not isinstance(info, dict):
        raise ValueError(f"{where}: must be a JSON object")
    kind = info.get("type")
    try:
        if kind == "service_account":
            from google.oauth2 import service_account

            creds = service_account.Credentials.from_service_account_info(info, scopes=[SCOPE])
            return creds, info.get("project_id"), _label(info)
        if kind == "authorized_user":
            from google.oauth2 import credentials

            creds = credentials.Credentials.from_authorized_user_info(info, scopes=[SCOPE])
            return creds, info.get("quota_project_id"), "authorized user credentials"
    except (ValueError, KeyError) as exc:  # a field missing or malformed: name it, never echo a value
        raise ValueError(f"{where}: {kind} credentials are malformed ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:120] if isinstance(exc, ValueError) else exc})") from None
    raise ValueError(f"{where}: credentials of type {kind!r} are not supported here; give a service_account or "
                     "authorized_user JSON, or point GOOGLE_APPLICATION_CREDENTIALS at the file (application "
                     "default credentials take every type)")


def load_credentials(value: Any, where: str) -> tuple[Any, str | None, str]:
    """(credentials, their project, a label) from `vertex_credentials` as LiteLLM reads it: a dict,
    the JSON as a string, or a path to the JSON file; None: application default credentials
    (GOOGLE_APPLICATION_CREDENTIALS, gcloud's, the metadata server's)."""
    try:
        import google.auth
        from google.auth import exceptions
    except ImportError:
        raise ValueError("vertex_ai needs google-auth: pip install google-auth") from None
    if value is None:
        try:
            creds, project = google.auth.default(scopes=[SCOPE])
        except exceptions.DefaultCredentialsError as exc:
            raise ValueError(f"{where}: none given and no application default credentials found "
                             f"({str(exc).splitlines()[0][:200]})") from None
        return creds, project, "application default credentials"
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: is not valid JSON (line {exc.lineno}, column {exc.colno})") from None
    if isinstance(value, dict):
        return _from_info(value, where)
    if isinstance(value, str):
        path = os.path.expanduser(value)
        if not os.path.isfile(path):
            raise ValueError(f"{where}: no such file {value!r} (give a path to a service-account JSON file, "
                             "or the JSON itself)")
        try:
            with open(path, encoding="utf-8") as f:
                info = json.load(f)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: {value!r} is not valid JSON (line {exc.lineno})") from None
        return _from_info(info, where)
    raise ValueError(f"{where}: must be a path to a service-account JSON file, or the JSON itself")


def _label(info: dict[str, Any]) -> str:
    email = info.get("client_email")
    return f"service account {email}" if isinstance(email, str) else f"{info.get('type', 'unknown')} credentials"
