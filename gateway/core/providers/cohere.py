"""The native `cohere/` provider (in progress: until it lands, `cohere/` is not served)."""

from __future__ import annotations

from gateway.provider import Provider


def providers() -> list[Provider]:
    return []
