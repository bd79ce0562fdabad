"""The fake Bedrock checked against the official SDK: boto3's `bedrock-runtime` client talks to it,
signs as AWS requires, and parses every reply, event and error it sends. If the fake drifted from
the real protocol (framing, CRCs, headers, shapes, error types, signature rules), these fail."""

from __future__ import annotations

import base64

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EventStreamError

from bedrock_peer import ACCESS_KEY, SECRET_KEY, SESSION_ACCESS_KEY, SESSION_SECRET, SESSION_TOKEN, Reply, aws_error

MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
TOOL = {"toolSpec": {"name": "get_weather", "description": "Weather in a city",
                     "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}},
                                              "required": ["city"]}}}}


_open: list = []


def client(peer, key=ACCESS_KEY, secret=SECRET_KEY, token=None, region=None, service="bedrock-runtime"):
    made = boto3.client(service, endpoint_url=peer.url, region_name=region or peer.region,
                        aws_access_key_id=key, aws_secret_access_key=secret, aws_session_token=token,
                        config=Config(retries={"mode": "standard", "total_max_attempts": 1}))
    _open.append(made)
    return made


@pytest.fixture(autouse=True)
def _close_clients():
    yield
    while _open:
        _open.pop().close()


def test_converse_plain(bedrock):
    reply = client(bedrock).converse(modelId=MODEL, system=[{"text": "Be brief."}],
                                     messages=[{"role": "user", "content": [{"text": "Hi"}]}],
                                     inferenceConfig={"maxTokens": 50, "temperature": 0.2})
    assert reply["output"]["message"] == {"role": "assistant", "content": [{"text": "Hello from Bedrock."}]}
    assert reply["stopReason"] == "end_turn"
    assert reply["usage"] == {"inputTokens": 25, "outputTokens": 3, "totalTokens": 28}
    assert reply["metrics"]["latencyMs"] == 321
    (call,) = bedrock.calls("converse")
    assert call.model_id == MODEL and call.auth == "sigv4" and call.access_key == ACCESS_KEY
    assert "%3A" in call.raw_path  # boto3 escapes the model id's ':' in the path
    assert call.body["inferenceConfig"] == {"maxTokens": 50, "temperature": 0.2}


def test_converse_with_tools_and_an_image(bedrock):
    bedrock.script(Reply(text="", stop_reason="tool_use",
                         tool_uses=[{"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris"}}]))
    image = base64.b64decode(b"iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
    rt = client(bedrock)
    reply = rt.converse(modelId=MODEL, toolConfig={"tools": [TOOL], "toolChoice": {"auto": {}}},
                        messages=[{"role": "user", "content": [
                            {"text": "Weather in Paris? And what is this?"},
                            {"image": {"format": "png", "source": {"bytes": image}}}]}])
    assert reply["stopReason"] == "tool_use"
    (use,) = [b["toolUse"] for b in reply["output"]["message"]["content"] if "toolUse" in b]
    assert use == {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris"}}
    sent = bedrock.calls("converse")[0].body
    assert sent["messages"][0]["content"][1]["image"]["source"]["bytes"] == base64.b64encode(image).decode()
    # the tool result round trip
    reply = rt.converse(modelId=MODEL, toolConfig={"tools": [TOOL]}, messages=[
        {"role": "user", "content": [{"text": "Weather in Paris?"}]},
        {"role": "assistant", "content": [{"toolUse": use}]},
        {"role": "user", "content": [{"toolResult": {"toolUseId": "tooluse_1", "content": [{"json": {"temp_c": 21}}]}}]},
    ])
    assert reply["output"]["message"]["content"] == [{"text": "Hello from Bedrock."}]


def test_converse_stream_every_event_parses(bedrock):
    bedrock.script(Reply(text="Sunny and warm.", reasoning="Let me think.", signature="sig-123",
                         tool_uses=[{"toolUseId": "tooluse_2", "name": "get_weather", "input": {"city": "Nice"}}],
                         stop_reason="tool_use", cache_read=7, cache_write=3, chunk_size=7))
    reply = client(bedrock).converse_stream(modelId=MODEL, toolConfig={"tools": [TOOL]},
                                            messages=[{"role": "user", "content": [{"text": "Hi"}]}])
    events = list(reply["stream"])
    reply["stream"].close()
    kinds = [next(iter(e)) for e in events]
    assert kinds[0] == "messageStart" and kinds[-2:] == ["messageStop", "metadata"]
    text = "".join(e["contentBlockDelta"]["delta"].get("text", "") for e in events if "contentBlockDelta" in e)
    assert text == "Sunny and warm."
    reasoning = [e["contentBlockDelta"]["delta"]["reasoningContent"] for e in events
                 if "reasoningContent" in e.get("contentBlockDelta", {}).get("delta", {})]
    assert "".join(r.get("text", "") for r in reasoning) == "Letmethink." and reasoning[-1] == {"signature": "sig-123"}
    starts = [e["contentBlockStart"] for e in events if "contentBlockStart" in e]
    assert starts == [{"start": {"toolUse": {"toolUseId": "tooluse_2", "name": "get_weather"}}, "contentBlockIndex": 2}]
    args = "".join(e["contentBlockDelta"]["delta"]["toolUse"]["input"] for e in events
                   if "toolUse" in e.get("contentBlockDelta", {}).get("delta", {}))
    assert args == '{"city": "Nice"}'
    assert events[-2]["messageStop"] == {"stopReason": "tool_use"}
    assert events[-1]["metadata"]["usage"] == {"inputTokens": 25, "outputTokens": 4, "totalTokens": 39,
                                               "cacheReadInputTokens": 7, "cacheWriteInputTokens": 3}


def test_stream_exceptions_are_the_sdks_exceptions(bedrock):
    bedrock.script(Reply(exception=("throttlingException", "Too many tokens, please wait.")))
    reply = client(bedrock).converse_stream(modelId=MODEL, messages=[{"role": "user", "content": [{"text": "Hi"}]}])
    try:
        with pytest.raises(EventStreamError) as caught:
            list(reply["stream"])
    finally:
        reply["stream"].close()  # the connection goes back (or away) with the stream
    assert caught.value.response["Error"] == {"Code": "throttlingException", "Message": "Too many tokens, please wait."}


@pytest.mark.parametrize("kind", ["ValidationException", "AccessDeniedException", "ThrottlingException",
                                  "ModelNotReadyException", "InternalServerException", "ServiceUnavailableException"])
def test_errors_are_the_sdks_modeled_exceptions(bedrock, kind):
    bedrock.script(aws_error(kind))
    rt = client(bedrock)
    with pytest.raises(ClientError) as caught:
        rt.converse(modelId=MODEL, messages=[{"role": "user", "content": [{"text": "Hi"}]}])
    error = caught.value
    assert error.response["Error"]["Code"] == kind
    assert isinstance(error, getattr(rt.exceptions, kind))  # boto3 picked the modeled class from the header


def test_the_fake_validates_bodies_as_bedrock_does(bedrock):
    rt = client(bedrock)
    with pytest.raises(ClientError, match="must start with a user message"):
        rt.converse(modelId=MODEL, messages=[{"role": "assistant", "content": [{"text": "Hi"}]}])
    with pytest.raises(ClientError, match="is blank"):
        rt.converse(modelId=MODEL, messages=[{"role": "user", "content": [{"text": "  "}]}])
    with pytest.raises(ClientError, match="toolConfig field must be defined"):
        rt.converse(modelId=MODEL, messages=[
            {"role": "user", "content": [{"text": "Hi"}]},
            {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "f", "input": {}}}]},
            {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "x"}]}}]}])


