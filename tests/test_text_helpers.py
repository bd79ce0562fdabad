"""The documented text helpers find the text of every route's request and reply, so that a guard
written on them covers every route (issue 16)."""

from gateway import iter_request_text, iter_request_text_slots, iter_response_text, iter_response_text_slots


def test_request_text_of_every_route():
    assert list(iter_request_text({"messages": [{"role": "user", "content": [{"type": "text", "text": "a"},
                                                                          {"type": "image_url"}]}]})) == ["a"]
    assert list(iter_request_text({"prompt": "draw a cat", "n": 2})) == ["draw a cat"]  # images
    assert list(iter_request_text({"input": "say hi", "voice": "alloy"})) == ["say hi"]  # speech
    assert list(iter_request_text({"input": [{"type": "text", "text": "t"}, {"type": "image_url"}]})) == ["t"]
    rerank = {"query": "q", "documents": ["d1", {"text": "d2"}, {"title": "no text"}]}
    assert list(iter_request_text(rerank)) == ["q", "d1", "d2"]


def test_request_slots_rewrite_in_place():
    body = {"query": "secret", "documents": ["secret doc", {"text": "secret"}]}
    for container, key in iter_request_text_slots(body):
        container[key] = container[key].replace("secret", "[REDACTED]")
    assert body == {"query": "[REDACTED]", "documents": ["[REDACTED] doc", {"text": "[REDACTED]"}]}
    moderation = {"input": [{"type": "text", "text": "secret"}]}
    for container, key in iter_request_text_slots(moderation):
        container[key] = "x"
    assert moderation == {"input": [{"type": "text", "text": "x"}]}


def test_a_chat_body_with_a_query_field_is_not_read_as_rerank():
    assert list(iter_request_text({"messages": [{"role": "user", "content": "hi"}], "query": "q"})) == ["hi"]


def test_reply_text_of_every_route():
    chat = {"choices": [{"message": {"role": "assistant", "content": "a"}}, {"text": "b"}]}
    assert list(iter_response_text(chat)) == ["a", "b"]
    transcription = {"text": "all", "segments": [{"text": "al"}, {"text": "l"}]}
    assert list(iter_response_text(transcription)) == ["all", "al", "l"]
    images = {"created": 1, "data": [{"url": "http://x", "revised_prompt": "a cat"}, {"b64_json": "AA=="}]}
    assert list(iter_response_text(images)) == ["a cat"]
    assert list(iter_response_text({"results": [{"flagged": False}]})) == []  # moderations: no text
    assert list(iter_response_text(None)) == []


def test_reply_slots_rewrite_in_place():
    reply = {"choices": [{"message": {"content": [{"type": "text", "text": "x"}]}}]}
    for container, key in iter_response_text_slots(reply):
        container[key] = "y"
    assert reply["choices"][0]["message"]["content"][0]["text"] == "y"
