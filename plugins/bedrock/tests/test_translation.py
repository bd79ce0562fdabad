"""OpenAI <-> Converse translation, without the network. Every request body produced here is also
validated against botocore's Converse input shape (the fake's validator), so a misspelt field or a
wrong type fails here, not in production."""

from __future__ import annotations

import json

import orjson
import pytest

from bedrock_peer import Reply, converse_reply, exception, stream_events, validate_converse
from gateway import BadRequestError
from gateway_plugin_bedrock import converse, embeddings

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                          "required": ["city"]}}}]


def translate(body: dict, family: str = "anthropic", params: dict | None = None) -> dict:
    out = converse.translate_request({"model": "m", **body}, family, params)
    validate_converse("anthropic.claude-3-5-sonnet-20240620-v1:0", json.loads(orjson.dumps(out)))
    return out


def test_system_user_and_sampling_parameters():
    out = translate({"messages": [{"role": "system", "content": "Be brief."},
                                  {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
                                  {"role": "user", "content": "Hi"}],
                     "max_tokens": 100, "temperature": 0.3, "top_p": 0.9, "stop": "END", "top_k": 40,
                     "presence_penalty": 1, "seed": 3, "logprobs": True, "user": "u1"})
    assert out["system"] == [{"text": "Be brief."}, {"text": "Use French."}]
    assert out["messages"] == [{"role": "user", "content": [{"text": "Hi"}]}]
    assert out["inferenceConfig"] == {"maxTokens": 100, "temperature": 0.3, "topP": 0.9, "stopSequences": ["END"]}
    assert out["additionalModelRequestFields"] == {"top_k": 40}
    assert set(out) == {"messages", "system", "inferenceConfig", "additionalModelRequestFields"}
    assert translate({"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 7, "max_tokens": 9,
                      "stop": ["a", ""]})["inferenceConfig"] == {"maxTokens": 7, "stopSequences": ["a"]}
    assert translate({"messages": [{"role": "user", "content": "x"}], "top_k": 5}, "amazon")[
        "additionalModelRequestFields"] == {"inferenceConfig": {"topK": 5}}
    assert "additionalModelRequestFields" not in translate({"messages": [{"role": "user", "content": "x"}], "top_k": 5}, "meta")


def test_images_files_and_cache_points():
    out = translate({"messages": [
        {"role": "system", "content": [{"type": "text", "text": "Long rules", "cache_control": {"type": "ephemeral"}}]},
        {"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            {"type": "image_url", "image_url": "data:image/jpeg;base64," + PNG},
            {"type": "image_url", "image_url": {"url": "s3://bucket/cat.webp"}},
            {"type": "file", "file": {"file_data": "data:application/pdf;base64," + PNG, "filename": "report_2024.pdf"}},
            {"type": "file", "file": {"file_data": "data:text/csv;base64," + PNG}},
            {"type": "text", "text": "   "},
            {"type": "text", "text": "Thanks", "cache_control": {"type": "ephemeral"}},
        ]}]})
    assert out["system"] == [{"text": "Long rules"}, {"cachePoint": {"type": "default"}}]
    blocks = out["messages"][0]["content"]
    assert blocks[1] == {"image": {"format": "png", "source": {"bytes": PNG}}}
    assert blocks[2]["image"]["format"] == "jpeg"
    assert blocks[3] == {"image": {"format": "webp", "source": {"s3Location": {"uri": "s3://bucket/cat.webp"}}}}
    assert blocks[4] == {"document": {"format": "pdf", "name": "report 2024", "source": {"bytes": PNG}}}
    assert blocks[5]["document"]["format"] == "csv" and blocks[5]["document"]["name"] == "document 2"
    assert blocks[6:] == [{"text": "Thanks"}, {"cachePoint": {"type": "default"}}]


