"""End-to-end: a real gateway with `hide_secrets` enabled, a fake OpenAI upstream on loopback, and
the official `openai` SDK. What counts is what the UPSTREAM received.

`fake_upstream` and `gateway_server` come from `gateway.testing` (a pytest plugin that is active
as soon as `gateway` is installed). Secret-looking values are assembled from pieces at run time,
so that no secret scanner mistakes this file for a leak.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import re
import string

import httpx
import openai
import pytest

NAME = "hide_secrets"
LOGGER = "gateway.plugins.hide_secrets"
ADMIN = {"Authorization": "Bearer sk-1234"}
R = "[REDACTED]"
rng = random.Random(11)


def rand(n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def b64url(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


AWS_ID = "AKIA" + "Q3W5E7R9T1Y3U5I7"
AWS_SECRET = rand(30) + "/" + rand(4) + "+" + rand(4)
GHP = "gh" + "p_" + rand(36)
GH_PAT = "github" + "_pat_" + rand(22) + "_" + rand(59)
SLACK = "xox" + "b-" + "123456789012-1234567890123-" + rand(24)
SLACK_HOOK = "https://hooks.slack.com/services/" + "T" + rand(8) + "/B" + rand(8) + "/" + rand(24)
STRIPE = "sk" + "_live_" + rand(24)
JWT = (b64url({"alg": "HS256", "typ": "JWT"}) + "." + b64url({"sub": "42", "name": "Ada"})
       + "." + rand(43, string.ascii_letters + string.digits + "-_"))
PEM = ("-----" + "BEGIN RSA PRIVATE KEY-----\n"
       + "\n".join(rand(64, string.ascii_letters + string.digits + "+/") for _ in range(5))
       + "\n" + rand(20) + "==\n-----" + "END RSA PRIVATE KEY-----")

#: (what the client sends, what the upstream must receive)
MUST_GO = [
    ("Hey, how's it going, API_KEY = 'sk_1234567890abcdef'", "Hey, how's it going, API_KEY = '[REDACTED]'"),
    ("what is the value of my open ai key? openai_api_key=sk-1234998222",
     "what is the value of my open ai key? openai_api_key=[REDACTED]"),
    (f"[default]\naws_access_key_id = {AWS_ID}\naws_secret_access_key = {AWS_SECRET}\nregion = eu-west-1",
     f"[default]\naws_access_key_id = {R}\naws_secret_access_key = {R}\nregion = eu-west-1"),
    (f'export AWS_SECRET_ACCESS_KEY="{AWS_SECRET}"', f'export AWS_SECRET_ACCESS_KEY="{R}"'),
    (f"My GitHub token is {GHP}, why does push fail?", f"My GitHub token is {R}, why does push fail?"),
    (f"Fine-grained one: {GH_PAT}.", f"Fine-grained one: {R}."),
    (f"bot token {SLACK} posts to {SLACK_HOOK} every hour", f"bot token {R} posts to {R} every hour"),
    (f"stripe.api_key = {STRIPE}", f"stripe.api_key = {R}"),
    (f"curl -H 'Authorization: Bearer {JWT}' https://api.example.com",
     f"curl -H 'Authorization: Bearer {R}' https://api.example.com"),
    (f"Is this key valid?\n{PEM}\nThanks!", f"Is this key valid?\n{R}\nThanks!"),
    ("DATABASE_URL=postgres://app:" + "S3cure-Pa55" + "@db.internal:5432/app",
     f"DATABASE_URL=postgres://app:{R}@db.internal:5432/app"),
    ("see https://deploy:" + "tok3n-value" + "@git.example.com/org/repo.git",
     f"see https://deploy:{R}@git.example.com/org/repo.git"),
    ('settings = {"password": "Tr0ub4dor&3", "user": "ada"}', f'settings = {{"password": "{R}", "user": "ada"}}'),
    ('password = "correct horse battery staple"', f'password = "{R}"'),
    ("api_key: 'q8W2e4R6t8Y0'", f"api_key: '{R}'"),
    ("db_password=hunter22 and client_key=Zq81-xx", f"db_password={R} and client_key={R}"),
]

PARAGRAPH = (
    "The history of the city is told through its bridges. The oldest, a narrow stone arch built by "
    "the monks of the abbey, still carries pedestrians across the river on market days, and its "
    "worn steps show where generations of traders hauled their goods up from the quay. The second, "
    "an iron lattice put up when the railway arrived, was meant to last fifty years and has lasted "
    "one hundred and forty; engineers inspect it every spring and every spring they declare, with "
    "some surprise, that it will do for another year. The newest is a slender concrete span that "
    "won an architecture prize and is disliked by almost everyone who lives near it, because the "
    "wind whistles through its cables at night. Between them they tell the story of a place that "
    "has always been a crossing rather than a destination: people came here to get somewhere else, "
    "and some of them, delayed by floods or by love or by the price of a room, never left. The "
    "museum by the old bridge keeps a ledger of tolls from the eighteenth century in which you can "
    "read, in a clerk's careful hand, the passage of cattle, wool, wine and once, memorably, a bear."
)

MUST_STAY = [
    "Could you help me write a polite email to my landlord about the broken heating?",
    "What's the best way to store a password securely? I read that the secret is a slow hash, "
    "and that you should never log an API key. Where do I get a key for the weather service?",
    'import os\n\n\ndef connect(host: str = "localhost", port: int = 5432):\n'
    '    password = os.environ.get("DB_PASSWORD")\n    if password == confirm_password:\n'
    '        print("Passwords match")\n    api_key = get_api_key()\n    return Client(host, port, password=password)\n',
    "const apiKey = process.env.API_KEY;\nfetch(url, { headers: { Authorization: `Bearer ${apiKey}` } });",
    "Request 123e4567-e89b-12d3-a456-426614174000 failed; retry id 9f8b7c6d-5e4f-4a3b-9c2d-1e0f2a3b4c5d.",
    '{"id": "550e8400-e29b-41d4-a716-446655440000", "status": "ok"}',
    "Fixed in commit 3f786850e387550fdab836ed7e6dc881de23001b (3f78685).\n"
    "a1b2c3d Fix flaky test\n9fceb02 Merge pull request #42 from alice/feature",
    "Logged at 2024-05-01T12:34:56Z, again at 2024-05-01 12:34:56.789+02:00 (unix 1714566896).",
    "Call +1 (415) 555-2671 or +44 20 7946 0958; fax 415.555.0199.",
    "Requires Python 3.11.7, node v20.11.1, openai>=1.50,<2 and gateway 0.1.0-beta.2+build.5.",
    "Docs at https://example.com/a/b?c=1#d, write to alice.smith@example.org, clone git@github.com:org/repo.git",
    PARAGRAPH,
]


def config(upstream, plugin_entry=None, **flat):
    """One model group served by the fake upstream; the plugin enabled natively (`plugin_entry`)
    or through `litellm_settings.callbacks` with flat keys."""
    cfg = {
        "model_list": [{
            "model_name": "gpt-test",
            "litellm_params": {"model": "openai/upstream-model", "api_base": upstream.url, "api_key": "sk-upstream"},
        }],
    }
    if plugin_entry is not None:
        cfg["plugins"] = [{"name": NAME, **plugin_entry}]
    else:
        cfg["litellm_settings"] = {"callbacks": [NAME], **flat}
    return cfg


def sent_text(upstream) -> str:
    return upstream.requests[-1].json["messages"][-1]["content"]


def chat(client, text: str):
    return client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": text}])


def test_secret_corpus_is_redacted_and_clean_text_is_untouched(fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream))
    wrong = []
    with server.client() as client:
        for text, expected in MUST_GO + [(t, t) for t in MUST_STAY]:
            chat(client, text)
            got = sent_text(fake_upstream)
            if got != expected:
                wrong.append((text, expected, got))
    assert not wrong, "\n\n".join(f"sent:     {t!r}\nexpected: {e!r}\ngot:      {g!r}" for t, e, g in wrong)


def test_all_messages_and_text_parts_are_redacted(fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream))
    with server.client() as client:
        client.chat.completions.create(model="gpt-test", messages=[
            {"role": "system", "content": f"Deploy with {GHP}"},
            {"role": "user", "content": [
                {"type": "text", "text": "API_KEY = 'sk_1234567890abcdef'"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                {"type": "text", "text": "and nothing secret here"},
            ]},
            {"role": "assistant", "content": f"Noted: {STRIPE}"},
            {"role": "user", "content": "thanks"},
        ])
    messages = fake_upstream.requests[-1].json["messages"]
    assert messages == [
        {"role": "system", "content": f"Deploy with {R}"},
        {"role": "user", "content": [
            {"type": "text", "text": f"API_KEY = '{R}'"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
            {"type": "text", "text": "and nothing secret here"},
        ]},
        {"role": "assistant", "content": f"Noted: {R}"},
        {"role": "user", "content": "thanks"},
    ]


def test_a_secret_found_once_is_redacted_everywhere_in_the_request(fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream))
    with server.client() as client:
        client.chat.completions.create(model="gpt-test", messages=[
            {"role": "user", "content": "my db password = 'Tr0ub4dor&3' is it strong?"},
            {"role": "assistant", "content": "Tr0ub4dor&3 is weak: too short. Tr0ub4dor&3x is not a word."},
            {"role": "user", "content": "ok, and Tr0ub4dor&3 for the admin too"},
        ])
    assert [m["content"] for m in fake_upstream.requests[-1].json["messages"]] == [
        f"my db password = '{R}' is it strong?",
        f"{R} is weak: too short. Tr0ub4dor&3x is not a word.",
        f"ok, and {R} for the admin too",
    ]


def test_prompt_and_input_are_redacted(fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream))
    with server.client() as client:
        client.completions.create(model="gpt-test", prompt=f"complete: token={GHP}")
        assert fake_upstream.requests[-1].json["prompt"] == f"complete: token={R}"
        client.completions.create(model="gpt-test", prompt=["plain words", f"hook {SLACK_HOOK}"])
        assert fake_upstream.requests[-1].json["prompt"] == ["plain words", f"hook {R}"]
        client.embeddings.create(model="gpt-test", input=f"embed {STRIPE} please")
        assert fake_upstream.requests[-1].json["input"] == f"embed {R} please"
        uuid = "a UUID 123e4567-e89b-12d3-a456-426614174000"
        client.embeddings.create(model="gpt-test", input=["openai_api_key=sk-1234998222", uuid])
        assert fake_upstream.requests[-1].json["input"] == [f"openai_api_key={R}", uuid]
        # token arrays are not text: passed through
        client.embeddings.create(model="gpt-test", input=[[1, 2, 3]])
        assert fake_upstream.requests[-1].json["input"] == [[1, 2, 3]]


def test_streamed_request_is_redacted_too(fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream))
    with server.client() as client:
        stream = client.chat.completions.create(
            model="gpt-test", stream=True, messages=[{"role": "user", "content": f"use {GHP} now"}])
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert sent_text(fake_upstream) == f"use {R} now"
    assert GHP not in text


def test_warning_names_types_never_values(fake_upstream, gateway_server, caplog):
    caplog.set_level(logging.DEBUG)
    server = gateway_server(config(fake_upstream))
    with server.client() as client:
        chat(client, "what is the value of my open ai key? openai_api_key=sk-1234998222")
        chat(client, f"{GHP} and {JWT} and password = 'Tr0ub4dor&3'")
        chat(client, "nothing to see here")
    lines = [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]
    assert lines == [
        "Detected and redacted secrets in message: ['Secret Keyword']",
        "Detected and redacted secrets in message: ['GitHub Token', 'JSON Web Token', 'Secret Keyword']",
    ]
    everything = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    for secret in ("sk-1234998222", "1234998222", GHP, JWT, JWT.split(".")[2], "Tr0ub4dor&3"):
        assert secret not in everything


def test_a_key_with_hide_secrets_off_sends_secrets_unchanged(fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream))
    text = "does my openai key look well formatted OpenAI_API_KEY=sk-1234777"
    off = httpx.post(server.url + "/key/generate", headers=ADMIN, json={"permissions": {"hide_secrets": False}}).json()
    assert off["permissions"] == {"hide_secrets": False}
    on = httpx.post(server.url + "/key/generate", headers=ADMIN, json={}).json()
    with server.client(api_key=off["key"]) as client:
        chat(client, text)
    assert sent_text(fake_upstream) == text
    with server.client(api_key=on["key"]) as client:
        chat(client, text)
    assert sent_text(fake_upstream) == f"does my openai key look well formatted OpenAI_API_KEY={R}"
    # and /key/update switches it back on for the first key
    r = httpx.post(server.url + "/key/update", headers=ADMIN,
                   json={"key": off["key"], "permissions": {"hide_secrets": True}})
    assert r.status_code == 200, r.text
    with server.client(api_key=off["key"]) as client:
        chat(client, text)
    assert sent_text(fake_upstream) == f"does my openai key look well formatted OpenAI_API_KEY={R}"


async def test_concurrent_requests_are_each_redacted_correctly(fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream))
    cases = []
    for i in range(20):
        token = "gh" + "p_" + rand(36)
        pw = rand(10) + "9!"
        body = f"request {i}: token {token}\npassword = '{pw}'\n" + PARAGRAPH[: 200 + 37 * i]
        want = f"request {i}: token {R}\npassword = '{R}'\n" + PARAGRAPH[: 200 + 37 * i]
        cases.append((i, body, want))
    async with server.async_client() as client:
        await asyncio.gather(*(
            client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": body}])
            for _, body, _ in cases
        ))
    received = {}
    for req in fake_upstream.requests:
        content = req.json["messages"][0]["content"]
        received[int(re.match(r"request (\d+):", content).group(1))] = content
    assert received == {i: want for i, _, want in cases}


def test_no_verification_request_is_ever_made(fake_upstream, gateway_server, monkeypatch):
    """detect-secrets can verify Slack, Stripe, AWS... keys against the providers' APIs (with
    `requests`); the plugin must never do so."""
    import requests

    calls = []

    def refuse(self, method, url, *args, **kwargs):
        calls.append(url)
        raise requests.exceptions.ConnectionError("no network in this test")

    monkeypatch.setattr(requests.sessions.Session, "request", refuse)
    server = gateway_server(config(fake_upstream))
    with server.client() as client:
        chat(client, f"{SLACK} {SLACK_HOOK} {STRIPE} {AWS_ID} aws_secret = '{AWS_SECRET}'")
    assert sent_text(fake_upstream) == f"{R} {R} {R} {R} aws_secret = '{R}'"
    assert calls == []


def test_native_config_disables_detectors(fake_upstream, gateway_server):
    entry = {"config": {"hide_secrets_disabled_detectors": ["KeywordDetector", "JSON Web Token"]}}
    server = gateway_server(config(fake_upstream, entry))
    with server.client() as client:
        chat(client, f"API_KEY = 'sk_1234567890abcdef' {JWT} {GHP}")
    assert sent_text(fake_upstream) == f"API_KEY = 'sk_1234567890abcdef' {JWT} {R}"


def test_flat_setting_turns_unquoted_keywords_off(fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream, hide_secrets_unquoted_keywords=False))
    with server.client() as client:
        chat(client, "openai_api_key=sk-1234998222 and API_KEY = 'sk_1234567890abcdef'")
    assert sent_text(fake_upstream) == f"openai_api_key=sk-1234998222 and API_KEY = '{R}'"


def test_large_text_is_scanned_in_chunks(fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream, {"config": {"hide_secrets_chunk_kib": 2}}))
    lines, want = [], []
    for i in range(3000):  # about 200 KiB
        if i % 500 == 7:
            token = "gh" + "p_" + rand(36)
            lines.append(f"line {i} has {token} in it")
            want.append(f"line {i} has {R} in it")
        else:
            lines.append(f"line {i} is plain prose about bridges and rivers.")
            want.append(lines[-1])
    with server.client() as client:
        chat(client, "\n".join(lines))
    assert sent_text(fake_upstream) == "\n".join(want)


def test_text_over_the_cap_is_refused(fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream, {"config": {"hide_secrets_max_text_kib": 1}}))
    with server.client() as client:
        with pytest.raises(openai.BadRequestError) as err:
            chat(client, "password = 'Tr0ub4dor&3' " + "x " * 1000)
        assert err.value.body["message"] == (
            "Request text is too large to scan for secrets: 1 KiB > hide_secrets_max_text_kib=1")
        chat(client, "y " * 1000)  # clean text never needs scanning, whatever its size
    assert len(fake_upstream.requests) == 1


def test_scanner_failure_fails_closed_without_leaking(fake_upstream, gateway_server, monkeypatch, caplog):
    from gateway_plugin_hide_secrets import engine

    def broken(self, text, low, ls, le, which=None):
        raise ValueError(f"boom on {text[ls:le]}")

    server = gateway_server(config(fake_upstream))
    monkeypatch.setattr(engine.Engine, "scan_line", broken)  # after the start-up warm-up scan
    with server.client() as client:
        with pytest.raises(openai.APIStatusError) as err:
            chat(client, f"token {GHP}")
        assert err.value.status_code == 503
        assert err.value.body["type"] == "guardrail_unavailable"
        assert chat(client, "plain text is never scanned").choices[0].message.content
    assert len(fake_upstream.requests) == 1
    assert GHP not in caplog.text


def test_scanner_failure_fail_open_lets_the_request_go_on(fake_upstream, gateway_server, monkeypatch):
    from gateway_plugin_hide_secrets import engine

    def broken(self, *args, **kwargs):
        raise ValueError("boom")

    server = gateway_server(config(fake_upstream, {"on_error": "fail_open"}))
    monkeypatch.setattr(engine.Engine, "scan_line", broken)
    with server.client() as client:
        chat(client, f"token {GHP}")
    assert sent_text(fake_upstream) == f"token {GHP}"


@pytest.mark.parametrize(("plugin_config", "message"), [
    ({"hide_secrets_disabled_detector": ["KeywordDetector"]},
     f"plugin '{NAME}': config key hide_secrets_disabled_detector: Extra inputs are not permitted"),
    ({"hide_secrets_chunk_kib": 0},
     f"plugin '{NAME}': config key hide_secrets_chunk_kib: Input should be greater than or equal to 1"),
    ({"hide_secrets_disabled_detectors": ["NoSuchDetector"]},
     "unknown detector 'NoSuchDetector'; known: AWSKeyDetector"),
])
def test_a_bad_config_stops_start_up(fake_upstream, gateway_server, plugin_config, message):
    with pytest.raises(Exception, match=re.escape(message)):
        gateway_server(config(fake_upstream, {"config": plugin_config}))


def test_listed_with_its_priority(fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream))
    plugins = httpx.get(server.url + "/plugins", headers=ADMIN).json()
    (mine,) = [p for p in plugins["enabled"] if p["name"] == NAME]
    assert mine["priority"] == 850
    assert mine["distribution"] == "gateway-plugin-hide-secrets"
    assert mine["hooks"] == ["pre_request", "shutdown", "startup"]
