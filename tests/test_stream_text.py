"""`gateway.StreamText`: per-choice stream text with a hold-back window.

First the helper alone, as a plugin's `stream_chunk` drives it: every cut of a text into two or
three chunks, several choices, chunks without text, eager writing. Then end to end: a plugin
that masks words with the helper, installed as a real distribution (an entry point on the path),
a real gateway, and the official `openai` SDK streaming from it. The upstream is a loopback
HTTP peer that streams exactly the SSE events a test scripts (several choices, a finish_reason
with content, usage-only chunks, a stream that never finishes), and the `fake_upstream` fixture.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import textwrap
import threading
import time
from itertools import combinations, pairwise
from pathlib import Path
from typing import Any

import openai
import pytest

from gateway import Principal, RequestContext, StreamText, StreamWindow

WORDS = ["swordfish", "sword", "fishbone"]


def cut(text: str, words: list[str]) -> int:
    """The first position where a listed word could still begin and grow with more text. A word
    already whole before it is final: leftmost, longest (as `masked` rewrites a whole text)."""
    low = text.lower()
    i = 0
    while i < len(low):
        rest = low[i:]
        if any(len(rest) < len(w) and w.startswith(rest) for w in words):
            return i
        i += max((len(w) for w in words if rest.startswith(w)), default=1)
    return len(low)


def mask(window: StreamWindow, words: list[str] = WORDS) -> None:
    """What a masking plugin does with each window: hold what may still grow, rewrite the rest."""
    window.hold(len(window.text) - cut(window.text, words))
    window.released = masked(window.released, words)


def masked(text: str, words: list[str] = WORDS) -> str:
    for w in sorted(words, key=len, reverse=True):
        text = re.sub(re.escape(w), "*" * len(w), text, flags=re.I)
    return text


def ctx(call_type: str = "acompletion") -> RequestContext:
    return RequestContext(request_id="t", call_type=call_type, route="/chat/completions", body={},
                          principal=Principal(), stream=True)


def chat_chunk(index: int, text: str | None, finish: str | None = None) -> dict[str, Any]:
    delta = {} if text is None else {"content": text}
    return {"object": "chat.completion.chunk", "choices": [{"index": index, "delta": delta, "finish_reason": finish}]}


def text_chunk(index: int, text: str | None, finish: str | None = None) -> dict[str, Any]:
    return {"object": "text_completion", "choices": [{"index": index, "text": text or "", "finish_reason": finish}]}


def cuts(text: str, parts: int):
    for points in combinations(range(1, len(text)), parts - 1):
        bounds = (0, *points, len(text))
        yield [text[a:b] for a, b in pairwise(bounds)]


def run(pieces: list[str], chat: bool = True, finish_with_text: bool = False) -> list[str]:
    """Feed the pieces (the last with the finish_reason, or a separate finish chunk)."""
    c = ctx()
    stream = StreamText.of(c, "mask", max_hold=max(map(len, WORDS)) - 1)
    make = chat_chunk if chat else text_chunk
    chunks = [make(0, p) for p in pieces]
    if finish_with_text:
        chunks[-1]["choices"][0]["finish_reason"] = "stop"
    else:
        chunks.append(make(0, None, "stop"))
    sent = []
    for chunk in chunks:
        for window in stream.feed(chunk):
            mask(window)
            assert len(stream.held(0)) <= stream.max_hold
        choice = chunk["choices"][0]
        sent.append(choice["delta"].get("content", "") if chat else choice["text"])
    assert stream.pending == {}
    return sent


TEXTS = ["my swordfish is here", "a sword, a fishbone", "swor dfish sw", "SwordFishBone", "fish", "swords"]


@pytest.mark.parametrize("finish_with_text", [False, True], ids=["finish-chunk", "finish-with-text"])
@pytest.mark.parametrize("chat", [True, False], ids=["chat", "completion"])
@pytest.mark.parametrize("parts", [1, 2, 3])
def test_every_cut_gives_the_rewrite_of_the_whole_text(parts, chat, finish_with_text):
    for text in TEXTS:
        for pieces in cuts(text, parts):
            sent = run(pieces, chat, finish_with_text)
            assert "".join(sent) == masked(text), pieces
            # no piece of a masked word ever leaves: what was sent so far is a prefix of the result
            so_far = ""
            for out in sent:
                so_far += out
                assert masked(text).startswith(so_far), (pieces, sent)


def test_held_text_waits_and_is_released_in_order():
    c = ctx()
    stream = StreamText.of(c, "mask")
    assert StreamText.of(c, "mask") is stream  # one per request and plugin
    assert StreamText.of(c, "other") is not stream
    first = chat_chunk(0, "a swo")
    (w,) = stream.feed(first)
    assert (w.index, w.new, w.text, w.final) == (0, "a swo", "a swo", False)
    assert first["choices"][0]["delta"]["content"] == "a swo"  # written at once, all released
    w.hold(3)
    assert (w.released, w.held) == ("a ", "swo")
    assert first["choices"][0]["delta"]["content"] == "a "
    assert stream.held(0) == "swo" and stream.pending == {0: "swo"}
    second = chat_chunk(0, "rd")
    (w,) = stream.feed(second)
    assert (w.new, w.text) == ("rd", "sword")
    w.text = "*****"  # a rewrite shorter than the hold keeps the hold within it
    w.hold(99)
    assert second["choices"][0]["delta"]["content"] == "" and stream.held(0) == "*****"
    last = chat_chunk(0, None, "stop")
    (w,) = stream.feed(last)
    assert w.final and w.text == "*****"
    w.hold(2)  # ignored: a finishing choice releases everything
    assert last["choices"][0]["delta"] == {"content": "*****"} and stream.pending == {}


def test_rewriting_what_is_released_keeps_the_held_part_as_it_came():
    stream = StreamText()
    chunk = chat_chunk(0, "call me at ada@exa")
    (w,) = stream.feed(chunk)
    w.hold(len("ada@exa"))
    w.released = w.released.upper()
    assert (w.text, w.released, w.held) == ("CALL ME AT ada@exa", "CALL ME AT ", "ada@exa")
    assert chunk["choices"][0]["delta"]["content"] == "CALL ME AT "
    with pytest.raises(TypeError):
        w.released = 3  # type: ignore[assignment]


def test_max_hold_caps_every_hold():
    stream = StreamText(max_hold=2)
    chunk = chat_chunk(0, "abcdef")
    (w,) = stream.feed(chunk)
    w.hold(5)
    assert w.held == "ef" and chunk["choices"][0]["delta"]["content"] == "abcd"
    with pytest.raises(ValueError):
        StreamText(max_hold=-1)


def test_chunks_without_text_are_left_alone_and_keep_the_held_text_waiting():
    stream = StreamText()
    (w,) = stream.feed(chat_chunk(0, "hold me"))
    w.hold(2)
    role = {"choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]}
    tool = {"choices": [{"index": 0, "delta": {"content": None, "tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]},
                         "finish_reason": None}]}
    usage = {"choices": [], "usage": {"total_tokens": 3}}
    for chunk in (role, tool, usage, {"choices": None}, {}, {"choices": ["junk", 3]}):
        before = json.dumps(chunk)
        assert stream.feed(chunk) == []
        assert json.dumps(chunk) == before
    assert stream.held(0) == "me"
    # a finish chunk whose content is null gets the held text; one with nothing to give stays null
    end = {"choices": [{"index": 0, "delta": {"content": None}, "finish_reason": "tool_calls"}]}
    (w,) = stream.feed(end)
    assert end["choices"][0]["delta"]["content"] == "me"
    empty = {"choices": [{"index": 3, "delta": {"content": None}, "finish_reason": "stop"}]}
    (w,) = stream.feed(empty)
    assert w.text == "" and empty["choices"][0]["delta"]["content"] is None


def test_several_choices_hold_and_release_separately():
    stream = StreamText()
    both = {"choices": [{"index": 0, "delta": {"content": "zero sw"}, "finish_reason": None},
                        {"index": 1, "delta": {"content": "one fi"}, "finish_reason": None}]}
    windows = stream.feed(both)
    assert [w.index for w in windows] == [0, 1]
    for w in windows:
        mask(w)
    assert [c["delta"]["content"] for c in both["choices"]] == ["zero ", "one "]
    assert stream.pending == {0: "sw", 1: "fi"}
    one_ends = {"choices": [{"index": 1, "delta": {"content": "shbone"}, "finish_reason": "stop"}]}
    for w in stream.feed(one_ends):
        mask(w)
    assert one_ends["choices"][0]["delta"]["content"] == "********" and stream.pending == {0: "sw"}
    zero_ends = {"choices": [{"index": 0, "delta": {"content": "ordfish!"}, "finish_reason": "stop"}]}
    for w in stream.feed(zero_ends):
        mask(w)
    assert zero_ends["choices"][0]["delta"]["content"] == "*********!" and stream.pending == {}


def test_a_plugin_that_raises_half_way_loses_no_text():
    """Writing is eager: in monitor mode or fail_open the stream goes on with all the text."""
    stream = StreamText()
    (w,) = stream.feed(chat_chunk(0, "abc"))
    w.hold(3)
    chunk = chat_chunk(0, "def")
    with pytest.raises(RuntimeError):
        for _window in stream.feed(chunk):
            raise RuntimeError("the plugin blocks")
    assert chunk["choices"][0]["delta"]["content"] == "abcdef" and stream.pending == {}


def test_shape_detection_and_bad_values():
    stream = StreamText()
    # no delta and no text key: the chunk's object says which; a missing index is 0
    chunk = {"object": "text_completion", "choices": [{"finish_reason": "stop"}]}
    (w,) = stream.feed(chunk)
    w.text = "x"
    assert chunk["choices"][0]["text"] == "x"
    chunk = {"object": "chat.completion.chunk", "choices": [{"finish_reason": "stop", "index": "weird"}]}
    (w,) = stream.feed(chunk)
    w.text = "y"
    assert w.index == 0 and chunk["choices"][0]["delta"] == {"content": "y"}
    with pytest.raises(TypeError):
        w.text = None  # type: ignore[assignment]


# -- end to end: a real gateway, a real plugin distribution, the openai SDK -----------------------

PLUGIN = '''
"""A test plugin: masks words in streamed replies with gateway.StreamText."""
import re

from pydantic import Field

from gateway import Plugin, PluginConfig, StreamText, hookimpl


class StreamMask(Plugin):
    name = "stream_mask"
    priority = 800

    class Config(PluginConfig):
        stream_mask_words: list[str] = Field(min_length=1, description="Words to mask in streamed replies.")

    def __init__(self, config, gateway):
        super().__init__(config, gateway)
        self.words = sorted((w.lower() for w in config.stream_mask_words), key=len, reverse=True)
        self.pattern = re.compile("|".join(map(re.escape, self.words)), re.I)
        self.longest = len(self.words[0])

    def cut(self, text):
        """The first position where a word could still begin and grow."""
        low = text.lower()
        i = 0
        while i < len(low):
            rest = low[i:]
            if any(len(rest) < len(w) and w.startswith(rest) for w in self.words):
                return i
            i += max((len(w) for w in self.words if rest.startswith(w)), default=1)
        return len(low)

    @hookimpl
    async def stream_chunk(self, ctx, chunk):
        for window in StreamText.of(ctx, self.name, max_hold=self.longest - 1).feed(chunk):
            window.hold(len(window.text) - self.cut(window.text))
            window.released = self.pattern.sub(lambda m: "*" * len(m.group()), window.released)


class StreamMaskB(StreamMask):
    name = "stream_mask_b"
    priority = 700


class FirstChunkGate(Plugin):
    """Holds every chunk after a stream's first until the client says it has the first one
    (`gate_file` exists), or 3 s have passed."""
    name = "first_chunk_gate"

    class Config(PluginConfig):
        gate_file: str = Field(description="Created by the client once it has the first chunk.")

    @hookimpl
    async def stream_chunk(self, ctx, chunk):
        import asyncio
        import os
        import time

        seen = ctx.state_for(self.name).setdefault("chunks", [0])
        seen[0] += 1
        deadline = time.monotonic() + 3
        while seen[0] > 1 and not os.path.exists(self.config.gate_file) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
'''


@pytest.fixture
def mask_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The plugin above as an installed distribution: its module and its dist-info (with the
    entry points) in a directory on the path. Returns the env for `gateway_server`, so a gateway
    in another process would find it too."""
    site = tmp_path / "site"
    (site / "gateway_plugin_stream_mask").mkdir(parents=True)
    (site / "gateway_plugin_stream_mask" / "__init__.py").write_text(PLUGIN)
    info = site / "gateway_plugin_stream_mask-0.0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: gateway-plugin-stream-mask\nVersion: 0.0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""\
        [gateway]
        stream_mask = gateway_plugin_stream_mask:StreamMask
        stream_mask_b = gateway_plugin_stream_mask:StreamMaskB
        first_chunk_gate = gateway_plugin_stream_mask:FirstChunkGate
        """))
    monkeypatch.syspath_prepend(str(site))
    yield {"PYTHONPATH": str(site)}
    sys.modules.pop("gateway_plugin_stream_mask", None)


class ScriptedUpstream:
    """An OpenAI-style upstream on loopback that streams, as SSE, exactly the events it is given
    (a dict is sent as JSON, a str as is), and records each request body."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.together = False  # every event in one write: they reach the gateway as one piece
        self.requests: list[dict[str, Any]] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="scripted-upstream")

    def start(self) -> ScriptedUpstream:
        from aiohttp import web

        async def handle(request: web.Request) -> web.StreamResponse:
            self.requests.append(await request.json())
            resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await resp.prepare(request)
            pieces = [f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n".encode() for e in self.events]
            for piece in [b"".join(pieces)] if self.together else pieces:
                await resp.write(piece)
            await resp.write_eof()
            return resp

        app = web.Application()
        app.router.add_post("/v1/chat/completions", handle)
        app.router.add_post("/v1/completions", handle)

        async def boot() -> int:
            self.runner = web.AppRunner(app, access_log=None)
            await self.runner.setup()
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            await site.start()
            return self.runner.addresses[0][1]

        self.thread.start()
        self.port = asyncio.run_coroutine_threadsafe(boot(), self.loop).result(10)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def scripted():
    upstream = ScriptedUpstream().start()
    yield upstream
    upstream.stop()


def gateway_config(upstream: Any, *plugins: str, words: list[str] = WORDS) -> dict[str, Any]:
    return {
        "model_list": [{"model_name": "gpt-test", "litellm_params": {
            "model": "openai/upstream-model", "api_base": upstream.url, "api_key": "sk-upstream"}}],
        "plugins": [{"name": p, "config": {"stream_mask_words": words}} for p in plugins or ("stream_mask",)],
    }


def chunk_event(choices: list[dict[str, Any]], obj: str = "chat.completion.chunk", **extra: Any) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": obj, "created": 1, "model": "upstream-model", "choices": choices, **extra}


def delta(index: int, content: str | None, finish: str | None = None, **more: Any) -> dict[str, Any]:
    d: dict[str, Any] = dict(more)
    if content is not None:
        d["content"] = content
    return {"index": index, "delta": d, "finish_reason": finish}


USAGE = {"prompt_tokens": 1, "completion_tokens": 5, "total_tokens": 6}


def test_a_word_split_over_three_chunks_is_masked_through_the_gateway(scripted, mask_plugin, gateway_server):
    scripted.events = [
        chunk_event([delta(0, "", role="assistant")]),
        chunk_event([delta(0, "The answer is sw")]),
        chunk_event([delta(0, "ordf")]),  # all of it held: forwarded with empty content
        chunk_event([delta(0, "ish, and")]),
        chunk_event([delta(0, " a fishb")]),
        chunk_event([delta(0, "one.", "stop")]),  # the finish_reason arrives with text
        chunk_event([], usage=USAGE),
        "[DONE]",
    ]
    server = gateway_server(gateway_config(scripted), env=mask_plugin)
    with server.client() as client:
        stream = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}],
                                                stream=True, stream_options={"include_usage": True})
        chunks = list(stream)
    texts = [c.choices[0].delta.content for c in chunks if c.choices]
    assert texts == ["", "The answer is ", "", "*********, and", " a ", "********."]
    assert "".join(texts) == "The answer is *********, and a ********."
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 6  # the usage chunk, untouched


