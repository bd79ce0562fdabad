"""The settings of `email_mask` (validated at start-up; prefixed: they may sit in the flat
`litellm_settings` namespace that every plugin shares)."""

from __future__ import annotations

from pydantic import Field

from gateway import PluginConfig


class EmailMaskConfig(PluginConfig):
    """Settings of `email_mask`."""

    email_mask_allow_domains: list[str] = Field(
        default_factory=list,
        description="Domains whose addresses stay as they are (`example.com` also allows its subdomains).",
    )
    email_mask_replacement: str = Field("[email]", description="What a masked address becomes.")
    email_mask_replies: bool = Field(True, description="Also mask addresses in replies, streamed ones too.")
