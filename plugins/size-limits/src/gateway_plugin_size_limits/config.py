"""The plugin's settings: the seed's two flat keys in `general_settings`."""

from __future__ import annotations

from pydantic import Field, model_validator

from gateway import PluginConfig

MB = 1024 * 1024


class SizeLimitsConfig(PluginConfig):
    max_request_size_mb: float | None = Field(
        None, gt=0, description="Largest request body accepted, in MB (1 MB = 1,048,576 bytes). None: no limit.")
    max_response_size_mb: float | None = Field(
        None, gt=0, description="Largest response accepted, in MB of JSON (streams counted as they go). None: no limit.")

    @model_validator(mode="after")
    def _one_limit(self) -> "SizeLimitsConfig":
        if self.max_request_size_mb is None and self.max_response_size_mb is None:
            raise ValueError("set max_request_size_mb or max_response_size_mb")
        return self

    @property
    def request_bytes(self) -> int | None:
        return None if self.max_request_size_mb is None else int(self.max_request_size_mb * MB)

    @property
    def response_bytes(self) -> int | None:
        return None if self.max_response_size_mb is None else int(self.max_response_size_mb * MB)
