"""AWS's binary event stream (`application/vnd.amazon.eventstream`), decoded as bytes arrive.

ConverseStream answers with a sequence of messages, each framed as:

    total length (uint32) | headers length (uint32) | CRC32 of those 8 bytes
    headers | payload | CRC32 of everything before it

The framing and both checksums are checked here; the header block is parsed by botocore's own
`EventStreamHeaderParser` (every header type it knows). botocore's `EventStreamBuffer` does the
same job, but parses every header of every message again in pure Python (about 12-20 µs per
message here). Bedrock sends the same three or four headers with every event of a kind, so this
decoder parses each distinct header block once and reuses the result: a message then costs about
2 µs. `tests/test_eventstream.py` checks it against `EventStreamBuffer` message by message, for
any split of the bytes, and for every corruption botocore detects.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

from botocore.eventstream import EventStreamHeaderParser

PRELUDE = 12  # total length, headers length, prelude CRC
MAX_PAYLOAD = 24 * 1024 * 1024  # botocore's limits: _MAX_PAYLOAD_LENGTH and _MAX_HEADERS_LENGTH
MAX_HEADERS = 128 * 1024
_CACHE_LIMIT = 256  # distinct header blocks remembered per decoder (Bedrock uses a handful)
_unpack = struct.Struct(">III").unpack_from
_crc_at = struct.Struct(">I").unpack_from


class EventStreamError(ValueError):
    """The bytes are not a valid event stream (bad length, checksum or header)."""


class EventStreamDecoder:
    """Feed bytes in any cut; get whole messages back as `(headers, payload)`."""

    __slots__ = ("_buffer", "_headers")

    def __init__(self) -> None:
        self._buffer = b""
        self._headers: dict[bytes, dict[str, Any]] = {}

    @property
    def pending(self) -> int:
        """Bytes received that do not yet make a whole message."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[tuple[dict[str, Any], bytes]]:
        buf = self._buffer + data if self._buffer else bytes(data)
        size = len(buf)
        pos = 0
        out: list[tuple[dict[str, Any], bytes]] = []
        while size - pos >= PRELUDE:
            total, headers_length, prelude_crc = _unpack(buf, pos)
            if zlib.crc32(buf[pos:pos + 8]) != prelude_crc:
                raise EventStreamError("event stream prelude checksum mismatch")
            if headers_length > MAX_HEADERS or not 0 <= total - headers_length - PRELUDE - 4 <= MAX_PAYLOAD:
                raise EventStreamError(f"event stream message lengths are invalid ({total}, {headers_length})")
            if size - pos < total:
                break
            end = pos + total - 4
            if zlib.crc32(buf[pos:end]) != _crc_at(buf, end)[0]:
                raise EventStreamError("event stream message checksum mismatch")
            start = pos + PRELUDE
            block = buf[start:start + headers_length]
            headers = self._headers.get(block)
            if headers is None:
                try:
                    headers = EventStreamHeaderParser().parse(block)
                except Exception as exc:  # botocore's ParserError and friends, or a truncated block
                    raise EventStreamError(f"event stream headers are invalid ({type(exc).__name__})") from None
                if len(self._headers) < _CACHE_LIMIT:
                    self._headers[block] = headers
            out.append((headers, buf[start + headers_length:end]))
            pos += total
        self._buffer = buf[pos:] if pos < size else b""
        return out
