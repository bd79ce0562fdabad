"""`hide_secrets_redact_replies`: secrets in the model's replies, JSON and streamed.

Streams go through `gateway.StreamText`. The promise checked on every cut of a corpus into two
chunks, and on many cuts into three or into token-sized pieces: what the client receives, joined,
is exactly the redaction of the whole reply, so no piece of a secret leaves and clean text arrives
unchanged. The end-to-end tests then show it through a real gateway and the official `openai` SDK.
Secret-looking values are assembled from pieces at run time, so that no scanner flags this file.
"""

from __future__ import annotations

import asyncio
import random
import string
from itertools import combinations, pairwise

import httpx
import openai
import pytest
from gateway_plugin_hide_secrets import HideSecrets
from gateway_plugin_hide_secrets.config import HideSecretsConfig
from gateway_plugin_hide_secrets.handler import stream_cut

from gateway import Principal, RequestContext, StreamText

NAME = "hide_secrets"
LOGGER = "gateway.plugins.hide_secrets"
ADMIN = {"Authorization": "Bearer sk-1234"}
R = "[REDACTED]"
rng = random.Random(23)


def rand(n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


GHP = "gh" + "p_" + rand(36)
STRIPE = "sk" + "_live_" + rand(24)
AWS_ID = "AKIA" + "Q3W5E7R9T1Y3U5I7"
PEM = ("-----" + "BEGIN RSA PRIVATE KEY-----\n"
       + "\n".join(rand(48, string.ascii_letters + string.digits + "+/") for _ in range(3))
       + "\n" + rand(20) + "==\n-----" + "END RSA PRIVATE KEY-----")
SSH2 = ("---- " + "BEGIN SSH2 ENCRYPTED PRIVATE KEY ----\n"
        + "\n".join(rand(48, string.ascii_letters + string.digits + "+/") for _ in range(2))
        + "\n---- END SSH2 ENCRYPTED PRIVATE KEY ----")

#: (a reply the upstream sends, what the client must receive)
DIRTY = [
    (f"Use {GHP} to push.", f"Use {R} to push."),
    ("Set API_KEY = 'sk_1234567890abcdef' in the file.", f"Set API_KEY = '{R}' in the file."),
    ('password = "correct horse battery staple"\nnext line', f'password = "{R}"\nnext line'),
    ("db_password=hunter22 and client_key=Zq81-xx done", f"db_password={R} and client_key={R} done"),
    (f"stripe.api_key = {STRIPE}\n", f"stripe.api_key = {R}\n"),
    (f"id {AWS_ID} here", f"id {R} here"),
    ("DATABASE_URL=postgres://app:" + "S3cure-Pa55" + "@db:5432/app ok", f"DATABASE_URL=postgres://app:{R}@db:5432/app ok"),
    (f"Here:\n{PEM}\nThanks!", f"Here:\n{R}\nThanks!"),
    # the engine keeps an SSH2 key's dashes and END line (its body is what it redacts)
    (f"Key:\n{SSH2}\nbye", f"Key:\n---- {R}\n---- END SSH2 ENCRYPTED PRIVATE KEY ----\nbye"),
]
CLEAN = [
    "The oldest bridge, a narrow stone arch, still carries pedestrians across the river.",
    "- item one\n- item two\n----- a rule -----\nand prose with a key word and a pass.",
    "Request 123e4567-e89b-12d3-a456-426614174000 failed at 2024-05-01T12:34:56Z; call +1 (415) 555-2671.",
    "def connect():\n    password = os.environ.get('DB_PASSWORD')\n    return password\n",
]


def cuts(text: str, parts: int):
    for points in combinations(range(1, len(text)), parts - 1):
        bounds = (0, *points, len(text))
        yield [text[a:b] for a, b in pairwise(bounds)]


def tokens(text: str, seed: int) -> list[str]:
    """`text` in pieces of 1 to 4 characters, as a model streams tokens."""
    r = random.Random(seed)
    out, i = [], 0
    while i < len(text):
        n = r.randint(1, 4)
        out.append(text[i:i + n])
        i += n
    return out


@pytest.fixture(scope="module")
def plugin():
    p = HideSecrets(HideSecretsConfig(hide_secrets_redact_replies=True), None)
    asyncio.run(p.startup(None))
    yield p
    asyncio.run(p.shutdown(None))


async def run(plugin: HideSecrets, pieces: list[str], chat: bool = True) -> list[str]:
    """Feed the pieces and a finish chunk to `stream_chunk`; what the client would receive."""
    ctx = RequestContext(request_id="t", call_type="acompletion" if chat else "atext_completion",
                         route="/chat/completions", body={}, principal=Principal(), stream=True)
    sent = []
    for piece in [*pieces, None]:
        finish = "stop" if piece is None else None
        if chat:
            c = {"choices": [{"index": 0, "delta": {} if piece is None else {"content": piece}, "finish_reason": finish}]}
        else:
            c = {"choices": [{"index": 0, "text": piece or "", "finish_reason": finish}]}
        await plugin.stream_chunk(ctx, c)
        choice = c["choices"][0]
        sent.append((choice["delta"].get("content") or "") if chat else choice["text"])
    assert StreamText.of(ctx, NAME).pending == {}
    return sent


async def test_whole_replies_are_redacted_as_expected(plugin):
    for text, expected in DIRTY + [(t, t) for t in CLEAN]:
        (got,), _ = await plugin.redact([text])
        assert got == expected
        assert "".join(await run(plugin, [text])) == expected


@pytest.mark.parametrize("chat", [True, False], ids=["chat", "completion"])
async def test_every_cut_in_two_gives_the_whole_reply_redaction(plugin, chat):
    for text, expected in DIRTY + [(t, t) for t in CLEAN]:
        for pieces in cuts(text, 2):
            assert "".join(await run(plugin, pieces, chat)) == expected, pieces


async def test_cuts_in_three_and_token_streams_give_the_whole_reply_redaction(plugin):
    r = random.Random(5)
    for text, expected in DIRTY + [(t, t) for t in CLEAN]:
        three = list(cuts(text, 3))
        for pieces in r.sample(three, min(len(three), 60)):
            assert "".join(await run(plugin, pieces)) == expected, pieces
        for seed in range(15):
            pieces = tokens(text, seed)
            sent = await run(plugin, pieces)
            assert "".join(sent) == expected, pieces


async def test_clean_prose_waits_for_one_unfinished_word_at_most(plugin):
    text = CLEAN[0]
    pieces = tokens(text, 1)
    sent = await run(plugin, pieces)
    received = released = ""
    for piece, out in zip(pieces, sent, strict=False):
        received += piece
        released += out
        pending = received[len(released):]
        assert received.startswith(released) and not any(ch.isspace() for ch in pending), (released, pending)


def test_stream_cut_rules():
    never = lambda text: False  # noqa: E731  (a pre-filter that finds nothing)
    always = lambda text: True  # noqa: E731
    assert stream_cut("one two thr", never, 100) == len("one two ")
    assert stream_cut("one\ntwo thr", never, 100) == len("one\ntwo ")
    assert stream_cut("one\npassword = 'a b", always, 100) == len("one\n")
    assert stream_cut("intro\n-----BEGIN RSA PRIVATE KEY-----\nMIIE\nabcd", never, 100) == len("intro\n")
    assert stream_cut("x\n-----BEGIN K-----\nAB\n-----END K-----", never, 100) == len("x\n")  # END line not whole
    assert stream_cut("x\n-----BEGIN K-----\nAB\n-----END K-----\nok", never, 100) == len("x\n-----BEGIN K-----\nAB\n-----END K-----\n")
    assert stream_cut("a rule ---- B", never, 100) == len("a rule ")  # could become `---- BEGIN`
    # never more than the cap waits: cut at the first whitespace of the last `cap` characters
    assert stream_cut("aaaa bbbb cccc dddd", always, 7) == len("aaaa bbbb cccc ")
    assert stream_cut("a" * 50, always, 10) == 50


async def test_choices_are_redacted_separately(plugin):
    ctx = RequestContext(request_id="t", call_type="acompletion", route="/chat/completions", body={},
                         principal=Principal(), stream=True)
    half = 3  # `ghp`: not yet a token's start for the pre-filter, so only the word waits
    a = {"choices": [{"index": 0, "delta": {"content": "A: " + GHP[:half]}, "finish_reason": None},
                     {"index": 1, "delta": {"content": "B: " + STRIPE[:5]}, "finish_reason": None}]}
    await plugin.stream_chunk(ctx, a)
    assert [c["delta"]["content"] for c in a["choices"]] == ["A: ", "B: "]
    b = {"choices": [{"index": 1, "delta": {"content": STRIPE[5:] + " end"}, "finish_reason": "stop"},
                     {"index": 0, "delta": {"content": GHP[half:] + " x"}, "finish_reason": None}]}
    await plugin.stream_chunk(ctx, b)
    # choice 1 finished: all of it out; choice 0's line may hold a secret: it waits, whole
    assert [c["delta"]["content"] for c in b["choices"]] == [f"{R} end", ""]
    c = {"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}
    await plugin.stream_chunk(ctx, c)
    assert c["choices"][0]["delta"] == {"content": f"{R} x"}
    assert ctx.state_for(NAME)["reply_types"] == ["GitHub Token", "Stripe Access Key"]


# -- end to end ------------------------------------------------------------------------------------


def config(upstream, **plugin_config):
    return {
        "model_list": [{"model_name": "gpt-test", "litellm_params": {
            "model": "openai/upstream-model", "api_base": upstream.url, "api_key": "sk-upstream"}}],
        "plugins": [{"name": NAME, "config": plugin_config}],
    }


def streamed(stream) -> tuple[list[str], int]:
    """The text pieces a client received (empty ones included), and how many chunks."""
    pieces, count = [], 0
    for chunk in stream:
        count += 1
        for choice in chunk.choices:
            text = choice.delta.content if hasattr(choice, "delta") else choice.text
            pieces.append(text or "")
    return pieces, count


def test_a_secret_split_over_three_chunks_is_redacted_in_a_stream(fake_upstream, gateway_server, caplog):
    caplog.set_level("WARNING", logger=LOGGER)
    server = gateway_server(config(fake_upstream, hide_secrets_redact_replies=True))
    fake_upstream.reply_chunks = ["Your token is ", GHP[:9], GHP[9:25], GHP[25:] + ", keep", " it safe."]
    with server.client() as client:
        pieces, count = streamed(client.chat.completions.create(
            model="gpt-test", stream=True, messages=[{"role": "user", "content": "hi"}]))
        assert "".join(pieces) == f"Your token is {R}, keep it safe."
        assert not any(GHP[:9] in p or GHP[9:25] in p or GHP[25:] in p for p in pieces)
        assert count == len(fake_upstream.reply_chunks) + 1  # held chunks go on, empty: none dropped
        # text completions, and a JSON reply
        pieces, _ = streamed(client.completions.create(model="gpt-test", prompt="hi", stream=True))
        assert "".join(pieces) == f"Your token is {R}, keep it safe."
        fake_upstream.reply_chunks = None
        fake_upstream.reply = f"token {GHP} and {STRIPE}"
        reply = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content == f"token {R} and {R}"
    lines = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert "Detected and redacted secrets in reply: ['GitHub Token']" in lines
    assert not any(GHP in line for line in lines)


def test_a_private_key_streamed_line_by_line_is_redacted_whole(fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream, hide_secrets_redact_replies=True))
    text = f"Here it is:\n{PEM}\nDone."
    fake_upstream.reply_chunks = tokens(text, 3)
    with server.client() as client:
        pieces, _ = streamed(client.chat.completions.create(
            model="gpt-test", stream=True, messages=[{"role": "user", "content": "hi"}]))
    assert "".join(pieces) == f"Here it is:\n{R}\nDone."


def test_replies_are_untouched_by_default_and_for_a_key_that_opts_out(fake_upstream, gateway_server):
    fake_upstream.reply_chunks = ["Your token is ", GHP[:9], GHP[9:]]
    server = gateway_server(config(fake_upstream))
    with server.client() as client:
        pieces, _ = streamed(client.chat.completions.create(
            model="gpt-test", stream=True, messages=[{"role": "user", "content": "hi"}]))
    assert "".join(pieces) == f"Your token is {GHP}"
    (row,) = [r for r in httpx.get(server.url + "/plugins", headers=ADMIN).json()["enabled"] if r["name"] == NAME]
    assert row["hooks"] == ["pre_request", "shutdown", "startup"]  # no reply hook: streams are not parsed

    server = gateway_server(config(fake_upstream, hide_secrets_redact_replies=True))
    (row,) = [r for r in httpx.get(server.url + "/plugins", headers=ADMIN).json()["enabled"] if r["name"] == NAME]
    assert "stream_chunk" in row["hooks"] and "post_response" in row["hooks"]
    key = httpx.post(server.url + "/key/generate", headers=ADMIN,
                     json={"permissions": {"hide_secrets": False}}).json()["key"]
    with server.client(api_key=key) as client:
        pieces, _ = streamed(client.chat.completions.create(
            model="gpt-test", stream=True, messages=[{"role": "user", "content": "hi"}]))
    assert "".join(pieces) == f"Your token is {GHP}"


def test_scanner_failure_in_a_stream_fails_closed_without_leaking(fake_upstream, gateway_server, monkeypatch):
    from gateway_plugin_hide_secrets import engine

    def broken(self, *args, **kwargs):
        raise ValueError("boom")

    server = gateway_server(config(fake_upstream, hide_secrets_redact_replies=True))
    monkeypatch.setattr(engine.Engine, "scan_line", broken)  # the plugin's scanner, after its warm-up
    fake_upstream.reply_chunks = ["Your token is ", GHP[:9], GHP[9:], " ok"]
    pieces: list[str] = []
    with server.client() as client, pytest.raises(openai.APIError) as err:
        for chunk in client.chat.completions.create(
                model="gpt-test", stream=True, messages=[{"role": "user", "content": "hi"}]):
            pieces += [c.delta.content or "" for c in chunk.choices]
    assert "guardrail" in str(err.value.body) or "hide_secrets" in str(err.value)
    assert "".join(pieces) == "Your token is "


async def test_the_request_size_cap_never_refuses_a_reply():
    plugin = HideSecrets(HideSecretsConfig(hide_secrets_redact_replies=True, hide_secrets_max_text_kib=1), None)
    await plugin.startup(None)
    try:
        big = "word " * 400 + f"token {GHP}"  # 2 KiB, over the cap
        ctx = RequestContext(request_id="t", call_type="acompletion", route="/chat/completions", body={},
                             principal=Principal(), stream=False)
        reply = {"choices": [{"index": 0, "message": {"role": "assistant", "content": big}}]}
        await plugin.post_response(ctx, reply)
        assert reply["choices"][0]["message"]["content"] == "word " * 400 + f"token {R}"
        with pytest.raises(Exception, match="too large to scan"):
            await plugin.redact([big])  # a request's text is still refused
    finally:
        await plugin.shutdown(None)
