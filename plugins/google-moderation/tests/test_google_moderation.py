"""End-to-end: a real gateway with `google_text_moderation`, the fake Google API on loopback
(conftest.py) answering the official google-cloud-language client, the fake OpenAI upstream, and
the official `openai` SDK as the client.
"""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import openai
import pytest

from gateway_plugin_google_moderation import CATEGORIES, GoogleModerationConfig, GoogleTextModeration

NAME = GoogleTextModeration.name
ADMIN = {"Authorization": "Bearer sk-1234"}
BLOCKED = "Violated content safety policy. Category={}"


def config(upstream, *, native: dict | None = None, **litellm) -> dict:
    """One model group on the fake upstream; the plugin named in `callbacks` (the seed's way) with
    flat `litellm_settings`, or a native `plugins:` entry."""
    cfg: dict = {"model_list": [{"model_name": "gpt-test", "litellm_params": {
        "model": "openai/upstream-model", "api_base": upstream.url, "api_key": "sk-upstream"}}]}
    if native is not None:
        cfg["plugins"] = [{"name": NAME, **native}]
        cfg["litellm_settings"] = litellm
    else:
        cfg["litellm_settings"] = {"callbacks": [NAME], **litellm}
    return cfg


def start(gateway_server, fake, cfg: dict, **env):
    return gateway_server(cfg, env={"GOOGLE_MODERATION_API_ENDPOINT": fake.url, **env})


def chat(client, text: str = "hello", **kwargs):
    return client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": text}], **kwargs)


def refused(client, text: str = "hello", error=openai.BadRequestError) -> dict:
    with pytest.raises(error) as err:
        chat(client, text)
    return err.value.response.json()["error"]


# -- the seed's configs, as written ------------------------------------------------------------


def test_seed_callback_blocks_above_the_default_threshold(fake_google, fake_upstream, gateway_server):
    """`callbacks: ["google_text_moderation"]`: default threshold 0.8; the text goes to Google as a
    PLAIN_TEXT document (the client sends the enum as an integer)."""
    server = start(gateway_server, fake_google, config(fake_upstream))
    client = server.client()
    fake_google.scores["Toxic"] = 0.79
    assert chat(client, "you are nice").choices[0].message.content == "upstream says: you are nice"
    fake_google.scores["Toxic"] = 0.81
    error = refused(client, "you are awful")
    assert error == {"message": BLOCKED.format("toxic"), "type": "bad_request_error", "param": None, "code": "400"}
    assert len(fake_upstream.requests) == 1  # the blocked call never went upstream
    sent = fake_google.requests[-1]
    assert sent.path == "/v2/documents:moderateText"
    assert sent.body == {"document": {"type": 1, "content": "you are awful"}}
    assert "Authorization" not in sent.headers  # the http:// endpoint: anonymous credentials


def test_seed_global_threshold(fake_google, fake_upstream, gateway_server):
    """`google_moderation_confidence_threshold: 0.4` applies to every category."""
    server = start(gateway_server, fake_google, config(fake_upstream, google_moderation_confidence_threshold=0.4))
    client = server.client()
    fake_google.scores.update({"Insult": 0.39, "Legal": 0.4})  # at the threshold is not above it
    assert chat(client).choices[0].message.content == "upstream says: hello"
    fake_google.scores["Death, Harm & Tragedy"] = 0.41
    assert refused(client)["message"] == BLOCKED.format("death_harm_and_tragedy")


def test_seed_category_threshold(fake_google, fake_upstream, gateway_server):
    """`toxic_confidence_threshold: 0.1` for Toxic; the others keep the default 0.8."""
    server = start(gateway_server, fake_google, config(fake_upstream, toxic_confidence_threshold=0.1))
    client = server.client()
    fake_google.scores.update({"Toxic": 0.1, "Insult": 0.7})
    assert chat(client).choices[0].message.content == "upstream says: hello"
    fake_google.scores["Toxic"] = 0.11
    assert refused(client)["message"] == BLOCKED.format("toxic")


