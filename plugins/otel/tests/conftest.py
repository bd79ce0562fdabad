"""A real OTLP/HTTP collector on loopback, for the tests.

It speaks what an OpenTelemetry Collector's OTLP/HTTP receiver speaks: `POST /v1/traces` with an
`application/x-protobuf` body (gzip or not) holding an `ExportTraceServiceRequest`, answered with an
`ExportTraceServiceResponse`. It decodes every span with `opentelemetry-proto` and records it
with its resource and the request's headers. `grpc_collector` is the same over OTLP/gRPC (the
collector's `TraceService`).
"""

from __future__ import annotations

import asyncio
import gzip
import importlib.util
import sys
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanProto
from opentelemetry.proto.trace.v1.trace_pb2 import Status as StatusProto

if "otel_test_helpers" not in sys.modules:  # importlib mode: load the shared helpers by path, once
    _path = __file__.replace("conftest.py", "otel_test_helpers.py")
    _spec = importlib.util.spec_from_file_location("otel_test_helpers", _path)
    assert _spec is not None and _spec.loader is not None
    _helpers = importlib.util.module_from_spec(_spec)
    sys.modules["otel_test_helpers"] = _helpers
    _spec.loader.exec_module(_helpers)


def any_value(value: Any) -> Any:
    """An OTLP AnyValue as the Python value it carries."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    return None if kind is None else getattr(value, kind)


def attributes(kvs: Any) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in kvs}


@dataclass
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    trace_state: str
    kind: str  # "SPAN_KIND_CLIENT", ...
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    status: str  # "STATUS_CODE_UNSET" | "STATUS_CODE_OK" | "STATUS_CODE_ERROR"
    status_message: str
    resource: dict[str, Any]
    scope: str


@dataclass
class Export:
    path: str
    headers: dict[str, str]
    spans: list[ReceivedSpan] = field(default_factory=list)


class SpanSink:
    """What a collector received: every export with its headers, and its spans decoded."""

    def __init__(self) -> None:
        self.exports: list[Export] = []
        self.refused: list[tuple[str, int]] = []
        self._cond = threading.Condition()

    def record(self, path: str, headers: dict[str, str], message: ExportTraceServiceRequest) -> None:
        export = Export(path, {k.lower(): v for k, v in headers.items()})
        for resource_spans in message.resource_spans:
            resource = attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for s in scope_spans.spans:
                    export.spans.append(ReceivedSpan(
                        name=s.name, trace_id=s.trace_id.hex(), span_id=s.span_id.hex(),
                        parent_span_id=s.parent_span_id.hex(), trace_state=s.trace_state,
                        kind=SpanProto.SpanKind.Name(s.kind), start_ns=s.start_time_unix_nano,
                        end_ns=s.end_time_unix_nano, attributes=attributes(s.attributes),
                        status=StatusProto.StatusCode.Name(s.status.code), status_message=s.status.message,
                        resource=resource, scope=scope_spans.scope.name))
        with self._cond:
            self.exports.append(export)
            self._cond.notify_all()

    @property
    def spans(self) -> list[ReceivedSpan]:
        with self._cond:
            return [s for e in self.exports for s in e.spans]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedSpan]:
        """Wait until at least `count` spans arrived; returns all received (fewer after `timeout`)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while sum(len(e.spans) for e in self.exports) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
        return self.spans


class OtlpReceiver(SpanSink):
    """OTLP/HTTP: listens on a free loopback port in a thread of its own; `url` is the base URL
    (what OTEL_EXPORTER_OTLP_ENDPOINT takes)."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="otlp-receiver", daemon=True)
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _start(self) -> int:
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        app.router.add_route("*", "/{tail:.*}", self._other)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _other(self, request: web.Request) -> web.Response:
        with self._cond:
            self.refused.append((request.path, 404))
        return web.Response(status=404, text="not found")

    async def _traces(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if request.headers.get("content-encoding") == "gzip":
            raw = gzip.decompress(raw)
        if request.headers.get("content-type") != "application/x-protobuf":
            with self._cond:
                self.refused.append((request.path, 415))
            return web.Response(status=415, text="protobuf only")
        message = ExportTraceServiceRequest()
        message.ParseFromString(raw)
        self.record(request.path, dict(request.headers), message)
        return web.Response(body=ExportTraceServiceResponse().SerializeToString(),
                            content_type="application/x-protobuf")

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


class GrpcOtlpReceiver(SpanSink):
    """OTLP/gRPC: the collector's TraceService on a free loopback port (insecure)."""

    def __init__(self) -> None:
        import grpc
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

        super().__init__()
        sink = self

        class TraceService(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request, context):  # noqa: N802 - the service's method name
                sink.record("opentelemetry.proto.collector.trace.v1.TraceService/Export",
                            dict(context.invocation_metadata()), request)
                return ExportTraceServiceResponse()

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(TraceService(), self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.stop(grace=None).wait(10)


@pytest.fixture
def grpc_collector():
    receiver = GrpcOtlpReceiver()
    yield receiver
    receiver.stop()


@pytest.fixture
def collector():
    receiver = OtlpReceiver()
    yield receiver
    receiver.stop()


@pytest.fixture(autouse=True)
def clean_otel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OTEL_* variable of the machine's leaks into a test: each sets its own."""
    import os

    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)
