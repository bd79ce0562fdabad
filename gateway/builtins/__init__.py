"""Core features that run through the same hooks as any plugin (virtual-key auth, spend logs,
audit store, the core's providers): the core dogfoods its own contract.

A builtin is a plugin like any other: a `Plugin` class with a pydantic `Config` (built from its
flat keys in `general_settings` / `litellm_settings` and its native `plugins:` entry's `config`),
switched on by its `is_switched_on`, and given the framework's knobs (`priority`, `timeout_s`,
`on_error`, `mode`) by a `plugins:` entry. The only difference is where the core finds it: in
`gateway.core.plugin_discovery.BUILTINS`, not in the installed entry points, since it ships in the core.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

from gateway.plugin import Plugin


class AlwaysOn(Plugin):
    """A builtin the gateway cannot run without: on whatever the config says."""

    @classmethod
    def is_switched_on(cls, settings: Mapping[str, Any], environ: Mapping[str, str]) -> bool:
        return True


def read_as(convert: Callable[[Any], Any]) -> BeforeValidator:
    """A Config field read exactly as the core has always read its setting (`convert(value)`,
    e.g. `int(value or 500)`), so that every config that worked before works the same; whatever
    `convert` raises is the field's error (`config key spend_batch_size: ...`)."""

    def validate(value: Any) -> Any:
        try:
            return convert(value)
        except Exception as exc:  # int([]) raises TypeError, which pydantic would not catch
            raise PydanticCustomError("invalid_setting", "{reason}", {"reason": str(exc) or type(exc).__name__}) from None

    return BeforeValidator(validate)