@pytest.mark.parametrize("spelling", ["seed", "swapped"])
def test_every_category_threshold_in_both_spellings(fake_google, fake_upstream, gateway_server, spelling):
    """All 16 keys of the seed's table, as the seed spells them and with the other spelling; each
    category gets its own threshold, so a key mapped to the wrong category would show."""
    seed_spelling = {key: "_confidence_threshold" if i < 5 else "_threshold" for i, key in enumerate(CATEGORIES.values())}
    thresholds = {name: round(0.1 + 0.05 * i, 2) for i, name in enumerate(fake_google.CATEGORIES)}
    settings = {}
    for name, key in CATEGORIES.items():
        suffix = seed_spelling[key]
        if spelling == "swapped":
            suffix = "_threshold" if suffix == "_confidence_threshold" else "_confidence_threshold"
        settings[key + suffix] = thresholds[name]
    server = start(gateway_server, fake_google, config(fake_upstream, **settings))
    client = server.client()
    for name, key in CATEGORIES.items():
        fake_google.scores.clear()
        fake_google.scores[name] = thresholds[name]
        assert chat(client).choices[0].message.content == "upstream says: hello", name
        fake_google.scores[name] = thresholds[name] + 0.01
        assert refused(client)["message"] == BLOCKED.format(key)
    assert len(fake_upstream.requests) == 16


def test_the_most_confident_category_is_named(fake_google, fake_upstream, gateway_server):
    server = start(gateway_server, fake_google, config(fake_upstream, google_moderation_confidence_threshold=0.5))
    fake_google.scores.update({"Toxic": 0.6, "Firearms & Weapons": 0.9, "Violent": 0.7})
    assert refused(server.client())["message"] == BLOCKED.format("firearms_and_weapons")


def test_a_category_google_adds_later_uses_the_default_threshold(fake_google, fake_upstream, gateway_server):
    server = start(gateway_server, fake_google, config(fake_upstream))
    fake_google.categories = [{"name": "Toxic", "confidence": 0.1}, {"name": "Scams & Fraud", "confidence": 0.85}]
    assert refused(server.client())["message"] == BLOCKED.format("scams_and_fraud")


def test_every_route_and_streams_are_checked_before_anything_is_sent(fake_google, fake_upstream, gateway_server):
    server = start(gateway_server, fake_google, config(fake_upstream, google_moderation_confidence_threshold=0.5))
    client = server.client()
    fake_google.scores["Sexual"] = 0.9
    with pytest.raises(openai.BadRequestError, match=re.escape(BLOCKED.format("sexual"))):
        chat(client, "a story", stream=True)
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="gpt-test", prompt="first prompt")
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="gpt-test", input=["one", "two"])
    assert fake_upstream.requests == []
    # every piece of text a user sent, system prompt included, in one document
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gpt-test", messages=[
            {"role": "system", "content": "be nice"},
            {"role": "user", "content": [{"type": "text", "text": "part one"}, {"type": "text", "text": "part two"}]}])
    assert fake_google.texts == ["a story", "first prompt", "one\ntwo", "be nice\npart one\npart two"]


def test_monitor_mode_lets_a_flagged_call_through(fake_google, fake_upstream, gateway_server):
    server = start(gateway_server, fake_google, config(fake_upstream, native={"mode": "monitor"}))
    fake_google.scores["Toxic"] = 0.95
    assert chat(server.client()).choices[0].message.content == "upstream says: hello"
    counters = httpx.get(server.url + "/plugins", headers=ADMIN, timeout=10).json()["counters"]
    assert counters["monitored"] == {NAME: 1}


# -- failures: closed by default, open when configured -----------------------------------------


def test_guard_failures_fail_closed_after_one_attempt(fake_google, fake_upstream, gateway_server):
    """5xx, garbage and empty replies are guard failures (503), never a pass, and never retried."""
    server = start(gateway_server, fake_google, config(fake_upstream))
    client = server.client()
    cases = {
        "ServiceUnavailable": lambda: fake_google.fail(503),
        "InternalServerError": lambda: fake_google.fail(500),
        "ParseError": lambda: setattr(fake_google, "garbage", "<html>gateway error</html>"),
        "GuardReplyError": lambda: setattr(fake_google, "garbage", "{}"),
    }
    for reason, arrange in cases.items():
        fake_google.reset()
        arrange()
        error = refused(client, error=openai.InternalServerError)
        assert error == {"message": f"Guardrail {NAME} is unavailable ({reason})", "type": "guardrail_unavailable",
                         "param": None, "code": "503"}
        assert len(fake_google.requests) == 1, reason  # retry=None: one attempt
    fake_google.reset()
    fake_google.categories = [{"name": "Toxic", "confidence": 7}]
    assert refused(client, error=openai.InternalServerError)["message"].endswith("(GuardReplyError)")
    assert fake_upstream.requests == []


