"""The plugin's one setting, `blocked_user_list` (the seed's name): a list of end-user ids, or the
path of a text file that holds them.

The type is checked when the config is validated, so a wrong type stops start-up with one line
naming the key. The file is read when the plugin is built (`read_ids`), because a relative path
is taken from the config file's folder, which only the running gateway knows.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from gateway import PluginConfig

#: `#` starts a comment at the start of a line or after a space, so that an id may contain `#`.
_COMMENT = re.compile(r"(^|\s)#.*$")


class BlockedUsersConfig(PluginConfig):
    """Settings of `blocked_user_check`."""

    blocked_user_list: list[str] | str = Field(
        default_factory=list,
        description="End-user ids (the `user` field of a request) to refuse: a list, or the path of a "
        "text file with one id per line (`#` starts a comment; a relative path is taken from the "
        "config file's folder). Whole numbers in a list are read as ids.",
    )

    @field_validator("blocked_user_list", mode="before")
    @classmethod
    def _list_or_path(cls, value: Any) -> list[str] | str:
        if value is None:
            return []
        if isinstance(value, str):
            if not value.strip():
                raise ValueError("an empty string is neither a list of user ids nor a file path")
            return value.strip()
        if not isinstance(value, list):
            raise ValueError(f"must be a list of user ids or a file path, not {type(value).__name__}")
        ids = []
        for i, item in enumerate(value):
            # YAML reads `- 42` as a number; an id is a string, so a whole number is taken as one.
            if isinstance(item, int) and not isinstance(item, bool):
                item = str(item)
            if not isinstance(item, str):
                raise ValueError(f"item {i} must be a user id (a string), not {type(item).__name__}")
            if item.strip():
                ids.append(item.strip())
        return ids


def parse_ids(text: str) -> list[str]:
    """The ids of a list file: one per line, blank lines and `#` comments skipped."""
    ids = []
    for line in text.splitlines():
        line = _COMMENT.sub("", line).strip()
        if line:
            ids.append(line)
    return ids


def read_ids(value: list[str] | str, config_path: str | None) -> tuple[frozenset[str], str]:
    """The blocked ids and where they came from ("the config" or the file's absolute path).

    A file that cannot be read raises ValueError with one line naming its absolute path."""
    if isinstance(value, list):
        return frozenset(value), "the config"
    path = Path(value).expanduser()
    if not path.is_absolute():
        base = Path(config_path).parent if config_path else Path.cwd()
        path = base / path
    path = path.resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ValueError(f"blocked_user_list: cannot read {path}: {reason}") from None
    return frozenset(parse_ids(text)), str(path)
