"""The async hook runner: pluggy registers and validates, this module orders and awaits.

pluggy does not await coroutines, so request hooks are never called through `pm.hook.X()`.
Each hook's implementations are ordered once at start-up (priority high first, ties by name) and
run here with the plugin's knobs: `timeout_s`, `on_error` and `mode`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

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


def _steps(chain: tuple[Impl, ...]) -> tuple[tuple[Impl, ...], ...]:
    """The chain cut into steps: each run of neighbouring `concurrent` impls is one step."""
    steps: list[list[Impl]] = []
    for impl in chain:
        if impl.concurrent and steps and steps[-1][-1].concurrent:
            steps[-1].append(impl)
        else:
            steps.append([impl])
    return tuple(tuple(s) for s in steps)


class Dispatcher:
    """Runs hooks for the app; one per app, built after the plugins are registered."""

    def __init__(self, host: Any) -> None:
        self.host = host
        self.chains: dict[str, tuple[Impl, ...]] = {}
        self.errors: Counter[str] = Counter()
        self.blocks: Counter[str] = Counter()
        self.monitored: Counter[str] = Counter()
        self._background: set[asyncio.Task[Any]] = set()
        slots = {s.name: s for s in host.ordered()}
        order = {s.name: i for i, s in enumerate(host.ordered())}
        for hook in ASYNC_HOOKS:
            caller = getattr(host.pm.hook, hook)
            impls = []
            for hi in caller.get_hookimpls():
                slot = slots[hi.plugin_name]
                impls.append(Impl(
                    plugin=hi.plugin_name,
                    function=hi.function,
                    argnames=tuple(hi.argnames),
                    timeout_s=slot.timeout_s,
                    fail_open=slot.on_error == "fail_open",
                    monitor=slot.mode == "monitor",
                    concurrent=bool(getattr(slot.instance or slot.cls, "concurrent", False)),
                ))
            impls.sort(key=lambda i: order[i.plugin])
            self.chains[hook] = tuple(impls)
        self.steps = {hook: _steps(self.chains[hook]) for hook in ("pre_request", "post_response")}

    def has(self, hook: str) -> bool:
        return bool(self.chains.get(hook))

    def plugins_for(self, hook: str) -> list[str]:
        return [i.plugin for i in self.chains.get(hook, ())]

    @staticmethod
    async def _call(impl: Impl, kwargs: dict[str, Any]) -> Any:
        result = impl.function(*[kwargs[a] for a in impl.argnames])
        if not inspect.isawaitable(result):
            return result
        if impl.timeout_s is None:
            return await result
        async with asyncio.timeout(impl.timeout_s):
            return await result

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
            if len(step) == 1:
                await self._checked(step[0], kwargs, ctx)
            else:
                await self._together(step, kwargs, ctx)

    async def _checked(self, impl: Impl, kwargs: dict[str, Any], ctx: Any) -> None:
        try:
            await self._call(impl, kwargs)
        except Exception as exc:
            self._on_failure(impl, exc, ctx)

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
            try:
                if await self._call(impl, kwargs) is False:
                    return False
            except Exception as exc:
                self._on_failure(impl, exc, ctx)
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

    async def _observe(self, hook: str, kwargs: dict[str, Any]) -> None:
        async def one(impl: Impl) -> None:
            try:
                await self._call(impl, kwargs)
            except Exception as exc:
                self.errors[impl.plugin] += 1
                log.error("plugin %s failed in %s: %s: %s", impl.plugin, hook, type(exc).__name__, exc)

        impls = self.chains[hook]
        if len(impls) == 1:
            await one(impls[0])
        else:
            await asyncio.gather(*(one(i) for i in impls))

    def fire(self, hook: str, **kwargs: Any) -> None:
        """Observers (`request_finished`, `audit`, `alert`): concurrently, off the request path."""
        if not self.chains[hook]:
            return
        task = asyncio.get_running_loop().create_task(self._observe(hook, kwargs))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def notify(self, hook: str, **kwargs: Any) -> None:
        """Like `fire`, but awaited: for callers that must know delivery was attempted."""
        if self.chains[hook]:
            await self._observe(hook, kwargs)

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait for observers still running (graceful shutdown loses nothing)."""
        if self._background:
            await asyncio.wait(set(self._background), timeout=timeout)

    def counters(self) -> dict[str, dict[str, int]]:
        return {"errors": dict(self.errors), "blocks": dict(self.blocks), "monitored": dict(self.monitored)}
