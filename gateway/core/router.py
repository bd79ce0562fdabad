"""Model groups: resolve the name asked for, choose a deployment, call it; retry another on a
connect error, a timeout, 429 or 5xx (within `num_retries`, `retry_after` seconds apart), then the
group's fallbacks.

Names, fallbacks and the choice of a deployment are in `gateway.core.routing`. A deployment that
failed is cooled down for `cooldown_time` seconds (at once when unreachable or rate limited, else
after more than `allowed_fails` failures in a minute) so the next requests go elsewhere while any
other is available. Every attempt is recorded on `ctx.attempts` (the spend row keeps them); the
reply names the deployment that answered (`x-gateway-model-id`) and the fallbacks tried
(`x-gateway-attempted-fallbacks`). Deployments added at runtime are router_runtime.py's.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from typing import Any, Awaitable, Callable

import orjson

from gateway.context import AlertEvent
from gateway.core import upstream_http
from gateway.core.logsafe import capped_body
from gateway.core.providers import fake, openai_compatible
from gateway.core.providers.deployment import DEFAULT_STREAM_TOTAL_TIMEOUT, Deployment, DeploymentError, resolve
from gateway.core.router_runtime import RuntimeDeployments
from gateway.core.routing.fallbacks import ConfigFallbackError, Fallbacks
from gateway.core.routing.names import ConfigNameError, ModelNames, invalid_model
from gateway.core.routing.strategies import WINDOW_S, NoDeploymentAvailable, Strategy
from gateway.errors import GatewayError, UpstreamConnectionError, UpstreamError, UpstreamTimeoutError

log = logging.getLogger("gateway.router")

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})  # 529: Anthropic overloaded


def upstream_error(dep: Deployment, status: int, body: bytes) -> UpstreamError:
    """The provider's error as the client sees it: its status, type and message, prefixed."""
    message, etype, param = None, None, None
    try:
        data = orjson.loads(body)
        err = data.get("error", data) if isinstance(data, dict) else None
        if isinstance(err, dict):
            message = err.get("message")
            etype = err.get("type")
            param = err.get("param")
        elif isinstance(err, str):
            message = err
    except orjson.JSONDecodeError:
        message = body.decode(errors="replace")[:500] or None
    if not isinstance(message, str) or not message:
        message = f"upstream returned HTTP {status}"
    return UpstreamError(
        f"{dep.provider_display}Exception - {dep.redact(message)}",
        status=status if 400 <= status <= 599 else 502,
        type=etype if isinstance(etype, str) else "api_error",
        param=param if isinstance(param, str) else None,
    )


def fingerprint(dep: Deployment) -> str:
    """A deployment's name between instances: its id and where it calls (two configs that reuse
    an id for other upstreams, sharing one Redis, never cool each other's deployments down)."""
    return hashlib.sha256(f"{dep.id}|{dep.provider}|{dep.api_base}|{dep.upstream_model}".encode()).hexdigest()[:16]


