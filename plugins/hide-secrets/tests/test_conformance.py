"""The kit's conformance check on `hide_secrets`: on every LLM route (chat, completions, embeddings,
Anthropic's Messages, OpenAI's Responses, images, speech, moderations, rerank), in every path form,
streamed and not, a request's secret is redacted before the upstream gets it; with
`hide_secrets_redact_replies`, a reply's secret before the client gets it (a stream's cut across
two chunks). One gateway runs all of it: the request and the reply hooks in one check.

The secret is the seed's example, assembled from pieces so that no scanner flags this file.
"""

from __future__ import annotations

from gateway.conformance import CONFORMANCE_MODEL, MESSAGES_PATHS, REQUEST_SHAPES, RESPONSES_PATHS

NAME = "hide_secrets"
SECRET = "sk_" + "1234567890abcdef"
TRIGGER = f"API_KEY = '{SECRET}'"
R = "[REDACTED]"
EVERY_PATH = {path.format(model=CONFORMANCE_MODEL) for shape in REQUEST_SHAPES for path in shape.paths}


def test_every_route_is_redacted_both_ways(plugin_conformance, fake_upstream):
    report = plugin_conformance(NAME, config={"hide_secrets_redact_replies": True}, trigger=TRIGGER)

    assert report.hooks == ["pre_request", "post_response", "stream_chunk"]
    assert report.routes_for("pre_request") == EVERY_PATH
    assert {*MESSAGES_PATHS, *RESPONSES_PATHS, "/v1/chat/completions", "/v1/completions"} <= report.routes_for(
        "stream_chunk")
    # Redacted, not refused: every case is a rewrite to the placeholder, on the way in and out.
    assert {c.outcome for c in report.cases} == {"changed"}, str(report)
    assert all(R in c.detail for c in report.cases), str(report)
    # And the secret itself never left the gateway, on any route.
    leaked = [r.path for r in fake_upstream.requests if SECRET.encode() in r.body]
    assert leaked == []
    redacted_calls = sum(R.encode() in r.body for r in fake_upstream.requests)
    assert redacted_calls == len([c for c in report.cases if c.hook == "pre_request"])
