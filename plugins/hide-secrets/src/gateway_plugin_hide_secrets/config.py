"""The settings of `hide_secrets`: validated once at start-up, every field described.

The keys carry the `hide_secrets_` prefix because, when the plugin is enabled through
`litellm_settings.callbacks`, they are read from the flat `litellm_settings` / `general_settings`
namespace that every plugin shares. Detector names are checked against the installed
detect-secrets at start-up (the module imports detect-secrets lazily, so this model cannot).
"""

from __future__ import annotations

from pydantic import Field, field_validator

from gateway import PluginConfig


class HideSecretsConfig(PluginConfig):
    """Settings of `hide_secrets`."""

    hide_secrets_disabled_detectors: list[str] = Field(
        default_factory=list,
        description="detect-secrets detectors to turn off, by class name (`KeywordDetector`, "
        "`Base64HighEntropyString`) or by the type name shown in the log (`Secret Keyword`); "
        "case-insensitive. Every other built-in detector stays on (IPPublicDetector is always off: "
        "an address is not a credential). An unknown name stops start-up.",
    )
    hide_secrets_unquoted_keywords: bool = Field(
        True,
        description="Also redact unquoted keyword assignments such as `openai_api_key=sk-1234998222` "
        "(detect-secrets' config-file rules). The value must look like a credential: it needs a "
        "digit or a symbol, so `password=swordfish` or `api_key=YOUR_KEY` pass unchanged. "
        "False: only quoted values are redacted (`API_KEY = 'sk_...'`).",
    )
    hide_secrets_chunk_kib: int = Field(
        32,
        ge=1,
        le=4096,
        description="Work unit of the scanner thread, in KiB of text. Longer text is scanned in "
        "chunks of about this size (cut at line ends; a line longer than this at whitespace), one "
        "chunk per job, so one huge request cannot hold the scanner while other requests wait.",
    )
    hide_secrets_max_text_kib: int | None = Field(
        None,
        ge=1,
        description="Refuse (400) a request whose text to scan is larger than this, in KiB; "
        "unset: no limit (the plugin's `timeout_s` still bounds the time a scan may take).",
    )

    hide_secrets_redact_replies: bool = Field(
        False,
        description="Also redact secrets in the model's replies: a JSON reply before it leaves, a "
        "stream as it goes (each choice's unfinished line is held back while it may hold a secret, "
        "at most `hide_secrets_chunk_kib` of it; otherwise only its unfinished last word). False: "
        "only requests are redacted, and streams pass through untouched.",
    )

    @field_validator("hide_secrets_disabled_detectors")
    @classmethod
    def _strip_names(cls, names: list[str]) -> list[str]:
        out = []
        for name in names:
            name = name.strip()
            if not name:
                raise ValueError("detector names must not be empty")
            out.append(name)
        return list(dict.fromkeys(out))
