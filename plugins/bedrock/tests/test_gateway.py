"""End to end: the official `openai` SDK talks to a real gateway, which calls the fake Bedrock
(tests/bedrock_peer.py) on loopback, signed. The config is the one LiteLLM users write:
`model: bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0` with `aws_region_name` and keys, plus
`api_base` pointing at the fake. No `callbacks` entry: the `bedrock/` prefix switches the plugin on."""

from __future__ import annotations

import base64
import json
import logging
import time
from typing import Any

import httpx
import openai
import pytest

from bedrock_peer import (ACCESS_KEY, BEARER_TOKEN, ERRORS, SECRET_KEY, SESSION_ACCESS_KEY, SESSION_SECRET,
                          SESSION_TOKEN, Reply, aws_error)

ADMIN = {"Authorization": "Bearer sk-1234"}
MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
IN_PRICE, OUT_PRICE = 3e-06, 1.5e-05
HI = [{"role": "user", "content": "Hello there"}]
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def entry(peer: Any, name: str = "claude", model: str = f"bedrock/{MODEL}", **params: Any) -> dict[str, Any]:
    return {"model_name": name, "litellm_params": {
        "model": model, "aws_region_name": peer.region, "aws_access_key_id": ACCESS_KEY,
        "aws_secret_access_key": SECRET_KEY, "api_base": peer.url,
        "input_cost_per_token": IN_PRICE, "output_cost_per_token": OUT_PRICE, **params}}


def config(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"model_list": list(entries), "router_settings": {"num_retries": 0},
            "general_settings": {"spend_flush_interval_s": 0.05}}


@pytest.fixture
def gw(gateway_server, bedrock):
    return gateway_server(config(
        entry(bedrock),
        entry(bedrock, "titan-embed", "bedrock/amazon.titan-embed-text-v2:0"),
        entry(bedrock, "cohere-embed", "bedrock/cohere.embed-english-v3"),
    ))