def test_several_choices_are_masked_separately(scripted, mask_plugin, gateway_server):
    scripted.events = [
        chunk_event([delta(0, "", role="assistant"), delta(1, "", role="assistant")]),
        chunk_event([delta(0, "zero: sw")]),
        chunk_event([delta(1, "one: fishb")]),
        chunk_event([delta(0, "ordfish"), delta(1, "o")]),
        chunk_event([delta(1, None, "length")]),  # choice 1 ends first, with no text of its own
        chunk_event([delta(0, "!", "stop")]),
        chunk_event([], usage=USAGE),
        "[DONE]",
    ]
    server = gateway_server(gateway_config(scripted), env=mask_plugin)
    got: dict[int, str] = {0: "", 1: ""}
    finish: dict[int, str] = {}
    with server.client() as client:
        for chunk in client.chat.completions.create(model="gpt-test", n=2, stream=True,
                                                    messages=[{"role": "user", "content": "hi"}]):
            for choice in chunk.choices:
                got[choice.index] += choice.delta.content or ""
                if choice.finish_reason:
                    finish[choice.index] = choice.finish_reason
    assert got == {0: "zero: *********!", 1: "one: fishbo"}  # "fishbo" can no longer be "fishbone"
    assert finish == {0: "stop", 1: "length"}


