"""OpenAI's Responses API on the gateway, end to end: the official `openai` SDK -> a real gateway ->
(a) an OpenAI-compatible chat upstream (the `fake_upstream` fixture: what it receives is the chat
translation), (b) the fake Azure of tests/peers as a chat upstream that calls tools, and as a
Responses API upstream (`openai/responses/<model>`: Responses in -> chat -> Responses upstream).

State (`previous_response_id`, retrieve, delete, input items) lives in the gateway's database: the
tests marked `db` run again on PostgreSQL when GATEWAY_TEST_DATABASE_URL is set.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import Response, ResponseItemList

from gateway.testing import MASTER_KEY

_spec = importlib.util.spec_from_file_location("azure_api_peer", Path(__file__).parent / "peers" / "azure_api.py")
assert _spec is not None and _spec.loader is not None
peer = sys.modules.get(_spec.name) or importlib.util.module_from_spec(_spec)
if _spec.name not in sys.modules:
    sys.modules[_spec.name] = peer  # dataclasses look their module up
    _spec.loader.exec_module(peer)
Reply = peer.Reply

AZURE_KEY = "azure-key-0123456789abcdef"
ADMIN = {"Authorization": f"Bearer {MASTER_KEY}"}
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                          "additionalProperties": False}, "strict": True}


@pytest.fixture
def api():
    with peer.FakeAzure(keys={AZURE_KEY}) as fake:
        yield fake


def config(fake_upstream: Any, api: Any = None, **litellm: Any) -> dict[str, Any]:
    models = [{"model_name": "gpt-test", "litellm_params": {"model": "openai/upstream-model",
                                                            "api_base": fake_upstream.url, "api_key": "sk-up-1"}}]
    if api is not None:
        models += [{"model_name": "tooler", "litellm_params": {"model": "openai/gpt-4o", "api_base": api.url + "/v1",
                                                               "api_key": AZURE_KEY}},
                   {"model_name": "gpt5", "litellm_params": {"model": "openai/responses/gpt-5-mini",
                                                             "api_base": api.url + "/openai/v1", "api_key": AZURE_KEY}}]
    cfg: dict[str, Any] = {"model_list": models, "router_settings": {"num_retries": 0},
                           "general_settings": {"spend_flush_interval_s": 0.05}}
    if litellm:
        cfg["litellm_settings"] = litellm
    return cfg


@pytest.fixture
def gw(gateway_server, fake_upstream, api):
    return gateway_server(config(fake_upstream, api))


@pytest.fixture
def client(gw):
    with gw.client() as c:
        yield c


def valid(resp: Any) -> Response:
    """The reply checked against the SDK's model with validation on (the SDK itself does not validate)."""
    return Response.model_validate(resp.model_dump() if hasattr(resp, "model_dump") else resp)


def sse(gw: Any, body: dict[str, Any], key: str = MASTER_KEY) -> list[tuple[str, dict[str, Any]]]:
    """A streamed create as raw SSE: (event name, data) pairs."""
    events: list[tuple[str, dict[str, Any]]] = []
    with httpx.stream("POST", gw.url + "/v1/responses", json={**body, "stream": True}, timeout=30,
                      headers={"Authorization": f"Bearer {key}"}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for block in r.read().decode().split("\n\n"):
            if block.strip():
                name, data = block.split("\n", 1)
                events.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return events


# -- create, against a chat upstream ------------------------------------------------------------
def test_create_is_a_chat_call_rendered_as_a_response(client, fake_upstream):
    fake_upstream.usage = {"prompt_tokens": 11, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 5},
                           "completion_tokens_details": {"reasoning_tokens": 2}}
    resp = client.responses.create(model="gpt-test", input="hello there", instructions="Be brief.",
                                   max_output_tokens=50, temperature=0.2, top_p=0.9, user="end-user-1",
                                   metadata={"topic": "greeting"}, reasoning={"effort": "low"},
                                   text={"format": {"type": "json_object"}}, truncation="auto",
                                   include=["message.output_text.logprobs"], extra_body={"tags": ["t1"]})
    sent = fake_upstream.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.json == {"model": "upstream-model", "messages": [{"role": "system", "content": "Be brief."},
                                                                 {"role": "user", "content": "hello there"}],
                         "max_tokens": 50, "temperature": 0.2, "top_p": 0.9, "user": "end-user-1",
                         "reasoning_effort": "low", "response_format": {"type": "json_object"}}
    assert valid(resp).output_text == resp.output_text == "upstream says: hello there"
    assert resp.id.startswith("resp_") and resp.object == "response" and resp.status == "completed"
    (message,) = resp.output
    assert (message.type, message.role, message.status, message.id[:4]) == ("message", "assistant", "completed", "msg_")
    assert message.content[0].type == "output_text" and message.content[0].annotations == []
    usage = resp.usage
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (11, 7, 18)
    assert usage.input_tokens_details.cached_tokens == 5 and usage.output_tokens_details.reasoning_tokens == 2
    assert (resp.instructions, resp.max_output_tokens, resp.temperature, resp.top_p, resp.user) == (
        "Be brief.", 50, 0.2, 0.9, "end-user-1")
    assert resp.metadata == {"topic": "greeting"} and resp.store is True and resp.previous_response_id is None
    assert resp.tool_choice == "auto" and resp.tools == [] and resp.parallel_tool_calls is True
    assert resp.text.format.type == "json_object" and resp.reasoning.effort == "low" and resp.error is None


