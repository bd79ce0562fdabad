"""Which model group a requested name means: the group itself, an alias, or a wildcard route.

As LiteLLM's router reads names:

- `router_settings.model_group_alias` (`{"gpt-4": "gpt-4o"}`, or `{"gpt-4": {"model": "gpt-4o",
  "hidden": true}}`) maps a name clients send to a group; a hidden alias is callable but not listed.
- a key's `aliases` and its team's `model_aliases` (kept in their metadata) do the same for that
  key's callers, ahead of the config's.
- a wildcard `model_name` (`*`, `openai/*`, `anthropic/claude-*`) serves every name it matches that
  no group has: the concrete name asked for replaces the `*` in the deployment's `model`
  (`model_name: openai/*`, `model: openai/*`: `openai/gpt-4o` calls `gpt-4o`). The most specific
  pattern (longest before its `*`) wins. Each concrete name gets its own deployments, made once.
- `model_info.access_groups` name groups of models a key's `models` may list instead of each model.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from gateway.core.providers.deployment import Deployment
from gateway.errors import BadRequestError

#: Concrete names a wildcard made deployments for, at most (a client inventing names cannot grow
#: memory without bound; beyond this, the oldest are forgotten and made again when asked).
MAX_WILDCARD_NAMES = 10_000


class ConfigNameError(ValueError):
    """A name in the routing config that names no model group; the message is one line."""


def invalid_model(model: str) -> BadRequestError:
    return BadRequestError(
        f"Invalid model name passed in model={model}. Call /v1/models to view available models for your key.",
        param="model")


def _alias_target(where: str, value: Any) -> tuple[str, bool]:
    if isinstance(value, str) and value:
        return value, False
    if isinstance(value, dict) and isinstance(value.get("model"), str) and value["model"]:
        return value["model"], bool(value.get("hidden"))
    raise ConfigNameError(f"{where}: must be a model group name, or {{model: <name>, hidden: true|false}}")


class ModelNames:
    """The name -> group table, built from `model_list` and `router_settings`."""

    def __init__(self, groups: dict[str, list[Deployment]], aliases: dict[str, Any] | None) -> None:
        self.groups = groups
        self.wildcards = sorted(((name, deps) for name, deps in groups.items() if "*" in name),
                                key=lambda item: -len(item[0].split("*", 1)[0]))
        self.concrete: dict[str, list[Deployment]] = {}
        self.aliases: dict[str, str] = {}
        self.hidden: set[str] = set()
        for alias, value in (aliases or {}).items():
            target, hidden = _alias_target(f"router_settings.model_group_alias.{alias}", value)
            if self.find(target) is None:
                raise ConfigNameError(f"router_settings.model_group_alias.{alias}: {target!r} is not a model_name "
                                      f"in model_list")
            self.aliases[alias] = target
            if hidden:
                self.hidden.add(alias)
        self.access_groups: dict[str, list[str]] = {}
        for name, deps in groups.items():
            for dep in deps:
                for access in dep.model_info.get("access_groups") or ():
                    members = self.access_groups.setdefault(str(access), [])
                    if name not in members:
                        members.append(name)

    # -- lookups ------------------------------------------------------------------------------------
    def find(self, name: str) -> list[Deployment] | None:
        """The deployments serving `name` (a group, or a wildcard's concrete name), or None."""
        group = self.groups.get(name)
        if group is not None and "*" not in name:
            return group
        made = self.concrete.get(name)
        if made is not None:
            return made
        for pattern, deps in self.wildcards:
            if _matches(pattern, name):
                return self._concrete(name, pattern, deps)
        return None

    def resolve(self, model: str, principal: Any = None) -> tuple[str, list[Deployment]]:
        """(group name, deployments) for a requested name; 400 (LiteLLM's message) if none."""
        target = model
        if principal is not None and (principal.metadata or principal.team_metadata):
            own = (principal.metadata or {}).get("aliases") or {}
            team = (principal.team_metadata or {}).get("model_aliases") or {}
            target = own.get(model) or team.get(model) or model
        if target == model:
            target = self.aliases.get(model, model)
        group = self.find(target)
        if group is None:
            raise invalid_model(model)
        return target, group

    def listed(self, known: list[str] = ()) -> list[str]:  # type: ignore[assignment]
        """Names `/v1/models` lists: groups, visible aliases, and for a wildcard, as LiteLLM does,
        the models of its provider it matches among `known` (`provider/model` names, the price
        table's) after the pattern itself."""
        out = [*self.groups, *(a for a in self.aliases if a not in self.hidden and a not in self.groups)]
        seen = set(out)
        for pattern, deps in self.wildcards:
            dep = deps[0]
            for entry in known:
                provider, _, model = entry.partition("/") if "/" in entry else ("openai", "", entry)
                if provider != dep.provider or "*" in model or not _matches(dep.upstream_model, model):
                    continue
                name = pattern.replace("*", _star(dep.upstream_model, model), 1)
                if name not in seen and name not in self.groups:
                    seen.add(name)
                    out.append(name)
        return out

    def expand(self, allowed: list[str]) -> list[str]:
        """A key's `models` with each access group replaced by its members."""
        out: list[str] = []
        for name in allowed:
            out.extend(self.access_groups.get(name, (name,)))
        return out

    # -- wildcards ----------------------------------------------------------------------------------
    def _concrete(self, name: str, pattern: str, deps: list[Deployment]) -> list[Deployment]:
        star = _star(pattern, name)
        made = [dataclasses.replace(d, upstream_model=_fill(d.upstream_model, star), model_name=name,
                                    id=f"{d.id}:{name}") for d in deps]
        if len(self.concrete) >= MAX_WILDCARD_NAMES:
            self.concrete.pop(next(iter(self.concrete)))
        self.concrete[name] = made
        return made


def _matches(pattern: str, name: str) -> bool:
    """`name` fits `pattern`, the `*` standing for at least one character (never a `*`)."""
    head, _, tail = pattern.partition("*")
    return (len(name) > len(head) + len(tail) and name.startswith(head) and name.endswith(tail)
            and "*" not in name)


def _star(pattern: str, name: str) -> str:
    head, _, tail = pattern.partition("*")
    return name[len(head):len(name) - len(tail) if tail else None]


def _fill(upstream: str, star: str) -> str:
    """The deployment's model with the `*` replaced: `*` -> the matched part; a `model` without `*`
    (`model_name: "*"`, `model: openai/*` reads as `*`) is kept."""
    return upstream.replace("*", star, 1) if "*" in upstream else upstream
