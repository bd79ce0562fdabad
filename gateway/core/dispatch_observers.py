"""The observer hooks (`request_finished`, `audit`, `alert`): run off the request path, never
affecting the reply, each failure logged and counted. `logging_only` guardrails first rewrite
copies of what is logged. Dispatcher (dispatch.py) mixes this in.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import TYPE_CHECKING, Any

import orjson

from gateway.context import current_plugin

if TYPE_CHECKING:
    from gateway.core.dispatch import Impl

log = logging.getLogger("gateway.dispatch")


def _copy(value: Any) -> Any:
    try:
        return orjson.loads(orjson.dumps(value))
    except TypeError:
        return copy.deepcopy(value)


class Observers:
    """The observing half of `Dispatcher`: it uses the dispatcher's `chains`, `errors`,
    `_background`, `_plain_observers`, `_call`, `runs` and `run_chain`."""

    async def _observe(self, hook: str, kwargs: dict[str, Any]) -> None:
        """`request_finished` observers one after another in priority order (a task each for
        every call cost more than the observers themselves); `audit` and `alert` concurrently."""
        async def one(impl: Impl) -> None:
            try:
                await self._call(impl, kwargs)
            except Exception as exc:
                self.errors[impl.plugin] += 1
                log.error("plugin %s failed in %s: %s: %s", impl.plugin, hook, type(exc).__name__, exc)

        impls = self.chains[hook]
        if len(impls) == 1 or hook == "request_finished":
            for impl in impls:
                await one(impl)
        else:
            await asyncio.gather(*(one(i) for i in impls))

    def finished(self, ctx: Any, outcome: Any) -> None:
        """`request_finished`, off the request path; `logging_only` guardrails first rewrite copies
        of the request and reply, which the observers then see as `ctx.body` and `outcome.response`."""
        if not self.chains["request_finished"]:
            return
        if not (self.runs("logging_request", ctx) or self.runs("logging_response", ctx)):
            if self._plain_observers:
                asyncio.get_running_loop().call_soon(self._observe_plain, ctx, outcome)
            else:
                self.fire("request_finished", ctx=ctx, outcome=outcome)
            return
        task = asyncio.get_running_loop().create_task(self._logged_then_observed(ctx, outcome))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _observe_plain(self, ctx: Any, outcome: Any) -> None:
        """`request_finished` when every observer is a plain function: in priority order, as
        `_observe` runs them, each one's failure logged and counted."""
        kwargs = {"ctx": ctx, "outcome": outcome}
        for impl in self.chains["request_finished"]:
            token = current_plugin.set(impl.plugin)
            try:
                impl.function(*[kwargs[a] for a in impl.argnames])
            except Exception as exc:
                self.errors[impl.plugin] += 1
                log.error("plugin %s failed in request_finished: %s: %s", impl.plugin, type(exc).__name__, exc)
            finally:
                current_plugin.reset(token)

    async def _logged_then_observed(self, ctx: Any, outcome: Any) -> None:
        try:
            ctx.body = _copy(ctx.body)
            await self.run_chain("logging_request", ctx)
            if isinstance(outcome.response, dict):
                outcome.response = _copy(outcome.response)
                # What is logged is the whole reply, a stream's too (assembled): plugins judge it as
                # a JSON reply (their `post_response` leaves streams to `stream_chunk`).
                streamed, ctx.stream = ctx.stream, False
                try:
                    await self.run_chain("logging_response", ctx, response=outcome.response)
                finally:
                    ctx.stream = streamed
        except Exception:  # logging-only guards never raise (monitor, fail_open); never lose the row
            log.exception("logging_only guardrails failed for request %s", getattr(ctx, "request_id", "-"))
        await self._observe("request_finished", {"ctx": ctx, "outcome": outcome})

    def fire(self, hook: str, **kwargs: Any) -> None:
        """Observers (`request_finished`, `audit`, `alert`): concurrently, off the request path."""
        if not self.chains[hook]:
            return
        task = asyncio.get_running_loop().create_task(self._observe(hook, kwargs))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait for observers still running (graceful shutdown loses nothing)."""
        await asyncio.sleep(0)  # plain observers scheduled by `finished` run first
        if self._background:
            await asyncio.wait(set(self._background), timeout=timeout)
