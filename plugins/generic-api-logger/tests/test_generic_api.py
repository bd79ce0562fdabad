"""End-to-end: a real gateway with the plugin, the fake OpenAI upstream, a real log receiver on
loopback (conftest.py), and the official `openai` SDK as the client.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time

import httpx
import openai
import pytest

from gateway_plugin_generic_api import GenericAPILogger
from gateway_plugin_generic_api.config import headers_from_env
from gateway.standard_logging import events_from_callbacks

NAME = GenericAPILogger.name
ADMIN = {"Authorization": "Bearer sk-1234"}
UPSTREAM_KEY = "sk-upstream-SECRET-9876"
FAST = {"generic_api_flush_interval_s": 0.05, "generic_api_retry_backoff_s": 0.05}


def config(upstream, *, native=None, num_retries=0, **settings):
    """One model group on the fake upstream, priced so that costs are not zero; the plugin named in
    `callbacks` (LiteLLM's way) unless `native` gives a `plugins:` entry."""
    cfg = {
        "model_list": [{"model_name": "gpt-test", "litellm_params": {
            "model": "openai/upstream-model", "api_base": upstream.url, "api_key": UPSTREAM_KEY,
            "input_cost_per_token": 0.001, "output_cost_per_token": 0.002}}],
        "router_settings": {"num_retries": num_retries},
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


def make_key(server, **body) -> str:
    made = httpx.post(server.url + "/key/generate", headers=ADMIN, json=body, timeout=10)
    assert made.status_code == 200, made.text
    return made.json()["key"]


# -- what a record holds --------------------------------------------------------------------------


def test_a_call_becomes_a_standard_logging_payload(receiver, fake_upstream, gateway_server):
    fake_upstream.usage = {"prompt_tokens": 10, "completion_tokens": 5}
    server = gateway_server(config(fake_upstream), env={
        "GENERIC_LOGGER_ENDPOINT": receiver.url,
        "GENERIC_LOGGER_HEADERS": "Authorization=Bearer log-token-1,X-Source=gateway"})
    team = httpx.post(server.url + "/team/new", headers=ADMIN, json={"team_alias": "ml-team"}, timeout=10).json()
    key = make_key(server, key_alias="logger-key", team_id=team["team_id"], metadata={"tags": ["key-tag"]})
    client = server.client(api_key=key)
    raw = ask(client, "what is two plus two", user="end-user-7",
              extra_body={"metadata": {"tags": ["req-tag"], "spend_logs_metadata": {"job": "nightly"}}})
    request_id = raw.headers["x-request-id"]

    (record,) = receiver.wait_for_records(1)
    post = receiver.accepted[0]
    assert post.headers["authorization"] == "Bearer log-token-1" and post.headers["x-source"] == "gateway"
    assert post.headers["content-type"] == "application/json"
    assert post.path == "/ingest/logs" and post.query == "token=QUERY-SECRET"
    assert record["id"] == record["trace_id"] == request_id
    assert record["call_type"] == "acompletion" and record["stream"] is False
    assert record["status"] == "success"
    assert record["status_fields"] == {"llm_api_status": "success", "guardrail_status": "not_run"}
    assert record["model"] == "upstream-model" and record["model_group"] == "gpt-test"
    assert record["custom_llm_provider"] == "openai" and record["model_id"]
    assert record["api_base"] == fake_upstream.url
    assert (record["prompt_tokens"], record["completion_tokens"], record["total_tokens"]) == (10, 5, 15)
    assert record["response_cost"] == pytest.approx(10 * 0.001 + 5 * 0.002)
    assert record["startTime"] <= record["endTime"] and record["response_time"] >= 0
    assert record["request_tags"] == ["req-tag", "key-tag"]
    assert record["end_user"] == "end-user-7"
    meta = record["metadata"]
    assert meta["user_api_key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert meta["user_api_key_alias"] == "logger-key"
    assert meta["user_api_key_team_id"] == team["team_id"] and meta["user_api_key_team_alias"] == "ml-team"
    assert meta["user_api_key_end_user_id"] == "end-user-7"
    assert meta["spend_logs_metadata"] == {"job": "nightly"}
    assert meta["user_api_key_request_route"] == "/v1/chat/completions"
    assert meta["gateway_status"] == "success" and meta["http_status"] == 200
    assert record["messages"] is None and record["response"] is None  # prompts only when asked for
    assert record["error_information"] is None and record["error_str"] is None
    body = post.raw.decode()
    assert key not in body and key[3:] not in body  # never the raw key, not even without its prefix
    assert UPSTREAM_KEY not in body and "what is two plus two" not in body


def test_tokens_and_cost_are_the_spend_rows_even_when_estimated(receiver, fake_upstream, gateway_server):
    fake_upstream.stream_usage = False  # a stream without usage: the gateway estimates it
    server = gateway_server(config(fake_upstream), env={"GENERIC_LOGGER_ENDPOINT": receiver.url})
    assert list(server.client().chat.completions.create(
        model="gpt-test", stream=True, messages=[{"role": "user", "content": "count these words"}]))
    (record,) = receiver.wait_for_records(1)
    (row,) = server.spend_logs(1)
    assert record["metadata"]["usage_estimated"] is True and record["prompt_tokens"] > 0
    assert (record["prompt_tokens"], record["completion_tokens"]) == (row["prompt_tokens"], row["completion_tokens"])
    assert record["response_cost"] == pytest.approx(row["spend"]) and row["spend"] > 0


def test_a_failure_and_a_blocked_call_are_failures(receiver, fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream), env={"GENERIC_LOGGER_ENDPOINT": receiver.url})
    fake_upstream.fail_next(status=500, message="upstream exploded")
    with pytest.raises(openai.InternalServerError):
        ask(server.client())
    broke = make_key(server, max_budget=0, key_alias="broke")
    with pytest.raises(openai.RateLimitError):
        ask(server.client(api_key=broke))

    blocked, failed = sorted(receiver.wait_for_records(2), key=lambda r: r["metadata"]["gateway_status"])
    assert failed["metadata"]["gateway_status"] == "failure" == failed["status"]
    assert failed["error_information"]["error_code"] == "500"
    assert "upstream exploded" in failed["error_str"]
    assert failed["metadata"]["user_api_key_hash"] == hashlib.sha256(b"sk-1234").hexdigest()  # the master key's
    assert blocked["status"] == "failure" and blocked["metadata"]["gateway_status"] == "blocked"
    assert blocked["metadata"]["blocked_by"] == "virtual_keys"
    assert blocked["status_fields"]["guardrail_status"] == "guardrail_intervened"
    assert blocked["error_information"]["error_code"] == "429"
    assert blocked["response_cost"] == 0.0 and blocked["metadata"]["user_api_key_alias"] == "broke"
    assert broke not in receiver.accepted[0].raw.decode() + receiver.accepted[-1].raw.decode()
    assert len(fake_upstream.requests) == 1  # the blocked call never left


def test_litellm_success_callback_generic_logs_successes_only(receiver, fake_upstream, gateway_server):
    # A LiteLLM file as written: the old name `generic`, under success_callback only.
    cfg = config(fake_upstream)
    cfg["litellm_settings"] = {"success_callback": ["generic"], **FAST}
    server = gateway_server(cfg, env={"GENERIC_LOGGER_ENDPOINT": receiver.url})
    fake_upstream.fail_next(status=500, message="upstream exploded")
    with pytest.raises(openai.InternalServerError):
        ask(server.client())
    ask(server.client(), "second")
    (record,) = receiver.wait_for_records(1)
    assert record["status"] == "success"
    time.sleep(0.3)  # several flush intervals: the failure is not sent late either
    assert len(receiver.records) == 1


def test_prompts_and_replies_only_when_message_logging_is_on(receiver, fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream, turn_off_message_logging=False),
                            env={"GENERIC_LOGGER_ENDPOINT": receiver.url})
    client = server.client()
    ask(client, "first question")
    chunks = list(client.chat.completions.create(model="gpt-test", stream=True,
                                                 messages=[{"role": "user", "content": "streamed question"}]))
    assert chunks
    ask(client, "private question", extra_body={"metadata": {"turn_off_message_logging": True}})
    client.embeddings.create(model="gpt-test", input="embed me")
    plain, streamed, private, embedding = sorted(receiver.wait_for_records(4), key=lambda r: r["startTime"])
    assert plain["messages"] == [{"role": "user", "content": "first question"}]
    assert plain["response"]["choices"][0]["message"]["content"] == "upstream says: first question"
    assert streamed["stream"] is True
    assert streamed["response"]["choices"][0]["message"]["content"] == "upstream says: streamed question"
    assert private["messages"] is None and private["response"] is None  # the request opted out
    assert embedding["call_type"] == "aembedding" and embedding["messages"] == "embed me"
    vector = embedding["response"]["data"][0]
    assert re.fullmatch(r"<\d+ values>", vector["embedding"]) and vector["index"] == 0  # not the floats


def test_redact_user_api_key_info(receiver, fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream, redact_user_api_key_info=True),
                            env={"GENERIC_LOGGER_ENDPOINT": receiver.url})
    key = make_key(server, key_alias="hidden-alias")
    ask(server.client(api_key=key), user="end-user-9")
    (record,) = receiver.wait_for_records(1)
    assert all(v is None for k, v in record["metadata"].items() if k.startswith("user_api_key_"))
    assert "hidden-alias" not in receiver.accepted[0].raw.decode()
    assert record["end_user"] == "end-user-9"  # the request's own field stays


