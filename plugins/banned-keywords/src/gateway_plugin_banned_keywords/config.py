"""The settings of `banned_keywords`: the seed's one flat key, checked at start-up.

`banned_keywords_list` keeps LiteLLM's name (no prefix) so that the seed's config works as written.
Only its shape is checked here; a file path is read when the plugin is built, because a relative
path is relative to the config file's folder, which this model does not know.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from gateway import PluginConfig


class BannedKeywordsConfig(PluginConfig):
    """Settings of `banned_keywords`."""

    banned_keywords_list: list[str] | str = Field(
        description="The banned keywords: a list of strings, or the path of a UTF-8 text file with "
        "one keyword per line (blank lines and lines starting with `#` are skipped; a relative "
        "path is relative to the config file's folder). Matched case-insensitively, as substrings.",
    )

    @field_validator("banned_keywords_list", mode="before")
    @classmethod
    def _list_or_path(cls, value: Any) -> Any:
        """One clear message per wrong shape, instead of pydantic's two union branches."""
        if isinstance(value, str):
            if not value.strip():
                raise ValueError("is an empty string; give a list of keywords or the path of a keyword file")
            return value
        if not isinstance(value, list):
            raise ValueError(f"must be a list of keywords or the path of a keyword file, not {type(value).__name__}")
        if not value:
            raise ValueError("is an empty list; give at least one keyword")
        for i, word in enumerate(value):
            if not isinstance(word, str):
                raise ValueError(f"entry {i} is not a string: {word!r}")
            if not word.strip():
                raise ValueError(f"entry {i} is empty")
        return value