def spend_rows(server: Any, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        rows = httpx.get(server.url + "/spend/logs", headers=ADMIN, timeout=10).json()
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def error_of(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and body["error"]["code"] == str(status), body
    assert resp.headers.get("x-request-id")
    return body["error"]


def test_switched_on_by_the_prefix_alone_and_chat(gw, bedrock):
    plugins = httpx.get(gw.url + "/plugins", headers=ADMIN).json()
    (slot,) = [p for p in plugins["enabled"] if p["name"] == "bedrock"]
    assert slot["enabled_by"] == "model_list prefix bedrock/" and slot["distribution"] == "gateway-plugin-bedrock"
    reply = gw.client().chat.completions.create(model="claude", messages=[
        {"role": "system", "content": "Be brief."}, *HI], max_tokens=64, temperature=0.5)
    assert reply.choices[0].message.content == "Hello from Bedrock."
    assert reply.choices[0].finish_reason == "stop" and reply.object == "chat.completion"
    assert reply.model == MODEL
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens) == (25, 3, 28)
    (call,) = bedrock.calls("converse")
    assert call.auth == "sigv4" and call.access_key == ACCESS_KEY and call.model_id == MODEL
    assert call.body == {"messages": [{"role": "user", "content": [{"text": "Hello there"}]}],
                         "system": [{"text": "Be brief."}], "inferenceConfig": {"maxTokens": 64, "temperature": 0.5}}
    info = httpx.get(gw.url + "/model/info", headers=ADMIN).json()["data"]
    assert [d["litellm_params"]["api_base"] for d in info if d["model_name"] == "claude"] == [bedrock.url]


def test_parameters_converse_lacks_are_refused_unless_dropped(gw, bedrock):
    import openai

    with pytest.raises(openai.BadRequestError, match="bedrock does not support parameters: logit_bias, seed"):
        gw.client().chat.completions.create(model="claude", messages=HI, seed=1, logit_bias={"1": 2})
    assert bedrock.calls("converse") == []
    gw.client().chat.completions.create(model="claude", messages=HI, seed=1, extra_body={"drop_params": True})
    (call,) = bedrock.calls("converse")
    assert "seed" not in str(call.body)


def test_stream_with_usage_is_billed(gw, bedrock):
    bedrock.script(Reply(text="Streaming from Bedrock works fine.", input_tokens=40, chunk_size=11))
    stream = gw.client().chat.completions.create(model="claude", messages=HI, stream=True,
                                                 stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Streaming from Bedrock works fine."
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == 40 and chunks[-1].usage.completion_tokens == 5
    (row,) = spend_rows(gw, 1)
    assert row["status"] == "success" and row["call_type"] == "acompletion" and row["model"] == MODEL
    assert (row["prompt_tokens"], row["completion_tokens"]) == (40, 5)
    assert row["spend"] == pytest.approx(40 * IN_PRICE + 5 * OUT_PRICE)
    assert row["api_base"] == bedrock.url
    assert bedrock.calls("converse-stream")[0].headers["accept"] == "application/vnd.amazon.eventstream"


def test_tools_round_trip(gw, bedrock):
    client = gw.client()
    bedrock.script(Reply(text="", stop_reason="tool_use", tool_uses=[
        {"toolUseId": "tooluse_abc", "name": "get_weather", "input": {"city": "Paris"}}]))
    first = client.chat.completions.create(model="claude", messages=[{"role": "user", "content": "Weather in Paris?"}],
                                           tools=[WEATHER], tool_choice="auto")
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert (call.id, call.function.name, json.loads(call.function.arguments)) == ("tooluse_abc", "get_weather", {"city": "Paris"})
    sent = bedrock.calls("converse")[0].body
    assert sent["toolConfig"]["toolChoice"] == {"auto": {}}
    assert sent["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"]["required"] == ["city"]

    bedrock.script(Reply(text="It is 21°C in Paris."))
    second = client.chat.completions.create(model="claude", tools=[WEATHER], messages=[
        {"role": "user", "content": "Weather in Paris?"}, choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 21}'}])
    assert second.choices[0].message.content == "It is 21°C in Paris."
    messages = bedrock.calls("converse")[1].body["messages"]
    assert messages[1] == {"role": "assistant", "content": [
        {"toolUse": {"toolUseId": "tooluse_abc", "name": "get_weather", "input": {"city": "Paris"}}}]}
    assert messages[2] == {"role": "user", "content": [
        {"toolResult": {"toolUseId": "tooluse_abc", "content": [{"text": '{"temp_c": 21}'}]}}]}

    # the same call streamed: the SDK's chunks carry the call's id, name and arguments in pieces
    bedrock.script(Reply(text="Let me look.", stop_reason="tool_use", chunk_size=9, tool_uses=[
        {"toolUseId": "tooluse_def", "name": "get_weather", "input": {"city": "Nice"}}]))
    chunks = list(client.chat.completions.create(model="claude", messages=[{"role": "user", "content": "Nice?"}],
                                                 tools=[WEATHER], stream=True))
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or ())]
    assert calls[0].id == "tooluse_def" and calls[0].function.name == "get_weather"
    assert json.loads("".join(tc.function.arguments or "" for tc in calls)) == {"city": "Nice"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]


def test_images(gw, bedrock):
    reply = gw.client().chat.completions.create(model="claude", messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is in this image?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]}])
    assert reply.choices[0].message.content == "Hello from Bedrock."
    content = bedrock.calls("converse")[0].body["messages"][0]["content"]
    assert content[1] == {"image": {"format": "png", "source": {"bytes": PNG}}}
    assert base64.b64decode(content[1]["image"]["source"]["bytes"]).startswith(b"\x89PNG")
    resp = httpx.post(gw.url + "/v1/chat/completions", headers=ADMIN, json={"model": "claude", "messages": [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]})
    error = error_of(resp, 400)
    assert error["message"].startswith("BedrockException - messages.0.content.0: Bedrock takes images inline or from S3")
    assert len(bedrock.calls("converse")) == 1  # refused before anything was sent


@pytest.mark.parametrize("kind, status, etype", [
    ("ValidationException", 400, "invalid_request_error"),
    ("AccessDeniedException", 403, "permission_error"),
    ("ThrottlingException", 429, "rate_limit_error"),
    ("InternalServerException", 500, "api_error"),
    ("ServiceUnavailableException", 503, "service_unavailable"),
])
def test_errors_are_mapped_to_the_envelope(gw, bedrock, kind, status, etype):
    bedrock.script(aws_error(kind))
    resp = httpx.post(gw.url + "/v1/chat/completions", headers=ADMIN, json={"model": "claude", "messages": HI})
    error = error_of(resp, status)
    assert error["type"] == etype
    assert error["message"] == f"BedrockException - {ERRORS[kind][1]}"
    # the SDK sees the matching exception class
    bedrock.script(aws_error(kind))
    expected = {400: openai.BadRequestError, 403: openai.PermissionDeniedError, 429: openai.RateLimitError,
                500: openai.InternalServerError, 503: openai.InternalServerError}[status]
    with pytest.raises(expected):
        gw.client().chat.completions.create(model="claude", messages=HI)


