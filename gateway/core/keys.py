"""Virtual keys: making them, and the only forms in which they are kept (sha256, a short name)."""

from __future__ import annotations

import hashlib
import re
import secrets

HASH_RE = re.compile(r"^[0-9a-f]{64}$")


def generate_key() -> str:
    """`sk-` and 22 url-safe random characters (128 bits)."""
    return "sk-" + secrets.token_urlsafe(16)


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def key_name(raw: str) -> str:
    """What people see in lists: `sk-...` and the last four characters."""
    return "sk-..." + raw[-4:]


def token_of(value: str) -> str:
    """Management calls accept the raw key or its hash; both give the hash."""
    return value if HASH_RE.match(value) else hash_key(value)


def display_of(value: str) -> str:
    """How to name a key in a message without revealing it: its short name, or its hash."""
    return value if HASH_RE.match(value) else key_name(value)