def test_unreachable_guard_fails_closed(fake_upstream, gateway_server, closed_port):
    server = gateway_server(config(fake_upstream), env={"GOOGLE_MODERATION_API_ENDPOINT": f"http://127.0.0.1:{closed_port}"})
    assert refused(server.client(), error=openai.InternalServerError)["message"] == (
        f"Guardrail {NAME} is unavailable (ConnectionError)")
    assert fake_upstream.requests == []


def test_fail_open_lets_the_call_through(fake_google, fake_upstream, gateway_server):
    server = start(gateway_server, fake_google, config(fake_upstream, native={"on_error": "fail_open"}))
    fake_google.fail(503)
    assert chat(server.client()).choices[0].message.content == "upstream says: hello"
    fake_google.scores["Toxic"] = 0.9  # a block is still a block
    assert refused(server.client())["message"] == BLOCKED.format("toxic")


def test_a_slow_guard_is_cut_at_timeout_s(fake_google, fake_upstream, gateway_server):
    """The plugin's `timeout_s` bounds the call, and the client's own timeout follows it: with a
    single thread, the next call finds the thread free again instead of stuck waiting on Google."""
    native = {"timeout_s": 0.5, "config": {"google_moderation_max_concurrent_calls": 1}}
    server = start(gateway_server, fake_google, config(fake_upstream, native=native))
    fake_google.delay = 5
    started = time.perf_counter()
    error = refused(server.client(), error=openai.InternalServerError)
    assert error["message"] == f"Guardrail {NAME} is unavailable (timed out)"
    assert 0.45 < time.perf_counter() - started < 2
    fake_google.delay = 0
    assert chat(server.client()).choices[0].message.content == "upstream says: hello"


def test_the_call_timeout_alone_bounds_a_slow_guard(fake_google, fake_upstream, gateway_server):
    server = start(gateway_server, fake_google, config(fake_upstream, google_moderation_timeout_s=0.3))
    fake_google.delay = 3
    started = time.perf_counter()
    assert refused(server.client(), error=openai.InternalServerError)["message"] == (
        f"Guardrail {NAME} is unavailable (ReadTimeout)")
    assert 0.25 < time.perf_counter() - started < 1.5
    assert len(fake_google.requests) == 1


