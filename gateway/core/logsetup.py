"""Log format and level for the server process (tests leave logging to pytest)."""

from __future__ import annotations

import logging
import os
import sys


def configure_logging() -> None:
    detailed = os.environ.get("GATEWAY_DETAILED_DEBUG", "").lower() in ("1", "true", "yes")
    name = os.environ.get("GATEWAY_LOG_LEVEL") or os.environ.get("LITELLM_LOG") or "INFO"
    level = logging.DEBUG if detailed else getattr(logging, name.upper(), logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)  # plugins log under their own module names and must be heard
    # Libraries' INFO/DEBUG output is noise here, and their debug output can carry headers.
    for noisy in ("httpx", "httpcore", "aiohttp", "asyncio", "tortoise", "aiosqlite", "asyncpg", "redis"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
