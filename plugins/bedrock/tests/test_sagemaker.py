"""End to end: the official `openai` SDK talks to a real gateway, which calls the fake SageMaker
runtime (tests/sagemaker_peer.py) on loopback, signed for `sagemaker`. The configs are the ones
LiteLLM users write: `model: sagemaker/<endpoint>` (TGI format) and `sagemaker_chat/<endpoint>`
(Messages API) with `aws_region_name` and keys, plus `api_base` pointing at the fake. No
`callbacks` entry: the prefix switches the plugin on."""

from __future__ import annotations

import json
import logging
import math
import time
from typing import Any

import httpx
import openai
import pytest

from bedrock_peer import ACCESS_KEY, SECRET_KEY, SESSION_ACCESS_KEY, SESSION_SECRET, SESSION_TOKEN
from sagemaker_peer import SmReply, sm_error

ADMIN = {"Authorization": "Bearer sk-1234"}
TGI = "jumpstart-dft-hf-llm-falcon-7b-bf16"
CHAT = "my-tgi-messages-endpoint"
EMBED = "hf-embedding-bge-small"
IN_PRICE, OUT_PRICE = 1e-06, 2e-06
HI = [{"role": "user", "content": "Hello there"}]


def entry(peer: Any, name: str, model: str, **params: Any) -> dict[str, Any]:
    return {"model_name": name, "litellm_params": {
        "model": model, "aws_region_name": peer.region, "aws_access_key_id": ACCESS_KEY,
        "aws_secret_access_key": SECRET_KEY, "api_base": peer.url,
        "input_cost_per_token": IN_PRICE, "output_cost_per_token": OUT_PRICE, **params}}


def config(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"model_list": list(entries), "router_settings": {"num_retries": 0},
            "general_settings": {"spend_flush_interval_s": 0.05}}


