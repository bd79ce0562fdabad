"""The event-stream decoder against botocore's own `EventStreamBuffer`: the same messages for any
cut of the bytes, every header type, and the same refusals of corrupt input."""

from __future__ import annotations

import json
import random
import struct
import uuid

import pytest
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer

from bedrock_peer import Reply, encode_message, event, exception, stream_events
from gateway_plugin_bedrock.eventstream import EventStreamDecoder, EventStreamError


def botocore_decode(data: bytes) -> list[tuple[dict, bytes]]:
    buffer = EventStreamBuffer()
    buffer.add_data(data)
    return [(m.headers, m.payload) for m in buffer]


def ours(data: bytes, cuts: list[int]) -> list[tuple[dict, bytes]]:
    decoder = EventStreamDecoder()
    out: list[tuple[dict, bytes]] = []
    start = 0
    for cut in [*cuts, len(data)]:
        out.extend(decoder.feed(data[start:cut]))
        start = cut
    assert decoder.pending == 0
    return out


def sample() -> bytes:
    reply = Reply(text="The quick brown fox jumps over the lazy dog.", reasoning="hmm let me see", signature="s1",
                  tool_uses=[{"toolUseId": "t1", "name": "f", "input": {"a": [1, 2, {"b": "ü€"}]}}],
                  stop_reason="tool_use", cache_read=1)
    return b"".join(stream_events(reply)) + exception("validationException", "bad input")


def test_same_messages_as_botocore_for_every_cut():
    data = sample()
    expected = botocore_decode(data)
    assert len(expected) > 10
    rng = random.Random(7)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(data)), rng.randint(1, 40)))
        assert ours(data, cuts) == expected
    assert ours(data, list(range(1, len(data)))) == expected  # one byte at a time


def test_every_header_type_as_botocore_reads_it():
    headers = {":message-type": "event", "t": ("true", True), "f": ("false", False), "b": ("byte", -5),
               "s": ("short", -300), "i": ("integer", 70000), "l": ("long", -(2 ** 40)), "raw": ("bytes", b"\x00\xff"),
               "ts": ("timestamp", 1700000000000), "u": ("uuid", uuid.UUID(int=42).bytes), "str": "ü€"}
    data = encode_message(headers, b'{"x": 1}') * 3
    assert ours(data, [5, 40]) == botocore_decode(data)
    # cached header blocks come back identical, message after message
    decoded = ours(data, [])
    assert decoded[0][0] is decoded[2][0]


@pytest.mark.parametrize("where", ["prelude", "headers", "payload", "crc"])
def test_corruption_is_refused_like_botocore(where):
    data = bytearray(event("contentBlockDelta", {"delta": {"text": "hello"}, "contentBlockIndex": 0}))
    offset = {"prelude": 2, "headers": 20, "payload": len(data) - 10, "crc": len(data) - 1}[where]
    data[offset] ^= 0x01
    with pytest.raises(ChecksumMismatch):
        botocore_decode(bytes(data))
    with pytest.raises(EventStreamError):
        EventStreamDecoder().feed(bytes(data))


def test_absurd_lengths_are_refused_before_waiting_for_them():
    prelude = struct.pack(">II", 2 ** 31, 8)
    import zlib
    data = prelude + struct.pack(">I", zlib.crc32(prelude))
    with pytest.raises(EventStreamError):
        EventStreamDecoder().feed(data)


def test_an_empty_payload_and_an_unknown_event():
    data = encode_message({":message-type": "event", ":event-type": "somethingNew"}, b"")
    assert ours(data, [3]) == botocore_decode(data) == [({":message-type": "event", ":event-type": "somethingNew"}, b"")]
    payload = json.loads(botocore_decode(event("metadata", {"usage": {"inputTokens": 1}}))[0][1])
    assert payload["usage"] == {"inputTokens": 1} and "p" in payload  # Bedrock's padding field rides along
