"""The kit's conformance check on `google_text_moderation`, against the fake moderateText API
(conftest.py) answering the official google-cloud-language client: on every LLM route (chat,
completions, embeddings, Anthropic's Messages, OpenAI's Responses, images, speech, moderations,
rerank), in every path form, streamed and not, text Google scores above the threshold is refused
before the upstream gets it.

The check makes a couple of hundred calls, harmless and not, in its own order, so the fake's
scores depend on the text it is sent (`scores_for`): toxic for the trigger, the baseline otherwise.
"""

from __future__ import annotations

from gateway.conformance import CONFORMANCE_MODEL, REQUEST_SHAPES
from gateway.testing import check_plugin_conformance

NAME = "google_text_moderation"
TRIGGER = "You are a worthless idiot and everyone hates you"
REFUSAL = "Violated content safety policy. Category=insult"
EVERY_PATH = {path.format(model=CONFORMANCE_MODEL) for shape in REQUEST_SHAPES for path in shape.paths}


def test_every_route_is_moderated(gateway_server, fake_upstream, fake_google):
    fake_google.scores_for = lambda text: {"Insult": 0.93, "Toxic": 0.88} if TRIGGER in text else {}
    report = check_plugin_conformance(
        NAME, gateway_server=lambda cfg: gateway_server(cfg, env={"GOOGLE_MODERATION_API_ENDPOINT": fake_google.url}),
        fake_upstream=fake_upstream, trigger=TRIGGER)

    assert report.hooks == ["pre_request"]
    assert report.routes_for("pre_request") == EVERY_PATH
    assert {c.outcome for c in report.cases} == {"blocked"}, str(report)
    assert all(REFUSAL in c.detail for c in report.cases), str(report)  # the most confident category
    # Each refusal is Google's verdict: the trigger was sent to it once per refused call.
    assert sum(TRIGGER in text for text in fake_google.texts) == len(report.cases)