def test_a_reply_cut_short_is_incomplete(gw, client, api):
    api.script(*[Reply(text="partial", incomplete="max_output_tokens")] * 2)
    resp = client.responses.create(model="gpt5", input="a long essay", max_output_tokens=16)
    assert (resp.status, resp.incomplete_details.reason, resp.output[0].status) == (
        "incomplete", "max_output_tokens", "incomplete")
    events = sse(gw, {"model": "gpt5", "input": "a long essay", "max_output_tokens": 16})
    assert events[-1][0] == "response.incomplete" and events[-1][1]["response"]["status"] == "incomplete"
    assert valid(events[-1][1]["response"]).incomplete_details.reason == "max_output_tokens"


def test_stream_events_in_order(gw, client, fake_upstream):
    fake_upstream.reply_chunks = ["Hel", "lo ", "world"]
    events = sse(gw, {"model": "gpt-test", "input": "hi", "store": False})
    names = [n for n, _ in events]
    assert names == ["response.created", "response.in_progress", "response.output_item.added",
                     "response.content_part.added", "response.output_text.delta", "response.output_text.delta",
                     "response.output_text.delta", "response.output_text.done", "response.content_part.done",
                     "response.output_item.done", "response.completed"]
    assert [d["type"] for _, d in events] == names
    assert [d["sequence_number"] for _, d in events] == list(range(len(events)))
    assert fake_upstream.requests[-1].json["stream"] is True
    assert [d["delta"] for n, d in events if n == "response.output_text.delta"] == ["Hel", "lo ", "world"]
    created, done = events[0][1]["response"], events[-1][1]["response"]
    assert created["status"] == "in_progress" and created["output"] == [] and created["id"] == done["id"]
    assert valid(done).output_text == "Hello world" and done["usage"]["output_tokens"] > 0
    assert events[-2][1]["item"] == done["output"][0] and done["output"][0]["status"] == "completed"
    # The SDK: typed events, and its stream helper's final response.
    typed = list(client.responses.create(model="gpt-test", input="hi", stream=True))
    assert [e.type for e in typed] == names
    with client.responses.stream(model="gpt-test", input="hi") as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text == final.output_text == "Hello world" and final.usage.total_tokens > 0