def test_a_stream_refused_before_it_starts_and_one_failing_midway(gw, bedrock):
    bedrock.script(aws_error("ThrottlingException"))
    resp = httpx.post(gw.url + "/v1/chat/completions", headers=ADMIN,
                      json={"model": "claude", "messages": HI, "stream": True})
    assert error_of(resp, 429)["message"] == "BedrockException - Too many requests, please wait before trying again."
    bedrock.script(Reply(exception=("modelStreamErrorException", "The model stopped unexpectedly.")))
    with pytest.raises(openai.APIError) as caught:
        list(gw.client().chat.completions.create(model="claude", messages=HI, stream=True))
    assert "BedrockException - modelStreamErrorException: The model stopped unexpectedly." in str(caught.value)
    bedrock.script(Reply(text="cut short here", cut_after=3))
    with pytest.raises(openai.APIError) as caught:
        list(gw.client().chat.completions.create(model="claude", messages=HI, stream=True))
    assert "BedrockException - upstream closed the stream before it finished" in str(caught.value)


def test_a_wrong_secret_is_a_403_that_names_no_credential(gateway_server, bedrock):
    gw = gateway_server(config(entry(bedrock, aws_secret_access_key="wrong-secret-wrong-secret-wrong-secret1")))
    resp = httpx.post(gw.url + "/v1/chat/completions", headers=ADMIN, json={"model": "claude", "messages": HI})
    error = error_of(resp, 403)
    assert error["type"] == "authentication_error"
    assert error["message"].startswith("BedrockException - The request signature we calculated does not match")
    assert "wrong-secret" not in resp.text


def test_credentials_never_appear_in_logs_errors_or_spend_rows(gateway_server, bedrock, caplog):
    caplog.set_level(logging.DEBUG)  # the gateway's debug lines (headers, bodies) and botocore's, all of them
    env = {"BEDROCK_TEST_KEY_ID": SESSION_ACCESS_KEY, "BEDROCK_TEST_SECRET": SESSION_SECRET,
           "BEDROCK_TEST_TOKEN": SESSION_TOKEN}
    gw = gateway_server(config(entry(bedrock, aws_access_key_id="os.environ/BEDROCK_TEST_KEY_ID",
                                     aws_secret_access_key="os.environ/BEDROCK_TEST_SECRET",
                                     aws_session_token="os.environ/BEDROCK_TEST_TOKEN")), env=env)
    client = gw.client()
    texts = [client.chat.completions.create(model="claude", messages=HI).model_dump_json()]
    texts.append("".join(c.model_dump_json() for c in client.chat.completions.create(
        model="claude", messages=HI, stream=True, stream_options={"include_usage": True})))
    bedrock.script(aws_error("AccessDeniedException", f"User: arn:aws:sts::123:assumed-role/x is not authorized "
                                                      f"(token {SESSION_TOKEN})"))
    resp = httpx.post(gw.url + "/v1/chat/completions", headers=ADMIN, json={"model": "claude", "messages": HI})
    texts.append(error_of(resp, 403)["message"])
    assert "FwoG" in texts[-1]  # the echoed token, masked to its first characters
    texts.append(json.dumps(spend_rows(gw, 3)))
    texts.append(httpx.get(gw.url + "/model/info", headers=ADMIN).text)
    assert all(c.auth == "sigv4" and c.access_key == SESSION_ACCESS_KEY for c in bedrock.calls())
    assert any("POST Request Sent from gateway" in r.getMessage() for r in caplog.records)  # debug lines were on
    everything = "\n".join(texts) + "\n" + caplog.text
    for secret in (SESSION_SECRET, SESSION_TOKEN, SESSION_ACCESS_KEY):
        assert secret not in everything


def test_embeddings(gw, bedrock):
    client = gw.client()
    titan = client.embeddings.create(model="titan-embed", input="hello embedding world", dimensions=256)
    assert len(titan.data) == 1 and len(titan.data[0].embedding) == 256
    assert titan.usage.prompt_tokens == 3
    assert bedrock.calls("invoke")[0].body == {"inputText": "hello embedding world", "dimensions": 256}
    cohere = client.embeddings.create(model="cohere-embed", input=["first text", "second"])
    assert [d.index for d in cohere.data] == [0, 1]
    assert bedrock.calls("invoke")[1].body == {"texts": ["first text", "second"], "input_type": "search_document"}
    resp = httpx.post(gw.url + "/v1/embeddings", headers=ADMIN, json={"model": "titan-embed", "input": ["a", "b"]})
    assert "Titan embeds one text per call" in error_of(resp, 400)["message"]
    rows = sorted((r for r in spend_rows(gw, 3) if r["status"] == "success"), key=lambda r: r["model"])
    assert [r["call_type"] for r in rows] == ["aembedding", "aembedding"]
    titan, cohere_row = rows
    assert titan["model"] == "amazon.titan-embed-text-v2:0" and titan["prompt_tokens"] == 3
    assert not titan["metadata"].get("usage_estimated")
    # Cohere's count is only in a response header: the gateway estimated it, and says so
    assert cohere_row["model"] == "cohere.embed-english-v3" and cohere_row["prompt_tokens"] > 0
    assert cohere_row["metadata"].get("usage_estimated") is True


