"""What the Bedrock provider costs in CPU: per call (build + sign + parse) and per stream event.

Per call: `prepare` (nothing to do: credentials are fresh) and `build_request` (OpenAI body ->
Converse body, JSON bytes, SigV4 signature over them) plus
`parse_reply` (Converse reply -> `chat.completion`, re-encoded as JSON as the gateway's
`TranslatedReply.read` does), for a short chat, a tools round trip and a thinking call; against an
OpenAI pass-through (the core's `OpenAICompatible.build_request` and the `orjson.loads` of a reply).
Signing is also shown alone, and with botocore's unmodified `SigV4Auth.add_auth` for comparison.

Per stream event: `ConverseStream.feed` on one binary `contentBlockDelta` message as it arrives
(frame + CRC checks, headers, JSON, chunk), alone and with the re-encoding as SSE that
`TranslatedReply` adds; and botocore's `EventStreamBuffer` decoding the same message, for comparison.

Goal (issue 13): translation adds under 0.1 ms per call and under 10 us per chunk. The exit status is
1 when a goal is missed. One process, one thread, pinned to one CPU where the OS allows.

    uv run --no-sync python plugins/bedrock/bench/translation.py [--seconds 1.0]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.eventstream import EventStreamBuffer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from bedrock_peer import Reply, converse_reply, event, stream_events  # noqa: E402

from gateway_plugin_bedrock import aws  # noqa: E402
from gateway_plugin_bedrock.provider import BedrockProvider  # noqa: E402

CALL_GOAL_MS = 0.1
CHUNK_GOAL_US = 10.0
BATCHES = 15
MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["C", "F"]}},
    "required": ["city"]}}}
REQUESTS: dict[str, dict[str, Any]] = {
    "short chat": {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
    "tools round trip": {"model": MODEL, "temperature": 0.2, "max_tokens": 512, "user": "u-1",
                         "tools": [TOOL], "tool_choice": "auto", "messages": [
        {"role": "system", "content": "You are a weather bot. " * 20},
        {"role": "user", "content": "What's the weather in Paris and Rome?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "tooluse_01A", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
            {"id": "tooluse_01B", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}}]},
        {"role": "tool", "tool_call_id": "tooluse_01A", "content": "18C, sunny"},
        {"role": "tool", "tool_call_id": "tooluse_01B", "content": "21C, cloudy"}]},
    "thinking": {"model": MODEL, "reasoning_effort": "medium",
                 "messages": [{"role": "user", "content": "Write a haiku about autumn."}]},
}
REPLIES: dict[str, bytes] = {
    "short chat": orjson.dumps(converse_reply(Reply(text="Hello! How can I help you today?", input_tokens=120,
                                                    cache_read=2048))),
    "tools round trip": orjson.dumps(converse_reply(Reply(
        text="Paris is 18C and sunny; Rome 21C.", stop_reason="tool_use", input_tokens=120,
        tool_uses=[{"toolUseId": "tooluse_01C", "name": "get_weather", "input": {"city": "Oslo", "unit": "C"}}]))),
    "thinking": orjson.dumps(converse_reply(Reply(text="Crisp leaves drift and fall\nthe maple lets go",
                                                  reasoning="Five, seven, five syllables. " * 10,
                                                  signature="EqQBCgIYAhIM" * 8))),
}
OPENAI_REPLY = orjson.dumps({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello! How can I help?"},
                                          "finish_reason": "stop"}],
                             "usage": {"prompt_tokens": 120, "completion_tokens": 60, "total_tokens": 180}})


def per_op(fn: Callable[[], Any], seconds: float) -> tuple[float, float]:
    """(best, median) seconds per call of `fn` over timed batches filling `seconds`."""
    n, started = 0, time.perf_counter()
    while time.perf_counter() - started < 0.05:
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


def run(coro: Any) -> None:
    """A coroutine that does not suspend, run to its end (what an `await` of it costs, no loop)."""
    try:
        coro.send(None)
    except StopIteration:
        return
    raise RuntimeError("prepare() suspended: it had I/O to do")


def passthrough_builder() -> Callable[[dict[str, Any]], Any]:
    """What an OpenAI pass-through does per call (URL, headers, JSON bytes); plugins import only
    `gateway`, so the core's own builder is not imported here."""
    return lambda body: ("https://api.openai.com/v1/chat/completions",
                         {"content-type": "application/json", "authorization": "Bearer sk-bench"}, orjson.dumps(body))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    args = parser.parse_args()
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        del os.environ[name]
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
    provider = BedrockProvider()
    dep = SimpleNamespace(model_name="claude", provider="bedrock", upstream_model=MODEL, api_base=aws.ENDPOINT_TEMPLATE,
                          display_base=None, api_key=None, basic_auth=None, extra_headers={},
                          params={"model": f"bedrock/{MODEL}", "aws_region_name": "us-east-1",
                                  "aws_access_key_id": "AKIABENCHBENCHBENCH1",
                                  "aws_secret_access_key": "benchSecretKey/0123456789abcdefghijklmn",
                                  "aws_session_token": "FwoGZXIvYXdzE" + "x" * 300})
    provider.check(dep)
    passthrough = passthrough_builder()
    worst_call = 0.0
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average {load:.2f} on {os.cpu_count()} CPUs; best of {BATCHES} batches (median in brackets)\n")
    print(f"{'per call':<18} {'bedrock':>22} {'openai pass-through':>22} {'added':>22}")
    for name, body in REQUESTS.items():
        reply = REPLIES[name]

        def translated() -> None:
            run(provider.prepare(dep, "acompletion"))  # awaited by the gateway before build_request
            provider.build_request(dep, "acompletion", dict(body), False)
            orjson.dumps(provider.parse_reply(dep, "acompletion", reply))

        def baseline() -> None:
            passthrough(body)
            orjson.loads(OPENAI_REPLY)

        (ours, ours_med), (theirs, theirs_med) = per_op(translated, args.seconds), per_op(baseline, args.seconds)
        worst_call = max(worst_call, ours - theirs)
        print(f"{name:<18} {ours * 1e3:>8.4f} ms [{ours_med * 1e3:.4f}] {theirs * 1e3:>8.4f} ms [{theirs_med * 1e3:.4f}] "
              f"{(ours - theirs) * 1e3:>8.4f} ms [{(ours_med - theirs_med) * 1e3:.4f}]")

    # signing alone, and botocore's unmodified signer on the same request
    req = provider.build_request(dep, "acompletion", dict(REQUESTS["tools round trip"]), False)
    creds = Credentials(dep.params["aws_access_key_id"], dep.params["aws_secret_access_key"],
                        dep.params["aws_session_token"]).get_frozen_credentials()
    target = provider._target(dep)

    def ours_sign() -> None:
        aws.sign(req.url, target.host, {"content-type": "application/json", "accept": "application/json"}, req.body,
                 creds, "us-east-1")

    def botocore_sign() -> None:
        request = AWSRequest(method="POST", url=req.url, data=req.body,
                             headers={"content-type": "application/json", "accept": "application/json"})
        SigV4Auth(creds, "bedrock", "us-east-1").add_auth(request)

    sign, sign_med = per_op(ours_sign, args.seconds)
    vanilla, vanilla_med = per_op(botocore_sign, args.seconds)
    print(f"\nSigV4 (within the above): {sign * 1e6:.1f} us [{sign_med * 1e6:.1f}]; botocore SigV4Auth.add_auth "
          f"unmodified: {vanilla * 1e6:.1f} us [{vanilla_med * 1e6:.1f}]")

    # one stream event, as it arrives
    start = b"".join(stream_events(Reply(text="x", no_metadata=True))[:1])
    delta = event("contentBlockDelta", {"delta": {"text": " the quick brown"}, "contentBlockIndex": 0})
    stream = provider.stream(dep, "acompletion")
    stream.feed(start)

    def one_event() -> None:
        stream.feed(delta)

    def one_event_encoded() -> None:
        for chunk in stream.feed(delta):
            b"data: " + orjson.dumps(chunk) + b"\n\n"

    buffer = EventStreamBuffer()

    def botocore_event() -> None:
        buffer.add_data(delta)
        for message in buffer:
            orjson.loads(message.payload)

    chunk, chunk_med = per_op(one_event, args.seconds)
    encoded, encoded_med = per_op(one_event_encoded, args.seconds)
    decode_only, decode_med = per_op(botocore_event, args.seconds)
    print(f"per stream event: translate {chunk * 1e6:.2f} us [{chunk_med * 1e6:.2f}]; translate + re-encode as SSE "
          f"{encoded * 1e6:.2f} us [{encoded_med * 1e6:.2f}]; botocore EventStreamBuffer decode + JSON alone "
          f"{decode_only * 1e6:.2f} us [{decode_med * 1e6:.2f}]")
    ok = worst_call * 1e3 < CALL_GOAL_MS and encoded * 1e6 < CHUNK_GOAL_US
    print(f"goals: added per call {worst_call * 1e3:.4f} ms (< {CALL_GOAL_MS} ms), per event {encoded * 1e6:.2f} us "
          f"(< {CHUNK_GOAL_US:g} us): {'met' if ok else 'MISSED'}  [python {sys.version.split()[0]}]")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
