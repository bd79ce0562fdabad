"""What translating to and from Anthropic's Messages API costs in CPU, against an OpenAI pass-through.

Per call: the provider's `build_request` (OpenAI body -> Messages body, headers, JSON bytes) plus
`parse_reply` (Messages reply -> `chat.completion`, re-encoded as JSON as `TranslatedReply.read`
does), for three requests: a short chat, a chat with a
system prompt, tools and a tool-result turn, and a thinking call. The OpenAI-compatible pass-through
is measured the same way (its `build_request`, and the `orjson.loads` the gateway does on a reply).

Per stream chunk: `AnthropicStream.feed` on one `content_block_delta` event as it arrives from the
network, and the same plus the re-encoding of each chunk as SSE that `TranslatedReply` does
(`b"data: " + orjson.dumps(chunk)`), which a pass-through stream does not need.

Goal (issue 13): translation adds under 0.1 ms per call and under 10 us per chunk. The exit status
is 1 when a goal is missed. One process, one thread, pinned to one CPU where the OS allows.

Run from the repository root:
    uv run --no-sync python bench/provider_translation.py [--seconds 1.0]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any, Callable

import orjson

from gateway.core.providers.anthropic import Anthropic
from gateway.core.providers.openai_family import OpenAICompatible

CALL_GOAL_MS = 0.1
CHUNK_GOAL_US = 10.0


class Dep:
    api_base = "https://api.anthropic.com"
    api_key = "sk-ant-api03-bench"
    basic_auth = None
    extra_headers: dict[str, str] = {}
    extra_body: dict[str, Any] = {}
    upstream_model = "claude-3-5-sonnet-20240620"


TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["C", "F"]}},
    "required": ["city"]}}}
REQUESTS: dict[str, dict[str, Any]] = {
    "short chat": {"model": Dep.upstream_model, "messages": [{"role": "user", "content": "hi"}]},
    "tools round trip": {"model": Dep.upstream_model, "temperature": 0.2, "max_tokens": 512, "user": "u-1",
                         "tools": [TOOL], "tool_choice": "auto", "messages": [
        {"role": "system", "content": "You are a weather bot. " * 20},
        {"role": "user", "content": "What's the weather in Paris and Rome?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "toolu_01A", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
            {"id": "toolu_01B", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}}]},
        {"role": "tool", "tool_call_id": "toolu_01A", "content": "18C, sunny"},
        {"role": "tool", "tool_call_id": "toolu_01B", "content": "21C, cloudy"}]},
    "thinking": {"model": Dep.upstream_model, "reasoning_effort": "medium",
                 "messages": [{"role": "user", "content": "Write a haiku about autumn."}]},
}
USAGE = {"input_tokens": 120, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 2048, "output_tokens": 60}
REPLIES: dict[str, bytes] = {
    "short chat": orjson.dumps({"id": "msg_01", "type": "message", "role": "assistant", "model": Dep.upstream_model,
                                "content": [{"type": "text", "text": "Hello! How can I help you today?"}],
                                "stop_reason": "end_turn", "stop_sequence": None, "usage": USAGE}),
    "tools round trip": orjson.dumps({"id": "msg_02", "type": "message", "role": "assistant", "model": Dep.upstream_model,
                                      "content": [{"type": "text", "text": "Paris is 18C and sunny; Rome 21C."},
                                                  {"type": "tool_use", "id": "toolu_01C", "name": "get_weather",
                                                   "input": {"city": "Oslo", "unit": "C"}}],
                                      "stop_reason": "tool_use", "stop_sequence": None, "usage": USAGE}),
    "thinking": orjson.dumps({"id": "msg_03", "type": "message", "role": "assistant", "model": Dep.upstream_model,
                              "content": [{"type": "thinking", "thinking": "Five, seven, five syllables. " * 10,
                                           "signature": "EqQBCgIYAhIM" * 8},
                                          {"type": "text", "text": "Crisp leaves drift and fall\nthe maple lets go"}],
                              "stop_reason": "end_turn", "stop_sequence": None, "usage": USAGE}),
}
OPENAI_REPLY = orjson.dumps({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello! How can I help?"},
                                          "finish_reason": "stop"}],
                             "usage": {"prompt_tokens": 120, "completion_tokens": 60, "total_tokens": 180}})
START = (b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_01","type":"message",'
         b'"role":"assistant","model":"claude-3-5-sonnet-20240620","content":[],"stop_reason":null,'
         b'"stop_sequence":null,"usage":{"input_tokens":25,"output_tokens":1}}}\n\n'
         b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
         b'"content_block":{"type":"text","text":""}}\n\n')
DELTA = (b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
         b'"delta":{"type":"text_delta","text":" the quick brown"}}\n\n')


BATCHES = 15


def per_op(fn: Callable[[], Any], seconds: float) -> tuple[float, float]:
    """(best, median) seconds per call of `fn` over timed batches filling `seconds`. The best batch is
    the figure judged: on a shared machine the median also counts other processes' time."""
    n, started = 0, time.perf_counter()
    while time.perf_counter() - started < 0.05:  # warm up and size the batches
        fn()
        n += 1
    batch = max(100, int(n * seconds / BATCHES / 0.05))
    samples = []
    for _ in range(BATCHES):
        t0 = time.perf_counter()
        for _ in range(batch):
            fn()
        samples.append((time.perf_counter() - t0) / batch)
    return min(samples), statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
    anthropic, openai, dep = Anthropic(), OpenAICompatible("openai", "https://api.openai.com/v1", (), "OpenAI"), Dep()
    worst_call = 0.0
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average {load:.2f} on {os.cpu_count()} CPUs; best of {BATCHES} batches (median in brackets)\n")
    print(f"{'per call':<18} {'anthropic':>22} {'openai pass-through':>22} {'added':>22}")
    for name, body in REQUESTS.items():
        reply = REPLIES[name]

        def translated() -> None:
            anthropic.build_request(dep, "acompletion", dict(body), False)
            orjson.dumps(anthropic.parse_reply(dep, "acompletion", reply))  # as TranslatedReply.read does

        def passthrough() -> None:
            openai.build_request(dep, "acompletion", dict(body), False)
            orjson.loads(OPENAI_REPLY)

        (ours, ours_med), (theirs, theirs_med) = per_op(translated, args.seconds), per_op(passthrough, args.seconds)
        worst_call = max(worst_call, ours - theirs)
        print(f"{name:<18} {ours * 1e3:>8.4f} ms [{ours_med * 1e3:.4f}] {theirs * 1e3:>8.4f} ms [{theirs_med * 1e3:.4f}] "
              f"{(ours - theirs) * 1e3:>8.4f} ms [{(ours_med - theirs_med) * 1e3:.4f}]")

    def one_chunk() -> None:
        stream.feed(DELTA)

    def one_chunk_encoded() -> None:
        for chunk in stream.feed(DELTA):
            b"data: " + orjson.dumps(chunk) + b"\n\n"

    stream = anthropic.stream(dep, "acompletion")
    stream.feed(START)
    chunk, chunk_med = per_op(one_chunk, args.seconds)
    encoded, encoded_med = per_op(one_chunk_encoded, args.seconds)
    print(f"\nper stream chunk: translate {chunk * 1e6:.2f} us [{chunk_med * 1e6:.2f}]; translate + re-encode "
          f"as SSE {encoded * 1e6:.2f} us [{encoded_med * 1e6:.2f}]")
    ok = worst_call * 1e3 < CALL_GOAL_MS and encoded * 1e6 < CHUNK_GOAL_US
    print(f"goals: added per call {worst_call * 1e3:.4f} ms (< {CALL_GOAL_MS} ms), per chunk {encoded * 1e6:.2f} us "
          f"(< {CHUNK_GOAL_US:g} us): {'met' if ok else 'MISSED'}  [python {sys.version.split()[0]}]")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
