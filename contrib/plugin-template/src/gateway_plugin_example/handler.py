"""The plugin: a `gateway.Plugin` subclass whose `@hookimpl` methods are hooks from the contract
(`gateway.hookspecs`). The gateway builds one instance per enabled plugin at start-up:
`HeaderGuard(config, gateway)`, with `config` an already validated `HeaderGuardConfig`.
"""

from __future__ import annotations

import logging
from typing import Any

from gateway import BadRequestError, Outcome, Plugin, RequestContext, hookimpl

from gateway_plugin_example.config import HeaderGuardConfig

# Under the `gateway` logger, so the server's log level and format apply to it.
log = logging.getLogger("gateway.plugins.example_header_guard")


class HeaderGuard(Plugin):
    """Refuses an LLM call that lacks a required header (e.g. `x-project-id`) or carries a value
    outside its allow-list, before anything is sent upstream; logs each finished call with the
    header values, so usage can be attributed to projects."""

    name = "example_header_guard"  # the entry-point name
    priority = 950  # "cheap limits" band (900-999): after identity, before transforms and remote guards
    Config = HeaderGuardConfig

    config: HeaderGuardConfig

    @hookimpl
    async def pre_request(self, ctx: RequestContext) -> None:
        """Check the headers; raising a `GatewayError` blocks the call with its status and message
        (in `mode: monitor` the framework logs the block and lets the call go on)."""
        cfg = self.config
        if cfg.example_exempt_admin and ctx.principal is not None and ctx.principal.is_admin:
            return
        headers = {k.lower(): v for k, v in ctx.headers.items()}
        seen: dict[str, str] = {}
        for name in cfg.example_required_headers:
            value = (headers.get(name) or "").strip()
            if not value:
                raise BadRequestError(f"Missing required header: {name}")
            if len(value) > cfg.example_max_value_length:
                raise BadRequestError(
                    f"Header {name} is longer than {cfg.example_max_value_length} characters"
                )
            allowed = cfg.example_allowed_values.get(name)
            if allowed is not None and value not in allowed:
                raise BadRequestError(
                    f"Header {name} has a value that is not allowed: {value!r}. Allowed: {', '.join(allowed)}"
                )
            seen[name] = value
        # Per-request scratch space, private to this plugin: read again in request_finished.
        ctx.state_for(self.name)["headers"] = seen

    @hookimpl
    async def request_finished(self, ctx: RequestContext, outcome: Outcome) -> None:
        """Observer: runs after the reply, off the request path; it can never change the reply."""
        seen: dict[str, Any] = ctx.state_for(self.name).get("headers") or {}
        if not seen:
            return  # blocked (by us or an earlier plugin) or exempt: nothing to attribute
        tokens = (outcome.usage or {}).get("total_tokens")
        log.info(
            "request %s %s model=%s status=%s total_tokens=%s",
            ctx.request_id,
            " ".join(f"{k}={v}" for k, v in seen.items()),
            ctx.model,
            outcome.status,
            tokens,
        )
