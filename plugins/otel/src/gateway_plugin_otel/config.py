"""The plugin's settings. Most deployments set none of them: the exporter is configured by the
standard `OTEL_*` environment variables (and LiteLLM's `OTEL_EXPORTER` / `OTEL_ENDPOINT` /
`OTEL_HEADERS`), which `export.py` reads; a key set here wins over its variable.

Header values are `SecretStr`s: an OTLP header usually carries the backend's API key, so it is never
in a repr, a dump (`GET /plugins`), a log line or a validation error.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator

from gateway import PluginConfig

#: What `otel_exporter` (and LiteLLM's `OTEL_EXPORTER`) accept, and the exporter each one means.
EXPORTER_NAMES = {
    "otlp_http": "otlp_http", "http/protobuf": "otlp_http", "http/json": "otlp_http", "http": "otlp_http",
    "otlp_grpc": "otlp_grpc", "grpc": "otlp_grpc",
    "console": "console",
    "none": "none",
}


ExporterName = Literal["otlp_http", "http/protobuf", "http/json", "otlp_grpc", "grpc", "console", "none"]


class OtelConfig(PluginConfig):
    otel_exporter: ExporterName | None = Field(
        None,
        description="Where spans go: otlp_http (OTLP over HTTP, protobuf), otlp_grpc (OTLP over gRPC; needs "
        "the `grpc` extra), console (printed to stdout) or none. Default: OTEL_TRACES_EXPORTER, "
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL / OTEL_EXPORTER_OTLP_PROTOCOL, LiteLLM's OTEL_EXPORTER, else otlp_http.")
    otel_endpoint: str | None = Field(
        None,
        description="The collector's URL. `/v1/traces` is added for OTLP/HTTP unless the URL already ends "
        "with it. Default: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (as is), OTEL_EXPORTER_OTLP_ENDPOINT (plus "
        "/v1/traces), LiteLLM's OTEL_ENDPOINT, else http://localhost:4318 (gRPC: http://localhost:4317).")
    otel_headers: dict[str, SecretStr] | None = Field(
        None,
        description="Headers sent with every export (an API key, usually): secrets, never logged. Default: "
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS / OTEL_EXPORTER_OTLP_HEADERS, else LiteLLM's OTEL_HEADERS "
        "(`key=value,key2=value2`, values percent-decoded).")
    otel_service_name: str | None = Field(
        None, min_length=1,
        description="The resource's service.name. Default: OTEL_SERVICE_NAME, a service.name in "
        "OTEL_RESOURCE_ATTRIBUTES, else `gateway`.")
    otel_log_messages: bool | None = Field(
        None,
        description="true: record prompts and replies on the LLM span (gen_ai.input.messages, "
        "gen_ai.output.messages). Default: only when turn_off_message_logging is explicitly false or "
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT is true: they may hold secrets.")
    turn_off_message_logging: bool | None = Field(
        None,
        description="LiteLLM's switch, shared by every logging plugin: true never records prompts and replies "
        "(it wins over otel_log_messages, and a request's metadata.turn_off_message_logging: true does the "
        "same for that request); false records them.")
    otel_hook_spans: bool = Field(
        True, description="A child span per plugin hook that gave a verdict on the call (guards: pass, "
        "rewrite, block, error), with its latency.")
    otel_shutdown_timeout_s: float = Field(
        10.0, gt=0, le=300,
        description="On a graceful stop, how long to keep exporting the spans still queued before giving up on them.")

    @field_validator("otel_exporter", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("otel_endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value
