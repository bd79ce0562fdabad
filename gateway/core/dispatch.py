"""The async hook runner: pluggy registers and validates, this module orders and awaits.

pluggy does not await coroutines, so request hooks are never called through `pm.hook.X()`.
Each hook's implementations are ordered once at start-up (priority high first, ties by name) and
run here with the plugin's knobs: `timeout_s`, `on_error` and `mode`. The observer hooks
(`request_finished`, `audit`, `alert`) are dispatch_observers.py's.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import Counter
from dataclasses import dataclass, replace
from time import perf_counter
from typing import Any, Callable

import orjson

from gateway.context import current_plugin
from gateway.core.dispatch_observers import Observers
from gateway.core.storable import clean_text
from gateway.errors import GatewayError, GuardrailUnavailableError
from gateway.hookspecs import ASYNC_HOOKS

log = logging.getLogger("gateway.dispatch")


@dataclass(slots=True, frozen=True)
class Impl:
    """One plugin's implementation of one hook, with its knobs resolved."""

    plugin: str
    function: Callable[..., Any]
    argnames: tuple[str, ...]
    timeout_s: float | None
    fail_open: bool
    monitor: bool
    concurrent: bool = False
    #: The guardrail name that switches this impl on and off per request; None: always runs.
    guardrail: str | None = None
    #: The phase its verdicts are recorded under (`pre_call`, `during_call`, `post_call`,
    #: `logging_only`); empty for a builtin, whose verdicts are not recorded.
    phase: str = ""
    #: Holds a streamed reply until `post_response` has judged it (`buffers_stream`).
    buffers: bool = False
    #: What to compare before and after the call to tell a rewrite from a pass: "body", "response".
    watch: str | None = None


#: Request-phase chains, and the phase label of their verdicts. `during_call` runs `pre_request`
#: impls concurrently with the upstream call; the `logging_*` chains run on copies of what is logged.
PHASE_CHAINS = {
    "pre_request": ("pre_request", "pre_call"),
    "during_call": ("pre_request", "during_call"),
    "post_response": ("post_response", "post_call"),
    "stream_chunk": ("stream_chunk", "post_call"),
    "logging_request": ("pre_request", "logging_only"),
    "logging_response": ("post_response", "logging_only"),
}
#: How a guard's verdicts rank when one guard gives several in a phase (stream chunks).
RANK = {"pass": 0, "rewrite": 1, "would_block": 2, "error": 3, "block": 4}


def _snapshot(value: Any) -> bytes | None:
    try:
        return orjson.dumps(value)
    except TypeError:
        return None


def _steps(chain: tuple[Impl, ...]) -> tuple[tuple[Impl, ...], ...]:
    """The chain cut into steps: each run of neighbouring `concurrent` impls is one step."""
    steps: list[list[Impl]] = []
    for impl in chain:
        if impl.concurrent and steps and steps[-1][-1].concurrent:
            steps[-1].append(impl)
        else:
            steps.append([impl])
    return tuple(tuple(s) for s in steps)


