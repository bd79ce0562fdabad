"""Log format and level for the server process (tests leave logging to pytest)."""

from __future__ import annotations

import logging
import os
import sys

NOISY_LIBRARIES = ("httpx", "httpcore", "httpx_aiohttp", "aiohttp", "asyncio", "tortoise", "aiosqlite", "asyncpg",
                   "redis", "hpack", "h2", "urllib3", "botocore", "boto3", "s3transfer", "google", "grpc", "openai")


def configure_logging() -> None:
    detailed = os.environ.get("GATEWAY_DETAILED_DEBUG", "").lower() in ("1", "true", "yes")
    name = os.environ.get("GATEWAY_LOG_LEVEL") or os.environ.get("LITELLM_LOG") or "INFO"
    level = logging.DEBUG if detailed else getattr(logging, name.upper(), logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)  # plugins log under their own module names and must be heard
    # Libraries' INFO/DEBUG output is noise here, and their debug output can carry credentials:
    # headers (httpcore, hpack, botocore, openai), URLs with keys in the query (urllib3), bodies
    # (botocore logs KMS replies). The gateway's own debug lines mask them (core/logsafe.py).
    for noisy in NOISY_LIBRARIES:
        logging.getLogger(noisy).setLevel(logging.WARNING)
