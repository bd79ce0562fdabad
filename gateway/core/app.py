"""create_app(settings) -> the Quart app. No module-level state: everything hangs off `Gateway`."""

from __future__ import annotations

import gc
import logging
import os
import sys
import time
from typing import Any, Awaitable, Callable

from quart import Quart, Response, g, request

from gateway.context import AlertEvent, AuditEvent
from gateway.core import auth, dead_letters, errors, fast_path
from gateway.core.access import AccessPolicy
from gateway.core.ui import routes as ui_routes
from gateway.core.ui.routes import ui_settings
from gateway.core.body_limit import BodyLimit
from gateway.core.enforced_params import enforced_params
from gateway.core.providers import registry as providers
from gateway.core.access_log import AccessLog
from gateway.core.db import Database, Timeouts
from gateway.core.identity import Directory, IdentityCache, Invalidator
from gateway.core.cache import ResponseCache
from gateway.core.redis_guard import RedisGuard
from gateway.errors import GatewayError
from gateway.core.call import admit, begin, check_body_size, check_declared_size, stamp
from gateway.core.dispatch import Dispatcher
from gateway.core.guardrails import Selection
from gateway.core.plugin_discovery import Installed
from gateway.core.plugins import PluginHost
from gateway.core.router import Router
from gateway.core.spend import routes as spend_routes
from gateway.core.spend.pricing import PriceTable
from gateway.core.management import audit, budgets, end_users, keys, organizations, teams, users
from gateway.core.openapi import DocsConfig, OpenAPIDocument
from gateway.core.apis import response_store
from gateway.core.routes import (config_reload, docs, guardrails, health, info, llm, media, messages, model_hub, model_info,
                                 pass_through, responses)
from gateway.core.settings import Settings, load_settings

log = logging.getLogger("gateway")

class Gateway:
    """The running gateway as plugins see it: settings, router, hooks, and helpers.

    Plugins may use: `settings`, `master_key`, `router`, `alert(event)`, `audit(event)`,
    `readiness_checks` (name -> async check), `http_client(url)`.
    """

    limits: Any  # set by the virtual_keys builtin (gateway.Gateway names it)

    def __init__(self, settings: Settings, host: PluginHost) -> None:
        self.settings = settings
        self.host = host
        self.master_key = settings.master_key
        self.router = Router(settings)
        self.router.gateway = self
        self.router.alert = self.alert  # a call that failed on every attempt raises an alert
        self.prices = PriceTable()
        self.router.known_models = list(self.prices.prices)
        self.router.price_of = self._unit_price
        self.spend_writer: Any = None  # set by the spend_logs builtin
        self.key_principal: Any = None  # set by the virtual_keys builtin: token hash -> Principal | None
        self.started_at = time.time()
        self.readiness_checks: dict[str, Callable[[], Awaitable[Any]]] = {}
        self.access_log = AccessLog()
        self.docs = DocsConfig(settings.env)
        self.ui = ui_settings(settings.file.general_settings)
        self.ui_sessions: Any = None  # the admin UI's sessions, set when its routes are mounted
        self.access = AccessPolicy(settings.file.general_settings)  # applied once the routes are mounted
        self.openapi: OpenAPIDocument = None  # type: ignore[assignment]  # set once the routes are mounted
        self.enforced_params = enforced_params(settings.file.general_settings.get("enforced_params"))
        response_store.days_of(settings.file.general_settings)  # a bad responses_store_days stops start-up
        self.dispatcher: Dispatcher = None  # type: ignore[assignment]  # set once plugins are built
        self.guardrails = Selection([])  # the configured guardrails, set once plugins are built
        self.request_body_limit: int | None = None
        self.body_refusals: list[tuple[int, Callable[[int, str, str], Exception]]] = []
        self.db = Database(settings.database_url, Timeouts.from_settings(settings.file.general_settings))
        ttl = float(settings.file.general_settings.get("user_api_key_cache_ttl") or 60.0)
        cache = IdentityCache(ttl=ttl)
        redis_url = settings.env.redis_url  # one guarded Redis client per process (timeouts, breaker)
        self.redis = RedisGuard(redis_url, timeout_s=settings.env.redis_socket_timeout) if redis_url else None
        self.directory = Directory(cache, Invalidator(cache, self.db.url, self.redis), self.db)
        self.directory.alert = self.alert  # soft budget alerts raised by the end-user loader
        # Cooldowns reach every worker (a file) and instance (Redis) the way cache evictions do.
        self.directory.invalidator.listeners["cooldown"] = self.router.cooled_elsewhere
        self.router.publish = lambda kind, ident: self.directory.invalidator.publish(kind, ident, wait=False)
        #: The response cache (`litellm_settings.cache`), None when off.
        self.cache = ResponseCache.from_settings(
            settings.file.litellm_settings, self.redis,
            lambda url: RedisGuard(url, timeout_s=settings.env.redis_socket_timeout))
        self.readiness_checks["database"] = self.db.ping
        self.dead_letters = dead_letters.DeadLetters(
            keep=int(settings.file.general_settings.get("dead_letters_keep") or dead_letters.DEFAULT_KEEP))

    def limit_request_body(self, max_bytes: int, refuse: Callable[[int, str, str], Exception] | None = None) -> None:
        """Ask that no request body be buffered past `max_bytes + 1` bytes (size-limit plugins).
        With `refuse(size, path, request_id)`, the core also refuses every request whose body is
        larger, first thing, before authentication: with the GatewayError `refuse` returns (its
        message, its alert), the request id and, when the body was not read, `Connection: close`."""
        current = self.request_body_limit
        self.request_body_limit = max_bytes if current is None else min(current, max_bytes)
        if refuse is not None:
            self.body_refusals.append((max_bytes, refuse))

    def http_client(self, url: str) -> Any:
        """A pooled httpx client for `url`'s host (aiohttp transport), shared with the router."""
        return self.router.pool.get(url)

    async def authenticate(self, request: Any) -> Any:
        """The caller of `request` as the core sees it (master key, virtual key, `auth` plugins):
        a Principal, or AuthenticationError (401) with the core's own message. For a plugin's
        route that wants a key on an otherwise public path (`/metrics`)."""
        return await auth.authenticate(request.headers, self, request)

    def call_cost(self, ctx: Any, outcome: Any) -> float:
        """What a finished call cost in USD, exactly as its spend row records it (0 for a blocked
        call or a cache hit): for `request_finished` observers (metrics, loggers)."""
        from gateway.core.spend.record import billed_usage

        return billed_usage(ctx, outcome, self.prices)[2]

    def _unit_price(self, deployment: Any) -> float:
        """Input plus output price per token of a deployment (cost-based routing); unknown: 0."""
        price = self.prices.price_for(deployment)
        return price.input_cost_per_token + price.output_cost_per_token if price is not None else 0.0

    def alert(self, event: AlertEvent) -> None:
        """Send an alert to every `alert` hook, off the request path."""
        self.dispatcher.fire("alert", event=event)

    def audit(self, event: AuditEvent) -> None:
        """Record an administrative change through the `audit` hook, off the request path."""
        self.dispatcher.fire("audit", event=event)


