"""The plugin's settings, validated once at start-up: a bad value stops the gateway with one line.

LiteLLM's names are kept: `LANGFUSE_PUBLIC_KEY`, `LANGFUSE_SECRET_KEY` and `LANGFUSE_HOST` in the
environment (or `langfuse_public_key`, `langfuse_secret_key` / `langfuse_secret`, `langfuse_host`
in the config), `LANGFUSE_RELEASE`, and the Langfuse SDK's `LANGFUSE_FLUSH_AT` /
`LANGFUSE_FLUSH_INTERVAL` / `LANGFUSE_TRACING_ENVIRONMENT` as defaults.

The secret key is a `SecretStr`: never in a repr, a dump, a log line or a validation error.
"""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import urlsplit

from pydantic import AliasChoices, ConfigDict, Field, SecretStr, field_validator

from gateway import PluginConfig

DEFAULT_HOST = "https://cloud.langfuse.com"
ENVIRONMENT = re.compile(r"^(?!langfuse)[a-z0-9_-]{1,40}$")


def _env(name: str, default: Any = None) -> Any:
    value = os.environ.get(name, "").strip()
    return value or default


def _env_number(name: str, default: float, kind: type = float) -> Any:
    try:
        return kind(_env(name, default))
    except ValueError:
        return default  # the SDK's variable, badly set: ours keeps its default


class LangfuseConfig(PluginConfig):
    """Settings of `langfuse`."""

    model_config = ConfigDict(hide_input_in_errors=True)

    langfuse_public_key: str | None = Field(
        default_factory=lambda: _env("LANGFUSE_PUBLIC_KEY"), validate_default=True,
        description="The project's public key (pk-lf-...), the Basic-auth user. Default: LANGFUSE_PUBLIC_KEY.")
    langfuse_secret_key: SecretStr | None = Field(
        default_factory=lambda: _env("LANGFUSE_SECRET_KEY"), validate_default=True,
        validation_alias=AliasChoices("langfuse_secret_key", "langfuse_secret"),
        description="The project's secret key (sk-lf-...), the Basic-auth password. A secret: never logged. "
        "Default: LANGFUSE_SECRET_KEY. Also accepted as langfuse_secret (LiteLLM's other spelling).")
    langfuse_host: str = Field(
        default_factory=lambda: _env("LANGFUSE_HOST", DEFAULT_HOST), validate_default=True,
        description="The Langfuse server (cloud, another region, or self-hosted). Default: LANGFUSE_HOST, "
        f"else {DEFAULT_HOST}.")
    langfuse_release: str | None = Field(
        default_factory=lambda: _env("LANGFUSE_RELEASE"),
        description="The trace's `release` (your application's version). Default: LANGFUSE_RELEASE.")
    langfuse_environment: str | None = Field(
        default_factory=lambda: _env("LANGFUSE_TRACING_ENVIRONMENT"), validate_default=True,
        description="The `environment` of traces and generations (lower case letters, digits, - and _; not "
        "starting with 'langfuse'). Default: LANGFUSE_TRACING_ENVIRONMENT, else Langfuse's own default.")
    langfuse_batch_size: int = Field(
        default_factory=lambda: _env_number("LANGFUSE_FLUSH_AT", 100, int), validate_default=True, ge=1, le=1000,
        description="Calls per ingestion request at most (each call is two events: a trace and a generation). "
        "Default: LANGFUSE_FLUSH_AT, else 100.")
    langfuse_flush_interval_s: float = Field(
        default_factory=lambda: _env_number("LANGFUSE_FLUSH_INTERVAL", 1.0), validate_default=True, gt=0, le=3600,
        description="Seconds a call may wait for its batch to fill before it is sent. Default: "
        "LANGFUSE_FLUSH_INTERVAL, else 1.")
    langfuse_max_queue: int = Field(
        10_000, ge=1, le=1_000_000,
        description="Calls that may wait; past this the oldest is dropped, counted, and logged (one WARNING a minute).")
    langfuse_retry_attempts: int = Field(
        5, ge=1, le=20,
        description="Attempts per batch (the first included) on a connection error, a timeout, HTTP 408, 429 or "
        "5xx, and for events the 207 reply lists with such a status. Other errors are not retried.")
    langfuse_retry_backoff_s: float = Field(
        1.0, ge=0, le=60,
        description="Wait before the first retry, doubled for each next one (at most 60 s); a longer Retry-After wins.")
    langfuse_timeout_s: float = Field(10.0, gt=0, le=300, description="Seconds one ingestion request may take.")
    langfuse_shutdown_timeout_s: float = Field(
        10.0, gt=0, le=600,
        description="On a graceful stop, how long to keep sending what is queued before giving up on it.")
    langfuse_log_messages: bool | None = Field(
        None,
        description="true: send prompts and replies as the generation's (and trace's) input and output. "
        "Default: only when turn_off_message_logging is explicitly false.")
    redact_user_api_key_info: bool = Field(
        False,
        description="LiteLLM's switch, shared by every logging plugin: true leaves the caller's key hash, alias, "
        "team, user and organization out of traces and generations.")
    turn_off_message_logging: bool | None = Field(
        None,
        description="LiteLLM's switch, shared by every logging plugin: true never sends prompts and replies "
        "(it wins over langfuse_log_messages); false sends them.")

    @field_validator("langfuse_public_key")
    @classmethod
    def _public_key(cls, value: str | None) -> str:
        if value is None or not value.strip():
            raise ValueError("no Langfuse public key: set LANGFUSE_PUBLIC_KEY or langfuse_public_key")
        return value.strip()

    @field_validator("langfuse_secret_key")
    @classmethod
    def _secret_key(cls, value: SecretStr | None) -> SecretStr:
        if value is None or not value.get_secret_value().strip():
            raise ValueError("no Langfuse secret key: set LANGFUSE_SECRET_KEY or langfuse_secret_key")
        return SecretStr(value.get_secret_value().strip())

    @field_validator("langfuse_host")
    @classmethod
    def _host(cls, value: str) -> str:
        url = value.strip().rstrip("/")
        if "://" not in url:  # LiteLLM accepts a bare host name
            url = "https://" + url
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.username:
            raise ValueError("the Langfuse host must be an http:// or https:// URL without credentials or query")
        return url

    @field_validator("langfuse_environment")
    @classmethod
    def _environment(cls, value: str | None) -> str | None:
        if value is not None and not ENVIRONMENT.match(value):
            raise ValueError("use lower case letters, digits, - and _ (at most 40), not starting with 'langfuse'")
        return value
