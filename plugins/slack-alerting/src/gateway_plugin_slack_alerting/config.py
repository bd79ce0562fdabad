"""The plugin's settings, validated once at start-up: a bad value stops the gateway with one line.

The webhook URL is a secret (whoever has it can post to the channel): it is held as a pydantic
`SecretStr`, so it never shows in a repr, a dump or a validation error, and the plugin names it
in logs only by its last four characters.

Keys carry the prefix `slack_`, except `alert_types`, which is the seed's own name: when the
plugin is switched on by `general_settings.alerting`, its settings are read from the flat
`general_settings` / `litellm_settings` keys, a namespace shared by every plugin.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, SecretStr, field_validator

from gateway import PluginConfig

#: Where the webhook URL comes from unless the config names one.
ENV_VAR = "SLACK_WEBHOOK_URL"

#: LiteLLM's `alert_types` names that have an equivalent here. Its other names (`llm_too_slow`,
#: `daily_reports`, ...) are accepted, so its configs start unchanged, and match no alert.
LITELLM_ALERT_TYPES = {"llm_exceptions": ("upstream_failure",),
                       "budget_alerts": ("budget_exceeded", "soft_budget_crossed")}


def describe_webhook(url: str) -> str:
    """How logs name the webhook: its last four characters at most, never the URL."""
    return f"slack webhook (…{url[-4:]})" if len(url) > 12 else "slack webhook"


class SlackAlertingConfig(PluginConfig):
    """Settings of `slack_alerting`."""

    # A rejected value is never echoed back: a validation error must not print the webhook URL.
    model_config = ConfigDict(hide_input_in_errors=True)

    slack_webhook_url: SecretStr | None = Field(
        default_factory=lambda: os.environ.get(ENV_VAR) or None,
        validate_default=True,
        description="The Slack incoming-webhook URL (https://hooks.slack.com/services/...). A secret: "
        f"never logged, never shown. Default: the {ENV_VAR} environment variable.",
    )
    alert_types: list[str] | None = Field(
        None,
        min_length=1,
        description="The kinds of alert to send (upstream_failure, budget_exceeded, soft_budget_crossed, "
        "size_limit, or any kind another plugin raises); LiteLLM's llm_exceptions is accepted for "
        "upstream_failure, its budget_alerts for budget_exceeded and soft_budget_crossed. Default: every kind.",
    )
    slack_max_messages_per_minute: int = Field(
        20,
        ge=1,
        le=600,
        description="At most this many webhook posts in any 60 s. Alerts that arrive faster wait and "
        "are grouped, several to a message.",
    )
    slack_dedupe_window_s: float = Field(
        60.0,
        ge=0,
        le=86400,
        description="Identical alerts (same kind, level and message) within this many seconds of the "
        "first are counted, not sent: one follow-up message at the end of the window gives the count. "
        "0 sends every alert.",
    )
    slack_retry_attempts: int = Field(
        3,
        ge=1,
        le=10,
        description="Attempts per message (the first included) on a network error, a timeout, HTTP 429 "
        "or 5xx. Other errors (a revoked webhook: 403/404/410) are not retried.",
    )
    slack_retry_backoff_s: float = Field(
        1.0,
        ge=0,
        le=60,
        description="Wait before the first retry, doubled for each next one (at most 60 s); a longer "
        "Retry-After from Slack is honoured (up to 60 s).",
    )
    slack_timeout_s: float = Field(
        5.0,
        gt=0,
        le=60,
        description="Seconds one webhook post may take before it counts as failed.",
    )
    slack_shutdown_timeout_s: float = Field(
        10.0,
        gt=0,
        le=300,
        description="On a graceful stop, how long to keep delivering what is still queued "
        "(rate limit set aside) before giving up on it.",
    )

    @field_validator("slack_webhook_url")
    @classmethod
    def _webhook_url(cls, value: SecretStr | None) -> SecretStr:
        # Messages here must never contain the value: it is a secret.
        if value is None or not value.get_secret_value().strip():
            raise ValueError(f"no Slack webhook URL: set the {ENV_VAR} environment variable or slack_webhook_url")
        url = value.get_secret_value().strip()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("the Slack webhook URL must be an http:// or https:// URL (value not shown: it is a secret)")
        return SecretStr(url)

    @field_validator("alert_types")
    @classmethod
    def _alert_types(cls, kinds: list[str] | None) -> list[str] | None:
        if kinds is None:
            return None
        out = []
        for kind in kinds:
            kind = kind.strip()
            if not kind:
                raise ValueError("alert types must be non-empty names")
            out.extend(LITELLM_ALERT_TYPES.get(kind, (kind,)))
        return list(dict.fromkeys(out))

    def wanted_kinds(self) -> frozenset[str] | None:
        """The kinds to send, or None for every kind."""
        return None if self.alert_types is None else frozenset(self.alert_types)