def test_a_credential_in_the_body_is_never_logged(receiver, fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream), env={"GENERIC_LOGGER_ENDPOINT": receiver.url})
    ask(server.client(), temperature=0.2, extra_body={"api_key": "sk-client-SECRET-1", "x_access_token": "tok-SECRET-2"})
    (record,) = receiver.wait_for_records(1)
    assert record["model_parameters"] == {"temperature": 0.2}
    assert "SECRET" not in receiver.accepted[0].raw.decode()


# -- batching, retries, shutdown, the queue bound ---------------------------------------------------


def test_several_calls_share_one_post(receiver, fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream, generic_api_batch_size=5, generic_api_flush_interval_s=30),
                            env={"GENERIC_LOGGER_ENDPOINT": receiver.url})
    client = server.client()
    ids = {ask(client, f"call {i}").headers["x-request-id"] for i in range(5)}
    records = receiver.wait_for_records(5)
    assert len(receiver.posts) == 1 and {r["id"] for r in records} == ids  # the full batch went at once


def test_a_partial_batch_goes_after_the_interval(receiver, fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream, generic_api_batch_size=100, generic_api_flush_interval_s=2),
                            env={"GENERIC_LOGGER_ENDPOINT": receiver.url})
    client = server.client()
    for i in range(3):
        ask(client, f"call {i}")
    assert receiver.posts == []  # waiting for the interval
    assert len(receiver.wait_for_records(3)) == 3 and len(receiver.posts) == 1