@pytest.mark.parametrize("part, says", [
    ({"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}, "fetches no URLs"),
    ({"type": "image_url", "image_url": {"url": "data:image/bmp;base64," + PNG}}, "'image/bmp' is not supported"),
    ({"type": "image_url", "image_url": {"url": "data:image/png," + PNG}}, "must be base64"),
    ({"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}, "'input_audio' is not supported"),
    ({"type": "file", "file": {"file_id": "file-1"}}, "cannot read file_id"),
])
def test_unsupported_content_is_a_400_naming_it(part, says):
    with pytest.raises(BadRequestError) as caught:
        translate({"messages": [{"role": "user", "content": [part]}]})
    assert caught.value.status == 400 and caught.value.message.startswith("BedrockException - messages.0.content.0")
    assert says in caught.value.message


def test_tools_calls_results_and_merged_turns():
    out = translate({"tools": TOOLS, "tool_choice": "required", "messages": [
        {"role": "user", "content": "Weather in Paris and Nice?"},
        {"role": "assistant", "content": "Checking. ", "tool_calls": [
            {"id": "tooluse_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
            {"id": "tooluse_2", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]},
        {"role": "tool", "tool_call_id": "tooluse_1", "content": '{"temp_c": 21}'},
        {"role": "tool", "tool_call_id": "tooluse_2", "content": ""},
        {"role": "user", "content": "And tomorrow?"},
    ]})
    assert out["toolConfig"] == {"tools": [{"toolSpec": {
        "name": "get_weather", "description": "Weather in a city",
        "inputSchema": {"json": TOOLS[0]["function"]["parameters"]}}}], "toolChoice": {"any": {}}}
    user, assistant, results = out["messages"]
    assert user == {"role": "user", "content": [{"text": "Weather in Paris and Nice?"}]}
    assert assistant == {"role": "assistant", "content": [
        {"text": "Checking. "},  # only a final (prefill) assistant turn loses its trailing space
        {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris"}}},
        {"toolUse": {"toolUseId": "tooluse_2", "name": "get_weather", "input": {}}}]}
    assert results == {"role": "user", "content": [
        {"toolResult": {"toolUseId": "tooluse_1", "content": [{"text": '{"temp_c": 21}'}]}},
        {"toolResult": {"toolUseId": "tooluse_2", "content": [{"text": "(empty result)"}]}},
        {"text": "And tomorrow?"}]}


@pytest.mark.parametrize("choice, expected", [
    ("auto", {"auto": {}}), ("required", {"any": {}}),
    ({"type": "function", "function": {"name": "get_weather"}}, {"tool": {"name": "get_weather"}}), (None, None)])
def test_tool_choice(choice, expected):
    body = {"messages": [{"role": "user", "content": "x"}], "tools": TOOLS}
    if choice is not None:
        body["tool_choice"] = choice
    assert translate(body)["toolConfig"].get("toolChoice") == expected


def test_tool_choice_none_offers_no_tools_unless_the_history_needs_a_tool_config():
    assert "toolConfig" not in translate({"messages": [{"role": "user", "content": "x"}], "tools": TOOLS,
                                          "tool_choice": "none"})
    history = [{"role": "user", "content": "x"},
               {"role": "assistant", "tool_calls": [{"id": "t1", "type": "function",
                                                     "function": {"name": "lookup", "arguments": "{}"}}]},
               {"role": "tool", "tool_call_id": "t1", "content": "42"}]
    out = translate({"messages": history, "tools": TOOLS, "tool_choice": "none"})
    assert "toolChoice" not in out["toolConfig"] and out["toolConfig"]["tools"][0]["toolSpec"]["name"] == "get_weather"
    out = translate({"messages": history})  # no tools at all: Bedrock still wants a toolConfig
    assert [t["toolSpec"]["name"] for t in out["toolConfig"]["tools"]] == ["lookup"]


def test_reasoning_for_anthropic_and_nova():
    out = translate({"messages": [{"role": "user", "content": "x"}], "reasoning_effort": "medium"})
    assert out["additionalModelRequestFields"] == {"thinking": {"type": "enabled", "budget_tokens": 2048}}
    assert out["inferenceConfig"]["maxTokens"] == 2048 + 4096  # must exceed the budget
    out = translate({"messages": [{"role": "user", "content": "x"}], "max_tokens": 9000,
                     "thinking": {"type": "enabled", "budget_tokens": 5000}})
    assert out["additionalModelRequestFields"]["thinking"]["budget_tokens"] == 5000
    assert out["inferenceConfig"]["maxTokens"] == 9000
    assert "additionalModelRequestFields" not in translate({"messages": [{"role": "user", "content": "x"}],
                                                            "reasoning_effort": "none"})
    nova = translate({"messages": [{"role": "user", "content": "x"}], "reasoning_effort": "high"}, "amazon")
    assert nova["additionalModelRequestFields"] == {"reasoningConfig": {"type": "enabled", "maxReasoningEffort": "high"}}
    with pytest.raises(BadRequestError, match="reasoning_effort 'extreme'"):
        translate({"messages": [{"role": "user", "content": "x"}], "reasoning_effort": "extreme"})
    # thinking blocks of an earlier turn go back first, signed
    out = translate({"messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": "A", "thinking_blocks": [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"}, {"type": "redacted_thinking", "data": "ZZZZ"}]},
        {"role": "user", "content": "y"}]})
    assert out["messages"][1]["content"] == [{"reasoningContent": {"reasoningText": {"text": "hmm", "signature": "sig"}}},
                                             {"reasoningContent": {"redactedContent": "ZZZZ"}}, {"text": "A"}]


def test_json_response_format_is_a_forced_tool():
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    out = translate({"messages": [{"role": "user", "content": "x"}],
                     "response_format": {"type": "json_schema", "json_schema": {"name": "num", "schema": schema}}})
    assert out["toolConfig"] == {"tools": [{"toolSpec": {"name": "json_tool_call", "inputSchema": {"json": schema}}}],
                                 "toolChoice": {"tool": {"name": "json_tool_call"}}}
    assert "toolChoice" not in translate({"messages": [{"role": "user", "content": "x"}],
                                          "response_format": {"type": "json_object"}}, "meta")["toolConfig"]
    reply = converse.translate_reply(converse_reply(Reply(text="", stop_reason="tool_use", tool_uses=[
        {"toolUseId": "t", "name": "json_tool_call", "input": {"n": 3}}])), "m")
    assert reply["choices"][0]["message"]["content"] == '{"n":3}' and reply["choices"][0]["finish_reason"] == "stop"


def test_converse_native_fields_pass_through():
    guard = {"guardrailIdentifier": "gr-1", "guardrailVersion": "1", "trace": "enabled"}
    out = translate({"messages": [{"role": "user", "content": "x"}], "requestMetadata": {"team": "a"},
                     "additionalModelRequestFields": {"anthropic_beta": ["x"]}, "service_tier": "flex"},
                    params={"guardrailConfig": guard, "performanceConfig": {"latency": "optimized"}})
    assert out["guardrailConfig"] == guard and out["performanceConfig"] == {"latency": "optimized"}
    assert out["requestMetadata"] == {"team": "a"} and out["serviceTier"] == {"type": "flex"}
    assert out["additionalModelRequestFields"] == {"anthropic_beta": ["x"]}


def test_a_final_assistant_turn_is_a_prefill_without_trailing_space():
    out = translate({"messages": [{"role": "user", "content": "Count"}, {"role": "assistant", "content": "1, 2, "}]})
    assert out["messages"][-1] == {"role": "assistant", "content": [{"text": "1, 2,"}]}


def test_bad_requests():
    for body, says in [
        ({"messages": []}, "messages must be a non-empty list"),
        ({"messages": [{"role": "system", "content": "only"}]}, "no user or assistant content"),
        ({"messages": [{"role": "user", "content": "x"}], "n": 2}, "n must be 1"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "tool_call_id is required"),
        ({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "web_search"}]}, "only function tools"),
        ({"messages": [{"role": "assistant", "tool_calls": [{"id": "1", "function": {"name": "f", "arguments": "{"}}]}]},
         "not valid JSON"),
    ]:
        with pytest.raises(BadRequestError, match=says):
            converse.translate_request({"model": "m", **body}, "anthropic")


# -- replies -------------------------------------------------------------------------------------
def test_reply_with_text_tools_reasoning_and_cache_usage():
    reply = converse.translate_reply(converse_reply(Reply(
        text="Let me check.", reasoning="They want weather.", signature="sig-1", stop_reason="tool_use",
        tool_uses=[{"toolUseId": "tooluse_9", "name": "get_weather", "input": {"city": "Paris"}}],
        input_tokens=10, output_tokens=20, cache_read=100, cache_write=5)), "anthropic.claude")
    assert reply["object"] == "chat.completion" and reply["id"].startswith("chatcmpl-")
    choice = reply["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Let me check."
    assert choice["message"]["tool_calls"] == [{"id": "tooluse_9", "type": "function",
                                                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]
    assert choice["message"]["reasoning_content"] == "They want weather."
    assert choice["message"]["thinking_blocks"] == [{"type": "thinking", "thinking": "They want weather.",
                                                     "signature": "sig-1"}]
    assert reply["usage"] == {"prompt_tokens": 115, "completion_tokens": 20, "total_tokens": 135,
                              "prompt_tokens_details": {"cached_tokens": 100, "cache_creation_tokens": 5},
                              "cache_creation_input_tokens": 5, "cache_read_input_tokens": 100}


@pytest.mark.parametrize("stop, finish", [("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
                                          ("tool_use", "tool_calls"), ("guardrail_intervened", "content_filter"),
                                          ("content_filtered", "content_filter"),
                                          ("model_context_window_exceeded", "length")])
def test_finish_reasons(stop, finish):
    assert converse.translate_reply(converse_reply(Reply(stop_reason=stop)), "m")["choices"][0]["finish_reason"] == finish


# -- streams -------------------------------------------------------------------------------------------
def run_stream(data: bytes, size: int = 13) -> list[dict]:
    translator = converse.ConverseStream("m")
    out: list[dict] = []
    for start in range(0, len(data), size):
        out.extend(translator.feed(data[start:start + size]))
    return out + translator.end()


def test_stream_text_tools_reasoning_finish_and_usage():
    data = b"".join(stream_events(Reply(
        text="Sunny today.", reasoning="check weather", signature="sig", stop_reason="tool_use", cache_read=4,
        tool_uses=[{"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris"}},
                   {"toolUseId": "tooluse_2", "name": "get_weather", "input": {"city": "Nice"}}])))
    chunks = run_stream(data)
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert "".join(d.get("content") or "" for d in deltas) == "Sunny today."
    assert "".join(d.get("reasoning_content") or "" for d in deltas) == "checkweather"
    assert {"type": "thinking", "thinking": "", "signature": "sig"} in [b for d in deltas for b in d.get("thinking_blocks", ())]
    calls: dict[int, dict] = {}
    for d in deltas:
        for call in d.get("tool_calls") or ():
            slot = calls.setdefault(call["index"], {"id": None, "name": None, "arguments": ""})
            slot["id"] = call.get("id") or slot["id"]
            slot["name"] = call.get("function", {}).get("name") or slot["name"]
            slot["arguments"] += call["function"].get("arguments") or ""
    assert calls == {0: {"id": "tooluse_1", "name": "get_weather", "arguments": '{"city": "Paris"}'},
                     1: {"id": "tooluse_2", "name": "get_weather", "arguments": '{"city": "Nice"}'}}
    finish, usage = chunks[-2], chunks[-1]
    assert finish["choices"][0]["finish_reason"] == "tool_calls"
    assert usage["choices"] == [] and usage["usage"]["prompt_tokens"] == 29 and usage["usage"]["completion_tokens"] == 4
    assert usage["usage"]["prompt_tokens_details"]["cached_tokens"] == 4


def test_a_stream_without_metadata_finishes_without_a_usage_chunk():
    chunks = run_stream(b"".join(stream_events(Reply(text="no usage here", no_metadata=True))))
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"  # the gateway estimates the usage, and says so
    assert not any("usage" in c for c in chunks)


def test_stream_json_mode_streams_the_tool_input_as_content():
    data = b"".join(stream_events(Reply(text="", stop_reason="tool_use", tool_uses=[
        {"toolUseId": "t", "name": "json_tool_call", "input": {"n": 3}}])))
    chunks = run_stream(data, 7)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == '{"n": 3}'
    assert not any(c["choices"][0]["delta"].get("tool_calls") for c in chunks if c["choices"])
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"


def test_stream_exceptions_and_broken_streams_become_error_chunks():
    chunks = run_stream(b"".join(stream_events(Reply(exception=("throttlingException", "slow down")))))
    assert chunks[-1] == {"error": {"message": "throttlingException: slow down", "type": "rate_limit_error"}}
    data = b"".join(stream_events(Reply()))
    chunks = run_stream(data[:-5])  # cut inside the last event
    assert chunks[-1]["error"]["message"] == "Bedrock closed the stream in the middle of an event"
    corrupt = bytearray(data)
    corrupt[30] ^= 0xFF
    assert "unreadable event stream" in run_stream(bytes(corrupt))[-1]["error"]["message"]
    # after an exception, nothing more is translated
    translator = converse.ConverseStream("m")
    assert translator.feed(exception("validationException", "no"))[0]["error"]["type"] == "invalid_request_error"
    assert translator.feed(data) == [] and translator.end() == []


# -- embeddings ------------------------------------------------------------------------------------------
def test_embedding_requests_and_replies():
    assert embeddings.translate_request({"input": "hi", "dimensions": 256}, "amazon", "amazon.titan-embed-text-v2:0") == \
        {"inputText": "hi", "dimensions": 256}
    with pytest.raises(BadRequestError, match="one text per call"):
        embeddings.translate_request({"input": ["a", "b"]}, "amazon", "amazon.titan-embed-text-v2:0")
    assert embeddings.translate_request({"input": ["a", "b"], "dimensions": 512}, "cohere", "cohere.embed-v4:0") == \
        {"texts": ["a", "b"], "input_type": "search_document", "output_dimension": 512}
    with pytest.raises(BadRequestError, match="not an embedding model"):
        embeddings.translate_request({"input": "a"}, "anthropic", "anthropic.claude")
    with pytest.raises(BadRequestError, match="input must be a string"):
        embeddings.translate_request({"input": [1, 2]}, "amazon", "amazon.titan-embed-text-v2:0")
    titan = embeddings.translate_reply({"embedding": [0.1, 0.2], "inputTextTokenCount": 3}, "amazon.titan-embed-text-v2:0")
    assert titan["data"] == [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}]
    assert titan["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    cohere = embeddings.translate_reply({"embeddings": {"float": [[1.0], [2.0]]}, "texts": ["abcd", "abcdefgh"]}, "c")
    assert [d["index"] for d in cohere["data"]] == [0, 1]
    assert "usage" not in cohere  # only in a response header: the gateway estimates it for the spend row
