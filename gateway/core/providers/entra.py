"""Microsoft Entra ID (Azure AD) access tokens for Azure deployments: client credentials.

A deployment with `tenant_id`, `client_id` and `client_secret` (or AZURE_TENANT_ID, AZURE_CLIENT_ID,
AZURE_CLIENT_SECRET) calls Azure with `Authorization: Bearer <token>`, the token from the tenant's
OAuth2 token endpoint:

    POST {authority}/{tenant}/oauth2/v2.0/token
    grant_type=client_credentials&client_id=...&client_secret=...&scope=https://cognitiveservices.azure.com/.default

`{authority}` is https://login.microsoftonline.com, or AZURE_AUTHORITY_HOST (azure-identity's
variable, for sovereign clouds). That one form POST is all the client-credentials flow needs, so
azure-identity (and its msal dependency) is not needed: the fetch is an `httpx.AsyncClient` call on
the event loop, never a blocking one.

One `EntraToken` per (authority, tenant, client, scope, secret) is shared by every deployment that
names it. Its token is fetched on the first call (`prepare`), reused until the last quarter of its
`expires_in` (at most 5 minutes before expiry), then refreshed in the background while calls go on
with the token in hand; once too close to its expiry it is not sent and calls wait for the new one.
Concurrent calls share one fetch. Errors name the tenant and client id, never the secret.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from typing import Any

import orjson

from gateway.errors import GatewayError

log = logging.getLogger("gateway.providers.entra")

DEFAULT_AUTHORITY = "https://login.microsoftonline.com"
DEFAULT_SCOPE = "https://cognitiveservices.azure.com/.default"
#: The longest a token fetch may take.
TOKEN_TIMEOUT = 10.0
#: Refresh ahead of expiry: the last quarter of a token's life, at most this many seconds.
REFRESH_AHEAD = 300.0
#: A token this close to its expiry is not sent.
EXPIRY_SKEW = 10.0
PREFIX = "AzureException - "


class TokenError(GatewayError):
    """No Entra ID token could be had; the message says why and never carries the secret."""


def authority() -> str:
    return (os.environ.get("AZURE_AUTHORITY_HOST") or DEFAULT_AUTHORITY).rstrip("/")


class EntraToken:
    """One app registration's token for one scope, fetched with its client secret."""

    def __init__(self, tenant: str, client_id: str, secret: str, scope: str, authority_host: str) -> None:
        self.tenant = tenant
        self.client_id = client_id
        self._secret = secret
        self.scope = scope
        self.url = f"{authority_host}/{tenant}/oauth2/v2.0/token"
        self.label = f"client {client_id} in tenant {tenant}"  # says which app, never its secret
        self.token: str | None = None
        self.refresh_at = 0.0  # monotonic: refresh in the background from here
        self.expires_at = 0.0  # monotonic: never sent from here
        self._task: asyncio.Task[None] | None = None

    def usable(self) -> str | None:
        return self.token if time.monotonic() < self.expires_at else None

    async def ready(self) -> str:
        """A usable token: the one in hand (a refresh started in the background when it nears its
        expiry), or a new one, waited for without blocking the loop."""
        now = time.monotonic()
        token = self.token
        if token is not None and now < self.refresh_at:
            return token
        task = self._fetching()
        if token is not None and now < self.expires_at:
            return token
        await asyncio.shield(task)
        token = self.usable()
        if token is None:  # a token that came already expired (expires_in 0)
            raise TokenError(f"{PREFIX}Entra ID gave a token for {self.label} that has already expired",
                             status=401, type="authentication_error")
        return token

    def _fetching(self) -> asyncio.Task[None]:
        """The fetch under way on this loop, or a new one."""
        task = self._task
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            task = self._task = asyncio.get_running_loop().create_task(self._fetch())
            task.add_done_callback(_consume)
        return task

    def _fail(self, message: str, status: int, kind: str) -> TokenError:
        return TokenError(f"{PREFIX}could not get an Entra ID token for {self.label}: "
                          f"{message.replace(self._secret, '***') if self._secret else message}",
                          status=status, type=kind)

    async def _fetch(self) -> None:
        form = {"grant_type": "client_credentials", "client_id": self.client_id, "client_secret": self._secret,
                "scope": self.scope}
        started = time.monotonic()
        import httpx  # here, not at import: a worker without Entra deployments never loads it

        try:
            async with httpx.AsyncClient(timeout=TOKEN_TIMEOUT, trust_env=True) as client:
                reply = await client.post(self.url, data=form, headers={"accept": "application/json"})
        except httpx.TimeoutException:
            raise self._fail(f"the token endpoint at {self.url} timed out", 504, "timeout") from None
        except httpx.HTTPError as exc:
            raise self._fail(f"could not reach the token endpoint at {self.url} ({type(exc).__name__})", 502,
                             "api_connection_error") from None
        try:
            body = orjson.loads(reply.content)
        except orjson.JSONDecodeError:
            body = None
        if reply.status_code != 200:
            # Entra's errors: {"error": "invalid_client", "error_description": "AADSTS7000215: ...", ...}
            reason = "HTTP %d" % reply.status_code
            if isinstance(body, dict) and isinstance(body.get("error"), str):
                reason = body["error"]
                if isinstance(body.get("error_description"), str):
                    reason += ": " + body["error_description"].split("\r\n")[0].split("\n")[0][:300]
            status, kind = (401, "authentication_error") if reply.status_code < 500 else (502, "api_error")
            raise self._fail(reason, status, kind)
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise self._fail("the token endpoint's reply has no access_token", 502, "api_error")
        try:
            life = max(float(body.get("expires_in", 3600)), 0.0)
        except (TypeError, ValueError):
            life = 3600.0
        self.token = token
        self.expires_at = started + life - min(EXPIRY_SKEW, life / 10)
        self.refresh_at = started + life - min(REFRESH_AHEAD, life / 4)
        log.debug("azure: new Entra ID token for %s, valid %.0f s (fetched in %.0f ms)", self.label, life,
                  (time.monotonic() - started) * 1000)


