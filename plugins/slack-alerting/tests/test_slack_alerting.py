"""End-to-end: a real gateway with the plugin, a real webhook receiver on loopback (conftest.py),
deployments pointing at a closed port (upstream failures) or at the fake OpenAI upstream, and the
official `openai` SDK as the client.
"""

from __future__ import annotations

import logging
import re
import statistics
import time

import httpx
import openai
import pytest

from gateway import AlertEvent
from gateway_plugin_slack_alerting import SlackAlerting, SlackAlertingConfig
from gateway_plugin_slack_alerting.text import format_alert

NAME = SlackAlerting.name
ADMIN = {"Authorization": "Bearer sk-1234"}
UPSTREAM_KEY = "sk-upstream-SECRET-4242"
FAST = {"slack_retry_backoff_s": 0.05, "slack_timeout_s": 2}


def config(port: int, groups=("gpt-test",), *, num_retries: int = 0, native=None, upstream=None, **general):
    """Model groups served by a closed port (every call fails) plus, with `upstream`, one working
    group `ok`; Slack alerting switched on the seed's way unless `native` gives a plugin entry."""
    models = [{"model_name": g, "litellm_params": {"model": "openai/upstream-model", "api_key": UPSTREAM_KEY,
                                                   "api_base": f"http://127.0.0.1:{port}/v1"}} for g in groups]
    if upstream is not None:
        models.append({"model_name": "ok", "litellm_params": {"model": "openai/upstream-model",
                                                               "api_base": upstream.url, "api_key": UPSTREAM_KEY}})
    cfg = {"model_list": models, "router_settings": {"num_retries": num_retries}}
    if native is not None:
        cfg["plugins"] = [{"name": NAME, **native}]
        cfg["general_settings"] = dict(general)
    else:
        cfg["general_settings"] = {"alerting": ["slack"], **FAST, **general}
    return cfg


def fail_call(client, model="gpt-test") -> tuple[float, str]:
    """One chat call that fails upstream; returns its latency and request id."""
    started = time.perf_counter()
    with pytest.raises(openai.APIStatusError) as err:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 502
    return time.perf_counter() - started, err.value.response.headers["x-request-id"]


def enabled(server) -> dict[str, str]:
    plugins = httpx.get(server.url + "/plugins", headers=ADMIN).json()
    return {p["name"]: p["enabled_by"] for p in plugins["enabled"]}


# -- switching on -----------------------------------------------------------------------------


def test_switched_on_by_alerting_slack_and_the_env_var(webhook, closed_port, gateway_server):
    server = gateway_server(config(closed_port), env={"SLACK_WEBHOOK_URL": webhook.url})
    assert enabled(server)[NAME] == "setting alerting"
    fail_call(server.client())
    assert len(webhook.wait_for(1)) == 1


def test_off_without_the_env_var(webhook, closed_port, gateway_server, monkeypatch, caplog):
    monkeypatch.delenv("SLACK_WEBHOOK_URL", raising=False)
    server = gateway_server(config(closed_port))
    assert NAME not in enabled(server)
    assert "general_settings.alerting lists 'slack' but SLACK_WEBHOOK_URL is not set: Slack alerting is off" in caplog.text
    fail_call(server.client())
    time.sleep(0.3)
    assert webhook.attempts == []


def test_off_without_alerting_slack(webhook, closed_port, gateway_server):
    cfg = config(closed_port)
    cfg["general_settings"]["alerting"] = ["email"]
    server = gateway_server(cfg, env={"SLACK_WEBHOOK_URL": webhook.url})
    assert NAME not in enabled(server)


def test_named_in_callbacks(webhook, closed_port, gateway_server):
    cfg = config(closed_port)
    cfg["general_settings"].pop("alerting")
    cfg["litellm_settings"] = {"callbacks": [NAME]}
    server = gateway_server(cfg, env={"SLACK_WEBHOOK_URL": webhook.url})
    assert enabled(server)[NAME] == "litellm_settings.callbacks"
    fail_call(server.client())
    assert len(webhook.wait_for(1)) == 1


