"""What the end-to-end tests share: the gateway's config, the collector's environment, one chat call."""

from __future__ import annotations

UPSTREAM_KEY = "sk-upstream-SECRET-9876"
COLLECTOR_TOKEN = "otlp-token-SECRET-1234"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
PROMPT = "tell me about the weather in Paris"


def config(upstream, *, callbacks=("otel",), **settings):
    params = {"api_base": upstream.url, "api_key": UPSTREAM_KEY}
    return {
        "model_list": [
            {"model_name": "gpt-test", "litellm_params": {"model": "openai/upstream-model", **params}},
            {"model_name": "embed-test", "litellm_params": {"model": "openai/embed-model", **params}},
        ],
        "litellm_settings": {"callbacks": list(callbacks), **settings},
    }


def otel_env(collector, **more: str) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
        "OTEL_EXPORTER_OTLP_HEADERS": f"authorization=Bearer%20{COLLECTOR_TOKEN}",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        **more,
    }


def chat(client, text=PROMPT, **kwargs):
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-test", messages=[{"role": "user", "content": text}], **kwargs)
    return raw.headers["x-request-id"], raw.parse()


def only(spans, kind="SPAN_KIND_CLIENT"):
    found = [s for s in spans if s.kind == kind]
    assert len(found) == 1, [(s.name, s.kind) for s in spans]
    return found[0]


def all_values(spans) -> str:
    """Every attribute value and status message of every span, as one text to search."""
    return repr([(s.name, s.attributes, s.status_message, s.resource) for s in spans])
