"""Model groups: choose a deployment, call it, retry another on connect error, 429 or 5xx.

Several `model_list` entries may share a `model_name`; the load is spread over them at random,
weighted by `weight` (or `rpm`). A deployment that failed is cooled down for `cooldown_time`
seconds so the next requests go elsewhere while any other is available.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any, Callable

import orjson

from gateway.context import AlertEvent
from gateway.core.logsafe import capped_body
from gateway.core.providers import fake, openai_compatible
from gateway.core.providers.deployment import DEFAULT_STREAM_TOTAL_TIMEOUT, Deployment, DeploymentError, resolve
from gateway.errors import BadRequestError, GatewayError, UpstreamConnectionError, UpstreamError, UpstreamTimeoutError

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


class Router:
    """Owns the deployments and the pooled upstream clients."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.groups: dict[str, list[Deployment]] = {}
        self.num_retries = settings.num_retries
        cooldown = settings.file.router_settings.cooldown_time
        self.cooldown_time = 5.0 if cooldown is None else float(cooldown)
        transport = settings.env.http_transport
        self.pool = openai_compatible.ClientPool(transport="httpx" if transport == "httpx" else "httpx-aiohttp")
        self.upstreams = openai_compatible.SessionPool() if transport == "aiohttp" else self.pool
        #: Where a call that failed on every attempt is reported (the app sets `Gateway.alert`).
        self.alert: Callable[[AlertEvent], None] | None = None

    def load(self, providers: Any) -> None:
        """Resolve `model_list` with the providers the plugins offer (raises DeploymentError)."""
        file = self.settings.file
        default_timeout = file.router_settings.timeout or file.litellm_settings.get("request_timeout") or 600.0
        stream_total = file.router_settings.stream_total_timeout or DEFAULT_STREAM_TOTAL_TIMEOUT
        drop = file.litellm_settings.get("drop_params") is True
        groups: dict[str, list[Deployment]] = {}
        for i, entry in enumerate(file.model_list):
            dep = resolve(i, entry, float(default_timeout), stream_total, providers, drop)
            groups.setdefault(dep.model_name, []).append(dep)
        self.groups = groups

    def model_names(self) -> list[str]:
        return list(self.groups)

    def group(self, model: str) -> list[Deployment]:
        group = self.groups.get(model)
        if group is None:
            raise BadRequestError(
                f"Invalid model name passed in model={model}. Call /v1/models to view available models for your key.",
                param="model",
            )
        return group

    def pick(self, group: list[Deployment], exclude: set[str]) -> Deployment:
        if len(group) == 1:
            return group[0]
        now = time.monotonic()
        candidates = [d for d in group if d.id not in exclude and d.cooldown_until <= now]
        if not candidates:
            candidates = [d for d in group if d.id not in exclude] or group
        if len(candidates) == 1:
            return candidates[0]
        return random.choices(candidates, weights=[d.weight or 1.0 for d in candidates])[0]

    def _cool_down(self, dep: Deployment) -> None:
        if self.cooldown_time and len(self.groups.get(dep.model_name, ())) > 1:
            dep.cooldown_until = time.monotonic() + self.cooldown_time

    async def _send(self, dep: Deployment, call_type: str, body: dict[str, Any], stream: bool) -> Any:
        if dep.provider == "fake":
            if log.isEnabledFor(logging.DEBUG):  # in --detailed_debug like any upstream call
                log.debug("POST Request Sent from gateway: fake/%s (in-process, %s) body=%s", dep.upstream_model,
                          call_type, capped_body(orjson.dumps(body)))
            return await fake.send(dep, call_type, body, stream)
        return await openai_compatible.send(self.upstreams, dep, call_type, body, stream)

    async def call(self, ctx: Any, call_type: str, body: dict[str, Any], stream: bool) -> Any:
        """Send to a deployment of the group; retry others within `num_retries`.

        Returns a reply with a 2xx status; raises the last failure as a GatewayError.
        """
        group = self.group(ctx.model)
        tried: set[str] = set()
        last: GatewayError | None = None
        for attempt in range(self.num_retries + 1):
            dep = self.pick(group, tried)
            tried.add(dep.id)
            ctx.deployment = dep
            started = time.perf_counter()
            try:
                reply = await self._send(dep, call_type, body, stream)
            except UpstreamTimeoutError as exc:
                ctx.upstream_seconds += time.perf_counter() - started
                self._report_failure(ctx, exc, attempt + 1, tried)
                raise
            except UpstreamConnectionError as exc:
                ctx.upstream_seconds += time.perf_counter() - started
                self._cool_down(dep)
                last = exc
                log.warning("request %s: %s (attempt %d)", ctx.request_id, exc.message, attempt + 1)
                continue
            if reply.status < 400:
                ctx.upstream_seconds += time.perf_counter() - started
                return reply
            error = upstream_error(dep, reply.status, await reply.read())
            ctx.upstream_seconds += time.perf_counter() - started
            if reply.status not in RETRYABLE_STATUS:
                raise error
            self._cool_down(dep)
            last = error
            log.warning("request %s: deployment %s answered %d (attempt %d)", ctx.request_id, dep.id, reply.status, attempt + 1)
        assert last is not None
        self._report_failure(ctx, last, self.num_retries + 1, tried)
        raise last

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

    async def close(self) -> None:
        if self.upstreams is not self.pool:
            await self.upstreams.close()
        await self.pool.close()


__all__ = ["Router", "DeploymentError", "upstream_error"]
