"""Fallbacks: which model groups to try, in order, when a group failed after its retries.

LiteLLM's settings, read from `router_settings` or `litellm_settings` (the router's win):

- `fallbacks: [{"gpt-4": ["gpt-3.5", "claude"]}]`: for any upstream failure of `gpt-4` (after
  `num_retries`): a 429, a 5xx, a timeout, an unreachable host, an upstream 401/403/404;
- `context_window_fallbacks`: when the upstream said the prompt is too long for the model;
- `content_policy_fallbacks`: when the upstream refused the content (its safety filter);
- `default_fallbacks: ["claude"]`: for any group that has no `fallbacks` entry of its own;
- per request, `fallbacks: ["gpt-3.5"]` in the body, tried after the config's.

A 400 that is neither a context-window nor a content-policy error is the request's fault: it is
returned, never tried elsewhere (the next model would refuse it too). Each fallback group gets its
own retries; a fallback's own fallbacks are not followed (no chains, no loops).
"""

from __future__ import annotations

import re
from typing import Any, Callable

from gateway.errors import GatewayError, UpstreamConnectionError, UpstreamTimeoutError

KINDS = ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks")

_CONTEXT = re.compile(r"context[_ ]length|context window|maximum context|prompt is too long|input is too long|"
                      r"too many (input )?tokens|exceeds? the (model's )?(context|maximum)|reduce the length",
                      re.IGNORECASE)
_CONTENT = re.compile(r"content[_ ]policy|content management policy|content[_ ]filter|responsible ?ai|"
                      r"safety (system|filter)|flagged as (unsafe|inappropriate)", re.IGNORECASE)


class ConfigFallbackError(ValueError):
    """A fallback setting that is malformed or names no model group; the message is one line."""


def kind_of(error: GatewayError) -> str | None:
    """Which fallback list applies to an upstream failure (None: none, return the error)."""
    if isinstance(error, (UpstreamTimeoutError, UpstreamConnectionError)):
        return "fallbacks"
    text = f"{error.type or ''} {getattr(error, 'code', '') or ''} {error.message}"
    if error.status == 400 or error.status == 413:
        if _CONTEXT.search(text):
            return "context_window_fallbacks"
        if _CONTENT.search(text):
            return "content_policy_fallbacks"
        return None
    return "fallbacks" if error.status >= 401 else None


def _mapping_list(where: str, value: Any) -> dict[str, list[str]]:
    if value is None:
        return {}
    if not isinstance(value, list):
        raise ConfigFallbackError(f"{where}: must be a list of {{model_group: [fallback groups]}}")
    out: dict[str, list[str]] = {}
    for i, item in enumerate(value):
        if not isinstance(item, dict) or not item:
            raise ConfigFallbackError(f"{where}.{i}: must be a mapping {{model_group: [fallback groups]}}")
        for group, targets in item.items():
            if isinstance(targets, str):
                targets = [targets]
            if not isinstance(targets, list) or not all(isinstance(t, str) and t for t in targets):
                raise ConfigFallbackError(f"{where}.{i}.{group}: must be a list of model group names")
            out.setdefault(str(group), []).extend(targets)
    return out


class Fallbacks:
    """The configured fallback lists, checked against the model names at start-up."""

    def __init__(self, router_settings: dict[str, Any], litellm_settings: dict[str, Any],
                 known: Callable[[str], bool]) -> None:
        def setting(name: str) -> tuple[str, Any]:
            if router_settings.get(name) is not None:
                return f"router_settings.{name}", router_settings[name]
            return f"litellm_settings.{name}", litellm_settings.get(name)

        self.lists: dict[str, dict[str, list[str]]] = {}
        for kind in KINDS:
            where, value = setting(kind)
            self.lists[kind] = _mapping_list(where, value)
            for group, targets in self.lists[kind].items():
                for name in [group, *targets]:
                    if not known(name):
                        raise ConfigFallbackError(f"{where}: {name!r} is not a model_name in model_list")
        where, default = setting("default_fallbacks")
        if default is None:
            default = []
        if isinstance(default, str):
            default = [default]
        if not isinstance(default, list) or not all(isinstance(t, str) and t for t in default):
            raise ConfigFallbackError(f"{where}: must be a list of model group names")
        for name in default:
            if not known(name):
                raise ConfigFallbackError(f"{where}: {name!r} is not a model_name in model_list")
        self.default: list[str] = default

    def __bool__(self) -> bool:
        return bool(self.default or any(self.lists.values()))

    def after(self, group: str, error: GatewayError, requested: list[str] | None) -> list[str]:
        """The groups to try after `group` failed with `error`, in order, without `group` itself."""
        kind = kind_of(error)
        if kind is None:
            return []
        names = list(self.lists[kind].get(group, ()))
        if kind == "fallbacks" and not names:
            names = list(self.default)
        if requested and kind == "fallbacks":
            names.extend(requested)
        seen = {group}
        return [n for n in names if not (n in seen or seen.add(n))]  # type: ignore[func-returns-value]