async def test_calls_run_off_the_event_loop_and_in_parallel(fake_google, fake_upstream, gateway_server):
    server = start(gateway_server, fake_google, config(fake_upstream))
    fake_google.delay = 0.4
    async with server.async_client() as client:
        started = time.perf_counter()
        replies = await asyncio.gather(*(client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": f"hi {i}"}]) for i in range(6)))
        elapsed = time.perf_counter() - started
    assert sorted(r.choices[0].message.content for r in replies) == [f"upstream says: hi {i}" for i in range(6)]
    assert elapsed < 1.2  # six 0.4 s calls one after the other would take 2.4 s


def test_plugin_is_a_concurrent_remote_guard(fake_google, fake_upstream, gateway_server):
    server = start(gateway_server, fake_google, config(fake_upstream))
    (entry,) = [p for p in httpx.get(server.url + "/plugins", headers=ADMIN, timeout=10).json()["enabled"]
                if p["name"] == NAME]
    assert entry["priority"] == 730 and entry["hooks"] == ["pre_request", "shutdown", "startup"]
    assert GoogleTextModeration.concurrent is True


# -- credentials and endpoints -----------------------------------------------------------------


def test_https_endpoint_uses_the_service_account(fake_google, fake_upstream, gateway_server):
    """GOOGLE_APPLICATION_CREDENTIALS with an https:// endpoint: the client signs with the
    service account's key and the fake checks the signature, as Google does."""
    env = {"GOOGLE_MODERATION_API_ENDPOINT": fake_google.https_url, "REQUESTS_CA_BUNDLE": fake_google.ca_file,
           "GOOGLE_APPLICATION_CREDENTIALS": fake_google.service_account_file()}
    server = gateway_server(config(fake_upstream), env=env)
    client = server.client()
    assert chat(client).choices[0].message.content == "upstream says: hello"
    fake_google.scores["Toxic"] = 0.9
    assert refused(client)["message"] == BLOCKED.format("toxic")
    assert {r.scheme for r in fake_google.requests} == {"https"}
    assert all(r.headers["Authorization"].startswith("Bearer ey") for r in fake_google.requests)


def test_a_wrong_key_is_a_guard_failure(fake_google, fake_upstream, gateway_server, tmp_path):
    """A key Google does not accept (401) fails closed like any other guard failure."""
    import json
    from pathlib import Path

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    info = json.loads(Path(fake_google.service_account_file()).read_text())
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    info["private_key"] = other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()).decode()
    (tmp_path / "other.json").write_text(json.dumps(info))
    env = {"GOOGLE_MODERATION_API_ENDPOINT": fake_google.https_url, "REQUESTS_CA_BUNDLE": fake_google.ca_file,
           "GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "other.json")}
    server = gateway_server(config(fake_upstream), env=env)
    assert refused(server.client(), error=openai.InternalServerError)["message"] == (
        f"Guardrail {NAME} is unavailable (Unauthorized)")


def test_no_credentials_stops_start_up(fake_upstream, gateway_server, monkeypatch):
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.delenv("GOOGLE_MODERATION_API_ENDPOINT", raising=False)
    with pytest.raises(Exception, match=re.escape(
            f"plugin '{NAME}' failed to start: RuntimeError: GOOGLE_APPLICATION_CREDENTIALS is not set: set it "
            "to a service-account JSON file (or GOOGLE_MODERATION_API_ENDPOINT to an http:// endpoint that "
            "needs no credentials)")):
        gateway_server(config(fake_upstream))


@pytest.mark.parametrize(("env", "message"), [
    ({"GOOGLE_APPLICATION_CREDENTIALS": "/nonexistent/key.json", "GOOGLE_MODERATION_API_ENDPOINT": ""},
     "GOOGLE_APPLICATION_CREDENTIALS=/nonexistent/key.json: File /nonexistent/key.json was not found."),
    ({"GOOGLE_MODERATION_API_ENDPOINT": "127.0.0.1:9"},
     "GOOGLE_MODERATION_API_ENDPOINT must be an http:// or https:// base URL, got '127.0.0.1:9'"),
])
def test_bad_environment_stops_start_up(fake_upstream, gateway_server, env, message):
    with pytest.raises(Exception, match=re.escape(message)):
        gateway_server(config(fake_upstream), env=env)


# -- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("settings", "message"), [
    ({"toxic_confidence_threshold": 1.5},
     f"plugin '{NAME}': config key toxic_confidence_threshold: Input should be less than or equal to 1"),
    ({"google_moderation_confidence_threshold": -0.1},
     f"plugin '{NAME}': config key google_moderation_confidence_threshold: Input should be greater than or equal to 0"),
    ({"violence_threshold": 0.2},
     f"plugin '{NAME}' failed to start: ValueError: unknown setting violence_threshold "
     "(did you mean violent_confidence_threshold?)"),
    ({"weapons_confidence_threshold": 0.2},
     f"plugin '{NAME}' failed to start: ValueError: unknown setting weapons_confidence_threshold "
     "(did you mean firearms_and_weapons_confidence_threshold?)"),
])
def test_bad_thresholds_stop_start_up(fake_google, fake_upstream, gateway_server, settings, message):
    with pytest.raises(Exception, match=re.escape(message)):
        start(gateway_server, fake_google, config(fake_upstream, **settings))


def test_config_model():
    cfg = GoogleModerationConfig(google_moderation_confidence_threshold=0.5, toxic_threshold=0.2,
                                 legal_confidence_threshold=0.9, health_threshold=0.3, health_confidence_threshold=0.3)
    thresholds = cfg.thresholds()
    assert len(thresholds) == 16
    assert (thresholds["toxic"], thresholds["legal"], thresholds["health"], thresholds["insult"]) == (0.2, 0.9, 0.3, 0.5)
    assert GoogleModerationConfig().thresholds() == dict.fromkeys(CATEGORIES.values(), 0.8)
    with pytest.raises(ValueError, match="toxic_confidence_threshold=0.1 and toxic_threshold=0.2 disagree"):
        GoogleModerationConfig(toxic_confidence_threshold=0.1, toxic_threshold=0.2)
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        GoogleModerationConfig(toxicity_threshold=0.1)
    assert all(f.description for f in GoogleModerationConfig.model_fields.values())


def test_other_threshold_settings_are_left_alone():
    from gateway_plugin_google_moderation.config import misspelled_threshold_keys

    flat = {"similarity_threshold": 0.9, "health_check_threshold": 3, "toxic_threshold": 0.1,
            "drugs_threshold": 0.5, "google_moderation_threshold": 0.5, "toxicity_threshold": 0.4}
    assert misspelled_threshold_keys(flat) == [
        "drugs_threshold (did you mean illicit_drugs_confidence_threshold?)",
        "google_moderation_threshold",
        "toxicity_threshold (did you mean toxic_confidence_threshold?)",
    ]