def test_native_entry_with_the_url_in_its_config(webhook, closed_port, gateway_server, monkeypatch):
    monkeypatch.delenv("SLACK_WEBHOOK_URL", raising=False)
    server = gateway_server(config(closed_port, native={"config": {"slack_webhook_url": webhook.url, **FAST}}))
    assert enabled(server)[NAME] == "plugins"
    fail_call(server.client())
    assert len(webhook.wait_for(1)) == 1


@pytest.mark.parametrize(("plugin_config", "message"), [
    ({}, f"plugin '{NAME}': config key slack_webhook_url: Value error, no Slack webhook URL: set the "
         "SLACK_WEBHOOK_URL environment variable or slack_webhook_url"),
    ({"slack_webhook_url": "ftp://hooks.example/services/TOPSECRET"},
     f"plugin '{NAME}': config key slack_webhook_url: Value error, the Slack webhook URL must be an http:// or "
     "https:// URL (value not shown: it is a secret)"),
    ({"slack_webhook_url": "https://hooks.example/x", "slack_retries": 2},
     f"plugin '{NAME}': config key slack_retries: Extra inputs are not permitted"),
])
def test_a_bad_config_stops_start_up_without_echoing_the_url(closed_port, gateway_server, monkeypatch,
                                                              plugin_config, message):
    monkeypatch.delenv("SLACK_WEBHOOK_URL", raising=False)
    with pytest.raises(Exception, match=re.escape(message)) as err:
        gateway_server(config(closed_port, native={"config": plugin_config}))
    assert "TOPSECRET" not in str(err.value)


# -- what is sent -----------------------------------------------------------------------------


def test_an_upstream_failure_is_one_message_naming_the_group_without_the_key(webhook, closed_port, gateway_server):
    server = gateway_server(config(closed_port, ("gpt-test",), num_retries=1),
                            env={"SLACK_WEBHOOK_URL": webhook.url})
    _, request_id = fail_call(server.client())
    (text,) = webhook.wait_for(1)
    time.sleep(0.3)
    assert len(webhook.attempts) == 1
    assert text.startswith(":red_circle: *upstream_failure* · error · gateway alert\n")
    assert "Model group gpt-test: 2 attempt(s) failed. Last error: OpenAIException - Connection error" in text
    assert f"• request id: `{request_id}`" in text
    assert "• model_group: gpt-test" in text
    assert "• status: 502" in text
    assert UPSTREAM_KEY not in text and "SECRET" not in text


def test_a_budget_crossed_is_one_message_per_minute(webhook, fake_upstream, closed_port, gateway_server):
    server = gateway_server(config(closed_port, upstream=fake_upstream), env={"SLACK_WEBHOOK_URL": webhook.url})
    made = httpx.post(server.url + "/key/generate", headers=ADMIN, json={"max_budget": 0, "key_alias": "broke"})
    key = made.json()["key"]
    client = server.client(api_key=key)
    for _ in range(20):
        with pytest.raises(openai.RateLimitError, match="Budget has been exceeded"):
            client.chat.completions.create(model="ok", messages=[{"role": "user", "content": "hi"}])
    (text,) = webhook.wait_for(1)
    time.sleep(0.3)
    assert len(webhook.attempts) == 1  # the gateway raises it once a minute per key
    assert text.startswith(":warning: *budget_exceeded* · warning · gateway alert\n")
    assert "Budget exceeded for key broke: current cost 0.0, max budget 0.0" in text
    assert key not in text
    assert fake_upstream.requests == []


def test_alert_types_filter(webhook, fake_upstream, closed_port, gateway_server):
    server = gateway_server(config(closed_port, upstream=fake_upstream, alert_types=["budget_alerts"]),
                            env={"SLACK_WEBHOOK_URL": webhook.url})
    fail_call(server.client())
    key = httpx.post(server.url + "/key/generate", headers=ADMIN, json={"max_budget": 0}).json()["key"]
    with pytest.raises(openai.RateLimitError):
        server.client(api_key=key).chat.completions.create(model="ok", messages=[{"role": "user", "content": "x"}])
    (text,) = webhook.wait_for(1)
    time.sleep(0.3)
    assert "*budget_exceeded*" in text and len(webhook.attempts) == 1


# -- folding and rate limit -------------------------------------------------------------------