# -- state: previous_response_id, retrieve, delete, input items -----------------------------------
@pytest.mark.db
def test_previous_response_id_sends_the_earlier_turns(gw, client, fake_upstream):
    first = client.responses.create(model="gpt-test", input="my name is Ada", instructions="first rules")
    second = client.responses.create(model="gpt-test", input="what is my name?", previous_response_id=first.id,
                                     instructions="second rules")
    assert fake_upstream.requests[-1].json["messages"] == [
        {"role": "system", "content": "second rules"},  # instructions are not carried over
        {"role": "user", "content": "my name is Ada"},
        {"role": "assistant", "content": "upstream says: my name is Ada"},
        {"role": "user", "content": "what is my name?"}]
    assert second.previous_response_id == first.id
    # A streamed turn can be continued at once (it is kept as its last event leaves).
    events = sse(gw, {"model": "gpt-test", "input": "third", "previous_response_id": second.id})
    streamed = events[-1][1]["response"]["id"]
    assert client.responses.retrieve(streamed).model_dump(exclude_unset=True) == events[-1][1]["response"]
    client.responses.create(model="gpt-test", input=[{"role": "user", "content": [
        {"type": "input_text", "text": "fourth"}]}], previous_response_id=streamed)
    assert [m["content"] for m in fake_upstream.requests[-1].json["messages"]] == [
        "my name is Ada", "upstream says: my name is Ada", "what is my name?", "upstream says: what is my name?",
        "third", "upstream says: third", "fourth"]
    # store: false keeps nothing to continue from.
    unkept = client.responses.create(model="gpt-test", input="forget me", store=False)
    assert unkept.store is False
    with pytest.raises(openai.NotFoundError, match=f"Previous response with id '{unkept.id}' not found"):
        client.responses.create(model="gpt-test", input="x", previous_response_id=unkept.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unkept.id)


@pytest.mark.db
def test_retrieve_delete_and_input_items(gw, client):
    first = client.responses.create(model="gpt-test", input="one")
    second = client.responses.create(model="gpt-test", previous_response_id=first.id, input=[
        {"role": "developer", "content": "be kind"}, {"role": "user", "content": "two"}])
    got = client.responses.retrieve(second.id)
    assert got.model_dump() == second.model_dump() and valid(got).output_text == "upstream says: two"
    items = client.responses.input_items.list(second.id)
    ResponseItemList.model_validate(items.model_dump())  # the page's own shape
    newest_first = [(i.type, getattr(i, "role", None)) for i in items.data]
    assert newest_first == [("message", "user"), ("message", "developer"), ("message", "assistant"),
                            ("message", "user")]
    assert items.data[-1].content[0].text == "one" and items.data[1].content[0].text == "be kind"
    assert items.data[2].id == first.output[0].id  # the earlier reply, as it was returned
    oldest = client.responses.input_items.list(second.id, order="asc", limit=2)
    assert [i.id for i in oldest.data] == [i.id for i in items.data[::-1][:2]] and oldest.has_more is True
    rest = client.responses.input_items.list(second.id, order="asc", after=oldest.data[-1].id)
    assert [i.id for i in rest.data] == [i.id for i in items.data[::-1][2:]] and rest.has_more is False
    deleted = client.responses.delete(second.id)
    assert deleted is None  # the SDK returns nothing; the body is checked below
    for call in (lambda: client.responses.retrieve(second.id), lambda: client.responses.delete(second.id),
                 lambda: client.responses.input_items.list(second.id)):
        with pytest.raises(openai.NotFoundError, match=f"Response with id '{second.id}' not found"):
            call()
    r = httpx.delete(f"{gw.url}/v1/responses/{first.id}", headers=ADMIN)
    assert r.json() == {"id": first.id, "object": "response.deleted", "deleted": True}


def test_input_items_list_an_assistant_turn_the_client_sent(client):
    """A conversation the client sends whole (no previous_response_id) lists its assistant turn as
    output text, as OpenAI does."""
    made = client.responses.create(model="gpt-test", input=[
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello, how can I help?"},
        {"role": "user", "content": "tell me more"}])
    items = client.responses.input_items.list(made.id, order="asc").data
    assert [(i.role, i.content[0].type, i.content[0].text) for i in items] == [
        ("user", "input_text", "hi"), ("assistant", "output_text", "hello, how can I help?"),
        ("user", "input_text", "tell me more")]


@pytest.mark.db
def test_another_key_gets_404_for_a_response_it_does_not_own(gw):
    keys = [httpx.post(gw.url + "/key/generate", headers=ADMIN, json={}).json()["key"] for _ in range(2)]
    owner, other = gw.client(keys[0]), gw.client(keys[1])
    mine = owner.responses.create(model="gpt-test", input="secret plans")
    assert owner.responses.retrieve(mine.id).id == mine.id
    for call in (lambda: other.responses.retrieve(mine.id), lambda: other.responses.input_items.list(mine.id),
                 lambda: other.responses.delete(mine.id),
                 lambda: other.responses.create(model="gpt-test", input="x", previous_response_id=mine.id)):
        with pytest.raises(openai.NotFoundError) as info:
            call()
        assert info.value.body["type"] == "not_found_error" and "secret" not in info.value.message
    assert gw.client().responses.retrieve(mine.id).output_text == "upstream says: secret plans"  # admin sees all
    owner.responses.create(model="gpt-test", input="more", previous_response_id=mine.id)  # still the owner's