class Dispatcher(Observers):
    """Runs hooks for the app; one per app, built after the plugins are registered."""

    def __init__(self, host: Any) -> None:
        self.host = host
        self.chains: dict[str, tuple[Impl, ...]] = {}
        self.errors: Counter[str] = Counter()
        self.blocks: Counter[str] = Counter()
        self.monitored: Counter[str] = Counter()
        self._background: set[asyncio.Task[Any]] = set()
        self.verdicts: Counter[tuple[str, str]] = Counter()
        slots = {s.name: s for s in host.ordered()}
        order = {s.name: i for i, s in enumerate(host.ordered())}
        impls_of: dict[str, list[Impl]] = {}
        for hook in ASYNC_HOOKS:
            caller = getattr(host.pm.hook, hook)
            impls = []
            for hi in caller.get_hookimpls():
                slot = slots[hi.plugin_name]
                instance = slot.instance or slot.cls
                impls.append(Impl(
                    plugin=hi.plugin_name,
                    function=hi.function,
                    argnames=tuple(hi.argnames),
                    timeout_s=slot.timeout_s,
                    fail_open=slot.on_error == "fail_open",
                    monitor=slot.mode == "monitor",
                    concurrent=bool(getattr(instance, "concurrent", False)),
                    guardrail=slot.guardrail.group if slot.guardrail is not None else None,
                    buffers=bool(getattr(instance, "buffers_stream", False)),
                ))
            impls.sort(key=lambda i: order[i.plugin])
            impls_of[hook] = impls
            self.chains[hook] = tuple(impls)
        for chain, (hook, phase) in PHASE_CHAINS.items():
            picked = []
            for impl in impls_of[hook]:
                spec = slots[impl.plugin].guardrail
                if spec is None and phase in ("during_call", "logging_only"):
                    continue  # a plugin enabled by `callbacks` runs before the call and on the reply
                if spec is not None and phase not in spec.phases:
                    continue
                watch = None if impl.concurrent else {"pre_request": "body", "post_response": "response"}.get(hook)
                logging_only = phase == "logging_only"
                # Builtins (virtual keys' budget checks) are not guards: no verdict of theirs is recorded.
                # Nor of an observer that says so (`records_verdicts = False`: a tracer's pre_request).
                quiet = slots[impl.plugin].enabled_by == "builtin" or not getattr(slots[impl.plugin].cls, "records_verdicts", True)
                label = "" if quiet else phase
                picked.append(replace(impl, phase=label, watch=watch if label else None,
                                      monitor=impl.monitor or logging_only, fail_open=impl.fail_open or logging_only))
            self.chains[chain] = tuple(picked)
        self.selective = any(i.guardrail is not None for c in self.chains.values() for i in c)
        # Observers that are plain functions (the built-in ones) run in a callback of the event loop
        # after the call's step, not in a task of their own: a task per call cost ~10 us.
        self._plain_observers = all(not inspect.iscoroutinefunction(i.function)
                                    for i in self.chains["request_finished"])
        self.steps = {hook: _steps(self.chains[hook]) for hook in
                      ("pre_request", "during_call", "post_response", "logging_request", "logging_response")}

    def has(self, hook: str) -> bool:
        return bool(self.chains.get(hook))

    def plugins_for(self, hook: str) -> list[str]:
        return [i.plugin for i in self.chains.get(hook, ())]

    @staticmethod
    def _on(impl: Impl, ctx: Any) -> bool:
        """Whether `impl` runs for this request: always, unless its guardrail is switched off."""
        if impl.guardrail is None:
            return True
        active = getattr(ctx, "guardrails", None)
        return active is not None and impl.guardrail in active

    def runs(self, chain: str, ctx: Any) -> bool:
        """Whether any impl of `chain` runs for this request."""
        impls = self.chains.get(chain, ())
        if not self.selective:
            return bool(impls)
        return any(self._on(i, ctx) for i in impls)

    def holds_stream(self, ctx: Any) -> bool:
        """Whether a `buffers_stream` plugin judges this request's streamed reply."""
        return any(i.buffers and self._on(i, ctx) for c in ("post_response", "stream_chunk") for i in self.chains[c])

    def applied(self, ctx: Any, streaming: bool = False) -> list[str]:
        """The guards that ran for this request (for `x-gateway-guardrails`); for a stream whose
        reply is still to come, also those that will judge it."""
        names = dict.fromkeys(name for name, _ in ctx.verdicts)
        if streaming:
            for chain in ("post_response", "stream_chunk"):
                names.update(dict.fromkeys(i.plugin for i in self.chains[chain] if i.phase and self._on(i, ctx)))
        return list(names)

    def _record(self, ctx: Any, impl: Impl, started: float, verdict: str, message: str | None = None) -> None:
        """One verdict on the request (`ctx.verdicts`, one entry per guard and phase: latencies add
        up, the gravest verdict stays) and in the counters."""
        if ctx is None or not impl.phase:
            return
        ms = (perf_counter() - started) * 1000
        key = (impl.plugin, impl.phase)
        entry = ctx.verdicts.get(key)
        if entry is None:
            entry = ctx.verdicts[key] = {"name": impl.plugin, "phase": impl.phase, "verdict": verdict,
                                         "latency_ms": round(ms, 3)}
        else:
            entry["latency_ms"] = round(entry["latency_ms"] + ms, 3)
            if RANK[verdict] <= RANK[entry["verdict"]]:
                return
            entry["verdict"] = verdict
        if message:
            entry["message"] = message
        self.verdicts[(impl.plugin, verdict)] += 1

    @staticmethod
    def _verdict_of(impl: Impl, exc: BaseException) -> tuple[str, str]:
        if isinstance(exc, GatewayError) and not isinstance(exc, GuardrailUnavailableError):
            return ("would_block" if impl.monitor else "block"), clean_text(exc.message)[:300]
        return "error", "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__

    @staticmethod
    async def _call(impl: Impl, kwargs: dict[str, Any]) -> Any:
        token = current_plugin.set(impl.plugin)  # whose `ctx.annotate` / `ctx.set_header` this is
        try:
            result = impl.function(*[kwargs[a] for a in impl.argnames])
            if not inspect.isawaitable(result):
                return result
            if impl.timeout_s is None:
                return await result
            async with asyncio.timeout(impl.timeout_s):
                return await result
        finally:
            current_plugin.reset(token)

    def _on_failure(self, impl: Impl, exc: BaseException, ctx: Any) -> None:
        """Apply `mode` to a block and `on_error` to a failure; re-raise what must stop the call.
        A plugin that raises `GuardrailUnavailableError` reports a failure (its guard is down), not
        a block: `on_error` applies to it."""
        if isinstance(exc, GatewayError) and not isinstance(exc, GuardrailUnavailableError):
            if impl.monitor:
                self.monitored[impl.plugin] += 1
                log.warning("plugin %s would have blocked (monitor mode): %s", impl.plugin, exc.message)
                if ctx is not None:
                    ctx.monitored.append({"plugin": impl.plugin, "status": exc.status, "message": exc.message})
                return
            self.blocks[impl.plugin] += 1
            if ctx is not None and ctx.blocked_by is None:
                ctx.blocked_by = impl.plugin
            raise exc
        self.errors[impl.plugin] += 1
        reason = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
        detail = f"{reason}: {exc}" if str(exc) else reason
        if impl.fail_open:
            log.warning("plugin %s failed (%s); fail_open, request goes on", impl.plugin, detail)
            return
        log.error("plugin %s failed (%s); fail_closed, request refused", impl.plugin, detail)
        if ctx is not None and ctx.blocked_by is None:
            ctx.blocked_by = impl.plugin
        raise GuardrailUnavailableError(f"Guardrail {impl.plugin} is unavailable ({reason})") from exc

    async def run_chain(self, hook: str, ctx: Any, **kwargs: Any) -> None:
        """`pre_request` / `post_response`: every plugin in order, each may block; neighbouring
        `concurrent` plugins run together (see `_steps`)."""
        kwargs["ctx"] = ctx
        for step in self.steps[hook]:
            if self.selective:
                step = tuple(i for i in step if self._on(i, ctx))
                if not step:
                    continue
            if len(step) == 1:
                await self._checked(step[0], kwargs, ctx)
            else:
                await self._together(step, kwargs, ctx)

    async def _checked(self, impl: Impl, kwargs: dict[str, Any], ctx: Any) -> None:
        watched = None
        if impl.watch is not None:
            watched = ctx.body if impl.watch == "body" else kwargs.get("response")
        before = _snapshot(watched) if watched is not None else None
        started = perf_counter()
        try:
            await self._call(impl, kwargs)
        except Exception as exc:
            self._record(ctx, impl, started, *self._verdict_of(impl, exc))
            self._on_failure(impl, exc, ctx)
            return
        changed = before is not None and _snapshot(watched) != before
        self._record(ctx, impl, started, "rewrite" if changed else "pass")

    async def _together(self, step: tuple[Impl, ...], kwargs: dict[str, Any], ctx: Any) -> None:
        """Run `step` concurrently; the first block or failure stops the call and cancels the rest."""
        tasks = [asyncio.ensure_future(self._checked(impl, kwargs, ctx)) for impl in step]
        try:
            for finished in asyncio.as_completed(tasks):
                await finished
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def run_stream_chunk(self, ctx: Any, chunk: dict[str, Any]) -> bool:
        """Each streamed chunk through every plugin; False when a plugin dropped it."""
        kwargs = {"ctx": ctx, "chunk": chunk}
        for impl in self.chains["stream_chunk"]:
            if self.selective and not self._on(impl, ctx):
                continue
            started = perf_counter()
            try:
                kept = await self._call(impl, kwargs) is not False
            except Exception as exc:
                self._record(ctx, impl, started, *self._verdict_of(impl, exc))
                self._on_failure(impl, exc, ctx)
                continue
            self._record(ctx, impl, started, "pass" if kept else "rewrite")
            if not kept:
                return False
        return True

    async def run_auth(self, request: Any, api_key: str, gateway: Any) -> Any:
        """First plugin that recognises the key wins; a GatewayError rejects."""
        kwargs = {"request": request, "api_key": api_key, "gateway": gateway}
        for impl in self.chains["auth"]:
            try:
                principal = await self._call(impl, kwargs)
            except GatewayError:
                raise
            except Exception as exc:
                self._on_failure(impl, exc, None)
                continue
            if principal is not None:
                return principal
        return None

    async def run_lifecycle(self, hook: str, gateway: Any) -> None:
        """`startup` (an error stops start-up) and `shutdown` (errors logged, the rest run)."""
        for impl in self.chains[hook]:
            try:
                await self._call(impl, {"gateway": gateway})
            except Exception as exc:
                if hook == "startup":
                    raise RuntimeError(f"plugin {impl.plugin!r} failed to start: {type(exc).__name__}: {exc}") from exc
                log.exception("plugin %s failed during shutdown", impl.plugin)

    def counters(self) -> dict[str, Any]:
        verdicts: dict[str, dict[str, int]] = {}
        for (name, verdict), n in sorted(self.verdicts.items()):
            verdicts.setdefault(name, {})[verdict] = n
        return {"errors": dict(self.errors), "blocks": dict(self.blocks), "monitored": dict(self.monitored),
                "verdicts": verdicts}
