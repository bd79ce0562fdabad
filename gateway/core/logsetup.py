"""Log format and level for the server process (tests leave logging to pytest)."""

from __future__ import annotations

import logging
import os
import sys


def configure_logging() -> None:
    detailed = os.environ.get("GATEWAY_DETAILED_DEBUG", "").lower() in ("1", "true", "yes")
    level = logging.DEBUG if detailed else getattr(logging, os.environ.get("GATEWAY_LOG_LEVEL", "INFO").upper(), logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("gateway").setLevel(level)
    if detailed:
        # Third-party debug output can carry headers; keep it at INFO even in detailed debug.
        for noisy in ("httpx", "httpcore", "aiohttp", "hypercorn", "asyncio"):
            logging.getLogger(noisy).setLevel(logging.INFO)