def stored_ids() -> list[str]:
    """The ids in the stored_responses table of the in-process gateway's database, read directly."""
    import asyncio
    import os
    import sqlite3

    url = os.environ["DATABASE_URL"]
    if url.startswith("sqlite://"):
        with sqlite3.connect(url.removeprefix("sqlite://")) as db:
            return sorted(r[0] for r in db.execute("SELECT id FROM stored_responses"))

    async def read() -> list[str]:
        import asyncpg

        conn = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
        try:
            return sorted(r["id"] for r in await conn.fetch("SELECT id FROM stored_responses"))
        finally:
            await conn.close()

    return asyncio.run(read())


@pytest.mark.db
def test_stored_responses_expire(gateway_server, fake_upstream):
    """`general_settings.responses_store_days`: older replies are not served, and their rows go."""
    import time

    cfg = config(fake_upstream)
    cfg["general_settings"]["responses_store_days"] = 2 / 86400  # two seconds
    gw = gateway_server(cfg)
    with gw.client() as client:
        old = client.responses.create(model="gpt-test", input="short-lived")
        assert client.responses.retrieve(old.id).id == old.id and stored_ids() == [old.id]
        time.sleep(2.5)
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve(old.id)
        with pytest.raises(openai.NotFoundError):
            client.responses.create(model="gpt-test", input="x", previous_response_id=old.id)
        new = client.responses.create(model="gpt-test", input="fresh")  # a write purges what expired
    deadline = time.monotonic() + 5
    while old.id in stored_ids():
        assert time.monotonic() < deadline, "the expired row was not purged"
        time.sleep(0.05)
    assert stored_ids() == [new.id]