def test_5xx_and_429_are_retried_with_backoff(receiver, fake_upstream, gateway_server, caplog):
    receiver.fail(500)
    receiver.fail(429, retry_after="0")
    server = gateway_server(config(fake_upstream, generic_api_retry_attempts=3),
                            env={"GENERIC_LOGGER_ENDPOINT": receiver.url})
    request_id = ask(server.client()).headers["x-request-id"]
    (record,) = receiver.wait_for_records(1)
    assert record["id"] == request_id
    assert [p.status for p in receiver.posts] == [500, 429, 200]
    assert len({p.raw for p in receiver.posts}) == 1  # the same batch, sent again
    counters = stats(server)
    assert (counters["sent"], counters["retries"], counters["failed"]) == (1, 2, 0)
    assert "attempt 1 failed (HTTP 500 from http://127.0.0.1" in caplog.text
    assert "QUERY-SECRET" not in caplog.text  # the endpoint is logged without its query


def test_a_refused_batch_is_not_retried(receiver, fake_upstream, gateway_server, caplog):
    receiver.fail(400)
    server = gateway_server(config(fake_upstream), env={"GENERIC_LOGGER_ENDPOINT": receiver.url})
    ask(server.client())
    deadline = time.monotonic() + 5
    while stats(server)["failed"] < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    assert [p.status for p in receiver.posts] == [400]
    assert "gave up on 1 record(s): HTTP 400" in caplog.text


def test_shutdown_sends_what_is_queued(receiver, fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream, generic_api_batch_size=100, generic_api_flush_interval_s=60),
                            env={"GENERIC_LOGGER_ENDPOINT": receiver.url})
    client = server.client()
    ids = {ask(client, f"call {i}").headers["x-request-id"] for i in range(4)}
    time.sleep(0.2)
    assert receiver.posts == []
    server.stop()  # a graceful stop: shutdown hooks run
    assert {r["id"] for r in receiver.records} == ids and len(receiver.posts) == 1


