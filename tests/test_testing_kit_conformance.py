"""The conformance check of `gateway.testing`: one call runs a plugin over every LLM route, streamed
and not, and fails naming route and hook wherever the plugin let the trigger through.

The plugins are the test dist's (tests/dists/gateway-plugin-probe), installed through real entry
points. Well-behaved: `probe_block` (its pre_request reads every text slot through
`ctx.user_message_text`) and `probe_judge` (its post_response reads chat and completion replies).
Skipping: `probe_rewrite` rewrites only a string content of chat's last message (so completions'
`prompt`, embeddings' `input` and content parts go through untouched) and `probe_stream_upper`
rewrites chat replies only (never a completion's `text`).
"""

from __future__ import annotations

import re

import pytest

from gateway.conformance import REPLY_SHAPES, REQUEST_SHAPES, ROUTE_PREFIXES
from gateway.testing import ConformanceError, GatewayProcess

PATHS = {f"{p.format(model='conformance-model')}/{route}" for p in ROUTE_PREFIXES
         for route in ("chat/completions", "completions", "embeddings")}
#: Every route the check calls: OpenAI's (above), Anthropic's Messages, Responses, images, speech,
#: moderations and rerank.
ALL_PATHS = {path.format(model="conformance-model") for shape in REQUEST_SHAPES for path in shape.paths}
REPLY_PATHS = {path.format(model="conformance-model") for paths, _ in REPLY_SHAPES for path in paths}


def test_a_well_behaved_request_guard_passes_on_every_route(plugin_conformance, fake_upstream):
    report = plugin_conformance("probe_block", config={"word": "forbidden"}, trigger="a forbidden word")
    assert report.hooks == ["pre_request"]
    assert report.routes_for("pre_request") == ALL_PATHS  # every route, with and without /v1, Azure, engines
    assert PATHS < ALL_PATHS and {"/v1/messages", "/anthropic/v1/messages", "/v1/responses", "/v1/images/generations",
                                  "/v1/audio/speech", "/v1/moderations", "/v1/rerank", "/v2/rerank"} < ALL_PATHS
    assert {(c.route, c.shape, c.stream) for c in report.cases} >= {
        ("/v1/embeddings", "input as a list", False), ("/completions", "prompt as a list", True),
        ("/v1/chat/completions", "content as text parts", True), ("/v1/messages", "Anthropic messages, text blocks", True),
        ("/v1/responses", "Responses input items", True), ("/v2/rerank", "rerank query and documents", False),
        ("/audio/transcriptions", "transcription prompt", False)}
    assert len(report.cases) == 67
    assert {c.outcome for c in report.cases} == {"blocked"}
    assert all("Blocked by probe. Keyword=forbidden" in c.detail for c in report.cases)
    # Each case ran the harmless control first (it reached the upstream), then the trigger (refused).
    assert len(fake_upstream.requests) == 67
    assert all("forbidden" not in r.text for r in fake_upstream.requests)


def test_a_plugin_that_skips_routes_fails_naming_route_and_hook(plugin_conformance):
    with pytest.raises(ConformanceError) as err:
        plugin_conformance("probe_rewrite", trigger="mask me")
    message = str(err.value)
    assert message.startswith("plugin 'probe_rewrite' skipped 47 of 67 case(s) of the conformance check")
    assert re.search(r"pre_request on POST /v1/embeddings: skipped \(input as a string; input as a list\) - "
                     r"the upstream received the text unchanged: 'mask me'", message)
    assert "pre_request on POST /v1/completions: skipped (prompt as a string; prompt as a string, streamed;" in message
    assert "pre_request on POST /chat/completions: skipped (content as text parts; content as text parts, streamed)" \
        in message
    assert "content as a string" not in message  # the one shape it does rewrite is not reported
    report = err.value.report
    assert report is not None
    changed = {(c.route, c.stream) for c in report.cases if c.outcome == "changed"}
    # it rewrites chat's string content, which /v1/messages and /v1/responses reach the hooks as
    assert changed == {(p, s) for p in ALL_PATHS for s in (False, True)
                       if p.endswith(("chat/completions", "/messages", "/responses"))}
    assert "pre_request on POST /v1/images/generations: skipped (image prompt)" in message
    assert "pre_request on POST /v2/rerank: skipped (rerank query and documents)" in message
    assert all("mask me [rewritten]" in c.detail for c in report.cases if c.outcome == "changed")


