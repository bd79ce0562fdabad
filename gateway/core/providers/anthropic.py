"""The native `anthropic/` provider (in progress: until it lands, `anthropic/` goes through the OpenAI-compatible family)."""

from __future__ import annotations

from gateway.provider import Provider


def providers() -> list[Provider]:
    return []
