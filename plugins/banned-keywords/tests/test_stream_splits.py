"""The stream logic without a gateway: every way of cutting a text into two or three chunks.

The end-to-end tests show a few cuts through a real gateway; here the plugin's `stream_chunk` is
called directly, as the gateway calls it, to check the two promises on all of them: a banned
keyword never leaves whole, and clean text leaves unchanged, holding back at most the longest
keyword less one character.
"""

from __future__ import annotations

from itertools import combinations, pairwise

import pytest
from gateway_plugin_banned_keywords import BannedKeywords, BannedKeywordsConfig, Matcher

from gateway import BadRequestError, Principal, RequestContext, StreamText

KEYWORDS = ["hello", "llama", "Secret Project"]
LOWER = [k.lower() for k in KEYWORDS]
CLEAN = ["hell yes, help me hel", "secret projec", "a hel", "hellhellhel", "sec ret project", "lla", "Helo lama"]
DIRTY = ["hello", "HELLO world", "hehello", "hellama", "my secret PROJECT plan", "ohellohello", "x llamas"]


def cuts(text: str, parts: int):
    """Every way to cut `text` into `parts` non-empty pieces."""
    for points in combinations(range(1, len(text)), parts - 1):
        bounds = (0, *points, len(text))
        yield [text[a:b] for a, b in pairwise(bounds)]


def context(call_type: str = "acompletion") -> RequestContext:
    return RequestContext(request_id="t", call_type=call_type, route="/chat/completions", body={},
                          principal=Principal(), stream=True)


def chunk(index: int, text: str | None, finish: str | None = None, chat: bool = True) -> dict:
    if chat:
        delta = {} if text is None else {"content": text}
        return {"choices": [{"index": index, "delta": delta, "finish_reason": finish}]}
    return {"choices": [{"index": index, "text": text or "", "finish_reason": finish}]}


async def run(plugin: BannedKeywords, pieces: list[str], chat: bool = True) -> tuple[list[str], str | None]:
    """Feed the pieces and a finish chunk; what the client would receive, and the refusal if any."""
    ctx = context("acompletion" if chat else "atext_completion")
    sent: list[str] = []
    for c in [chunk(0, p, chat=chat) for p in pieces] + [chunk(0, None, "stop", chat=chat)]:
        try:
            await plugin.stream_chunk(ctx, c)
        except BadRequestError as err:
            return sent, err.message
        choice = c["choices"][0]
        sent.append(choice["delta"].get("content", "") if chat else choice["text"])
        held = StreamText.of(ctx, plugin.name).held(0)
        assert len(held) <= plugin.matcher.max_held
    return sent, None


@pytest.fixture(scope="module")
def plugin() -> BannedKeywords:
    return BannedKeywords(BannedKeywordsConfig(banned_keywords_list=KEYWORDS), None)


@pytest.mark.parametrize("chat", [True, False], ids=["chat", "completion"])
@pytest.mark.parametrize("parts", [1, 2, 3])
async def test_every_cut_of_clean_text_arrives_unchanged(plugin, parts, chat):
    for text in CLEAN:
        for pieces in cuts(text, parts):
            sent, refused = await run(plugin, pieces, chat)
            assert refused is None, pieces
            assert "".join(sent) == text, pieces


@pytest.mark.parametrize("chat", [True, False], ids=["chat", "completion"])
@pytest.mark.parametrize("parts", [1, 2, 3])
async def test_every_cut_of_a_banned_keyword_is_refused_before_it_leaves_whole(plugin, parts, chat):
    for text in DIRTY:
        for pieces in cuts(text, parts):
            sent, refused = await run(plugin, pieces, chat)
            assert refused is not None and refused.startswith("Keyword banned. Keyword="), pieces
            out = "".join(sent)
            assert text.startswith(out), pieces
            assert not any(k in out.lower() for k in LOWER), pieces


async def test_choices_are_held_and_flushed_separately(plugin):
    ctx = context()
    a = {"choices": [{"index": 0, "delta": {"content": "say hel"}, "finish_reason": None},
                     {"index": 1, "delta": {"content": "a lla"}, "finish_reason": None}]}
    await plugin.stream_chunk(ctx, a)
    assert [c["delta"]["content"] for c in a["choices"]] == ["say ", "a "]
    b = {"choices": [{"index": 1, "delta": {}, "finish_reason": "stop"}]}  # choice 1 ends first
    await plugin.stream_chunk(ctx, b)
    assert b["choices"][0]["delta"] == {"content": "lla"}
    c = {"choices": [{"index": 0, "delta": {"content": "p"}, "finish_reason": "stop"}]}
    await plugin.stream_chunk(ctx, c)
    assert c["choices"][0]["delta"] == {"content": "help"}
    assert StreamText.of(ctx, plugin.name).pending == {}


async def test_chunks_without_text_keep_the_held_text_waiting(plugin):
    ctx = context()
    await plugin.stream_chunk(ctx, chunk(0, "oh hel"))
    role = {"choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]}
    await plugin.stream_chunk(ctx, role)
    assert role["choices"][0]["delta"] == {"role": "assistant"}  # not given an empty content
    with pytest.raises(BadRequestError, match="Keyword=hello"):
        await plugin.stream_chunk(ctx, chunk(0, "lo"))


async def test_a_key_with_the_permission_off_is_passed_through(plugin):
    ctx = context()
    ctx.principal = Principal(permissions={"banned_keywords": False})
    c = chunk(0, "hello")
    await plugin.stream_chunk(ctx, c)
    assert c["choices"][0]["delta"]["content"] == "hello"


def test_matcher_reports_the_listed_spelling_and_holds_back_only_keyword_starts():
    m = Matcher(["Hello", "HELLO", "hello world", "ab"])
    assert m.count == 3  # "Hello" and "HELLO" are one keyword
    assert m.find("well, hello world") == "Hello"  # ends first
    assert m.find("nothing here") is None
    assert m.max_held == len("hello world") - 1
    assert m.held_back("say hel") == 3
    assert m.held_back("say help") == 0
    assert m.held_back("hello wor") == 9  # could still become "hello world"
    assert m.held_back("xa") == 1
    assert m.held_back("") == 0
