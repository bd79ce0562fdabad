"""The `otel` plugin: one OpenTelemetry span per LLM call, with a child span per plugin hook that
judged it, exported over OTLP by the SDK's batch processor.

Nothing is exported on the request path: `request_finished` runs after the reply, builds the spans
with the call's real start and end times, and hands them to the `BatchSpanProcessor`, whose own
thread exports them. `shutdown` flushes what is still queued. The client's W3C `traceparent` /
`tracestate` headers make the call's span a child of the client's.

The span is handed to the upstream as its parent (a `traceparent` header on the upstream request)
when the core offers `ctx.upstream_headers`: then `pre_request` starts the span early, to have its
id. Without it there is no `pre_request` hook at all (see README: core changes).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from typing import Any

from gateway import Outcome, Plugin, RequestContext, __version__, hookimpl
from gateway_plugin_otel.attributes import (
    deployment_attributes,
    error_type,
    request_attributes,
    response_attributes,
    span_name,
)
from gateway_plugin_otel.config import OtelConfig
from gateway_plugin_otel.content import capture_from_env, content_attributes, wants_messages
from gateway_plugin_otel.export import ExportSettings, build_exporter, build_resource, resolve
from gateway_plugin_otel.timeline import HookWindow, hook_windows

log = logging.getLogger("gateway.plugins.otel")

#: The core lets plugins add headers to the upstream request (the propagation's core change).
UPSTREAM_HEADERS = "upstream_headers" in getattr(RequestContext, "__dataclass_fields__", {})
TRACER_NAME = "gateway_plugin_otel"


def _ns(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


class OtelTracer(Plugin):
    """Traces every LLM call with OpenTelemetry's GenAI semantic conventions."""

    name = "otel"
    priority = 20  # observers band
    Config = OtelConfig
    #: Its `pre_request` (when the core propagates upstream headers) only starts a span: it judges
    #: nothing, so no verdict of it belongs on the spend row.
    records_verdicts = False

    config: OtelConfig

    def __init__(self, config: OtelConfig, gateway: Any) -> None:
        super().__init__(config, gateway)
        self.settings: ExportSettings = resolve(config)  # a bad OTEL_* value stops start-up here
        self.capture_env = capture_from_env(os.environ.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"))
        self.provider: Any = None
        self.tracer: Any = None
        self._propagator: Any = None
        if not UPSTREAM_HEADERS:  # nothing to hand upstream: no hook on the request path at all
            self.pre_request = None  # type: ignore[assignment,method-assign]

    # -- lifecycle --------------------------------------------------------------------------------

    @hookimpl
    async def startup(self, gateway: Any) -> None:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        exporter = build_exporter(self.settings)
        if exporter is None:
            log.info("otel: OTEL exporter is none: no spans are recorded")
            return
        # A provider of its own (not the process-wide one): the sampler comes from OTEL_TRACES_SAMPLER,
        # the batching from OTEL_BSP_*, attribute limits from OTEL_ATTRIBUTE_*.
        provider = TracerProvider(resource=build_resource(self.settings, __version__), shutdown_on_exit=False)
        provider.add_span_processor(BatchSpanProcessor(exporter))
        self.provider = provider
        self.tracer = provider.get_tracer(TRACER_NAME, __version__)
        self._propagator = TraceContextTextMapPropagator()
        log.info("otel: exporting spans to %s", self.settings.where)

    @hookimpl
    async def shutdown(self, gateway: Any) -> None:
        """Export what is still queued (within `otel_shutdown_timeout_s`), then stop the exporter.
        The flush runs in a daemon thread: a collector that does not answer never holds the exit."""
        provider, self.provider, self.tracer = self.provider, None, None
        if provider is None:
            return
        timeout = self.config.otel_shutdown_timeout_s
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bool] = loop.create_future()

        def close() -> None:
            flushed = False
            try:
                flushed = provider.force_flush(int(timeout * 1000))
                provider.shutdown()
            except Exception:
                log.exception("otel: flushing spans at shutdown failed")
            finally:
                try:
                    loop.call_soon_threadsafe(lambda: done.done() or done.set_result(flushed))
                except RuntimeError:  # the loop is gone: nobody waits any more
                    pass

        threading.Thread(target=close, name="otel-shutdown", daemon=True).start()
        try:
            flushed = await asyncio.wait_for(asyncio.shield(done), timeout + 1)
        except TimeoutError:
            flushed = False
        if not flushed:
            log.warning("otel: spans still queued after %.0f s at shutdown were dropped (collector %s)",
                        timeout, self.settings.where)

    # -- the request path (only with the core's upstream headers) --------------------------------

    @hookimpl
    async def pre_request(self, ctx: RequestContext) -> None:
        """Start the call's span now, so that its id goes upstream as the `traceparent`. Never raises:
        tracing must not refuse a call."""
        if self.tracer is None:
            return
        try:
            span = self._start_span(ctx)
            ctx.state_for(self.name)["span"] = span
            from opentelemetry import trace

            carrier = ctx.upstream_headers  # type: ignore[attr-defined]
            self._propagator.inject(carrier, context=trace.set_span_in_context(span))
        except Exception as exc:
            log.warning("otel: could not start the span of request %s: %s", ctx.request_id, type(exc).__name__)

    # -- after the reply ---------------------------------------------------------------------------

    @hookimpl
    async def request_finished(self, ctx: RequestContext, outcome: Outcome) -> None:
        if self.tracer is None:
            return
        from opentelemetry import trace
        from opentelemetry.trace import Status, StatusCode

        span = ctx.state_for(self.name).pop("span", None)
        if span is None:
            span = self._start_span(ctx)
        else:  # started in pre_request: later hooks may have changed the request
            span.update_name(span_name(ctx))
            span.set_attributes(request_attributes(ctx))
        span.set_attributes(deployment_attributes(ctx.deployment))
        span.set_attributes(response_attributes(ctx, outcome))
        messages = wants_messages(self.config.otel_log_messages, self.config.turn_off_message_logging,
                                  self.capture_env, ctx)
        if messages:
            span.set_attributes(content_attributes(ctx, outcome))
        if outcome.status != "success":
            kind = error_type(outcome)
            span.set_attribute("error.type", kind)
            span.set_status(Status(StatusCode.ERROR, kind))
        if self.config.otel_hook_spans and ctx.verdicts:
            parent = trace.set_span_in_context(span)
            for window in hook_windows(ctx.verdicts, ctx.start_time, outcome.end_time):
                self._hook_span(window, parent, messages)
        span.end(end_time=_ns(max(outcome.end_time, ctx.start_time)))

    def _start_span(self, ctx: RequestContext) -> Any:
        """The call's span (kind CLIENT: the gateway is the client of the model), from the call's
        start, child of the client's `traceparent` when it sent a valid one."""
        from opentelemetry.trace import SpanKind

        parent = self._propagator.extract(carrier=ctx.headers or {})
        return self.tracer.start_span(span_name(ctx), context=parent, kind=SpanKind.CLIENT,
                                      attributes=request_attributes(ctx), start_time=_ns(ctx.start_time))

    def _hook_span(self, window: HookWindow, parent: Any, messages: bool) -> None:
        from opentelemetry.trace import SpanKind, Status, StatusCode

        attrs: dict[str, Any] = {
            "gateway.plugin.name": window.name,
            "gateway.plugin.phase": window.phase,
            "gateway.plugin.verdict": window.verdict,
            "gateway.plugin.latency_ms": window.latency_ms,
        }
        # A block's message may quote the client's text (the banned word): it is content.
        if messages and window.message and window.verdict in ("block", "would_block"):
            attrs["gateway.plugin.message"] = window.message
        span = self.tracer.start_span(f"{window.phase} {window.name}", context=parent, kind=SpanKind.INTERNAL,
                                      attributes=attrs, start_time=_ns(window.start))
        if window.verdict == "error":  # the message is the exception's class or "timed out"
            kind = "timeout" if window.message == "timed out" else (window.message or "error")
            span.set_attribute("error.type", kind)
            span.set_status(Status(StatusCode.ERROR, kind))
        elif window.verdict == "block":
            span.set_attribute("error.type", "blocked")
            span.set_status(Status(StatusCode.ERROR, "blocked"))
        span.end(end_time=_ns(window.end))
