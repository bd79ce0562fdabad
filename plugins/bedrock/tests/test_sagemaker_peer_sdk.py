"""The fake SageMaker runtime checked against the official SDK: boto3's `sagemaker-runtime` client
talks to it, signs as AWS requires, and parses every reply, event and error it sends. If the fake
drifted from the real protocol (paths, signing name, framing, CRCs, event and exception shapes,
error types), these fail."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EventStreamError

from bedrock_peer import ACCESS_KEY, SECRET_KEY, SESSION_ACCESS_KEY, SESSION_SECRET, SESSION_TOKEN
from sagemaker_peer import SmReply, sm_error

ENDPOINT = "jumpstart-dft-hf-llm-mistral-7b-instruct"
_open: list = []


def client(peer, key=ACCESS_KEY, secret=SECRET_KEY, token=None, region=None):
    made = boto3.client("sagemaker-runtime", endpoint_url=peer.url, region_name=region or peer.region,
                        aws_access_key_id=key, aws_secret_access_key=secret, aws_session_token=token,
                        config=Config(retries={"mode": "standard", "total_max_attempts": 1}))
    _open.append(made)
    return made


@pytest.fixture(autouse=True)
def _close_clients():
    yield
    while _open:
        _open.pop().close()


def tgi(prompt="Hello", **params):
    return json.dumps({"inputs": prompt, "parameters": params})


def events(reply):
    parts, other = [], []
    try:
        for event in reply["Body"]:
            (parts if "PayloadPart" in event else other).append(event)
    finally:
        reply["Body"].close()
    return b"".join(e["PayloadPart"]["Bytes"] for e in parts), other


def test_invoke_endpoint_tgi(sagemaker):
    reply = client(sagemaker).invoke_endpoint(EndpointName=ENDPOINT, ContentType="application/json",
                                              Accept="application/json", Body=tgi(max_new_tokens=20, details=True))
    assert reply["ContentType"] == "application/json"
    body = json.loads(reply["Body"].read())
    assert body[0]["generated_text"] == "Hello from SageMaker."
    assert body[0]["details"]["finish_reason"] == "eos_token" and body[0]["details"]["generated_tokens"] == 4
    (call,) = sagemaker.calls("invocations")
    assert call.model_id == ENDPOINT and call.auth == "sigv4" and call.access_key == ACCESS_KEY
    assert call.body == {"inputs": "Hello", "parameters": {"max_new_tokens": 20, "details": True}}


def test_inference_component_header_and_session_credentials(sagemaker):
    rt = client(sagemaker, SESSION_ACCESS_KEY, SESSION_SECRET, SESSION_TOKEN)
    rt.invoke_endpoint(EndpointName=ENDPOINT, ContentType="application/json", Body=tgi(),
                       InferenceComponentName="my-component")
    (call,) = sagemaker.calls("invocations")
    assert call.access_key == SESSION_ACCESS_KEY and call.headers["x-amzn-sagemaker-inference-component"] == "my-component"


@pytest.mark.parametrize("part_size", [None, 7])
def test_stream_tgi(sagemaker, part_size):
    sagemaker.script(SmReply(text="Streaming from SageMaker works.", part_size=part_size, chunk_size=13))
    reply = client(sagemaker).invoke_endpoint_with_response_stream(
        EndpointName=ENDPOINT, ContentType="application/json", Body=json.dumps({"inputs": "Hi", "stream": True}))
    raw, other = events(reply)
    assert other == []
    lines = [json.loads(line[5:]) for line in raw.decode().split("\n\n") if line]
    assert "".join(e["token"]["text"] for e in lines if not e["token"]["special"]) == "Streaming from SageMaker works."
    assert lines[-1]["details"] == {"finish_reason": "eos_token", "generated_tokens": 5, "seed": None}
    assert sagemaker.calls("invocations-response-stream")[0].body["stream"] is True


def test_stream_messages_api(sagemaker):
    body = {"model": ENDPOINT, "messages": [{"role": "user", "content": "Hi"}], "stream": True,
            "stream_options": {"include_usage": True}}
    reply = client(sagemaker).invoke_endpoint_with_response_stream(
        EndpointName=ENDPOINT, ContentType="application/json", Body=json.dumps(body))
    raw, _ = events(reply)
    chunks = [line[6:] for line in raw.decode().split("\n\n") if line]
    assert chunks[-1] == "[DONE]"
    parsed = [json.loads(c) for c in chunks[:-1]]
    assert "".join(c["choices"][0]["delta"]["content"] for c in parsed if c["choices"]) == "Hello from SageMaker."
    assert parsed[-1]["choices"] == [] and parsed[-1]["usage"]["completion_tokens"] == 3


@pytest.mark.parametrize("kind", ["ModelStreamError", "InternalStreamFailure"])
def test_stream_exceptions(sagemaker, kind):
    sagemaker.script(SmReply(exception=(kind, "The model stopped.")))
    reply = client(sagemaker).invoke_endpoint_with_response_stream(
        EndpointName=ENDPOINT, ContentType="application/json", Body=json.dumps({"inputs": "Hi", "stream": True}))
    with pytest.raises(EventStreamError) as caught:
        events(reply)
    assert caught.value.response["Error"] == {"Code": kind, "Message": "The model stopped."}


def test_modeled_errors(sagemaker):
    rt = client(sagemaker)
    sagemaker.script(sm_error("ModelError", "Input validation error: `inputs` must have less than 4096 tokens.", 424,
                              original_status=422))
    with pytest.raises(rt.exceptions.ModelError) as caught:
        rt.invoke_endpoint(EndpointName=ENDPOINT, ContentType="application/json", Body=tgi())
    error = caught.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert error["OriginalStatusCode"] == 422 and "4096 tokens" in error["OriginalMessage"]
    assert error["Error"]["Message"].startswith("Received client error (422) from primary")
    sagemaker.script(sm_error("ValidationError", f"Endpoint {ENDPOINT} of account 123456789012 not found.", 400))
    with pytest.raises(rt.exceptions.ValidationError, match="not found"):
        rt.invoke_endpoint(EndpointName=ENDPOINT, ContentType="application/json", Body=tgi())
    sagemaker.script(sm_error("ServiceUnavailable", "Service is unavailable.", 503))
    with pytest.raises(rt.exceptions.ServiceUnavailable):
        rt.invoke_endpoint(EndpointName=ENDPOINT, ContentType="application/json", Body=tgi())


def test_the_container_refuses_a_bad_body_as_a_model_error(sagemaker):
    rt = client(sagemaker)
    with pytest.raises(rt.exceptions.ModelError) as caught:
        rt.invoke_endpoint(EndpointName=ENDPOINT, ContentType="application/json", Body=tgi(temperature=0))
    assert caught.value.response["OriginalStatusCode"] == 422
    assert "`temperature` must be strictly positive" in caught.value.response["OriginalMessage"]


def test_signature_refusals(sagemaker):
    with pytest.raises(ClientError) as caught:
        client(sagemaker, secret="wrong-secret-0123456789").invoke_endpoint(
            EndpointName=ENDPOINT, ContentType="application/json", Body=tgi())
    assert caught.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    with pytest.raises(ClientError) as caught:
        client(sagemaker, region="us-east-1").invoke_endpoint(EndpointName=ENDPOINT, ContentType="application/json",
                                                              Body=tgi())
    assert "scoped to a valid region" in caught.value.response["Error"]["Message"]
    assert [c.auth for c in sagemaker.calls()] == ["denied", "denied"]