def test_text_completions_and_two_plugins_in_a_chain(scripted, mask_plugin, gateway_server):
    # stream_mask (800) masks "swordfish"; stream_mask_b (700) then masks "hello" in what it releases
    cfg = gateway_config(scripted, "stream_mask")
    cfg["plugins"].append({"name": "stream_mask_b", "config": {"stream_mask_words": ["hello"]}})
    events = ["hel", "lo swo", "rdf", "ish he", "l"]
    scripted.events = [chunk_event([{"index": 0, "text": t, "finish_reason": None}], "text_completion") for t in events]
    scripted.events += [chunk_event([{"index": 0, "text": "", "finish_reason": "stop"}], "text_completion"), "[DONE]"]
    server = gateway_server(cfg, env=mask_plugin)
    with server.client() as client:
        pieces = [c.choices[0].text for c in client.completions.create(model="gpt-test", prompt="hi", stream=True)
                  if c.choices]
    assert "".join(pieces) == "***** ********* hel"
    assert len(pieces) == len(events) + 1  # no chunk dropped


def test_a_stream_that_never_finishes_ends_with_an_error_and_keeps_held_text(scripted, mask_plugin, gateway_server):
    scripted.events = [chunk_event([delta(0, "all fine, sw")]), chunk_event([delta(0, "ord")])]  # no [DONE]
    server = gateway_server(gateway_config(scripted), env=mask_plugin)
    received = ""
    with server.client() as client, pytest.raises(openai.APIError, match="before it finished"):
        for chunk in client.chat.completions.create(model="gpt-test", stream=True,
                                                    messages=[{"role": "user", "content": "hi"}]):
            received += "".join(c.delta.content or "" for c in chunk.choices)
    assert received == "all fine, "  # "sword" could still have become "swordfish": never sent


