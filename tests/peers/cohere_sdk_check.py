"""The fake Cohere (tests/peers/cohere_api.py) checked against the official `cohere` Python SDK.

The SDK's `ClientV2`, pointed at the fake with `base_url`, calls `chat`, `chat_stream` and `embed`
(tool calls, a tool-result round trip, thinking, JSON mode, errors) and parses every reply and
event; each raw reply and event the fake sent is also validated *strictly* against the SDK's
pydantic types (the SDK's own parsing is lenient: it skips an event it cannot read with a logged
warning, so any such warning fails the check too). The requests the SDK sends must be accepted by
the fake, so the fake's strictness cannot drift from what Cohere's own client sends.

Run it where `cohere` is installed (it is not in the project's dev group yet):

    uv venv /tmp/cohere-sdk && uv pip install --python /tmp/cohere-sdk cohere aiohttp
    /tmp/cohere-sdk/bin/python tests/peers/cohere_sdk_check.py

tests/test_provider_cohere.py runs `check()` too when `cohere` can be imported.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent


def _fake_module() -> Any:
    name = "cohere_api"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, HERE / "cohere_api.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[name] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage())


def _sse_events(raw: bytes) -> list[dict[str, Any]]:
    """The JSON events of a raw SSE body, checking each `event:` name matches its `type`."""
    events = []
    for block in raw.decode().split("\n\n"):
        if not block.strip():
            continue
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        if fields["data"] == "[DONE]":
            continue
        event = json.loads(fields["data"])
        assert fields.get("event") == event["type"], (fields.get("event"), event["type"])
        events.append(event)
    return events


def check(report: Callable[[str], None] = print) -> int:
    """Run every check; returns how many passed (raises AssertionError at the first failure)."""
    import cohere
    import httpx
    import pydantic
    from cohere.types import EmbedByTypeResponse
    from cohere.v2.types import V2ChatResponse, V2ChatStreamResponse

    stream_event = pydantic.TypeAdapter(V2ChatStreamResponse)
    fake_module = _fake_module()
    warnings = _Warnings()
    root = logging.getLogger()
    root.addHandler(warnings)
    passed = 0
    tool = {"type": "function", "function": {
        "name": "get_weather", "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
    try:
        with fake_module.FakeCohere(api_key="co-test-key") as fake, \
                httpx.Client(base_url=fake.url, headers={"authorization": "Bearer co-test-key"}, timeout=10) as raw_client, \
                httpx.Client(timeout=10) as sdk_http:  # the SDK's own client would never be closed
            # raw_client fetches the fake's replies as they are, for strict validation against the SDK's types.

            def raw_chat(**body: Any) -> Any:
                return raw_client.post("/v2/chat", json={"model": "command-r", **body})

            def ok(name: str) -> None:
                nonlocal passed
                assert not warnings.records, f"{name}: the SDK logged warnings: {warnings.records}"
                passed += 1
                report(f"ok  {name}")

            co = cohere.ClientV2(api_key="co-test-key", base_url=fake.url, httpx_client=sdk_http)
            hi = [{"role": "user", "content": "hello there"}]

            # chat
            fake.script(input_tokens=5, output_tokens=4)
            reply = co.chat(model="command-r", messages=hi, temperature=0.3, p=0.9, k=40, max_tokens=50,
                            stop_sequences=["END"], seed=1, frequency_penalty=0.1, presence_penalty=0.1)
            assert reply.finish_reason == "COMPLETE" and reply.message.role == "assistant"
            assert reply.message.content[0].type == "text" and reply.message.content[0].text == "cohere says: hello there"
            assert reply.usage.billed_units.input_tokens == 5 and reply.usage.billed_units.output_tokens == 4
            assert reply.usage.tokens.input_tokens == 65
            assert fake.requests[-1].headers["authorization"] == "Bearer co-test-key"
            fake.script(input_tokens=5, output_tokens=4, cached_tokens=2)
            V2ChatResponse.model_validate(raw_chat(messages=hi).json())
            ok("chat: reply parsed; raw reply valid as V2ChatResponse")

            # chat_stream
            fake.script(chunks=["Hel", "lo", "!"], input_tokens=7, output_tokens=3)
            events = list(co.chat_stream(model="command-r", messages=hi))
            kinds = [e.type for e in events]
            assert kinds == ["message-start", "content-start", "content-delta", "content-delta", "content-delta",
                             "content-end", "message-end"], kinds
            assert "".join(e.delta.message.content.text for e in events if e.type == "content-delta") == "Hello!"
            end = events[-1]
            assert end.delta.finish_reason == "COMPLETE" and end.delta.usage.billed_units.output_tokens == 3
            fake.script(chunks=["a", "b"], thinking="hmm let me see")
            raw = raw_chat(messages=hi, stream=True).content
            assert raw.endswith(b"data: [DONE]\n\n")
            for event in _sse_events(raw):
                parsed = stream_event.validate_python(event)
                assert parsed.type == event["type"]
            ok("chat_stream: every event parsed; raw events valid as V2ChatStreamResponse")

            # tools: a call, then the result round trip
            fake.script(tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}], tool_plan="I will look.")
            called = co.chat(model="command-r", messages=[{"role": "user", "content": "weather?"}], tools=[tool])
            assert called.finish_reason == "TOOL_CALL" and called.message.tool_plan == "I will look."
            call = called.message.tool_calls[0]
            assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
            answered = co.chat(model="command-r", tools=[tool], messages=[
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "tool_plan": called.message.tool_plan, "tool_calls": called.message.tool_calls},
                {"role": "tool", "tool_call_id": call.id,
                 "content": [{"type": "document", "document": {"data": json.dumps({"weather": "sunny"})}}]},
            ])
            assert answered.finish_reason == "COMPLETE"
            fake.script(tool_calls=[{"name": "get_weather", "arguments": {"city": "Oslo"}},
                                    {"name": "get_weather", "arguments": {"city": "Rome"}}])
            events = list(co.chat_stream(model="command-r", messages=hi, tools=[tool], tool_choice="REQUIRED"))
            starts = [e for e in events if e.type == "tool-call-start"]
            assert [e.delta.message.tool_calls.function.name for e in starts] == ["get_weather", "get_weather"]
            args: dict[int, str] = {}
            for e in events:
                if e.type == "tool-call-delta":
                    args[e.index] = args.get(e.index, "") + e.delta.message.tool_calls.function.arguments
            assert [json.loads(a) for a in args.values()] == [{"city": "Oslo"}, {"city": "Rome"}]
            assert "".join(e.delta.message.tool_plan for e in events if e.type == "tool-plan-delta")
            assert events[-1].delta.finish_reason == "TOOL_CALL"
            fake.script(tool_calls=[{"name": "get_weather", "arguments": {"city": "Oslo"}}])
            for event in _sse_events(raw_chat(messages=hi, tools=[tool], stream=True).content):
                stream_event.validate_python(event)
            ok("tools: calls parsed, result round trip accepted, streamed tool events valid")

            # images, JSON mode, thinking
            fake.script(thinking="first, think", reply="{\"a\": 1}")
            shaped = co.chat(model="command-a-vision-07-2025", messages=[{"role": "user", "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}]}],
                response_format={"type": "json_object", "json_schema": {"type": "object"}},
                thinking={"type": "enabled", "token_budget": 100})
            assert [c.type for c in shaped.message.content] == ["thinking", "text"]
            assert shaped.message.content[0].thinking == "first, think"
            ok("images, response_format, thinking: accepted and parsed")

            # embed
            embedded = co.embed(model="embed-english-v3.0", texts=["one", "two"], input_type="search_document",
                                embedding_types=["float"])
            assert len(embedded.embeddings.float_) == 2 and len(embedded.embeddings.float_[0]) == 8
            assert embedded.meta.billed_units.input_tokens == 2
            EmbedByTypeResponse.model_validate(raw_client.post("/v2/embed", json={
                "model": "embed-v4.0", "texts": ["x"], "input_type": "search_query", "embedding_types": ["float"],
                "output_dimension": 256}).json())
            ok("embed: reply parsed; raw reply valid as EmbedByTypeResponse")

            # errors, as the SDK raises them
            for status, kind in ((400, cohere.BadRequestError), (404, cohere.NotFoundError),
                                 (429, cohere.TooManyRequestsError), (500, cohere.InternalServerError)):
                fake.script(status=status, error=f"boom {status}")
                try:
                    co.chat(model="command-r", messages=hi, request_options={"max_retries": 0})
                except kind as exc:
                    assert exc.status_code == status and exc.body["message"] == f"boom {status}", exc.body
                else:
                    raise AssertionError(f"{status} not raised as {kind.__name__}")
            bad = cohere.ClientV2(api_key="wrong", base_url=fake.url, httpx_client=sdk_http)
            try:
                bad.chat(model="command-r", messages=hi, request_options={"max_retries": 0})
            except cohere.UnauthorizedError as exc:
                assert exc.body["message"] == "invalid api token"
            else:
                raise AssertionError("a wrong key was accepted")
            try:
                co.chat(model="no-such-model", messages=hi, request_options={"max_retries": 0})
            except cohere.NotFoundError as exc:
                assert "not found" in exc.body["message"]
            else:
                raise AssertionError("an unknown model was accepted")
            ok("errors: 400, 401, 404, 429, 500 raised as the SDK's error types, message in the body")
    finally:
        root.removeHandler(warnings)
    return passed


if __name__ == "__main__":
    count = check()
    print(f"{count} passed, 0 failed")