def test_bearer_api_key_and_converse_route_form(gateway_server, bedrock):
    gw = gateway_server(config({"model_name": "nova", "litellm_params": {
        "model": "bedrock/converse/us.amazon.nova-pro-v1:0", "api_key": "os.environ/BEDROCK_KEY",
        "aws_region_name": bedrock.region, "api_base": bedrock.url}}), env={"BEDROCK_KEY": BEARER_TOKEN})
    reply = gw.client().chat.completions.create(model="nova", messages=HI, reasoning_effort="low")
    assert reply.choices[0].message.content == "Hello from Bedrock." and reply.model == "us.amazon.nova-pro-v1:0"
    (call,) = bedrock.calls("converse")
    assert call.auth == "bearer" and call.model_id == "us.amazon.nova-pro-v1:0"
    assert call.body["additionalModelRequestFields"] == {"reasoningConfig": {"type": "enabled", "maxReasoningEffort": "low"}}


def test_deployment_defaults_and_thinking(gateway_server, bedrock):
    gw = gateway_server(config(entry(bedrock, max_tokens=300, temperature=0.1, reasoning_effort="low",
                                     guardrailConfig={"guardrailIdentifier": "gr-1", "guardrailVersion": "DRAFT"})))
    bedrock.script(Reply(text="Answer.", reasoning="Thinking it over.", signature="sig-xyz"))
    reply = gw.client().chat.completions.create(model="claude", messages=HI, temperature=1.0)
    message = reply.choices[0].message
    assert message.content == "Answer."
    assert message.model_extra["reasoning_content"] == "Thinking it over."
    assert message.model_extra["thinking_blocks"] == [{"type": "thinking", "thinking": "Thinking it over.",
                                                       "signature": "sig-xyz"}]
    body = bedrock.calls("converse")[0].body
    assert body["inferenceConfig"] == {"maxTokens": 300, "temperature": 1.0}  # the request's own value wins
    assert body["additionalModelRequestFields"] == {"thinking": {"type": "enabled", "budget_tokens": 1024}}
    assert body["guardrailConfig"] == {"guardrailIdentifier": "gr-1", "guardrailVersion": "DRAFT"}


def test_credentials_that_appear_after_start_up_are_found_without_a_restart(gateway_server, bedrock, monkeypatch):
    from gateway_plugin_bedrock import aws

    monkeypatch.setattr(aws, "SEARCH_EVERY_S", 0.2)
    cfg = config({"model_name": "claude", "litellm_params": {
        "model": f"bedrock/{MODEL}", "aws_region_name": bedrock.region, "api_base": bedrock.url}})
    cfg["plugins"] = [{"name": "bedrock", "config": {"bedrock_credentials_check_s": 0.1}}]
    gw = gateway_server(cfg, process=False)
    resp = httpx.post(gw.url + "/v1/chat/completions", headers=ADMIN, json={"model": "claude", "messages": HI})
    assert "no AWS credentials found from the default chain" in error_of(resp, 500)["message"]
    assert bedrock.calls() == []
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)  # the gateway runs in this process: it sees these
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    deadline = time.monotonic() + 10
    while True:
        resp = httpx.post(gw.url + "/v1/chat/completions", headers=ADMIN, json={"model": "claude", "messages": HI})
        if resp.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert resp.status_code == 200, resp.text
    assert bedrock.calls("converse")[-1].access_key == ACCESS_KEY


def test_a_deployment_that_cannot_work_stops_start_up_naming_the_key(gateway_server, bedrock):
    cfg = config({"model_name": "claude", "litellm_params": {
        "model": f"bedrock/{MODEL}", "aws_region_name": bedrock.region, "aws_profile_name": "no-such-profile"}})
    with pytest.raises(ValueError) as caught:  # the `gateway` command prints it as `gateway: error: ...`
        gateway_server(cfg, process=False)
    assert "model_list.0.litellm_params: aws_profile_name 'no-such-profile' is not a profile" in str(caught.value)