def test_a_storm_of_50_identical_alerts_is_one_message_and_a_count(webhook, closed_port, gateway_server):
    server = gateway_server(config(closed_port, slack_dedupe_window_s=1.0, slack_max_messages_per_minute=5),
                            env={"SLACK_WEBHOOK_URL": webhook.url})
    client = server.client()
    ids = [fail_call(client)[1] for _ in range(50)]
    texts = webhook.wait_for(2, timeout=5)
    time.sleep(1.5)  # the window after the follow-up closes with nothing more to say
    assert webhook.texts == texts and len(texts) == 2 <= 5
    first, follow_up = texts
    assert f"• request id: `{ids[0]}`" in first
    assert follow_up.startswith(":red_circle: *upstream_failure* · error · gateway alert · *repeated 49 more times* "
                                "in the last ")
    assert f"• last request id: `{ids[-1]}`" in follow_up


def test_the_rate_limit_groups_what_waits_and_shutdown_sends_it(webhook, closed_port, gateway_server):
    groups = [f"group-{i}" for i in range(8)]
    server = gateway_server(config(closed_port, groups, slack_max_messages_per_minute=2),
                            env={"SLACK_WEBHOOK_URL": webhook.url})
    client = server.client()
    for g in groups:
        fail_call(client, g)
    webhook.wait_for(2)
    time.sleep(0.5)
    assert len(webhook.attempts) == 2  # the limit: the rest waits
    server.stop()  # a graceful stop sends what waited, grouped
    texts = webhook.texts
    assert len(texts) == 3
    assert re.match(r":bell: \*\d gateway alerts\* \(grouped: shutting down\)", texts[2])
    for g in groups:
        assert sum(f"Model group {g}:" in t for t in texts) == 1


# -- delivery failures ------------------------------------------------------------------------


def test_two_500s_then_ok_is_delivered_once(webhook, closed_port, gateway_server):
    webhook.fail(500, times=2)
    server = gateway_server(config(closed_port), env={"SLACK_WEBHOOK_URL": webhook.url})
    fail_call(server.client())
    assert len(webhook.wait_for(1)) == 1
    time.sleep(0.3)
    assert [a.status for a in webhook.attempts] == [500, 500, 200]


def test_429_retry_after_is_honoured(webhook, closed_port, gateway_server):
    webhook.fail(429, body="rate_limited", retry_after="1")
    server = gateway_server(config(closed_port), env={"SLACK_WEBHOOK_URL": webhook.url})
    fail_call(server.client())
    assert len(webhook.wait_for(1)) == 1
    first, second = webhook.attempts
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 0.9  # Retry-After: 1 beat the 0.05 s backoff


def test_a_revoked_webhook_is_not_retried(webhook, closed_port, gateway_server, caplog):
    webhook.fail(404, body="no_service")
    server = gateway_server(config(closed_port), env={"SLACK_WEBHOOK_URL": webhook.url})
    fail_call(server.client())
    webhook.wait_for_attempts(1)
    time.sleep(0.5)
    assert [a.status for a in webhook.attempts] == [404]
    assert "after 1 attempt(s)" in caplog.text and "HTTP 404 'no_service'" in caplog.text


def test_a_webhook_that_always_fails_is_given_up_and_logged_without_the_url(webhook, closed_port, gateway_server,
                                                                             caplog):
    caplog.set_level(logging.DEBUG)
    webhook.always_fail = 500
    server = gateway_server(config(closed_port, slack_retry_attempts=3), env={"SLACK_WEBHOOK_URL": webhook.url})
    fail_call(server.client())
    webhook.wait_for_attempts(3)
    deadline = time.monotonic() + 5
    while "gave up" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.05)
    server.stop()
    gave_up = [r for r in caplog.records if "gave up" in r.getMessage()]
    assert len(gave_up) == 1 and gave_up[0].levelno == logging.ERROR
    assert gave_up[0].name == "gateway.plugins.slack_alerting"
    assert gave_up[0].getMessage() == (
        f"Slack alerting: gave up on 1 alert(s) after 3 attempt(s) to slack webhook (…{webhook.url[-4:]}): "
        "HTTP 500 'internal_error'"
    )
    assert len(webhook.attempts) == 3
    assert any(r.name == "httpx" for r in caplog.records)  # httpx logged each request, with the URL masked
    for record in caplog.records:
        assert webhook.url not in record.getMessage(), record
        assert webhook.token not in record.getMessage(), record
    assert webhook.token not in caplog.text


