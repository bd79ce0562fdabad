"""Values a client chose, made storable on SQLite and PostgreSQL alike, before any writer sees them.

A background writer must never be stopped by its input (a row it cannot write would be retried
forever), so what clients send is cleaned at the edge: NUL characters (PostgreSQL text and jsonb
cannot hold them) and lone surrogates (not UTF-8) become U+FFFD; nesting deeper than `MAX_DEPTH`
is cut (orjson, which tortoise uses for JSON columns, refuses more than 255 levels, and deep
nesting helps no reader); numbers a JSON column cannot hold become null; anything that is not
JSON becomes its text. Writers still guard themselves (see `gateway.core.dead_letters`).
"""

from __future__ import annotations

import math
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, Callable

MAX_DEPTH = 32
TOO_DEEP = f"[cut: nested deeper than {MAX_DEPTH} levels]"


def clean_text(s: str) -> str:
    """`s` with NUL and lone surrogates replaced by U+FFFD (unchanged, and fast, when clean)."""
    if "\x00" in s:
        s = s.replace("\x00", "\ufffd")
    if not s.isascii():
        try:
            s.encode()
        except UnicodeEncodeError:
            s = s.encode("utf-8", "replace").decode()
    return s


def storable(value: Any, text: Callable[[str], str] = clean_text, max_depth: int = MAX_DEPTH) -> Any:
    """A JSON value every database column of ours takes: see the module docstring. `text` cleans
    every string (dict keys included), so a caller can mask secrets on top."""
    return _clean(value, text, max_depth)


def _clean(v: Any, text: Callable[[str], str], depth: int) -> Any:
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, str):
        return text(v)
    if isinstance(v, int):
        if -(2**63) <= v < 2**63:
            return v
        try:  # what a JSON round trip makes of it
            return float(v)
        except OverflowError:
            return None
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, (dict, list, tuple, set, frozenset)):
        if depth <= 0:
            return TOO_DEEP
        if isinstance(v, dict):
            return {text(str(k)): _clean(x, text, depth - 1) for k, x in v.items()}
        return [_clean(x, text, depth - 1) for x in v]
    if isinstance(v, datetime):
        return text(v.astimezone(timezone.utc).isoformat(timespec="microseconds") if v.tzinfo else v.isoformat())
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, Decimal):
        return _clean(float(v), text, depth)
    return text(str(v))
