"""The plugin's settings: validated once at start-up, so a bad value stops the gateway with one line.

Every field has a description (it is the plugin's reference documentation) and unknown keys are
refused (`gateway.PluginConfig` forbids extras), so a typo in a native `plugins:` entry fails
start-up instead of being ignored.

Field names carry the plugin's short name as a prefix. When the plugin is enabled through
`litellm_settings.callbacks`, its settings are read from the flat `litellm_settings` /
`general_settings` keys, a namespace shared by every plugin: a prefix keeps them apart.
"""

from __future__ import annotations

import re

from pydantic import Field, ValidationInfo, field_validator

from gateway import PluginConfig

# An HTTP header name (RFC 9110 "token").
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def _header_name(name: str) -> str:
    name = name.strip().lower()
    if not _HEADER_NAME.match(name):
        raise ValueError(f"{name!r} is not a valid HTTP header name")
    return name


class HeaderGuardConfig(PluginConfig):
    """Settings of `example_header_guard`."""

    example_required_headers: list[str] = Field(
        default_factory=lambda: ["x-project-id"],
        min_length=1,
        description="Headers every LLM call must carry with a non-blank value (case-insensitive).",
    )
    example_allowed_values: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Optional allow-list per required header: header name -> accepted values. "
        "A header not listed here accepts any value.",
    )
    example_max_value_length: int = Field(
        128,
        ge=1,
        le=8192,
        description="Longest accepted header value, in characters.",
    )
    example_exempt_admin: bool = Field(
        False,
        description="Let admin callers (the master key) through without the headers.",
    )

    @field_validator("example_required_headers")
    @classmethod
    def _normalise_required(cls, names: list[str]) -> list[str]:
        return list(dict.fromkeys(_header_name(n) for n in names))

    @field_validator("example_allowed_values")
    @classmethod
    def _allowed_only_for_required(cls, allowed: dict[str, list[str]], info: ValidationInfo) -> dict[str, list[str]]:
        required = info.data.get("example_required_headers") or []
        out: dict[str, list[str]] = {}
        for name, values in allowed.items():
            name = _header_name(name)
            if name not in required:
                raise ValueError(f"header {name!r} is not in example_required_headers")
            if not values:
                raise ValueError(f"header {name!r} has an empty allow-list (it would block every request)")
            out[name] = values
        return out