def test_a_well_behaved_reply_guard_passes_streamed_and_not(plugin_conformance):
    report = plugin_conformance("probe_judge", config={"word": "secret"}, trigger="the secret plan")
    assert report.hooks == ["post_response"]
    assert report.routes_for("post_response") == REPLY_PATHS
    assert REPLY_PATHS == {p for p in PATHS if not p.endswith("embeddings")} | {
        "/v1/messages", "/anthropic/v1/messages", "/v1/responses", "/responses", "/v1/audio/transcriptions",
        "/audio/transcriptions"}
    assert len(report.cases) == 26 and {c.outcome for c in report.cases} == {"blocked"}
    streamed = [c for c in report.cases if c.stream]
    assert len(streamed) == 12
    assert all(c.detail == "the stream ended with an SSE error event: Reply blocked. Keyword=secret" for c in streamed)


def test_a_reply_rewriter_that_skips_completions_fails_naming_both_hooks(plugin_conformance):
    with pytest.raises(ConformanceError) as err:
        plugin_conformance("probe_stream_upper", trigger="loud words")
    message = str(err.value)
    assert "skipped 10 of 26 case(s)" in message  # completions' text and transcriptions
    assert ("post_response on POST /v1/completions: skipped (reply text) - the client got the upstream's reply "
            "unchanged: 'Here it is: loud words and that is all.'") in message
    assert ("stream_chunk (and post_response) on POST /v1/completions: skipped (reply text, streamed) - the "
            "client got the upstream's reply unchanged: 'Here it is: loud words and that is all.' (the trigger "
            "was cut across two chunks)") in message
    assert "chat/completions" not in message
    chat = [c for c in err.value.report.cases if c.route.endswith("chat/completions")]
    assert chat and all(c.outcome == "changed" and "LOUD WORDS" in c.detail for c in chat)


def test_a_trigger_the_plugin_ignores_everywhere_says_so(plugin_conformance):
    with pytest.raises(ConformanceError, match="It acted on the trigger nowhere: is `trigger` a text it blocks"):
        plugin_conformance("probe_block", config={"word": "forbidden"}, trigger="perfectly fine text")


def test_a_plugin_that_refuses_everything_cannot_pass_as_blocking(plugin_conformance):
    """The harmless control fails too, so a refusal proves nothing: reported, not counted as blocked."""
    with pytest.raises(ConformanceError) as err:
        plugin_conformance("probe_block", config={"word": "hello"}, trigger="hello world")
    report = err.value.report
    assert {c.outcome for c in report.cases} == {"control failed"}
    assert "the same call with harmless text 'hello there' failed too (HTTP 400: Blocked by probe. Keyword=hello)" \
        in str(err.value)
    assert "pass `harmless=` text" in str(err.value)


def test_a_plugin_without_text_hooks_is_not_passed_vacuously(plugin_conformance):
    with pytest.raises(ConformanceError, match=r"implements none of the hooks the conformance check covers .*"
                                               r"it implements: alert, request_finished, shutdown, startup"):
        plugin_conformance("probe_recorder")


def test_the_check_gateway_is_a_separate_process_when_one_already_runs(gateway_server, fake_upstream):
    from gateway.testing import check_plugin_conformance

    mine = gateway_server({"model_list": [{"model_name": "m", "litellm_params": {"model": "fake/m"}}]})
    started: list = []

    def recording(config, **kwargs):
        started.append(gateway_server(config, **kwargs))
        return started[-1]

    report = check_plugin_conformance("probe_judge", gateway_server=recording, fake_upstream=fake_upstream,
                                      trigger="secret sauce")
    assert len(report.cases) == 26 and not report.failures
    assert isinstance(started[0], GatewayProcess)
    assert mine.gateway.router.model_names() == ["m"]  # the test's own gateway stays in-process
