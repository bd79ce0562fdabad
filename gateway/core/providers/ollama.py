"""The native `ollama/` provider (in progress: until it lands, `ollama/` goes through the OpenAI-compatible family)."""

from __future__ import annotations

from gateway.provider import Provider


def providers() -> list[Provider]:
    return []
