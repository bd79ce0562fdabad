"""Which exporter the plugin's config and the environment describe (`export.resolve`): the
precedence of the OpenTelemetry variables, LiteLLM's names and the plugin's keys."""

from __future__ import annotations

import pytest

from gateway_plugin_otel.config import OtelConfig
from gateway_plugin_otel.export import parse_headers, resolve


def settings(environ, **config):
    return resolve(OtelConfig(**config), environ)


def test_the_defaults_are_opentelemetrys():
    s = settings({})
    assert (s.kind, s.endpoint, s.headers) == ("otlp_http", "http://localhost:4318/v1/traces", {})
    g = settings({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    assert (g.kind, g.endpoint) == ("otlp_grpc", "http://localhost:4317")


def test_endpoints_in_order_of_precedence():
    env = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://a:1/custom", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://b:2/",
           "OTEL_ENDPOINT": "http://c:3"}
    assert settings(env, otel_endpoint="http://z:9").endpoint == "http://z:9/v1/traces"
    assert settings(env).endpoint == "http://a:1/custom"  # the signal's own variable: used as it is
    del env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
    assert settings(env).endpoint == "http://b:2/v1/traces"
    del env["OTEL_EXPORTER_OTLP_ENDPOINT"]
    assert settings(env).endpoint == "http://c:3/v1/traces"
    assert settings({"OTEL_ENDPOINT": "https://api.traceloop.com/v1"}).endpoint == "https://api.traceloop.com/v1/traces"
    assert settings({"OTEL_ENDPOINT": "https://x/v1/traces/"}).endpoint == "https://x/v1/traces"


def test_litellm_exporter_names():
    assert settings({"OTEL_EXPORTER": "otlp_grpc", "OTEL_ENDPOINT": "http://c:4317"}).endpoint == "http://c:4317"
    assert settings({"OTEL_EXPORTER": "console"}).kind == "console"
    assert settings({"OTEL_EXPORTER": "http/json"}).kind == "otlp_http"
    # The OpenTelemetry variable wins over LiteLLM's, as in LiteLLM.
    assert settings({"OTEL_EXPORTER": "console", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}).kind == "otlp_grpc"
    assert settings({"OTEL_TRACES_EXPORTER": "none,otlp", "OTEL_EXPORTER": "otlp_http"}).kind == "none"
    assert settings({"OTEL_TRACES_EXPORTER": "console"}, otel_exporter="otlp_grpc").kind == "otlp_grpc"


def test_headers_in_order_of_precedence_and_never_in_a_repr():
    env = {"OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Bearer%20tok-1", "OTEL_HEADERS": "x=y"}
    s = settings(env)
    assert s.headers == {"authorization": "Bearer tok-1"} and "tok-1" not in repr(s)
    assert settings({"OTEL_HEADERS": "api-key=k1, x-team = llm"}).headers == {"api-key": "k1", "x-team": "llm"}
    assert settings(env, otel_headers={"X-Key": "tok-2"}).headers == {"x-key": "tok-2"}
    assert "tok-2" not in repr(OtelConfig(otel_headers={"X-Key": "tok-2"}))


def test_bad_values_name_the_variable_never_a_secret():
    with pytest.raises(ValueError, match="OTEL_EXPORTER='zipkin' is not supported"):
        settings({"OTEL_EXPORTER": "zipkin"})
    with pytest.raises(ValueError, match="OTEL_TRACES_EXPORTER='jaeger' is not supported"):
        settings({"OTEL_TRACES_EXPORTER": "jaeger"})
    with pytest.raises(ValueError, match="must be an http:// or https:// URL"):
        settings({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"})
    with pytest.raises(ValueError) as err:
        parse_headers("authorization=ok,sk-secret-value")
    assert "sk-secret-value" not in str(err.value)


def test_where_is_safe_to_log():
    s = settings({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://user:pw@collector:4318/v1/traces?token=abc"})
    assert s.where == "otlp_http https://collector:4318/v1/traces"