def test_done_without_a_finish_reason_ends_the_stream_without_the_held_text(scripted, mask_plugin, gateway_server):
    """The gateway takes `[DONE]` as the end even when no choice finished; held text is then
    dropped, never sent unchecked (a known limit: no hook runs at `[DONE]`)."""
    scripted.events = [chunk_event([delta(0, "all fine, sw")]), chunk_event([delta(0, "ord")]), "[DONE]"]
    server = gateway_server(gateway_config(scripted), env=mask_plugin)
    with server.client() as client:
        received = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
            model="gpt-test", stream=True, messages=[{"role": "user", "content": "hi"}]) if c.choices)
    assert received == "all fine, "


def test_with_the_fake_upstream_fixture(fake_upstream, mask_plugin, gateway_server):
    fake_upstream.reply_chunks = ["Sw", "ord", "Fi", "sh and a fish", "bone and a sword"]
    server = gateway_server(gateway_config(fake_upstream), env=mask_plugin)
    with server.client() as client:
        stream = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}],
                                                stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        reply = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
    assert text == "********* and a ******** and a *****"
    # the plugin only has a stream hook: JSON replies are not its business here
    assert reply.choices[0].message.content == "SwordFish and a fishbone and a sword"


def test_the_first_chunk_leaves_before_the_rest_of_its_piece_is_processed(scripted, mask_plugin, gateway_server,
                                                                           tmp_path):
    # An upstream that sends many events at once: the gateway once relayed the first only after
    # the whole piece had been through the hooks, holding back the first token.
    scripted.together = True
    scripted.events = [chunk_event([delta(0, f"w{i} ")]) for i in range(20)]
    scripted.events += [chunk_event([delta(0, "", "stop")]), chunk_event([], usage=USAGE), "[DONE]"]
    gate = tmp_path / "first-chunk-arrived"
    server = gateway_server({**gateway_config(scripted), "plugins": [
        {"name": "first_chunk_gate", "config": {"gate_file": str(gate)}}]}, env=mask_plugin)
    started = time.monotonic()
    texts = []
    with server.client() as client:
        for chunk in client.chat.completions.create(model="gpt-test", stream=True,
                                                    messages=[{"role": "user", "content": "hi"}]):
            if not texts:
                first_after = time.monotonic() - started
                gate.touch()
            texts.append(chunk.choices[0].delta.content if chunk.choices else None)
    assert first_after < 2.5, f"the first chunk waited for the rest of its piece ({first_after:.1f} s)"
    assert "".join(t or "" for t in texts) == "".join(f"w{i} " for i in range(20))
