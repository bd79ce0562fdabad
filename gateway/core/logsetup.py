"""Log format and levels for the server process (tests leave logging to pytest).

Everything is read from the environment, because the server's workers configure their logging
before they read the config: `gateway` serve exports the config's logging keys
(`litellm_settings.json_logs`, `general_settings.access_log`, `general_settings.log_levels`) into
the variables below, which the workers inherit (`export_logging_settings`).

    GATEWAY_DETAILED_DEBUG   true: everything at DEBUG (`--detailed_debug`)
    GATEWAY_LOG_LEVEL        the level otherwise (LiteLLM's LITELLM_LOG too); default INFO
    GATEWAY_JSON_LOGS        true: one JSON object per line (LiteLLM's JSON_LOGS too)
    GATEWAY_ACCESS_LOG       false: no access line per request
    GATEWAY_LOG_LEVELS       per logger: "gateway.upstream=DEBUG,gateway.access=WARNING"
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import datetime, timezone
from typing import Any, Mapping, MutableMapping

NOISY_LIBRARIES = ("httpx", "httpcore", "httpx_aiohttp", "aiohttp", "asyncio", "tortoise", "aiosqlite", "asyncpg",
                   "redis", "hpack", "h2", "urllib3", "botocore", "boto3", "s3transfer", "google", "grpc", "openai")
LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")


def _switch(environ: Mapping[str, str], *names: str) -> bool | None:
    """The first of `names` that is set, read as a boolean (None: none set, or not a boolean)."""
    for name in names:
        value = environ.get(name)
        if value is not None and value.strip():
            text = value.strip().lower()
            return True if text in TRUE else False if text in FALSE else None
    return None


def parse_levels(text: str) -> dict[str, str]:
    """`"gateway.upstream=DEBUG,gateway.access=WARNING"` -> {logger: LEVEL}; ValueError names the bad item."""
    levels: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        name, sep, level = item.partition("=")
        if not sep or not name.strip() or level.strip().upper() not in LEVELS:
            raise ValueError(f"{item.strip()!r} is not logger=LEVEL (LEVEL one of {', '.join(LEVELS)})")
        levels[name.strip()] = level.strip().upper()
    return levels


def _is_library(name: str) -> bool:
    return any(name == lib or name.startswith(lib + ".") for lib in NOISY_LIBRARIES)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message; plus the access line's fields
    (`extra={"access": {...}}`, see access_log.py) and the traceback of an exception."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        access = getattr(record, "access", None)
        if isinstance(access, dict):
            out.update(access)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def json_logs() -> bool:
    return bool(_switch(os.environ, "GATEWAY_JSON_LOGS", "JSON_LOGS"))


def announce(message: str) -> None:
    """A line the operator always sees, whatever the level: plain, or a JSON record (logger `gateway`)."""
    if json_logs():
        record = logging.LogRecord("gateway", logging.INFO, __file__, 0, message, None, None)
        message = JsonFormatter().format(record)
    print(message, file=sys.stderr, flush=True)


def configure_logging(default_level: str = "INFO") -> None:
    detailed = _switch(os.environ, "GATEWAY_DETAILED_DEBUG") is True
    name = os.environ.get("GATEWAY_LOG_LEVEL") or os.environ.get("LITELLM_LOG") or default_level
    level = logging.DEBUG if detailed else getattr(logging, name.upper(), logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_logs() else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)  # plugins log under their own module names and must be heard
    # Libraries' INFO/DEBUG output is noise here, and their debug output can carry credentials:
    # headers (httpcore, hpack, botocore, openai), URLs with keys in the query (urllib3), bodies
    # (botocore logs KMS replies). The gateway's own debug lines mask them (core/logsafe.py).
    for noisy in NOISY_LIBRARIES:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    access = logging.getLogger("gateway.access")
    access.setLevel(logging.WARNING if _switch(os.environ, "GATEWAY_ACCESS_LOG") is False else logging.NOTSET)
    try:
        levels = parse_levels(os.environ.get("GATEWAY_LOG_LEVELS", ""))
    except ValueError:
        levels = {}  # `gateway check` and start-up report it (logging_problems)
    for logger, wanted in levels.items():
        number = getattr(logging, wanted)
        # A library is never let below WARNING: its debug output can carry credentials.
        logging.getLogger(logger).setLevel(max(number, logging.WARNING) if _is_library(logger) else number)


def logging_problems(settings: Any) -> list[str]:
    """The logging keys of the config and their variables, checked; one line per problem."""
    problems = []
    value = settings.file.litellm_settings.get("json_logs")
    if value is not None and not isinstance(value, bool):
        problems.append(f"litellm_settings.json_logs: must be true or false, got {value!r}")
    value = settings.file.general_settings.get("access_log")
    if value is not None and not isinstance(value, bool):
        problems.append(f"general_settings.access_log: must be true or false, got {value!r}")
    levels = settings.file.general_settings.get("log_levels")
    if levels is not None:
        if not isinstance(levels, dict):
            problems.append("general_settings.log_levels: must be a mapping of logger name: level, "
                            'e.g. {"gateway.upstream": "DEBUG"}')
        else:
            for logger, level in levels.items():
                if not isinstance(level, str) or level.upper() not in LEVELS:
                    problems.append(f"general_settings.log_levels.{logger}: {level!r} is not one of {', '.join(LEVELS)}")
    for name in ("GATEWAY_JSON_LOGS", "JSON_LOGS", "GATEWAY_ACCESS_LOG", "GATEWAY_DETAILED_DEBUG"):
        if os.environ.get(name, "").strip() and _switch(os.environ, name) is None:
            problems.append(f"environment: {name}: must be true or false, got {os.environ[name]!r}")
    try:
        parse_levels(os.environ.get("GATEWAY_LOG_LEVELS", ""))
    except ValueError as exc:
        problems.append(f"environment: GATEWAY_LOG_LEVELS: {exc}")
    level = os.environ.get("GATEWAY_LOG_LEVEL") or os.environ.get("LITELLM_LOG")
    if level and level.upper() not in LEVELS:
        problems.append(f"environment: GATEWAY_LOG_LEVEL (or LITELLM_LOG): {level!r} is not one of {', '.join(LEVELS)}")
    return problems


def export_logging_settings(settings: Any, environ: MutableMapping[str, str] = os.environ) -> None:
    """The config's logging keys into the variables the workers read; a variable already set wins."""
    if settings.file.litellm_settings.get("json_logs") is True and "JSON_LOGS" not in environ:
        environ.setdefault("GATEWAY_JSON_LOGS", "true")
    access = settings.file.general_settings.get("access_log")
    if isinstance(access, bool):
        environ.setdefault("GATEWAY_ACCESS_LOG", "true" if access else "false")
    levels = settings.file.general_settings.get("log_levels")
    if isinstance(levels, dict) and levels:
        merged = {str(k): str(v).upper() for k, v in levels.items()}
        merged.update(parse_levels(environ.get("GATEWAY_LOG_LEVELS", "")))
        environ["GATEWAY_LOG_LEVELS"] = ",".join(f"{k}={v}" for k, v in merged.items())