@pytest.fixture
def gw(gateway_server, sagemaker):
    return gateway_server(config(
        entry(sagemaker, "falcon", f"sagemaker/{TGI}"),
        entry(sagemaker, "llama3", "sagemaker/my-endpoint", hf_model_name="meta-llama/Meta-Llama-3-8B-Instruct",
              model_id="llama3-component"),
        entry(sagemaker, "chat", f"sagemaker_chat/{CHAT}"),
        entry(sagemaker, "embed", f"sagemaker/{EMBED}"),
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
    return body["error"]


def post(gw: Any, model: str, **body: Any) -> httpx.Response:
    return httpx.post(gw.url + "/v1/chat/completions", headers=ADMIN, json={"model": model, "messages": HI, **body},
                      timeout=30)


def test_switched_on_by_the_prefix_and_tgi_chat(gw, sagemaker):
    plugins = httpx.get(gw.url + "/plugins", headers=ADMIN).json()
    (slot,) = [p for p in plugins["enabled"] if p["name"] == "bedrock"]
    assert slot["enabled_by"] == "model_list prefix sagemaker/" and slot["distribution"] == "gateway-plugin-bedrock"
    reply = gw.client().chat.completions.create(model="falcon", messages=[
        {"role": "system", "content": "Be brief."}, *HI], max_tokens=64, temperature=0, stop="\nUser:")
    assert reply.choices[0].message.content == "Hello from SageMaker."
    assert reply.choices[0].finish_reason == "stop" and reply.object == "chat.completion" and reply.model == TGI
    (call,) = sagemaker.calls("invocations")
    prompt = "System: Be brief.\nUser: Hello there\nAssistant:"
    assert call.auth == "sigv4" and call.access_key == ACCESS_KEY and call.model_id == TGI
    assert call.body == {"inputs": prompt, "parameters": {"max_new_tokens": 64, "temperature": 0.01, "stop": ["\nUser:"]}}
    assert "authorization" in call.headers and "stream" not in call.body
    # no counts from the endpoint: both estimated, four characters a token
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (math.ceil(len(prompt) / 4), 6)
    (row,) = spend_rows(gw, 1)
    assert row["status"] == "success" and row["model"] == TGI and row["api_base"] == sagemaker.url
    assert (row["prompt_tokens"], row["completion_tokens"]) == (reply.usage.prompt_tokens, 6)
    assert row["spend"] == pytest.approx(reply.usage.prompt_tokens * IN_PRICE + 6 * OUT_PRICE)
    info = httpx.get(gw.url + "/model/info", headers=ADMIN).json()["data"]
    assert [d["litellm_params"]["api_base"] for d in info if d["model_name"] == "falcon"] == [sagemaker.url]


def test_a_lone_user_message_goes_as_it_is_and_details_give_exact_counts(gw, sagemaker):
    reply = gw.client().chat.completions.create(model="falcon", messages=HI, extra_body={"details": True})
    assert sagemaker.calls("invocations")[0].body == {"inputs": "Hello there", "parameters": {"details": True}}
    assert reply.usage.completion_tokens == 4  # the endpoint's generated_tokens
    sagemaker.script(SmReply(finish_reason="length"))
    reply = gw.client().chat.completions.create(model="falcon", messages=HI, extra_body={"details": True})
    assert reply.choices[0].finish_reason == "length"


def test_template_from_hf_model_name_and_the_inference_component(gw, sagemaker):
    gw.client().chat.completions.create(model="llama3", messages=[{"role": "system", "content": "Be brief."}, *HI,
                                                                  {"role": "assistant", "content": "Hi!"},
                                                                  {"role": "user", "content": "Bye"}])
    (call,) = sagemaker.calls("invocations")
    assert call.model_id == "my-endpoint" and call.headers["x-amzn-sagemaker-inference-component"] == "llama3-component"
    assert "x-amzn-sagemaker-inference-component" in call.headers["authorization"]  # signed with the rest
    assert call.body["inputs"] == (
        "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHello there<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHi!<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_custom_roles_template(gateway_server, sagemaker):
    roles = {"system": {"pre_message": "<|im_start|>system\n", "post_message": "<|im_end|>\n"},
             "user": {"pre_message": "<|im_start|>user\n", "post_message": "<|im_end|>\n"},
             "assistant": {"pre_message": "<|im_start|>assistant\n", "post_message": "<|im_end|>\n"}}
    gw = gateway_server(config(entry(sagemaker, "qwen", "sagemaker/qwen-endpoint", roles=roles,
                                     final_prompt_value="<|im_start|>assistant\n", repetition_penalty=1.1)))
    gw.client().chat.completions.create(model="qwen", messages=HI, top_p=0.9)
    body = sagemaker.calls("invocations")[0].body
    assert body["inputs"] == "<|im_start|>user\nHello there<|im_end|>\n<|im_start|>assistant\n"
    assert body["parameters"] == {"top_p": 0.9, "repetition_penalty": 1.1}


@pytest.mark.parametrize("part_size", [None, 5])
def test_tgi_stream_with_usage_is_billed(gw, sagemaker, part_size):
    sagemaker.script(SmReply(text="Streaming from SageMaker works.", part_size=part_size, chunk_size=11))
    chunks = list(gw.client().chat.completions.create(model="falcon", messages=HI, stream=True,
                                                      stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Streaming from SageMaker works."
    assert "</s>" not in json.dumps([c.model_dump() for c in chunks])  # the special EOS token is not text
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    prompt_tokens = math.ceil(len("Hello there") / 4)
    assert chunks[-1].choices == [] and (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (prompt_tokens, 5)
    (call,) = sagemaker.calls("invocations-response-stream")
    assert call.body == {"inputs": "Hello there", "parameters": {}, "stream": True}
    (row,) = spend_rows(gw, 1)
    assert row["status"] == "success" and (row["prompt_tokens"], row["completion_tokens"]) == (prompt_tokens, 5)
    assert row["spend"] == pytest.approx(prompt_tokens * IN_PRICE + 5 * OUT_PRICE)


def test_json_lines_stream_without_a_final_event(gw, sagemaker):
    sagemaker.script(SmReply(text="LMI says hi", lines="lmi", part_size=4))
    chunks = list(gw.client().chat.completions.create(model="falcon", messages=HI, stream=True,
                                                      stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "LMI says hi"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].usage.completion_tokens == 3  # one token per event


def test_sagemaker_chat_messages_api(gw, sagemaker):
    client = gw.client()
    reply = client.chat.completions.create(model="chat", messages=HI, max_tokens=30)
    assert reply.choices[0].message.content == "Hello from SageMaker."
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (12, 3)
    (call,) = sagemaker.calls("invocations")
    assert call.model_id == CHAT and call.body == {"model": CHAT, "messages": HI, "max_tokens": 30}
    sagemaker.script(SmReply(text="A streamed chat reply.", part_size=9))
    chunks = list(client.chat.completions.create(model="chat", messages=HI, stream=True,
                                                 stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "A streamed chat reply."
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 4
    sent = sagemaker.calls("invocations-response-stream")[0].body
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    rows = spend_rows(gw, 2)
    assert sorted((r["prompt_tokens"], r["completion_tokens"]) for r in rows) == [(12, 3), (12, 4)]
    assert all(not r["metadata"].get("usage_estimated") for r in rows)


def test_embeddings(gw, sagemaker):
    reply = gw.client().embeddings.create(model="embed", input=["first text", "second"])
    assert [d.index for d in reply.data] == [0, 1] and reply.data[1].embedding == [0.5, -0.25, 1.0]
    assert sagemaker.calls("invocations")[0].body == {"inputs": ["first text", "second"]}
    sagemaker.script(SmReply(embeddings=[[0.1, 0.2]], wrapped=True))
    reply = gw.client().embeddings.create(model="embed", input="one")
    assert [d.embedding for d in reply.data] == [[0.1, 0.2]] and reply.usage.prompt_tokens == 1


@pytest.mark.parametrize("reply, status, etype, message", [
    (sm_error("ValidationError", f"Endpoint {TGI} of account 123456789012 not found.", 400), 400,
     "invalid_request_error", f"Endpoint {TGI} of account 123456789012 not found."),
    (sm_error("ModelError", "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 2048.", 424, 422),
     424, "invalid_request_error", "Received client error (422) from primary with message \"Input validation error"),
    (sm_error("ModelError", "CUDA out of memory", 424, 500), 424, "api_error", "Received client error (500)"),
    (sm_error("ThrottlingException", "Rate exceeded", 429), 429, "rate_limit_error", "Rate exceeded"),
    (sm_error("InternalFailure", "An internal error occurred.", 500), 500, "api_error", "An internal error occurred."),
    (sm_error("ServiceUnavailable", "Service is unavailable.", 503), 503, "service_unavailable", "Service is unavailable."),
])
def test_errors_are_mapped_to_the_envelope(gw, sagemaker, reply, status, etype, message):
    sagemaker.script(reply)
    error = error_of(post(gw, "falcon"), status)
    assert error["type"] == etype and error["message"].startswith(f"SagemakerException - {message}")
    sagemaker.script(reply)
    expected = {400: openai.BadRequestError, 424: openai.APIStatusError, 429: openai.RateLimitError,
                500: openai.InternalServerError, 503: openai.InternalServerError}[status]
    with pytest.raises(expected):
        gw.client().chat.completions.create(model="chat", messages=HI)


def test_requests_the_format_cannot_carry_are_refused_before_sending(gw, sagemaker):
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    error = error_of(post(gw, "falcon", tools=[tool]), 400)
    assert error["message"].startswith("SagemakerException - tools are not supported by a sagemaker/ endpoint")
    image = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]
    assert "takes text only" in error_of(post(gw, "falcon", messages=image), 400)["message"]
    assert sagemaker.calls() == []


def test_streams_refused_before_they_start_and_failing_midway(gw, sagemaker):
    sagemaker.script(sm_error("ModelError", "bad input", 424, 400))
    resp = post(gw, "falcon", stream=True)
    assert error_of(resp, 424)["message"].startswith("SagemakerException - Received client error (400)")
    cases = [
        (SmReply(exception=("ModelStreamError", "The model stopped unexpectedly.")),
         "SagemakerException - ModelStreamError: The model stopped unexpectedly."),
        (SmReply(exception=("InternalStreamFailure", "Internal stream failure.")),
         "SagemakerException - InternalStreamFailure: Internal stream failure."),
        (SmReply(container_error="Request failed during generation: CUDA out of memory"),
         "SagemakerException - generation: Request failed during generation: CUDA out of memory"),
        (SmReply(cut_after=2, cut_bytes=20), "SagemakerException - SageMaker closed the stream in the middle of an event"),
    ]
    for reply, message in cases:
        sagemaker.script(reply)
        with pytest.raises(openai.APIError) as caught:
            list(gw.client().chat.completions.create(model="falcon", messages=HI, stream=True))
        assert message in str(caught.value)
    sagemaker.script(SmReply(exception=("ModelStreamError", "Chat model stopped.")))
    with pytest.raises(openai.APIError, match="ModelStreamError: Chat model stopped."):
        list(gw.client().chat.completions.create(model="chat", messages=HI, stream=True))


def test_a_wrong_secret_is_a_403_that_names_no_credential(gateway_server, sagemaker):
    gw = gateway_server(config(entry(sagemaker, "falcon", f"sagemaker/{TGI}",
                                     aws_secret_access_key="wrong-secret-wrong-secret-wrong-secret1")))
    error = error_of(post(gw, "falcon"), 403)
    assert error["type"] == "authentication_error"
    assert error["message"].startswith("SagemakerException - The request signature we calculated does not match")
    assert "wrong-secret" not in json.dumps(error)


def test_credentials_never_appear_in_logs_errors_or_spend_rows(gateway_server, sagemaker, caplog):
    caplog.set_level(logging.DEBUG)
    env = {"SM_TEST_KEY_ID": SESSION_ACCESS_KEY, "SM_TEST_SECRET": SESSION_SECRET, "SM_TEST_TOKEN": SESSION_TOKEN}
    creds = {"aws_access_key_id": "os.environ/SM_TEST_KEY_ID", "aws_secret_access_key": "os.environ/SM_TEST_SECRET",
             "aws_session_token": "os.environ/SM_TEST_TOKEN"}
    gw = gateway_server(config(entry(sagemaker, "falcon", f"sagemaker/{TGI}", **creds),
                               entry(sagemaker, "chat", f"sagemaker_chat/{CHAT}", **creds)), env=env)
    client = gw.client()
    texts = [client.chat.completions.create(model="falcon", messages=HI).model_dump_json()]
    texts.append("".join(c.model_dump_json() for c in client.chat.completions.create(
        model="chat", messages=HI, stream=True, stream_options={"include_usage": True})))
    sagemaker.script(sm_error("AccessDeniedException", f"not authorized (token {SESSION_TOKEN})", 403))
    texts.append(error_of(post(gw, "falcon"), 403)["message"])
    assert "FwoG" in texts[-1]  # the echoed token, masked to its first characters
    texts.append(json.dumps(spend_rows(gw, 3)))
    texts.append(httpx.get(gw.url + "/model/info", headers=ADMIN).text)
    assert all(c.auth == "sigv4" and c.access_key == SESSION_ACCESS_KEY for c in sagemaker.calls())
    assert any("POST Request Sent from gateway" in r.getMessage() for r in caplog.records)
    everything = "\n".join(texts) + "\n" + caplog.text
    for secret in (SESSION_SECRET, SESSION_TOKEN, SESSION_ACCESS_KEY):
        assert secret not in everything


def test_an_assumed_role_and_a_full_url(gateway_server, sagemaker):
    gw = gateway_server(config(
        entry(sagemaker, "role", f"sagemaker/{TGI}", aws_role_name="arn:aws:iam::123456789012:role/sm-caller",
              aws_sts_endpoint=sagemaker.url),
        entry(sagemaker, "full", "sagemaker/other-endpoint",
              sagemaker_base_url=f"{sagemaker.url}/endpoints/routed-endpoint/invocations")))
    assert gw.client().chat.completions.create(model="role", messages=HI).choices[0].message.content
    (assumed,) = sagemaker.sts_issued
    assert sagemaker.calls("invocations")[-1].access_key == assumed
    gw.client().chat.completions.create(model="full", messages=HI)
    assert sagemaker.calls("invocations")[-1].model_id == "routed-endpoint"


def test_a_deployment_that_cannot_work_stops_start_up_naming_the_key(gateway_server, sagemaker):
    with pytest.raises(ValueError) as caught:
        gateway_server(config(entry(sagemaker, "bad", "sagemaker/not_an_endpoint!")), process=False)
    assert ("model_list.0.litellm_params: 'not_an_endpoint!' is not a SageMaker endpoint name" in str(caught.value))
    with pytest.raises(ValueError) as caught:
        gateway_server(config({"model_name": "c", "litellm_params": {
            "model": f"sagemaker_chat/{CHAT}", "aws_region_name": sagemaker.region,
            "aws_profile_name": "no-such-profile"}}), process=False)
    assert "aws_profile_name 'no-such-profile' is not a profile" in str(caught.value)


def test_usage_in_a_gateway_of_its_own_process(gateway_server, sagemaker):
    """The `gateway` command (not the in-process test server) reports the same usage."""
    gw = gateway_server(config(entry(sagemaker, "falcon", f"sagemaker/{TGI}")), process=True)
    reply = gw.client().chat.completions.create(model="falcon", messages=HI)
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (3, 6)
    chunks = list(gw.client().chat.completions.create(model="falcon", messages=HI, stream=True,
                                                      stream_options={"include_usage": True}))
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (3, 4)
