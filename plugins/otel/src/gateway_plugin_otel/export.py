"""Where spans go: the exporter, resolved from the plugin's config and the environment.

Precedence, per setting: the plugin's config key; the OpenTelemetry variable for traces
(`OTEL_EXPORTER_OTLP_TRACES_*`); the generic one (`OTEL_EXPORTER_OTLP_*`); LiteLLM's name
(`OTEL_EXPORTER`, `OTEL_ENDPOINT`, `OTEL_HEADERS`); the OpenTelemetry default. The settings are
resolved when the plugin is built (a bad value stops start-up with one line); the SDK objects are
built in `startup`, so that importing the plugin stays cheap.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from gateway_plugin_otel.config import EXPORTER_NAMES, OtelConfig

DEFAULT_HTTP_ENDPOINT = "http://localhost:4318"
DEFAULT_GRPC_ENDPOINT = "http://localhost:4317"
TRACES_PATH = "/v1/traces"
DEFAULT_SERVICE_NAME = "gateway"
#: OTEL_TRACES_EXPORTER's values (the first listed is used); `otlp` leaves the protocol to choose.
TRACES_EXPORTERS = {"otlp": None, "console": "console", "none": "none"}


@dataclass(frozen=True)
class ExportSettings:
    """One resolved exporter. `headers` are secrets: `repr` leaves them out."""

    kind: str  # "otlp_http" | "otlp_grpc" | "console" | "none"
    endpoint: str | None
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    service_name: str | None = None  # None: from OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES, else `gateway`

    @property
    def where(self) -> str:
        """What may be logged about the destination: the kind and the URL without userinfo or query."""
        if self.endpoint is None:
            return self.kind
        parts = urlsplit(self.endpoint)
        port = f":{parts.port}" if parts.port else ""
        return f"{self.kind} {parts.scheme}://{parts.hostname or ''}{port}{parts.path}"


def _env(environ: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = (environ.get(name) or "").strip()
        if value:
            return value
    return None


def _kind(config: OtelConfig, environ: Mapping[str, str]) -> str:
    if config.otel_exporter is not None:
        return EXPORTER_NAMES[config.otel_exporter]
    chosen = _env(environ, "OTEL_TRACES_EXPORTER")
    if chosen is not None:
        first = chosen.split(",")[0].strip().lower()
        if first not in TRACES_EXPORTERS:
            raise ValueError(f"OTEL_TRACES_EXPORTER={first!r} is not supported; use otlp, console or none")
        if TRACES_EXPORTERS[first] is not None:
            return TRACES_EXPORTERS[first]
    protocol = _env(environ, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
    source = "OTEL_EXPORTER_OTLP_PROTOCOL"
    if protocol is None:
        protocol, source = _env(environ, "OTEL_EXPORTER"), "OTEL_EXPORTER"
    if protocol is None:
        return "otlp_http"
    kind = EXPORTER_NAMES.get(protocol.lower())
    if kind is None:
        raise ValueError(f"{source}={protocol!r} is not supported; use one of {', '.join(EXPORTER_NAMES)}")
    return kind


def with_traces_path(url: str) -> str:
    """LiteLLM's rule for a collector's URL: `/v1/traces` is added unless it is already there."""
    url = url.rstrip("/")
    if url.endswith(TRACES_PATH):
        return url
    return url + ("/traces" if url.endswith("/v1") else TRACES_PATH)


def _endpoint(kind: str, config: OtelConfig, environ: Mapping[str, str]) -> str | None:
    grpc = kind == "otlp_grpc"
    if config.otel_endpoint is not None:
        return config.otel_endpoint if grpc else with_traces_path(config.otel_endpoint)
    exact = _env(environ, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if exact is not None:
        return exact
    base = _env(environ, "OTEL_EXPORTER_OTLP_ENDPOINT")
    if base is not None:
        return base if grpc else base.rstrip("/") + TRACES_PATH
    litellm = _env(environ, "OTEL_ENDPOINT")
    if litellm is not None:
        return litellm if grpc else with_traces_path(litellm)
    return DEFAULT_GRPC_ENDPOINT if grpc else DEFAULT_HTTP_ENDPOINT + TRACES_PATH


def parse_headers(text: str) -> dict[str, str]:
    """`key=value,key2=value2` (the OTLP variables' format, also LiteLLM's OTEL_HEADERS): names
    lower-cased, values percent-decoded (`Bearer%20abc`) and stripped."""
    headers: dict[str, str] = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            if item.strip():
                # The item may hold a secret: say where it is, never what it says.
                raise ValueError("an OTLP header is not of the form key=value")
            continue
        headers[unquote(name).strip().lower()] = unquote(value).strip()
    return headers


def _headers(config: OtelConfig, environ: Mapping[str, str]) -> dict[str, str]:
    if config.otel_headers is not None:
        return {k.lower(): v.get_secret_value() for k, v in config.otel_headers.items()}
    text = _env(environ, "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_HEADERS")
    return parse_headers(text) if text else {}


def resolve(config: OtelConfig, environ: Mapping[str, str] | None = None) -> ExportSettings:
    """The exporter these settings and this environment describe; ValueError names a bad one."""
    environ = os.environ if environ is None else environ
    kind = _kind(config, environ)
    otlp = kind in ("otlp_http", "otlp_grpc")
    endpoint = _endpoint(kind, config, environ) if otlp else None
    if endpoint is not None and not endpoint.startswith(("http://", "https://")):
        raise ValueError("the OTLP endpoint must be an http:// or https:// URL")
    return ExportSettings(kind=kind, endpoint=endpoint, headers=_headers(config, environ) if otlp else {},
                          service_name=config.otel_service_name)


def build_exporter(settings: ExportSettings) -> Any:
    """The SDK's span exporter for `settings` (None for `none`). Imports happen here, at start-up."""
    if settings.kind == "none":
        return None
    if settings.kind == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if settings.kind == "otlp_grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
        except ImportError:
            raise RuntimeError("OTLP over gRPC needs the gRPC exporter: "
                               "pip install 'gateway-plugin-otel[grpc]'") from None
        return GrpcExporter(endpoint=settings.endpoint, headers=settings.headers or None)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    return HttpExporter(endpoint=settings.endpoint, headers=settings.headers or None)


def build_resource(settings: ExportSettings, version: str) -> Any:
    """The resource every span carries: OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME (read by the
    SDK), the configured service name over them, `gateway` when none is given; service.version is
    the gateway's unless the environment gives one."""
    from opentelemetry.sdk.resources import Resource

    resource = Resource.create({"service.name": settings.service_name} if settings.service_name else {})
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": DEFAULT_SERVICE_NAME}))
    return Resource({"service.version": version}).merge(resource)  # a version given in the environment wins