def _consume(task: asyncio.Task[None]) -> None:
    """A background refresh's failure is reported to the calls that wait for it, not to asyncio's
    "exception was never retrieved" log."""
    if not task.cancelled():
        task.exception()


class EntraTokens:
    """The tokens in use, one per app registration and scope (a provider holds one of these)."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, ...], EntraToken] = {}

    def get(self, tenant: str, client_id: str, secret: str, scope: str) -> EntraToken:
        host = authority()
        digest = hashlib.sha256(secret.encode()).hexdigest()  # a rotated secret is a new source
        key = (host, tenant, client_id, scope, digest)
        source = self._tokens.get(key)
        if source is None:
            source = self._tokens[key] = EntraToken(tenant, client_id, secret, scope, host)
        return source


def credentials_of(params: dict[str, Any], has_key: bool) -> tuple[str, str, str] | None:
    """(tenant, client id, secret) when the deployment authenticates with client credentials, as
    LiteLLM reads them: each from `litellm_params`, else AZURE_TENANT_ID / AZURE_CLIENT_ID /
    AZURE_CLIENT_SECRET; and only when no `api_key` is in use (a key wins)."""
    if has_key:
        return None
    tenant = params.get("tenant_id") or os.environ.get("AZURE_TENANT_ID")
    client = params.get("client_id") or os.environ.get("AZURE_CLIENT_ID")
    secret = params.get("client_secret") or os.environ.get("AZURE_CLIENT_SECRET")
    if tenant and client and secret:
        return str(tenant), str(client), str(secret)
    return None


def scope_of(params: dict[str, Any]) -> str:
    return str(params.get("azure_scope") or os.environ.get("AZURE_SCOPE") or DEFAULT_SCOPE)
