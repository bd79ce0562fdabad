"""The plugin's settings, validated once at start-up: a bad value stops the gateway with one line.

LiteLLM's names are kept: the endpoint and headers come from `GENERIC_LOGGER_ENDPOINT` /
`GENERIC_LOGGER_HEADERS` (`"Name=value,Name2=value2"`), or from the flat keys
`generic_logger_endpoint` / `generic_logger_headers`; a native entry (and LiteLLM's
`callback_settings` entry, once the core maps it) may also say `endpoint`, `headers`,
`event_types` and `log_format`. Those short names are accepted only there, never as flat keys
(`validation_alias` choices are not read from the shared flat namespace).

The endpoint may carry a token in its query and the headers usually carry one: neither is ever
logged nor echoed in a validation error.
"""

from __future__ import annotations

import os
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, ConfigDict, Field, field_validator, model_validator

from gateway import PluginConfig

ENDPOINT_ENV = "GENERIC_LOGGER_ENDPOINT"
HEADERS_ENV = "GENERIC_LOGGER_HEADERS"
EventType = Literal["llm_api_success", "llm_api_failure"]


def headers_from_env(value: str | None) -> dict[str, str]:
    """LiteLLM's format: `Name=value,Name2=value2` (a value may hold `=`, not `,`)."""
    out: dict[str, str] = {}
    for item in (value or "").split(","):
        name, sep, text = item.partition("=")
        if sep and name.strip():
            out[name.strip()] = text.strip()
    return out


def describe_endpoint(url: str) -> str:
    """How logs and errors name the endpoint: scheme, host and path (no query, no userinfo)."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"


class GenericAPIConfig(PluginConfig):
    """Settings of `generic_api`."""

    model_config = ConfigDict(hide_input_in_errors=True)

    generic_logger_endpoint: str | None = Field(
        default_factory=lambda: os.environ.get(ENDPOINT_ENV) or None,
        validate_default=True,
        validation_alias=AliasChoices("generic_logger_endpoint", "endpoint"),
        description=f"The http(s) URL each batch is POSTed to. Default: the {ENDPOINT_ENV} environment variable. "
        "In a native entry also `endpoint`. Logged without its query string.",
    )
    generic_logger_headers: dict[str, str] | None = Field(
        None,
        validation_alias=AliasChoices("generic_logger_headers", "headers"),
        description=f"Headers sent with each POST (e.g. Authorization), over those of {HEADERS_ENV} "
        "(`Name=value,Name2=value2`). In a native entry also `headers`. Never logged.",
    )
    generic_api_event_types: list[EventType] | None = Field(
        None,
        min_length=1,
        validation_alias=AliasChoices("generic_api_event_types", "event_types"),
        description="Which calls to log: llm_api_success, llm_api_failure (a failure or a blocked call). "
        "Default: from where LiteLLM's config names the plugin (success_callback: successes, "
        "failure_callback: failures, callbacks: both); both otherwise. In a native entry also `event_types`.",
    )
    generic_api_log_format: Literal["json_array", "ndjson", "single"] = Field(
        "json_array",
        validation_alias=AliasChoices("generic_api_log_format", "log_format"),
        description="json_array: one POST per batch, a JSON array; ndjson: one POST per batch, one JSON "
        "object a line; single: one POST per record. In a native entry also `log_format`.",
    )
    generic_api_batch_size: int = Field(
        512, ge=1, le=10_000, description="Records per POST at most; a full batch is sent at once.")
    generic_api_flush_interval_s: float = Field(
        5.0, gt=0, le=3600, description="Seconds a record may wait for its batch to fill before it is sent.")
    generic_api_max_queue: int = Field(
        10_000, ge=1, le=1_000_000,
        description="Records that may wait; past this the oldest is dropped, counted, and logged (one "
        "WARNING a minute).")
    generic_api_retry_attempts: int = Field(
        3, ge=1, le=20,
        description="Attempts per batch (the first included) on a connection error, a timeout, HTTP 408, "
        "429 or 5xx. Other errors are not retried.")
    generic_api_retry_backoff_s: float = Field(
        1.0, ge=0, le=60,
        description="Wait before the first retry, doubled for each next one (at most 60 s); a longer "
        "Retry-After wins (up to 60 s).")
    generic_api_timeout_s: float = Field(10.0, gt=0, le=300, description="Seconds one POST may take.")
    generic_api_shutdown_timeout_s: float = Field(
        10.0, gt=0, le=600,
        description="On a graceful stop, how long to keep sending what is queued before giving up on it.")
    generic_api_log_messages: bool | None = Field(
        None,
        description="true: log prompts and replies (`messages`, `response`). Default: only when "
        "turn_off_message_logging is explicitly false.")
    redact_user_api_key_info: bool = Field(
        False,
        description="LiteLLM's switch, shared by every logging plugin: true leaves the caller's key hash, alias, "
        "team, user and organization out of every record (the metadata's user_api_key_* fields are null).")
    turn_off_message_logging: bool | None = Field(
        None,
        description="LiteLLM's switch, shared by every logging plugin: true never logs prompts and replies "
        "(it wins over generic_api_log_messages); false logs them.")

    @field_validator("generic_logger_endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str:
        # Messages here must never contain the value: its query may hold a token.
        if value is None or not value.strip():
            raise ValueError(f"no endpoint: set the {ENDPOINT_ENV} environment variable or generic_logger_endpoint")
        url = value.strip()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("the endpoint must be an http:// or https:// URL (value not shown: it may hold a token)")
        return url

    @field_validator("generic_logger_headers")
    @classmethod
    def _headers(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for name, text in (value or {}).items():
            if not name or any(c in name for c in " :\r\n") or "\r" in str(text) or "\n" in str(text):
                raise ValueError("a header name must be one word and a value one line (values not shown)")
        return value

    @model_validator(mode="after")
    def _merge_env_headers(self) -> "GenericAPIConfig":
        merged = headers_from_env(os.environ.get(HEADERS_ENV))
        merged.update(self.generic_logger_headers or {})
        self.generic_logger_headers = merged
        return self