def test_a_receiver_that_is_down_never_slows_calls_and_the_queue_drops_the_oldest(
        fake_upstream, closed_port, gateway_server, caplog):
    down = f"http://127.0.0.1:{closed_port}/logs"
    server = gateway_server(config(fake_upstream, generic_api_batch_size=1, generic_api_max_queue=3,
                                   generic_api_retry_attempts=20, generic_api_retry_backoff_s=0.5,
                                   generic_api_shutdown_timeout_s=0.5),
                            env={"GENERIC_LOGGER_ENDPOINT": down})
    client = server.client()
    started = time.perf_counter()
    for i in range(12):
        assert ask(client, f"call {i}").parse().choices[0].message.content == f"upstream says: call {i}"
    assert time.perf_counter() - started < 6
    deadline = time.monotonic() + 5
    while stats(server)["dropped"] < 8 and time.monotonic() < deadline:
        time.sleep(0.05)
    counters = stats(server)
    assert counters["dropped"] >= 8 and counters["queued"] <= 3 and counters["sent"] == 0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "queue full" in r.getMessage()]
    assert len(warnings) == 1  # one a minute, however many are dropped
    assert re.search(r"queue full \(3 records waiting\); the oldest was dropped; \d+ record\(s\) dropped so far",
                     warnings[0].getMessage())


# -- other formats and the native entry ------------------------------------------------------------


@pytest.mark.parametrize("log_format", ["ndjson", "single"])
def test_native_entry_with_litellm_callback_settings_names(receiver, fake_upstream, gateway_server,
                                                           monkeypatch, log_format):
    monkeypatch.delenv("GENERIC_LOGGER_ENDPOINT", raising=False)
    server = gateway_server(config(fake_upstream, native={"config": {
        "endpoint": receiver.url, "headers": {"X-Api-Key": "log-token-2"}, "log_format": log_format,
        "event_types": ["llm_api_success"], "generic_api_flush_interval_s": 0.2}}))
    client = server.client()
    fake_upstream.fail_next(status=500)
    with pytest.raises(openai.InternalServerError):
        ask(client)  # a failure: not among the event types
    ids = {ask(client, f"call {i}").headers["x-request-id"] for i in range(3)}
    records = receiver.wait_for_records(3)
    time.sleep(0.3)
    assert {r["id"] for r in receiver.records} == ids and all(r["status"] == "success" for r in records)
    assert all(p.headers["x-api-key"] == "log-token-2" for p in receiver.posts)
    if log_format == "ndjson":
        assert len(receiver.posts) == 1 and receiver.posts[0].headers["content-type"] == "application/x-ndjson"
        assert len(receiver.posts[0].raw.decode().splitlines()) == 3
    else:
        assert len(receiver.posts) == 3 and all(len(p.records) == 1 for p in receiver.posts)


@pytest.mark.parametrize(("plugin_config", "message"), [
    ({}, f"plugin '{NAME}': config key generic_logger_endpoint: Value error, no endpoint: set the "
         "GENERIC_LOGGER_ENDPOINT environment variable or generic_logger_endpoint"),
    ({"endpoint": "ftp://logs.example/in?token=TOPSECRET"},
     f"plugin '{NAME}': config key endpoint: Value error, the endpoint must be an http:// or "
     "https:// URL (value not shown: it may hold a token)"),
    ({"endpoint": "https://logs.example/in", "log_format": "xml"}, f"plugin '{NAME}': config key log_format:"),
])
def test_a_bad_config_stops_start_up_without_echoing_secrets(fake_upstream, gateway_server, monkeypatch,
                                                             plugin_config, message):
    monkeypatch.delenv("GENERIC_LOGGER_ENDPOINT", raising=False)
    with pytest.raises(Exception, match=re.escape(message)) as err:
        gateway_server(config(fake_upstream, native={"config": plugin_config}))
    assert "TOPSECRET" not in str(err.value)


def test_litellm_header_and_callback_list_parsing():
    assert headers_from_env("Authorization=Bearer a=b, X-Team = ml ,broken,=x") == {
        "Authorization": "Bearer a=b", "X-Team": "ml"}
    names = ("generic_api", "generic")
    assert events_from_callbacks({"success_callback": ["generic"]}, names) == ("llm_api_success",)
    assert events_from_callbacks({"failure_callback": "generic"}, names) == ("llm_api_failure",)
    assert events_from_callbacks({"success_callback": ["generic"], "failure_callback": ["generic"]}, names) == (
        "llm_api_success", "llm_api_failure")
    assert events_from_callbacks({"callbacks": ["generic_api"], "success_callback": ["langfuse"]}, names) == (
        "llm_api_success", "llm_api_failure")
    assert events_from_callbacks({}, names) == ("llm_api_success", "llm_api_failure")