def test_openapi_documents_the_routes(gw):
    spec = httpx.get(gw.url + "/openapi.json").json()
    create = spec["paths"]["/v1/responses"]["post"]
    body = create["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["model"] and {"input", "instructions", "previous_response_id"} <= set(body["properties"])
    assert set(create["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}
    assert {"get", "delete"} <= set(spec["paths"]["/v1/responses/{response_id}"])
    listing = spec["paths"]["/v1/responses/{response_id}/input_items"]["get"]
    assert {p["name"] for p in listing["parameters"]} >= {"response_id", "limit", "order", "after"}
    assert all(op.get("description") or op.get("summary") for path, ops in spec["paths"].items()
               if "/responses" in path for op in ops.values())


# -- tools --------------------------------------------------------------------------------------
@pytest.mark.db
def test_function_tool_round_trip(gw, client, api):
    api.script(Reply(text="Let me look.", calls=[("get_weather", '{"city": "Paris"}')]), Reply(text="Sunny in Paris."))
    first = client.responses.create(model="tooler", input="weather in Paris?", tools=[WEATHER],
                                    tool_choice={"type": "function", "name": "get_weather"}, parallel_tool_calls=False)
    sent = api.last.json
    assert sent["tools"] == [{"type": "function", "function": {k: WEATHER[k] for k in (
        "name", "description", "parameters", "strict")}}]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["parallel_tool_calls"] is False
    call = valid(first).output[-1]
    assert (call.type, call.name, call.arguments, call.call_id) == ("function_call", "get_weather",
                                                                   '{"city": "Paris"}', "call_0")
    assert first.tools[0].name == "get_weather" and first.tools[0].strict is True
    second = client.responses.create(model="tooler", previous_response_id=first.id, tools=[WEATHER], input=[
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 24C"}])
    assert api.last.json["messages"][1:] == [
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "call_0", "type": "function",
                         "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_0", "content": "sunny, 24C"}]
    assert second.output_text == "Sunny in Paris."
    kinds = [i.type for i in client.responses.input_items.list(second.id, order="asc").data]
    assert kinds == ["message", "function_call", "function_call_output"]
    # The whole history sent by the client (no stored state), and a streamed call.
    api.script(Reply(calls=[("get_weather", '{"city": "Rome"}')]))
    events = list(client.responses.create(model="tooler", tools=[WEATHER], stream=True, store=False, input=[
        {"role": "user", "content": "weather?"},
        {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city": "Oslo"}'},
        {"type": "function_call_output", "call_id": "c1", "output": [{"type": "input_text", "text": "rain"}]},
        {"role": "user", "content": "and Rome?"}]))
    assert [m["role"] for m in api.last.json["messages"]] == ["user", "assistant", "tool", "user"]
    assert api.last.json["messages"][2]["content"] == "rain"
    assert "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta") == '{"city": "Rome"}'
    assert [e.type for e in events if e.type.startswith("response.output_item")] == [
        "response.output_item.added", "response.output_item.done"]
    final = events[-1].response
    assert final.output[0].type == "function_call" and final.output[0].arguments == '{"city": "Rome"}'


def test_built_in_tools_and_server_side_features_are_refused(client, fake_upstream):
    for tools, param in (([{"type": "web_search_preview"}], "tools[0].type"),
                         ([WEATHER, {"type": "file_search", "vector_store_ids": ["vs_1"]}], "tools[1].type"),
                         ([{"type": "code_interpreter", "container": {"type": "auto"}}], "tools[0].type"),
                         ([{"type": "mcp", "server_label": "x", "server_url": "https://x"}], "tools[0].type")):
        with pytest.raises(openai.BadRequestError) as info:
            client.responses.create(model="gpt-test", input="x", tools=tools)
        assert info.value.body["param"] == param and tools[-1]["type"] in info.value.message
    refusals = [({"background": True}, "background"), ({"conversation": "conv_1"}, "conversation"),
                ({"prompt": {"id": "pmpt_1"}}, "prompt"),
                ({"tool_choice": {"type": "web_search_preview"}}, "tool_choice"),
                ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
                ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}]},
                 "input[0].content[0]"),
                ({"messages": [{"role": "user", "content": "x"}]}, "messages"),
                ({"input": None}, "input")]
    for extra, param in refusals:
        with pytest.raises(openai.BadRequestError) as info:
            client.post("/responses", cast_to=object, body={"model": "gpt-test", "input": "x", **extra})
        assert info.value.body["param"] == param, extra
    with pytest.raises(openai.BadRequestError, match="Invalid model name"):
        client.responses.create(model="nope", input="x")
    assert fake_upstream.requests == []


# -- hooks, spend, errors -----------------------------------------------------------------------
def test_hooks_see_chat_and_shape_the_reply(gateway_server, fake_upstream):
    gw = gateway_server(config(fake_upstream, callbacks=["probe_stream_upper", "banned_keywords"],
                               banned_keywords_list=["forbidden"]))
    with gw.client() as client:
        with pytest.raises(openai.BadRequestError, match="Keyword banned. Keyword=forbidden"):
            client.responses.create(model="gpt-test", input="hi", instructions="forbidden")
        assert client.responses.create(model="gpt-test", input="loud").output_text == "UPSTREAM SAYS: LOUD"
        streamed = "".join(e.delta for e in client.responses.create(model="gpt-test", input="loud", stream=True)
                           if e.type == "response.output_text.delta")
        assert streamed == "UPSTREAM SAYS: LOUD"
        fake_upstream.reply = "a forbidden reply"
        with pytest.raises(openai.APIError, match="Keyword banned"):  # blocked mid-stream: the SDK raises
            list(client.responses.create(model="gpt-test", input="x", stream=True))


def test_spend_rows_record_aresponses(gw, client, fake_upstream):
    made = client.responses.create(model="gpt-test", input="bill me", metadata={"tags": "ignored"},
                                   extra_body={"tags": ["team-a"]})
    events = list(client.responses.create(model="gpt-test", input="bill me too", stream=True))
    rows = gw.spend_logs(2)
    assert [r["call_type"] for r in rows] == ["aresponses", "aresponses"]
    # each row under the response id the client saw, as LiteLLM logs it
    assert {r["request_id"] for r in rows} == {made.id, events[-1].response.id}
    assert all(r["status"] == "success" and r["prompt_tokens"] > 0 and r["completion_tokens"] > 0 for r in rows)
    assert {"team-a"} <= {t for r in rows for t in r["request_tags"]}
    assert all(r["model_group"] == "gpt-test" for r in rows)