def test_signatures_are_verified(bedrock):
    with pytest.raises(ClientError) as caught:
        client(bedrock, secret=SECRET_KEY[:-1] + "X").converse(
            modelId=MODEL, messages=[{"role": "user", "content": [{"text": "Hi"}]}])
    assert caught.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    with pytest.raises(ClientError) as caught:
        client(bedrock, key="AKIAUNKNOWNKEY000000").converse(
            modelId=MODEL, messages=[{"role": "user", "content": [{"text": "Hi"}]}])
    assert caught.value.response["Error"]["Code"] == "UnrecognizedClientException"
    with pytest.raises(ClientError) as caught:
        client(bedrock, region="us-east-1").converse(modelId=MODEL, messages=[{"role": "user", "content": [{"text": "Hi"}]}])
    assert caught.value.response["Error"]["Code"] == "InvalidSignatureException"
    # temporary credentials: the session token must be sent, and signed
    ok = client(bedrock, key=SESSION_ACCESS_KEY, secret=SESSION_SECRET, token=SESSION_TOKEN).converse(
        modelId=MODEL, messages=[{"role": "user", "content": [{"text": "Hi"}]}])
    assert ok["stopReason"] == "end_turn"
    with pytest.raises(ClientError) as caught:
        client(bedrock, key=SESSION_ACCESS_KEY, secret=SESSION_SECRET).converse(
            modelId=MODEL, messages=[{"role": "user", "content": [{"text": "Hi"}]}])
    assert caught.value.response["Error"]["Code"] == "UnrecognizedClientException"


def test_assume_role_through_the_fake_sts(bedrock):
    sts = client(bedrock, service="sts")
    creds = sts.assume_role(RoleArn="arn:aws:iam::123456789012:role/bedrock", RoleSessionName="s1")["Credentials"]
    rt = client(bedrock, key=creds["AccessKeyId"], secret=creds["SecretAccessKey"], token=creds["SessionToken"])
    assert rt.converse(modelId=MODEL, messages=[{"role": "user", "content": [{"text": "Hi"}]}])["stopReason"] == "end_turn"


def test_embeddings_through_invoke_model(bedrock):
    import json

    rt = client(bedrock)
    titan = json.loads(rt.invoke_model(modelId="amazon.titan-embed-text-v2:0",
                                       body=json.dumps({"inputText": "hello world", "dimensions": 256}))["body"].read())
    assert len(titan["embedding"]) == 256 and titan["inputTextTokenCount"] == 2
    cohere = json.loads(rt.invoke_model(modelId="cohere.embed-english-v3",
                                        body=json.dumps({"texts": ["a", "b"], "input_type": "search_query"}))["body"].read())
    assert len(cohere["embeddings"]) == 2