def load(config_path: str | None = None) -> Settings:
    """Settings with the enabled plugins' `prepare_environment` run before the config is resolved.
    The installed plugins are looked up here, once: `create_app` takes them from the settings."""
    installed = Installed.scan()

    def prepare(raw: dict[str, Any]) -> None:
        host = PluginHost(installed)
        host.discover(raw)
        host.prepare_environment()

    settings = load_settings(config_path, prepare=prepare)
    settings.installed = installed
    return settings


def create_app(settings: Settings) -> Quart:
    """Build the app: plugins registered, hooks ordered, routes mounted, serving hooks wired."""
    host = PluginHost(settings.installed or Installed.scan())
    host.discover(settings.raw)  # the builtins (virtual keys, spend logs, ...) as any plugin
    gw = Gateway(settings, host)
    host.instantiate(settings, gw)
    gw.router.load(providers.collect(host, gw))
    gw.dispatcher = Dispatcher(host)
    gw.guardrails = Selection(host.guardrails)

    app = Quart("gateway")
    app.config.update(RESPONSE_TIMEOUT=None, BODY_TIMEOUT=None, MAX_CONTENT_LENGTH=None, JSON_SORT_KEYS=False)
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep documented field order
    app.gateway = gw  # type: ignore[attr-defined]
    fast = fast_path.install(app, gw)  # beneath the body limit: it reads what the limit lets through
    if gw.request_body_limit is not None:
        app.asgi_app = BodyLimit(app.asgi_app, gw.request_body_limit)  # type: ignore[method-assign]
    errors.install(app)
    app.register_blueprint(llm.bp)
    app.register_blueprint(messages.bp)
    app.register_blueprint(responses.bp)
    app.register_blueprint(media.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(info.bp)
    app.register_blueprint(config_reload.bp)
    app.register_blueprint(model_hub.bp)
    app.register_blueprint(model_info.bp)
    app.register_blueprint(model_info.models_bp)  # /model/new|update|delete (management/models.py)
    app.register_blueprint(guardrails.bp)
    app.register_blueprint(keys.bp)
    app.register_blueprint(spend_routes.bp)
    app.register_blueprint(teams.bp)
    app.register_blueprint(users.bp)
    app.register_blueprint(end_users.bp)
    app.register_blueprint(budgets.bp)
    app.register_blueprint(organizations.bp)
    app.register_blueprint(audit.bp)
    app.register_blueprint(dead_letters.bp)
    for blueprints in host.pm.hook.routes(gateway=gw):
        for blueprint in blueprints or ():
            if app.blueprints.get(blueprint.name) is blueprint:
                continue  # one plugin serving several guardrails returns its routes once per instance
            name, n = blueprint.name, 1
            while name in app.blueprints:  # another instance of the plugin made its own blueprint
                n += 1
                name = f"{blueprint.name}_{n}"
            app.register_blueprint(blueprint, name=name)
    app.register_blueprint(docs.blueprint(gw.docs))
    if gw.ui.enabled:
        app.register_blueprint(ui_routes.blueprint(gw.ui, gw))
    gw.access.mount(app)  # the route groups, as the routes above declare them
    pass_through.install(app, gw)  # last route mounted: its paths are checked against every route above
    gw.openapi = OpenAPIDocument(app, gw.docs, gw.access)

    @app.before_request
    async def identify() -> None:
        call = begin(request.method, request.path, request.headers, request)
        g.call = call
        g.started, g.request_id, g.principal = call.started, call.request_id, None
        if (gw.body_refusals and request.method != "OPTIONS" and not check_declared_size(gw, call)
                and request.method in ("POST", "PUT", "PATCH")):  # no content-length: the body as read
            check_body_size(gw, call, len(await request.get_data()), read=True)  # at most the limit + 1
        if request.method == "OPTIONS" or request.routing_exception is not None:
            return  # a preflight, or no such route (answered 404/405 without a key)
        try:
            await admit(gw, call)
        except GatewayError as refused:
            await _settle_unread_body(refused)
            raise
        g.principal = call.principal

    @app.after_request
    async def stamp_response(response: Response) -> Response:
        call = getattr(g, "call", None)
        if call is not None:
            stamp(gw, call, response)
        return response

    fast.core_functions = (identify, stamp_response)

    @app.before_serving
    async def start() -> None:
        try:
            await _start(gw, host)
        except Exception as exc:
            await _abort(gw)
            if os.environ.get("GATEWAY_EXIT_ON_STARTUP_FAILURE") == "1":
                # Under the CLI: one clear line and a non-zero exit, never a hung server.
                print(f"gateway: error: {exc}", file=sys.stderr, flush=True)
                os._exit(3)
            raise

    @app.after_serving
    async def stop() -> None:
        await gw.dispatcher.drain()
        await gw.dispatcher.run_lifecycle("shutdown", gw)
        await gw.dispatcher.drain()
        await gw.router.close()
        if gw.cache is not None:
            await gw.cache.close()
        await gw.directory.invalidator.close()
        await gw.db.close()

    return app


#: A refused request's body up to this size is read (and dropped) so its connection can serve the
#: next request; a larger one is not read, and the reply says the connection closes.
UNREAD_BODY_DRAIN_BYTES = 64 * 1024


async def _settle_unread_body(refused: GatewayError) -> None:
    """A request refused before its body was read (401, 403): hypercorn closes a keep-alive
    connection whose request body was not all received when the reply ended, without saying so,
    and the client's next request on it then fails. Small bodies are read; larger ones get
    `Connection: close` on the reply, so the client opens a new connection."""
    declared = request.headers.get("content-length")
    chunked = "chunked" in request.headers.get("transfer-encoding", "").lower()
    if not chunked and (declared is None or declared == "0"):
        return
    if not chunked and declared.isdigit() and int(declared) <= UNREAD_BODY_DRAIN_BYTES:
        await request.get_data(cache=False)
        return
    refused.headers = {**refused.headers, "Connection": "close"}


async def _start(gw: Gateway, host: PluginHost) -> None:
    if gw.master_key is None:
        log.warning("NO MASTER KEY IS SET: every caller is admin (development mode). "
                    "Set general_settings.master_key or GATEWAY_MASTER_KEY before exposing this gateway.")
    await gw.db.connect()
    await gw.db.ensure_current()
    await gw.directory.invalidator.start()
    log.info("database: %s", gw.db.display_url)
    await gw.dispatcher.run_lifecycle("startup", gw)
    log.info("gateway ready: %d model group(s), plugins: %s", len(gw.router.groups),
             ", ".join(s.name for s in host.ordered()) or "none")
    # Everything built so far lives as long as the process: keep the collector from walking it
    # again and again under load (the benchmark's figures, bench/README.md).
    gc.collect()
    gc.freeze()


async def _abort(gw: Gateway) -> None:
    """Undo a start that failed half-way: stop what started, close what opened."""
    try:
        await gw.dispatcher.run_lifecycle("shutdown", gw)
        await gw.dispatcher.drain(timeout=5)
    finally:
        await gw.router.close()
        if gw.cache is not None:
            await gw.cache.close()
        await gw.directory.invalidator.close()
        await gw.db.close()
