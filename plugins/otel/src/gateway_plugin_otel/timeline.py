"""When each plugin hook ran, rebuilt from `ctx.verdicts`.

The core records, per guard and phase, the verdict and the total latency of its hook calls, in the
order they first ran; it does not record when each one started. So the hook spans are laid out
from what the request path guarantees:

- `pre_call` hooks run one after the other from the start of the call: laid end to end from it;
- `during_call` hooks start with the upstream call, right after the `pre_call` ones;
- `post_call` hooks (`post_response`, and `stream_chunk` summed over a stream's chunks) run after the
  upstream answered, until the call ends: laid end to end so that the last ends with the call;
- `logging_only` hooks run after the call ended, on copies of what is logged: laid from its end.

A stream's `stream_chunk` time is spread over the stream; its span shows the sum, not when. Guards
that ran together (`concurrent`) show one after the other. Every span keeps its real duration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class HookWindow:
    name: str
    phase: str
    verdict: str
    latency_ms: float
    message: str | None
    start: float  # seconds, wall clock
    end: float


def _ms(entry: dict[str, Any]) -> float:
    value = entry.get("latency_ms")
    return max(0.0, float(value)) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def hook_windows(verdicts: dict[Any, dict[str, Any]], start: float, end: float) -> list[HookWindow]:
    """Each verdict's window, between the call's `start` and `end` (`time.time()` seconds), in the
    order the verdicts were recorded."""
    end = max(end, start)
    entries = [e for e in verdicts.values() if isinstance(e, dict) and isinstance(e.get("name"), str)]
    placed: dict[int, tuple[float, float]] = {}

    cursor = start
    for i, e in enumerate(entries):
        if e.get("phase") == "pre_call":
            d = _ms(e) / 1000
            placed[i] = (cursor, cursor + d)
            cursor += d
    upstream_start = min(cursor, end)

    post = [(i, e) for i, e in enumerate(entries) if e.get("phase") == "post_call"]
    cursor = max(upstream_start, end - sum(_ms(e) for _, e in post) / 1000)
    for i, e in post:
        d = _ms(e) / 1000
        placed[i] = (cursor, cursor + d)
        cursor += d

    after = end
    for i, e in enumerate(entries):
        if i in placed:
            continue
        d = _ms(e) / 1000
        if e.get("phase") == "logging_only":
            placed[i] = (after, after + d)
            after += d
        else:  # during_call, and any phase the core adds later: with the upstream call
            placed[i] = (upstream_start, upstream_start + d)

    out = []
    for i, e in enumerate(entries):
        s, t = placed[i]
        message = e.get("message")
        out.append(HookWindow(name=e["name"], phase=str(e.get("phase") or ""), verdict=str(e.get("verdict") or ""),
                              latency_ms=_ms(e), message=message if isinstance(message, str) else None,
                              start=s, end=t))
    return out