def test_the_request_path_is_never_slowed_by_a_slow_webhook(webhook, closed_port, gateway_server):
    groups = [f"a{i}" for i in range(5)] + [f"b{i}" for i in range(5)]
    server = gateway_server(config(closed_port, groups, slack_timeout_s=20, slack_shutdown_timeout_s=1),
                            env={"SLACK_WEBHOOK_URL": webhook.url})
    client = server.client()
    fail_call(client, "a0")  # warm up connections
    webhook.wait_for(1)
    fast = [fail_call(client, g)[0] for g in groups[1:5]]
    webhook.wait_for(2)
    webhook.delay = 3.0  # every post now takes 3 s
    slow = [fail_call(client, g)[0] for g in groups[5:]]
    assert max(slow) < 0.5, slow
    assert statistics.median(slow) < statistics.median(fast) + 0.05, (fast, slow)


# -- shutdown -----------------------------------------------------------------------------------


def test_a_graceful_stop_delivers_what_was_queued(webhook, closed_port, gateway_server):
    groups = [f"g{i}" for i in range(5)]
    server = gateway_server(config(closed_port, groups, slack_max_messages_per_minute=1),
                            env={"SLACK_WEBHOOK_URL": webhook.url})
    client = server.client()
    for g in groups:
        fail_call(client, g)
    fail_call(client, "g0")
    fail_call(client, "g0")  # two repeats folded into g0's window
    server.stop()
    texts = webhook.texts
    assert len(texts) == 2  # the one the rate limit allowed, then all the rest at the stop
    for g in groups:
        assert f"Model group {g}:" in "\n".join(texts)
    assert "*repeated 2 more times*" in texts[1]


def test_the_stop_is_bounded_by_its_deadline(webhook, closed_port, gateway_server, caplog):
    webhook.delay = 30.0
    server = gateway_server(config(closed_port, slack_timeout_s=20, slack_shutdown_timeout_s=1),
                            env={"SLACK_WEBHOOK_URL": webhook.url})
    fail_call(server.client())
    time.sleep(0.2)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 5
    assert (f"Slack alerting: shutdown deadline (1 s) reached; 1 alert(s) not delivered to slack webhook "
            f"(…{webhook.url[-4:]})") in caplog.text


# -- the message and the config, without a server -------------------------------------------------


def test_message_format_hides_secret_details_and_escapes():
    event = AlertEvent(kind="size_limit", message="Request size is too large. <b>&</b>", request_id="r-1",
                       details={"route": "/v1/chat/completions", "api_key": "sk-live-123", "empty": None,
                                "deployments": ["a", "b"]}, time=0.0)
    assert format_alert(event) == (
        ":warning: *size_limit* · warning · gateway alert\n"
        "Request size is too large. &lt;b&gt;&amp;&lt;/b&gt;\n"
        "• request id: `r-1`\n"
        "• route: /v1/chat/completions\n"
        "• api_key: (hidden)\n"
        "• deployments: a, b\n"
        "• time: 1970-01-01 00:00:00 UTC"
    )


def test_the_url_is_a_secret_in_the_config(monkeypatch):
    url = "https://hooks.slack.com/services/T1/B2/TOPSECRETTOKEN"
    monkeypatch.setenv("SLACK_WEBHOOK_URL", url)
    cfg = SlackAlertingConfig()
    assert cfg.slack_webhook_url.get_secret_value() == url
    for shown in (repr(cfg), str(cfg), cfg.model_dump_json(), str(cfg.model_dump())):
        assert "TOPSECRET" not in shown
    assert SlackAlertingConfig(alert_types=["llm_exceptions", "budget_alerts", "size_limit", "llm_too_slow"]
                               ).alert_types == ["upstream_failure", "budget_exceeded", "soft_budget_crossed",
                                                 "size_limit", "llm_too_slow"]
    with pytest.raises(ValueError) as err:
        SlackAlertingConfig(slack_webhook_url="hooks.slack.com/services/TOPSECRET")
    assert "TOPSECRET" not in str(err.value)
