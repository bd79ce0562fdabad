"""What serving Anthropic's Messages and OpenAI's Responses through the chat path costs in CPU.

Per call: the adapter's request translation (the client's body -> a chat request) plus its reply
rendering (a `chat.completion` -> the API's reply, encoded as JSON), for a short call and a call
with a system prompt, tools and a tool-result turn. What chat itself costs on the same path (the
gateway's `orjson.loads` of the body and `orjson.dumps` of the reply) is measured beside it; the
difference is what the adapter adds.

Per stream chunk: the adapter's encoder over a stream of 200 `chat.completion.chunk`s carrying a
few words each (the API's SSE event bytes, its opening events included), against chat's own
re-encoding of each chunk (`b"data: " + orjson.dumps(chunk)`).

Goal (issue 16, as for provider translation in issue 13): under 0.1 ms per call and under 10 us
per chunk added. The exit status is 1 when a goal is missed. One process, pinned to one CPU.

Run from the repository root:
    uv run --no-sync python bench/api_translation.py [--seconds 1.0]
"""

from __future__ import annotations

import argparse
import os
import sys
from types import SimpleNamespace
from typing import Any

import orjson

from gateway.core.apis.anthropic_messages import AnthropicMessages, from_chat, to_chat
from gateway.core.apis.responses import chat_request, echo_of, translate_input
from gateway.core.apis.responses_stream import ResponsesEncoder, Turn, output_items

sys.path.insert(0, os.path.dirname(__file__))
from provider_translation import BATCHES, per_op  # noqa: E402  (the same timing as issue 13's bench)

STREAM_CHUNKS = 200  # a stream of a few hundred words, as issue 18 measures them
CALL_GOAL_MS = 0.1
CHUNK_GOAL_US = 10.0

SYSTEM = "You are a weather bot. " * 20
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
MESSAGES = {
    "short": {"model": "m", "max_tokens": 256, "messages": [{"role": "user", "content": "hi"}]},
    "tools round trip": {"model": "m", "max_tokens": 512, "system": SYSTEM, "tools": [
        {"name": "get_weather", "description": "Weather in a city", "input_schema": SCHEMA}], "messages": [
        {"role": "user", "content": "What's the weather in Paris?"},
        {"role": "assistant", "content": [{"type": "text", "text": "Checking."},
                                          {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                                           "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C, sunny"}]}]},
}
RESPONSES = {
    "short": {"model": "m", "input": "hi"},
    "tools round trip": {"model": "m", "instructions": SYSTEM, "tools": [
        {"type": "function", "name": "get_weather", "description": "Weather in a city", "parameters": SCHEMA}],
        "input": [{"role": "user", "content": "What's the weather in Paris?"},
                  {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city":"Paris"}'},
                  {"type": "function_call_output", "call_id": "call_1", "output": "18C, sunny"}]},
}
REPLY = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
         "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris is 18C and sunny today."},
                      "finish_reason": "stop"}],
         "usage": {"prompt_tokens": 120, "completion_tokens": 60, "total_tokens": 180}}
CHUNK = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
         "choices": [{"index": 0, "delta": {"content": " the quick brown"}, "finish_reason": None}]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average {load:.2f} on {os.cpu_count()} CPUs; best of {BATCHES} batches (median in brackets)\n")
    reply_bytes = orjson.dumps(REPLY)
    worst_call = 0.0

    def chat(body_bytes: bytes) -> None:  # what the chat route does with a body and a reply anyway
        orjson.loads(body_bytes)
        orjson.dumps(orjson.loads(reply_bytes))

    def turn() -> Turn:
        return Turn(id="resp_1", created_at=1, model="m", echo=echo_of(RESPONSES["short"], {}), store=False,
                    owner=None, history=[], items=[])

    cases = {}
    for name, body in MESSAGES.items():
        raw = orjson.dumps(body)

        def messages(raw: bytes = raw) -> None:
            to_chat(orjson.loads(raw), native=False)
            orjson.dumps(from_chat(orjson.loads(reply_bytes), "m"))
        cases[f"messages, {name}"] = (raw, messages)
    for name, body in RESPONSES.items():
        raw = orjson.dumps(body)

        def responses(raw: bytes = raw) -> None:
            request = orjson.loads(raw)
            messages, _ = translate_input(request["input"])
            chat_request(request, messages)
            reply = orjson.loads(reply_bytes)
            choice = reply["choices"][0]
            orjson.dumps(turn().response(output_items(choice["message"], choice["finish_reason"]),
                                         choice["finish_reason"], reply["usage"], reply["model"]))
        cases[f"responses, {name}"] = (raw, responses)

    print(f"{'per call':<28} {'adapter':>22} {'chat':>22} {'added':>22}")
    for name, (raw, fn) in cases.items():
        (ours, ours_med), (theirs, theirs_med) = per_op(fn, args.seconds), per_op(lambda raw=raw: chat(raw), args.seconds)
        worst_call = max(worst_call, ours - theirs)
        print(f"{name:<28} {ours * 1e3:>8.4f} ms [{ours_med * 1e3:.4f}] {theirs * 1e3:>8.4f} ms [{theirs_med * 1e3:.4f}] "
              f"{(ours - theirs) * 1e3:>8.4f} ms [{(ours_med - theirs_med) * 1e3:.4f}]")

    ctx = SimpleNamespace(model="m", body=to_chat(MESSAGES["short"], native=False))
    encoders = {"messages": lambda: AnthropicMessages().encoder(ctx), "responses": lambda: ResponsesEncoder(turn())}

    def stream(make: Any = None) -> None:  # one stream of STREAM_CHUNKS chunks, as a client gets them
        encoder = make() if make is not None else None
        for _ in range(STREAM_CHUNKS):
            encoder.chunk(CHUNK) if encoder is not None else b"data: " + orjson.dumps(CHUNK) + b"\n\n"

    chat_chunk = per_op(stream, args.seconds)[0] / STREAM_CHUNKS
    worst_chunk = 0.0
    print(f"\n{'per chunk':<28} {'encoder':>22} {'chat':>22} {'added':>22}")
    for name, make in encoders.items():
        best, median = (t / STREAM_CHUNKS for t in per_op(lambda make=make: stream(make), args.seconds))
        worst_chunk = max(worst_chunk, best - chat_chunk)
        print(f"{name:<28} {best * 1e6:>8.2f} us [{median * 1e6:.2f}] {chat_chunk * 1e6:>8.2f} us {'':>13}"
              f"{(best - chat_chunk) * 1e6:>8.2f} us")
    met = worst_call * 1e3 <= CALL_GOAL_MS and worst_chunk * 1e6 <= CHUNK_GOAL_US
    print(f"\nworst added: {worst_call * 1e3:.4f} ms per call (goal {CALL_GOAL_MS} ms), "
          f"{worst_chunk * 1e6:.2f} us per chunk (goal {CHUNK_GOAL_US} us): {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
