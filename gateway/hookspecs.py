"""THE contract between the gateway and its plugins: every hook, and what it may do.

Hooks that serve requests are coroutines; the gateway awaits them itself in priority order
(see `gateway/core/dispatch.py`), with each plugin's `timeout_s`, `on_error` and `mode` applied by
the framework. A plugin implements any subset, as methods marked `@hookimpl` and named like the
spec; it may accept fewer arguments than the spec names.
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("gateway")


@hookspec
def prepare_environment(environ: dict[str, str], config: dict[str, Any]) -> None:
    """Before the config is resolved (sync; a staticmethod or classmethod: no instance exists
    yet). May add or rewrite variables in `environ`, which is `os.environ`, and rewrite values in
    `config`, the config file as parsed (its `environment_variables` already exported, no
    `os.environ/` reference resolved yet), in place. Used to decrypt secrets (AWS KMS)."""


@hookspec
async def startup(gateway: Any) -> None:
    """Serving starts: open clients, load lists, warm caches. All plugins, in priority order.
    Raising stops start-up with the plugin's name and the error."""


@hookspec
async def shutdown(gateway: Any) -> None:
    """Serving stops: flush and close what `startup` opened. All plugins, in priority order;
    an error is logged and the rest still run."""


@hookspec
def routes(gateway: Any) -> list[Any] | None:
    """App build (sync): return Quart blueprints to mount (e.g. `/customer/block`).
    Every plugin's are collected; routes are authenticated like the core's."""


@hookspec
def providers(gateway: Any) -> list[Any] | None:
    """App build (sync): return `gateway.Provider` instances, each serving the model prefix it
    names (`anthropic/...`). Every plugin's are collected; two plugins claiming one prefix stop
    start-up. The core's own providers come through this hook too."""


@hookspec(firstresult=True)
async def auth(request: Any, api_key: str, gateway: Any) -> Any:
    """Each authenticated request, after the master key was checked. `api_key` is the raw key
    the client sent. Return a `Principal` to accept, None to pass to the next plugin, or raise a
    `GatewayError` (e.g. `AuthenticationError`) to reject. The first non-None answer wins; when
    none answers, the key is refused as invalid."""


@hookspec
async def pre_request(ctx: Any) -> None:
    """Before the upstream call. All plugins, in priority order. May mutate `ctx.body` (what is
    sent upstream); raise a `GatewayError` to block. In `monitor` mode a block is logged and
    recorded on `ctx.monitored` and the request goes on."""


@hookspec
async def post_response(ctx: Any, response: dict[str, Any]) -> None:
    """Before the reply leaves. For streams, called once at the end on the assembled reply. May
    mutate `response`; raise a `GatewayError` to block (for a stream whose bytes already left,
    the stream ends with an SSE error event)."""


@hookspec
async def stream_chunk(ctx: Any, chunk: dict[str, Any]) -> Any:
    """Each streamed chunk (a parsed `chat.completion.chunk` / `text_completion` object), in
    priority order. May mutate `chunk` in place; return False to drop it; raise a
    `GatewayError` to stop the stream with an SSE error event."""


@hookspec
async def request_finished(ctx: Any, outcome: Any) -> None:
    """After the reply (success, failure or block). All plugins concurrently, off the request
    path: spend, counters, metrics, alerts. Never affects the reply; errors are logged."""


@hookspec
async def audit(event: Any) -> None:
    """After an administrative change (an `AuditEvent`). All plugins concurrently; the audit
    store writes it. Never affects the management call."""


@hookspec
async def alert(event: Any) -> None:
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