class Router(RuntimeDeployments):
    """Owns the deployments, the routing state and the pooled upstream clients."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.groups: dict[str, list[Deployment]] = {}
        self.num_retries = settings.num_retries
        rs = settings.file.router_settings
        extra = {**settings.file.litellm_settings, **(rs.model_extra or {})}
        cooldown = rs.cooldown_time if rs.cooldown_time is not None else extra.get("cooldown_time")
        self.cooldown_time = 5.0 if cooldown is None else float(cooldown)
        self.allowed_fails = int(extra.get("allowed_fails", 3) or 0)
        self.retry_after = float(extra.get("retry_after", 0) or 0)
        self._pool: Any = None
        transport = settings.env.http_transport
        self.upstreams = (upstream_http.UpstreamPool() if transport == "gateway" else
                          _aiohttp_sessions() if transport == "aiohttp" else self.pool)
        self.names = ModelNames({}, None)
        self.fallbacks: Fallbacks | None = None
        self.strategy = Strategy("simple-shuffle", {}, lambda d: 0.0)
        #: Where a call that failed on every attempt is reported (the app sets `Gateway.alert`).
        self.alert: Callable[[AlertEvent], None] | None = None
        #: Prices by deployment, for cost-based routing (the app sets it from the price table).
        self.price_of: Callable[[Deployment], float] = lambda d: 0.0
        #: `provider/model` names the gateway knows (the price table's), for wildcard listings.
        self.known_models: list[str] = []
        #: Tells the other workers and instances (`publish(kind, ident)`, a coroutine): the app
        #: sets it to the identity invalidator's, which carries lines through a file and Redis.
        self.publish: Callable[[str, str], Awaitable[None]] | None = None
        self._by_fingerprint: dict[str, Deployment] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        #: The gateway (set by it): its `limits` count deployment rpm/tpm.
        self.gateway: Any = None
        #: Models added at runtime: where they are read from (`model_store.Store`, set when
        #: `store_model_in_db` is on), the reloads under way, and the ids of the config's models.
        self.stored: Any = None
        self.pending: set[asyncio.Task[None]] = set()
        self.config_ids: set[str] = set()
        self.team_names: dict[tuple[str, str], str] = {}
        self._stored_seen: dict[str, Any] = {}
        self._reload_lock: asyncio.Lock | None = None
        self._build: tuple[float, float, Any, bool] = (600.0, DEFAULT_STREAM_TOTAL_TIMEOUT, None, False)
        self._aliases: Any = None

    def load(self, providers: Any) -> None:
        """Resolve `model_list` with the providers the plugins offer, then the routing settings
        (raises DeploymentError naming the key)."""
        file = self.settings.file
        default_timeout = file.router_settings.timeout or file.litellm_settings.get("request_timeout") or 600.0
        stream_total = file.router_settings.stream_total_timeout or DEFAULT_STREAM_TOTAL_TIMEOUT
        drop = file.litellm_settings.get("drop_params") is True
        self._build = (float(default_timeout), stream_total, providers, drop)
        groups: dict[str, list[Deployment]] = {}
        for i, entry in enumerate(file.model_list):
            dep = resolve(i, entry, float(default_timeout), stream_total, providers, drop)
            groups.setdefault(dep.model_name, []).append(dep)
        self.config_ids = {d.id for deps in groups.values() for d in deps}
        router_extra = file.router_settings.model_extra or {}
        try:
            aliases = router_extra.get("model_group_alias", file.litellm_settings.get("model_group_alias"))
            if aliases is not None and not isinstance(aliases, dict):
                raise ConfigNameError("router_settings.model_group_alias: must be a mapping of alias: model group")
            self._aliases = aliases
            self._install(groups)
            self.fallbacks = Fallbacks(router_extra, file.litellm_settings, lambda n: self.names.find(n) is not None)
            self.strategy = Strategy(file.router_settings.routing_strategy, router_extra, lambda d: self.price_of(d))
        except (ConfigNameError, ConfigFallbackError, ValueError) as exc:
            raise DeploymentError(str(exc)) from None

    def model_names(self) -> list[str]:
        return self.names.listed(self.known_models)

    def resolve(self, model: str, principal: Any = None) -> tuple[str, list[Deployment]]:
        """(group, deployments) for a requested name, as `ModelNames.resolve`, with team models
        (added by a team admin, `model_info.team_id`) called by their public name by that team's
        keys and by no other team's: to anyone else a team's model does not exist (400)."""
        team_id = getattr(principal, "team_id", None)
        if team_id and self.team_names:
            model = self.team_names.get((team_id, model), model)
        name, group = self.names.resolve(model, principal)
        owner = group[0].model_info.get("team_id") if group else None
        if owner and principal is not None and not principal.is_admin and team_id != owner:
            raise invalid_model(model)
        return name, group

    def group(self, model: str, principal: Any = None) -> list[Deployment]:
        """The deployments a requested name reaches (aliases and wildcards followed); 400 if none."""
        return self.resolve(model, principal)[1]

    def _install(self, groups: dict[str, list[Deployment]]) -> None:
        """Serve these groups from now on (requests under way keep the lists they hold)."""
        names = ModelNames(groups, self._aliases)
        self.team_names = {(d.model_info["team_id"], d.model_info["team_public_model_name"]): name
                           for name, deps in groups.items() for d in deps
                           if d.model_info.get("team_id") and d.model_info.get("team_public_model_name")}
        self.groups, self.names = groups, names
        self._by_fingerprint = {fingerprint(d): d for deps in groups.values() for d in deps}

    def pick(self, group: list[Deployment], exclude: set[str]) -> Deployment:
        now = time.monotonic()
        candidates = [d for d in group if d.id not in exclude and d.cooldown_until <= now]
        if not candidates:
            candidates = [d for d in group if d.id not in exclude] or group
        return self.strategy.pick(candidates)

    def _failed(self, dep: Deployment, error: GatewayError | None) -> None:
        """Cool a deployment down (only in a group with another to go to): at once when it is
        unreachable or rate limited, else once it failed more than `allowed_fails` times in a minute."""
        if not self.cooldown_time or len(self.names.find(dep.model_name) or ()) <= 1:
            return
        now = time.monotonic()
        stats = self.strategy.of(dep)
        stats.failures = [t for t in stats.failures if t > now - 60.0]
        stats.failures.append(now)
        immediate = error is None or error.status in (401, 404, 408, 429)
        if (immediate or len(stats.failures) > self.allowed_fails) and dep.cooldown_until <= now:
            dep.cooldown_until = now + self.cooldown_time
            key = fingerprint(dep)
            if self.publish is not None and key in self._by_fingerprint:  # wildcard copies stay local
                task = asyncio.get_running_loop().create_task(
                    self.publish("cooldown", f"{key}|{time.time() + self.cooldown_time:.3f}"))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _admitted(self, group: list[Deployment], tried: set[str]) -> Deployment:
        """A deployment chosen by the strategy that is under its own `rpm` / `tpm` (counted exactly,
        in Redis when there is one: `gateway.limits`); NoDeploymentAvailable when none is."""
        limits = getattr(self.gateway, "limits", None)
        full: set[str] = set()
        reset = WINDOW_S
        while True:
            dep = self.pick(group, tried | full)
            rpm, tpm = dep.params.get("rpm"), dep.params.get("tpm")
            if limits is None or (rpm is None and tpm is None):
                return dep
            if dep.id in full:  # every deployment is at its limit
                raise NoDeploymentAvailable(retry_after=reset)
            key = fingerprint(dep)
            ok, wait = True, 0.0
            if rpm is not None:
                ok, _, wait = await limits.try_window(f"deployment:{key}:rpm", 1, rpm, WINDOW_S)
            if ok and tpm is not None:
                ok, _, wait = await limits.try_window(f"deployment:{key}:tpm", 0, tpm, WINDOW_S)
            if ok:
                return dep
            full.add(dep.id)
            reset = min(reset, wait or WINDOW_S)

    def cooled_elsewhere(self, ident: str) -> None:
        """Another worker or instance cooled a deployment down until a wall-clock time."""
        key, _, until = ident.rpartition("|")
        dep = self._by_fingerprint.get(key)
        try:
            remaining = float(until) - time.time()
        except ValueError:
            return
        if dep is not None and remaining > 0:
            dep.cooldown_until = max(dep.cooldown_until, time.monotonic() + min(remaining, self.cooldown_time or 0))

    async def _send(self, dep: Deployment, call_type: str, body: dict[str, Any], stream: bool,
                    extra_headers: dict[str, str] | None = None) -> Any:
        if dep.provider == "fake":
            if log.isEnabledFor(logging.DEBUG):  # in --detailed_debug like any upstream call
                log.debug("POST Request Sent from gateway: fake/%s (in-process, %s) body=%s", dep.upstream_model,
                          call_type, capped_body(orjson.dumps(body)))
            return await fake.send(dep, call_type, body, stream)
        return await openai_compatible.send(self.upstreams, dep, call_type, body, stream, extra_headers)

    async def call(self, ctx: Any, call_type: str, body: dict[str, Any], stream: bool) -> Any:
        """Send to a deployment of the requested group, retrying within `num_retries`; when the
        group fails, its fallback groups in order (see `routing.fallbacks`).

        Returns a reply with a 2xx status; raises the first group's failure as a GatewayError
        (the error the client's own model gave), or a fallback's when every group failed.
        """
        requested = body.pop("fallbacks", None) if "fallbacks" in body else None
        name, group = self.resolve(ctx.model, ctx.principal)
        tried: set[str] = set()
        try:
            return await self._call_group(ctx, name, group, call_type, body, stream, tried)
        except GatewayError as first:
            order = self.fallbacks.after(name, first, requested) if self.fallbacks is not None else []
            if not order:
                self._report_failure(ctx, first, len(ctx.attempts), tried)
                raise
            last: GatewayError = first
            n = 0
            for fallback in order:
                deps = self.names.find(fallback)
                if deps is None:
                    continue  # a per-request fallback that names nothing: skipped, as LiteLLM does
                n += 1
                ctx.response_headers["x-gateway-attempted-fallbacks"] = str(n)
                log.warning("request %s: model group %s failed (%s); falling back to %s", ctx.request_id, name,
                            first.message[:200], fallback)
                try:
                    return await self._call_group(ctx, fallback, deps, call_type, body, stream, tried)
                except GatewayError as exc:
                    last = exc
            self._report_failure(ctx, last, len(ctx.attempts), tried)
            raise first from None

    async def _call_group(self, ctx: Any, name: str, group: list[Deployment], call_type: str,
                          body: dict[str, Any], stream: bool, tried: set[str]) -> Any:
        last: GatewayError | None = None
        for attempt in range(self.num_retries + 1):
            if attempt and self.retry_after:
                await asyncio.sleep(self.retry_after)
            untried = [d for d in group if d.id not in tried]
            try:
                dep = await self._admitted(group, tried)
            except NoDeploymentAvailable as full:
                wait = max(1, math.ceil(full.retry_after))
                raise GatewayError(f"No deployments available for selected model, Try again in {wait} seconds. "
                                   f"Passed model={name}. Every deployment is at its rpm/tpm limit.",
                                   status=429, type="rate_limit_error", headers={"retry-after": str(wait)}) from None
            tried.add(dep.id)
            ctx.deployment = dep
            record: dict[str, Any] = {"model_group": name, "model_id": dep.id}
            ctx.attempts.append(record)
            self.strategy.started(dep)
            started = time.perf_counter()
            try:
                reply = await self._send(dep, call_type, body, stream, ctx.upstream_headers)
            except (UpstreamTimeoutError, UpstreamConnectionError) as exc:
                ctx.upstream_seconds += time.perf_counter() - started
                self.strategy.ended(dep, None)
                record["status"], record["error"] = exc.status, exc.type
                self._failed(dep, None)  # unreachable or too slow: cooled down at once
                last = exc
                log.warning("request %s: %s (attempt %d)", ctx.request_id, exc.message, attempt + 1)
                if isinstance(exc, UpstreamTimeoutError) and len(untried) <= 1:
                    break  # a timeout is retried on another deployment only: the same one would wait again
                continue
            if reply.status < 400:
                ctx.upstream_seconds += time.perf_counter() - started
                record["status"] = reply.status
                ctx.state_for("_router")["attempt_started"] = started
                ctx.response_headers["x-gateway-model-id"] = dep.id
                return reply
            error = upstream_error(dep, reply.status, await reply.read())
            ctx.upstream_seconds += time.perf_counter() - started
            self.strategy.ended(dep, None)
            record["status"], record["error"] = reply.status, error.type
            if reply.status not in RETRYABLE_STATUS:
                if reply.status in (401, 403, 404):
                    self._failed(dep, error)
                raise error
            self._failed(dep, error)
            last = error
            log.warning("request %s: deployment %s answered %d (attempt %d)", ctx.request_id, dep.id, reply.status, attempt + 1)
        assert last is not None
        raise last

    def finished(self, ctx: Any, usage: dict[str, Any] | None, ok: bool) -> None:
        """The call ended (a stream at its end): what the routing strategies learn from it."""
        dep = ctx.deployment
        started = ctx.state.get("_router", {}).get("attempt_started")
        if dep is None or started is None:
            return
        tokens = int((usage or {}).get("total_tokens") or 0)
        output = int((usage or {}).get("completion_tokens") or 0) if ctx.stream else 0
        self.strategy.ended(dep, time.perf_counter() - started if ok else None, tokens, output)
        limits = getattr(self.gateway, "limits", None)
        if tokens and limits is not None and dep.params.get("tpm") is not None:
            limits.add(f"deployment:{fingerprint(dep)}:tpm", tokens, WINDOW_S)

    def _report_failure(self, ctx: Any, error: GatewayError, attempts: int, tried: set[str]) -> None:
        """No attempt succeeded: raise an `upstream_failure` alert. The message names the group and
        the last error (already free of any api_key), and stays the same for every request that
        fails the same way, so that alert channels can fold a storm into one message."""
        if self.alert is None:
            return
        self.alert(AlertEvent(
            kind="upstream_failure", level="error", request_id=ctx.request_id,
            message=f"Model group {ctx.model}: {attempts} attempt(s) failed. Last error: {error.message}",
            details={"model_group": ctx.model, "attempts": attempts, "deployments": sorted(tried),
                     "status": error.status},
        ))

    @property
    def pool(self) -> Any:
        """The httpx clients (plugins' `http_client`, probes, pass-through), made on first use so a
        worker that never needs them never imports httpx or aiohttp."""
        if self._pool is None:
            from gateway.core.providers import library_clients

            own_pool = self.settings.env.http_transport == "httpx"
            self._pool = library_clients.ClientPool(transport="httpx" if own_pool else "httpx-aiohttp")
        return self._pool

    async def close(self) -> None:
        if self.upstreams is not self._pool:
            await self.upstreams.close()
        if self._pool is not None:
            await self._pool.close()


def _aiohttp_sessions() -> Any:
    from gateway.core.providers import library_clients

    return library_clients.SessionPool()


__all__ = ["Router", "DeploymentError", "upstream_error"]
