"""End-to-end: a real gateway with the plugin, the fake OpenAI upstream, a Langfuse-like ingestion
server on loopback (conftest.py: Basic auth, 207 multi-status, deduplication by event id), and the
official `openai` SDK as the client.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from datetime import datetime

import httpx
import openai
import pytest

from gateway_plugin_langfuse import LangfuseLogger

NAME = LangfuseLogger.name
ADMIN = {"Authorization": "Bearer sk-1234"}
UPSTREAM_KEY = "sk-upstream-SECRET-9876"
PUBLIC_KEY, SECRET_KEY = "pk-lf-test-1234", "sk-lf-SECRET-5678"  # what the server in conftest.py accepts
FAST = {"langfuse_flush_interval_s": 0.05, "langfuse_retry_backoff_s": 0.05}


def env(langfuse, **extra):
    return {"LANGFUSE_PUBLIC_KEY": PUBLIC_KEY, "LANGFUSE_SECRET_KEY": SECRET_KEY, "LANGFUSE_HOST": langfuse.host,
            **extra}


def config(upstream, *, native=None, **settings):
    """One priced model group on the fake upstream; the plugin named in `callbacks` (LiteLLM's
    way) unless `native` gives a `plugins:` entry."""
    cfg = {
        "model_list": [{"model_name": "gpt-test", "litellm_params": {
            "model": "openai/upstream-model", "api_base": upstream.url, "api_key": UPSTREAM_KEY,
            "input_cost_per_token": 0.001, "output_cost_per_token": 0.002}}],
        "router_settings": {"num_retries": 0},
    }
    if native is not None:
        cfg["plugins"] = [{"name": NAME, **native}]
        cfg["litellm_settings"] = dict(settings)
    else:
        cfg["litellm_settings"] = {"callbacks": [NAME], **FAST, **settings}
    return cfg


def ask(client, text="hello", **kwargs):
    return client.chat.completions.with_raw_response.create(
        model="gpt-test", messages=[{"role": "user", "content": text}], **kwargs)


def stats(server) -> dict:
    return httpx.get(f"{server.url}/{NAME}/stats", headers=ADMIN, timeout=10).json()


def wait_stats(server, key: str, at_least: int, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        counters = stats(server)
        if counters[key] >= at_least or time.monotonic() >= deadline:
            return counters
        time.sleep(0.05)


def make_key(server, **body) -> str:
    made = httpx.post(server.url + "/key/generate", headers=ADMIN, json=body, timeout=10)
    assert made.status_code == 200, made.text
    return made.json()["key"]


def sent_text(langfuse) -> str:
    return json.dumps([r.body for r in langfuse.requests])


# -- what Langfuse receives -----------------------------------------------------------------------


def test_a_call_becomes_a_trace_and_a_generation(langfuse, fake_upstream, gateway_server):
    fake_upstream.usage = {"prompt_tokens": 10, "completion_tokens": 5}
    server = gateway_server(config(fake_upstream), env=env(langfuse, LANGFUSE_RELEASE="v1.2.3"))
    team = httpx.post(server.url + "/team/new", headers=ADMIN, json={"team_alias": "ml-team"}, timeout=10).json()
    key = make_key(server, key_alias="lf-key", team_id=team["team_id"], metadata={"tags": ["key-tag"]})
    raw = ask(server.client(api_key=key), "what is two plus two", user="end-user-7", temperature=0.5, max_tokens=20,
              extra_body={"metadata": {"tags": ["req-tag"], "session_id": "session-42", "trace_name": "checkout",
                                       "generation_name": "answer"}})
    request_id = raw.headers["x-request-id"]

    (generation,) = langfuse.wait_for("generation-create", 1)
    (trace,) = langfuse.wait_for("trace-create", 1)
    assert all(r.status == 207 for r in langfuse.requests)
    assert trace["id"] == request_id and trace["name"] == "checkout"
    assert trace["userId"] == "end-user-7" and trace["sessionId"] == "session-42" and trace["release"] == "v1.2.3"
    assert trace["tags"] == ["req-tag", "key-tag"]
    assert trace["metadata"]["user_api_key_alias"] == "lf-key"
    assert trace["metadata"]["user_api_key_team_alias"] == "ml-team"
    assert datetime.fromisoformat(trace["timestamp"].replace("Z", "+00:00"))
    assert generation["id"] == request_id and generation["traceId"] == request_id
    assert generation["name"] == "answer" and generation["model"] == "upstream-model"
    assert generation["usageDetails"] == {"input": 10, "output": 5, "total": 15}
    assert generation["costDetails"]["total"] == pytest.approx(10 * 0.001 + 5 * 0.002)
    assert generation["modelParameters"] == {"temperature": 0.5, "max_tokens": 20}
    assert generation["level"] == "DEFAULT" and "statusMessage" not in generation
    start, end = (datetime.fromisoformat(generation[k].replace("Z", "+00:00")) for k in ("startTime", "endTime"))
    assert start <= end
    meta = generation["metadata"]
    assert meta["user_api_key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert meta["user_api_key_team_id"] == team["team_id"] and meta["model_group"] == "gpt-test"
    assert meta["api_base"] == fake_upstream.url and meta["status"] == "success"
    assert "input" not in generation and "output" not in generation  # prompts only when asked for
    assert "input" not in trace and "output" not in trace
    sent = sent_text(langfuse)
    assert key not in sent and key[3:] not in sent and UPSTREAM_KEY not in sent and SECRET_KEY not in sent
    assert "what is two plus two" not in sent


def test_a_failure_and_a_blocked_call_are_errors(langfuse, fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream), env=env(langfuse))
    fake_upstream.fail_next(status=500, message="upstream exploded")
    with pytest.raises(openai.InternalServerError):
        ask(server.client())
    broke = make_key(server, max_budget=0, key_alias="broke")
    with pytest.raises(openai.RateLimitError):
        ask(server.client(api_key=broke))

    generations = langfuse.wait_for("generation-create", 2)
    assert len(langfuse.wait_for("trace-create", 2)) == 2
    failed = next(g for g in generations if g["metadata"]["gateway_status"] == "failure")
    blocked = next(g for g in generations if g["metadata"]["gateway_status"] == "blocked")
    assert failed["level"] == blocked["level"] == "ERROR"
    assert "upstream exploded" in failed["statusMessage"]
    assert failed["metadata"]["error_information"]["error_code"] == "500"
    assert blocked["metadata"]["blocked_by"] == "virtual_keys" and "Budget has been exceeded" in blocked["statusMessage"]
    assert blocked["costDetails"] == {"total": 0.0} and "usageDetails" not in blocked
    assert broke not in sent_text(langfuse)


def test_input_and_output_only_when_message_logging_is_on(langfuse, fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream, langfuse_log_messages=True), env=env(langfuse))
    client = server.client()
    ask(client, "first question")
    assert list(client.chat.completions.create(model="gpt-test", stream=True,
                                               messages=[{"role": "user", "content": "streamed question"}]))
    generations = sorted(langfuse.wait_for("generation-create", 2), key=lambda g: g["startTime"])
    plain, streamed = generations
    assert plain["input"] == [{"role": "user", "content": "first question"}]
    assert plain["output"]["choices"][0]["message"]["content"] == "upstream says: first question"
    assert streamed["output"]["choices"][0]["message"]["content"] == "upstream says: streamed question"
    assert streamed["metadata"]["stream"] is True
    trace = next(t for t in langfuse.wait_for("trace-create", 2) if t["id"] == plain["traceId"])
    assert trace["input"] == plain["input"]


def test_turn_off_message_logging_wins(langfuse, fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream, langfuse_log_messages=True, turn_off_message_logging=True),
                            env=env(langfuse))
    ask(server.client(), "secret plans")
    (generation,) = langfuse.wait_for("generation-create", 1)
    assert "input" not in generation and "secret plans" not in sent_text(langfuse)


def test_redact_user_api_key_info(langfuse, fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream, redact_user_api_key_info=True), env=env(langfuse))
    key = make_key(server, key_alias="hidden-alias")
    ask(server.client(api_key=key))
    (generation,) = langfuse.wait_for("generation-create", 1)
    assert not any(k.startswith("user_api_key_") for k in generation["metadata"])
    assert "hidden-alias" not in sent_text(langfuse) and hashlib.sha256(key.encode()).hexdigest() not in sent_text(langfuse)


def test_request_metadata_groups_calls_into_one_trace(langfuse, fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream), env=env(langfuse))
    client = server.client()
    ask(client, "one", extra_body={"metadata": {"trace_id": "conversation-1"}})
    ask(client, "two", extra_body={"metadata": {"existing_trace_id": "conversation-1"}})
    generations = langfuse.wait_for("generation-create", 2)
    assert [g["traceId"] for g in generations] == ["conversation-1", "conversation-1"]
    assert [t["body"]["id"] for t in langfuse.of_type("trace-create")] == ["conversation-1"]  # the existing one untouched


# -- batching, retries, shutdown, the queue bound -----------------------------------------------------


def test_several_calls_share_one_ingestion_request(langfuse, fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream, langfuse_batch_size=3, langfuse_flush_interval_s=30),
                            env=env(langfuse))
    client = server.client()
    ids = {ask(client, f"call {i}").headers["x-request-id"] for i in range(3)}
    generations = langfuse.wait_for("generation-create", 3)
    assert {g["id"] for g in generations} == ids
    (request,) = langfuse.requests
    assert [e["type"] for e in request.body["batch"]] == ["trace-create", "generation-create"] * 3
    assert request.body["metadata"]["sdk_name"] == "gateway-plugin-langfuse"


def test_5xx_429_and_failed_events_are_retried(langfuse, fake_upstream, gateway_server, caplog):
    langfuse.fail(500)
    langfuse.fail(429, retry_after="0")
    langfuse.fail_events(500, times=1)  # inside the 207: the first event of the next request
    server = gateway_server(config(fake_upstream), env=env(langfuse))
    request_id = ask(server.client()).headers["x-request-id"]
    (generation,) = langfuse.wait_for("generation-create", 1)
    assert generation["id"] == request_id and len(langfuse.wait_for("trace-create", 1)) == 1
    assert [r.status for r in langfuse.requests] == [500, 429, 207, 207]
    first, last = langfuse.requests[0].body["batch"], langfuse.requests[-1].body["batch"]
    assert [e["id"] for e in first] == [e["id"] for e in last]  # the same events: Langfuse deduplicates
    counters = wait_stats(server, "sent", 1)
    assert (counters["sent"], counters["retries"], counters["failed"]) == (1, 3, 0)
    assert "attempt 3 failed (Langfuse failed 1 call(s): event " in caplog.text


def test_events_langfuse_refuses_are_not_retried(langfuse, fake_upstream, gateway_server, caplog):
    langfuse.fail_events(400, times=1)
    server = gateway_server(config(fake_upstream), env=env(langfuse))
    ask(server.client())
    counters = wait_stats(server, "failed", 1)
    time.sleep(0.3)
    assert counters["failed"] == 1 and len(langfuse.requests) == 1
    assert "Langfuse refused 1 call(s) of 1: event " in caplog.text


def test_wrong_keys_are_reported_without_the_secret(langfuse, fake_upstream, gateway_server, caplog):
    server = gateway_server(config(fake_upstream), env=env(langfuse, LANGFUSE_SECRET_KEY="sk-lf-WRONG-0000"))
    ask(server.client())
    wait_stats(server, "failed", 1)
    assert [r.status for r in langfuse.requests] == [401]  # not retried
    assert "HTTP 401 from Langfuse at http://127.0.0.1" in caplog.text
    assert "(check LANGFUSE_PUBLIC_KEY / LANGFUSE_SECRET_KEY)" in caplog.text
    assert "WRONG" not in caplog.text


def test_shutdown_sends_what_is_queued(langfuse, fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream, langfuse_batch_size=100, langfuse_flush_interval_s=60),
                            env=env(langfuse))
    client = server.client()
    ids = {ask(client, f"call {i}").headers["x-request-id"] for i in range(4)}
    time.sleep(0.2)
    assert langfuse.requests == []
    server.stop()  # a graceful stop: shutdown hooks run
    assert {g["body"]["id"] for g in langfuse.of_type("generation-create")} == ids and len(langfuse.requests) == 1


def test_langfuse_down_never_slows_calls_and_the_queue_drops_the_oldest(fake_upstream, closed_port, gateway_server,
                                                                        caplog):
    server = gateway_server(
        config(fake_upstream, langfuse_batch_size=1, langfuse_max_queue=3, langfuse_retry_attempts=20,
               langfuse_retry_backoff_s=0.5, langfuse_shutdown_timeout_s=0.5),
        env={"LANGFUSE_PUBLIC_KEY": PUBLIC_KEY, "LANGFUSE_SECRET_KEY": SECRET_KEY,
             "LANGFUSE_HOST": f"http://127.0.0.1:{closed_port}"})
    client = server.client()
    started = time.perf_counter()
    for i in range(12):
        assert ask(client, f"call {i}").parse().choices[0].message.content == f"upstream says: call {i}"
    assert time.perf_counter() - started < 6
    counters = wait_stats(server, "dropped", 8)
    assert counters["dropped"] >= 8 and counters["queued"] <= 3 and counters["sent"] == 0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "queue full" in r.getMessage()]
    assert len(warnings) == 1  # one a minute, however many are dropped
    assert SECRET_KEY not in caplog.text


# -- configuration ------------------------------------------------------------------------------------


def test_native_entry_with_litellm_spellings(langfuse, fake_upstream, gateway_server, monkeypatch):
    for name in ("LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY", "LANGFUSE_HOST"):
        monkeypatch.delenv(name, raising=False)
    server = gateway_server(config(fake_upstream, native={"config": {
        "langfuse_public_key": PUBLIC_KEY, "langfuse_secret": SECRET_KEY, "langfuse_host": langfuse.host + "/",
        "langfuse_environment": "staging", "langfuse_flush_interval_s": 0.05}}))
    ask(server.client())
    (generation,) = langfuse.wait_for("generation-create", 1)
    assert generation["environment"] == "staging"


@pytest.mark.parametrize(("plugin_config", "message"), [
    ({"langfuse_secret_key": "sk-lf-TOPSECRET"}, f"plugin '{NAME}': config key langfuse_public_key: Value error, "
     "no Langfuse public key: set LANGFUSE_PUBLIC_KEY or langfuse_public_key"),
    ({"langfuse_public_key": "pk-lf-1"}, f"plugin '{NAME}': config key langfuse_secret_key: Value error, no Langfuse "
     "secret key: set LANGFUSE_SECRET_KEY or langfuse_secret_key"),
    ({"langfuse_public_key": "pk-lf-1", "langfuse_secret_key": "sk-lf-TOPSECRET", "langfuse_host": "ftp://x?k=TOPSECRET"},
     f"plugin '{NAME}': config key langfuse_host: Value error, the Langfuse host must be an http:// or https:// URL"),
    ({"langfuse_public_key": "pk-lf-1", "langfuse_secret_key": "sk-lf-TOPSECRET", "langfuse_batch_size": 0},
     f"plugin '{NAME}': config key langfuse_batch_size: Input should be greater than or equal to 1"),
])
def test_a_bad_config_stops_start_up_without_echoing_secrets(fake_upstream, gateway_server, monkeypatch,
                                                             plugin_config, message):
    for name in ("LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY", "LANGFUSE_HOST"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(Exception, match=re.escape(message)) as err:
        gateway_server(config(fake_upstream, native={"config": plugin_config}))
    assert "TOPSECRET" not in str(err.value)
