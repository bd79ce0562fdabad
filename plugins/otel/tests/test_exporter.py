"""End-to-end: the exporter. OTLP/HTTP and OTLP/gRPC collectors on loopback (conftest.py), LiteLLM's
variable names, the native config, a graceful stop that flushes every queued span, and one that a
dead collector cannot hold.
"""

from __future__ import annotations

import time

import httpx
import pytest

from otel_test_helpers import COLLECTOR_TOKEN, PROMPT, chat, config, only, otel_env


def test_shutdown_flushes_every_queued_span(collector, fake_upstream, gateway_server):
    # A batch delay longer than the test: nothing is exported until the gateway stops.
    server = gateway_server(config(fake_upstream), env=otel_env(collector, OTEL_BSP_SCHEDULE_DELAY="600000"))
    client = server.client()
    ids = {chat(client, f"call {i}")[0] for i in range(5)}
    time.sleep(0.5)
    assert collector.spans == []
    server.stop()
    assert {s.attributes["gateway.request_id"] for s in collector.spans} == ids


def test_litellm_variable_names(collector, fake_upstream, gateway_server):
    env = {"OTEL_EXPORTER": "otlp_http", "OTEL_ENDPOINT": collector.url,
           "OTEL_HEADERS": f"Authorization=Bearer%20{COLLECTOR_TOKEN},x-team=llm", "OTEL_BSP_SCHEDULE_DELAY": "50"}
    server = gateway_server(config(fake_upstream), env=env)
    chat(server.client())
    assert only(collector.wait_for(1)).name == "chat gpt-test"
    export = collector.exports[0]
    assert (export.path, export.headers["authorization"], export.headers["x-team"]) == (
        "/v1/traces", f"Bearer {COLLECTOR_TOKEN}", "llm")


def test_native_config_wins_and_stays_secret(collector, fake_upstream, gateway_server):
    cfg = config(fake_upstream, callbacks=())
    cfg["plugins"] = [{"name": "otel", "config": {
        "otel_endpoint": collector.url, "otel_headers": {"X-Api-Key": COLLECTOR_TOKEN},
        "otel_service_name": "edge-gateway"}}]
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_BSP_SCHEDULE_DELAY": "50"}
    server = gateway_server(cfg, env=env)
    chat(server.client())
    span = only(collector.wait_for(1))
    assert span.resource["service.name"] == "edge-gateway"
    assert collector.exports[0].headers["x-api-key"] == COLLECTOR_TOKEN
    listing = httpx.get(server.url + "/plugins", headers={"Authorization": "Bearer sk-1234"}).text
    assert '"otel"' in listing and COLLECTOR_TOKEN not in listing


def test_an_unknown_protocol_stops_startup(fake_upstream, gateway_server):
    with pytest.raises(Exception, match="plugin 'otel' failed to start: ValueError: OTEL_EXPORTER_OTLP_PROTOCOL="
                                        "'carrier-pigeon' is not supported"):
        gateway_server(config(fake_upstream), env={"OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon"})


def test_a_collector_that_is_down_never_holds_the_stop(fake_upstream, gateway_server, caplog):
    cfg = config(fake_upstream, otel_shutdown_timeout_s=1)
    server = gateway_server(cfg, env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
                                      "OTEL_BSP_SCHEDULE_DELAY": "600000", "OTEL_EXPORTER_OTLP_TIMEOUT": "30"})
    reply = chat(server.client())[1]
    assert reply.choices[0].message.content == f"upstream says: {PROMPT}"
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 6
    assert ("otel: spans still queued after 1 s at shutdown were dropped "
            "(collector otlp_http http://127.0.0.1:9/v1/traces)") in caplog.text


def test_otlp_over_grpc(grpc_collector, fake_upstream, gateway_server):
    env = {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": grpc_collector.url,
           "OTEL_EXPORTER_OTLP_HEADERS": f"authorization=Bearer%20{COLLECTOR_TOKEN}", "OTEL_BSP_SCHEDULE_DELAY": "50"}
    server = gateway_server(config(fake_upstream), env=env)
    _, reply = chat(server.client())
    span = only(grpc_collector.wait_for(1))
    assert (span.name, span.attributes["gen_ai.response.id"]) == ("chat gpt-test", reply.id)
    assert grpc_collector.exports[0].headers["authorization"] == f"Bearer {COLLECTOR_TOKEN}"


def test_exporter_none_records_nothing(collector, fake_upstream, gateway_server):
    env = otel_env(collector, OTEL_TRACES_EXPORTER="none")
    server = gateway_server(config(fake_upstream), env=env)
    assert chat(server.client())[1].choices[0].message.content == f"upstream says: {PROMPT}"
    server.stop()
    assert collector.spans == [] and collector.refused == []