def test_upstream_errors_keep_their_status(client, fake_upstream):
    fake_upstream.fail_next(429, message="slow down")
    with pytest.raises(openai.RateLimitError, match="slow down") as info:
        client.responses.create(model="gpt-test", input="x")
    assert set(info.value.body) == {"message", "type", "param", "code"}
    fake_upstream.stream_error_after = 1
    with pytest.raises(openai.APIError, match="upstream exploded"):
        list(client.responses.create(model="gpt-test", input="x y z", stream=True))


# -- a Responses API upstream -------------------------------------------------------------------
def test_responses_in_responses_upstream(client, api):
    resp = client.responses.create(model="gpt5", input="hello", instructions="terse", max_output_tokens=64)
    assert api.last.path == "/openai/v1/responses"
    assert {k: api.last.json[k] for k in ("model", "instructions", "max_output_tokens", "input")} == {
        "model": "gpt-5-mini", "instructions": "terse", "max_output_tokens": 64,
        "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello"}]}]}
    assert valid(resp).output_text == "azure says: hello" and resp.usage.input_tokens > 0
    api.script(Reply(text="thinking done", reasoning="Let me think."))
    thought = client.responses.create(model="gpt5", input="why?", previous_response_id=resp.id)
    assert api.last.json["input"][1] == {"type": "message", "role": "assistant",
                                         "content": [{"type": "output_text", "text": "azure says: hello"}]}
    assert [i.type for i in valid(thought).output] == ["reasoning", "message"]
    assert thought.output[0].summary[0].text == "Let me think." and thought.output_text == "thinking done"
    with client.responses.stream(model="gpt5", input="and then?", previous_response_id=thought.id) as stream:
        events = [e.type for e in stream]
        final = stream.get_final_response()
    assert [m["role"] for m in api.last.json["input"]] == ["user", "assistant", "user", "assistant", "user"]
    assert final.output_text == "azure says: and then?" and events[-1] == "response.completed"
    assert api.last.json["stream"] is True


def test_stream_encoder_renders_reasoning_text_and_calls_in_order():
    """The encoder on its own, fed chat chunks as a provider with reasoning streams them; every
    event is checked against the SDK's event types (validation on)."""
    from pydantic import TypeAdapter

    from openai.types.responses import ResponseStreamEvent

    from gateway.core.apis.responses_stream import ResponsesEncoder, Turn

    turn = Turn(id="resp_1", created_at=1, model="m", echo={"tools": [], "tool_choice": "auto",
                                                            "parallel_tool_calls": True}, store=False, owner=None,
                history=[], items=[])
    encoder = ResponsesEncoder(turn)

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": "c", "model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    raw = b"".join([encoder.chunk(chunk({"role": "assistant", "reasoning_content": "Hmm"})),
                    encoder.chunk(chunk({"reasoning_content": ", weather."})),
                    encoder.chunk(chunk({"content": "Checking."})),
                    encoder.chunk(chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                                                         "function": {"name": "get_weather", "arguments": ""}}]})),
                    encoder.chunk(chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]})),
                    encoder.chunk(chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]})),
                    encoder.chunk(chunk({}, "tool_calls")),
                    encoder.chunk({"id": "c", "model": "m", "choices": [],
                                   "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}),
                    encoder.done()])
    events = [TypeAdapter(ResponseStreamEvent).validate_python(json.loads(block.split(b"\ndata: ", 1)[1]))
              for block in raw.split(b"\n\n") if block]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert [e.type for e in events] == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta", "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done", "response.reasoning_summary_part.done", "response.output_item.done",
        "response.output_item.added", "response.content_part.added", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.delta", "response.function_call_arguments.done",
        "response.output_item.done", "response.completed"]
    final = events[-1].response
    assert [i.type for i in final.output] == ["reasoning", "message", "function_call"]
    assert final.output[0].summary[0].text == "Hmm, weather." and final.output_text == "Checking."
    assert (final.output[2].call_id, final.output[2].arguments) == ("call_a", '{"city":"Oslo"}')
    assert final.usage.total_tokens == 7 and encoder.result() == events[-1].response.model_dump(exclude_unset=True)
