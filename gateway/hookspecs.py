"""THE contract between the gateway and its plugins: every hook, and what it may do.

Hooks that serve requests are coroutines; the gateway awaits them itself in priority order
(see `gateway/core/dispatch.py`), with each plugin's `timeout_s`, `on_error` and `mode` applied by
the framework. A plugin implements any subset, as methods marked `@hookimpl` and named like the
spec; it may accept fewer arguments than the spec names.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # for the annotations only: the module's names are the hooks (see core/plugins.py)
    from quart import Blueprint, Request

    from gateway.context import AlertEvent, AuditEvent, Outcome, Principal, RequestContext
    from gateway.protocol import Gateway
    from gateway.provider import Provider

hookspec = pluggy.HookspecMarker("gateway")


@hookspec
def prepare_environment(environ: MutableMapping[str, str], config: dict[str, Any]) -> None:
    """Before the config is resolved (sync; a staticmethod or classmethod: no instance exists
    yet). May add or rewrite variables in `environ`, which is `os.environ`, and rewrite values in
    `config`, the config file as parsed (its `environment_variables` already exported, no
    `os.environ/` reference resolved yet), in place. Used to decrypt secrets (AWS KMS)."""


@hookspec
async def startup(gateway: Gateway) -> None:
    """Serving starts: open clients, load lists, warm caches. All plugins, in priority order.
    Raising stops start-up with the plugin's name and the error."""


@hookspec
async def shutdown(gateway: Gateway) -> None:
    """Serving stops: flush and close what `startup` opened. All plugins, in priority order;
    an error is logged and the rest still run."""


@hookspec
def routes(gateway: Gateway) -> list[Blueprint] | None:
    """App build (sync): return Quart blueprints to mount (e.g. `/customer/block`).
    Every plugin's are collected; routes are authenticated like the core's."""


@hookspec
def providers(gateway: Gateway) -> list[Provider] | None:
    """App build (sync): return `gateway.Provider` instances, each serving the model prefix it
    names (`anthropic/...`). Every plugin's are collected; two plugins claiming one prefix stop
    start-up. The core's own providers come through this hook too."""


@hookspec(firstresult=True)
async def auth(request: Request, api_key: str, gateway: Gateway) -> Principal | None:
    """Each authenticated request, after the master key was checked. `api_key` is the raw key
    the client sent. Return a `Principal` to accept, None to pass to the next plugin, or raise a
    `GatewayError` (e.g. `AuthenticationError`) to reject. The first non-None answer wins; when
    none answers, the key is refused as invalid. The Principal is immutable and may be cached
    and returned for every request of the key. An impl that takes `request` (Quart's) turns the
    fast path off: leave it out unless you need it."""


@hookspec
async def pre_request(ctx: RequestContext) -> None:
    """Before the upstream call. All plugins, in priority order. May mutate `ctx.body` (what is
    sent upstream); raise a `GatewayError` to block. In `monitor` mode a block is logged and
    recorded on `ctx.monitored` and the request goes on. `ctx.principal` is immutable (it is
    shared by the key's requests)."""


@hookspec
async def post_response(ctx: RequestContext, response: dict[str, Any]) -> None:
    """Before the reply leaves. For streams, called once at the end on the assembled reply. May
    mutate `response`; raise a `GatewayError` to block (for a stream whose bytes already left,
    the stream ends with an SSE error event)."""


@hookspec
async def stream_chunk(ctx: RequestContext, chunk: dict[str, Any]) -> bool | None:
    """Each streamed chunk (a parsed `chat.completion.chunk` / `text_completion` object), in
    priority order. May mutate `chunk` in place; return False to drop it; raise a
    `GatewayError` to stop the stream with an SSE error event."""


@hookspec
async def request_finished(ctx: RequestContext, outcome: Outcome) -> None:
    """After the reply (success, failure or block). All plugins concurrently, off the request
    path: spend, counters, metrics, alerts. Never affects the reply; errors are logged."""


@hookspec
async def audit(event: AuditEvent) -> None:
    """After an administrative change (an `AuditEvent`). All plugins concurrently; the audit
    store writes it. Never affects the management call."""


@hookspec
async def alert(event: AlertEvent) -> None:
    """On an alertable event (an `AlertEvent`: size limit hit, upstream failure, budget
    crossed). All plugins concurrently; delivery plugins (Slack) send it."""


#: Hooks that the gateway awaits itself (pluggy never calls these directly).
ASYNC_HOOKS = (
    "startup",
    "shutdown",
    "auth",
    "pre_request",
    "post_response",
    "stream_chunk",
    "request_finished",
    "audit",
    "alert",
)
