"""The settings of `llmguard_moderations`, validated once at start-up: a bad value stops the gateway
with one line.

`llm_guard_mode` is the seed's own key. The others carry the same `llm_guard_` prefix because,
when the plugin is enabled through `litellm_settings.callbacks`, they are read from the flat
`litellm_settings` / `general_settings` namespace that every plugin shares. Where the LLM Guard
API is, and its token, come from the environment (`LLM_GUARD_API_BASE`, `LLM_GUARD_API_KEY`) as in
the seed, unless the config names them. The token is a `SecretStr`: never in a repr, a dump or a
validation error.
"""

from __future__ import annotations

import os
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, ConfigDict, Field, SecretStr, field_validator

from gateway import PluginConfig

BASE_VAR = "LLM_GUARD_API_BASE"
KEY_VAR = "LLM_GUARD_API_KEY"


class LLMGuardConfig(PluginConfig):
    """Settings of `llmguard_moderations`."""

    # A rejected value is never echoed back: the token must not reach a log through an error.
    model_config = ConfigDict(hide_input_in_errors=True)

    llm_guard_mode: Literal["all", "key-specific", "request-specific"] = Field(
        "all",
        description="Which calls are checked. `all`: every LLM call. `key-specific`: calls made with a "
        "virtual key whose `permissions.enable_llm_guard_check` is true. `request-specific`: calls whose "
        "body carries `metadata.permissions.enable_llm_guard_check: true` (the OpenAI SDKs send it "
        "through `extra_body`).",
    )
    llm_guard_api_base: str | None = Field(
        default_factory=lambda: os.environ.get(BASE_VAR) or None,
        validate_default=True,
        # `api_base` is how a LiteLLM `guardrails:` entry names it (one guardrail per LLM Guard server).
        validation_alias=AliasChoices("llm_guard_api_base", "api_base"),
        description=f"Base URL of the LLM Guard API (`http://llm-guard:8000`); the plugin POSTs to "
        f"`<base>/analyze/prompt` (and `<base>/analyze/output`). Default: the {BASE_VAR} environment "
        "variable, read at start-up.",
    )
    llm_guard_api_key: SecretStr | None = Field(
        default_factory=lambda: os.environ.get(KEY_VAR) or None,
        validate_default=True,
        validation_alias=AliasChoices("llm_guard_api_key", "api_key"),
        description=f"Bearer token of the LLM Guard API (its `AUTH_TOKEN`); unset: no Authorization "
        f"header. Default: the {KEY_VAR} environment variable. A secret: never logged.",
    )
    llm_guard_timeout_s: float = Field(
        30.0,
        gt=0,
        le=600,
        description="Seconds one call to the LLM Guard API may take, connection included; then the "
        "check counts as failed (see `on_error`). The framework's `timeout_s`, when lower, ends the "
        "whole hook first.",
    )
    llm_guard_use_sanitized_prompt: bool = Field(
        False,
        description="Send the upstream LLM Guard's `sanitized_prompt` instead of the client's text "
        "(LLM Guard's anonymizers and redactors then apply). Each piece of text (message content, "
        "text part, prompt, input) is then analysed on its own, all at once, so that each can be "
        "replaced by its sanitized version.",
    )
    llm_guard_scan_output: bool = Field(
        False,
        description="Also check the model's reply with `POST /analyze/output`; `is_valid: false` "
        "refuses it. A streamed reply's text is held back until LLM Guard has passed it, then sent "
        "in one piece.",
    )

    @field_validator("llm_guard_api_base")
    @classmethod
    def _base_url(cls, value: str | None) -> str:
        if value is None or not value.strip():
            raise ValueError(f"{BASE_VAR} is not set: set it to the LLM Guard API's base URL "
                             "(e.g. http://0.0.0.0:8192), or set llm_guard_api_base")
        url = value.strip().rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{BASE_VAR} must be an http:// or https:// URL")
        return url

    @field_validator("llm_guard_api_key")
    @classmethod
    def _key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        return SecretStr(value.get_secret_value().strip())
