"""`gateway.Gateway`: what plugins may use of the running gateway.

It types `Plugin.gateway` and the `gateway` argument of `startup`, `shutdown`, `routes`,
`providers` and `auth`. The object the core hands over (`gateway.core.app.Gateway`) has more on
it; anything not named here is internal and may change.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from gateway.context import AlertEvent, AuditEvent, Outcome, Principal, RequestContext

if TYPE_CHECKING:
    import httpx
    from quart import Request


@runtime_checkable
class Gateway(Protocol):
    """The running gateway as plugins see it.

    The first group is for every plugin. The second group is what the built-in plugins
    (`gateway/builtins`: virtual keys, spend logs, the audit store) use besides: internals
    typed as `Any`, that a third-party plugin should not rely on.
    """

    # -- for every plugin -------------------------------------------------------------------------
    @property
    def settings(self) -> Any:
        """The parsed settings: `settings.file.general_settings`, `.file.litellm_settings`,
        `.file.model_list`, `.flat_settings`, `.env`, `.master_key`, `.database_url`,
        `.config_path`."""

    @property
    def master_key(self) -> str | None:
        """The master key, or None in development mode; never log it."""

    @property
    def router(self) -> Any:
        """The model groups: `router.model_names()`, `router.groups` (name -> deployments with
        `id`, `provider`, `upstream_model`, `api_base`)."""

    @property
    def readiness_checks(self) -> dict[str, Callable[[], Awaitable[Any]]]:
        """Name -> async check of no arguments that raises when not ready; add yours in
        `startup`. `GET /health/readiness` runs them all."""

    def alert(self, event: AlertEvent) -> None:
        """Send `event` to every `alert` hook, in the background."""

    def audit(self, event: AuditEvent) -> None:
        """Send `event` to every `audit` hook, in the background."""

    def http_client(self, url: str) -> httpx.AsyncClient:
        """The gateway's pooled client for the host of `url`, shared with the router; the
        gateway closes it."""

    async def authenticate(self, request: Request) -> Principal:
        """The caller of `request` as the core sees it (master key, virtual key, `auth`
        plugins), or `AuthenticationError`: for a plugin's route on a public path."""

    def call_cost(self, ctx: RequestContext, outcome: Outcome) -> float:
        """What a finished call cost in USD, exactly as its spend row records it."""

    def limit_request_body(self, max_bytes: int,
                           refuse: Callable[[int, str, str], Exception] | None = None) -> None:
        """Ask that no request body be buffered past `max_bytes + 1` bytes; call it from
        `__init__`. With `refuse(size, path, request_id)` the core also refuses larger bodies
        itself, with the `GatewayError` it returns."""

    # -- the built-in plugins' own (internal) -----------------------------------------------------
    @property
    def prices(self) -> Any:
        """The price table."""

    @property
    def directory(self) -> Any:
        """Keys, teams, users and end users, cached."""

    @property
    def db(self) -> Any:
        """The database."""

    @property
    def redis(self) -> Any:
        """The process's guarded Redis client, or None without `REDIS_URL`."""

    @property
    def dead_letters(self) -> Any:
        """Rows the database refused, kept for an operator."""

    #: Budget and rate-limit counters (set by the virtual-key builtin).
    limits: Any
    #: The spend log's batch writer (set by the spend-log builtin).
    spend_writer: Any
