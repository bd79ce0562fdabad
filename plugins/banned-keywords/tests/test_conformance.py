"""The kit's conformance check on `banned_keywords`: on every LLM route (chat, completions,
embeddings, Anthropic's Messages, OpenAI's Responses, images, speech, moderations, rerank), in every
path form, streamed and not, a request with a banned keyword is refused before the upstream gets it,
and a reply with one (a stream's cut across two chunks) never reaches the client. One gateway runs
all of it: the request and the reply hooks in one check.
"""

from __future__ import annotations

from gateway.conformance import CONFORMANCE_MODEL, MESSAGES_PATHS, REQUEST_SHAPES, RESPONSES_PATHS

NAME = "banned_keywords"
KEYWORD = "hammerfall"
REFUSAL = f"Keyword banned. Keyword={KEYWORD}"
EVERY_PATH = {path.format(model=CONFORMANCE_MODEL) for shape in REQUEST_SHAPES for path in shape.paths}


def test_every_route_refuses_the_keyword_both_ways(plugin_conformance, fake_upstream):
    # Written in another case than configured: the match is case-insensitive on every route too.
    report = plugin_conformance(NAME, config={"banned_keywords_list": [KEYWORD, "other word"]},
                                trigger="tell me about HammerFall, please")

    assert report.hooks == ["pre_request", "post_response", "stream_chunk"]
    assert report.routes_for("pre_request") == EVERY_PATH
    assert {*MESSAGES_PATHS, *RESPONSES_PATHS, "/v1/chat/completions", "/v1/completions"} <= report.routes_for(
        "stream_chunk")
    # Refused by this plugin, with its message, in every case (a stream with its API's error event).
    assert {c.outcome for c in report.cases} == {"blocked"}, str(report)
    assert all(REFUSAL in c.detail for c in report.cases), str(report)
    assert not any(KEYWORD.encode() in r.body.lower() for r in fake_upstream.requests)  # multipart bodies too
