"""Everything start-up checks that needs no network, with every problem of the file at once.

`gateway check` and `gateway` serve both run `check_config`: the environment, the file (every
validation error, every unset `os.environ/` reference), every key of the sections (`section_keys`),
the logging keys, each plugin's config, and then the app itself as start-up builds it
(`create_app`: plugins, providers, route rules, guardrails, fallbacks...). The app stops at its
first problem, so after each one the part it names is set aside (a model entry replaced by a
stand-in, a setting dropped, a plugin turned off) and the app is built again, until it builds or
the problem names nothing that can be set aside. The database, Redis and upstreams are not reached.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint
from typing import Any, Callable

from pydantic import ValidationError

from gateway.core.logsetup import logging_problems
from gateway.core.plugin_discovery import Installed, PluginError, always_on
from gateway.core.plugins import PluginHost, build_config, flat_keys
from gateway.core.providers.deployment import DeploymentError
from gateway.core.section_keys import check_keys, warning_text
from gateway.core.settings import ConfigError, ConfigFile, Settings, SettingsRead, read_settings, resolve_env_refs

#: What building the app raises for a config problem (ValueError: route rules, enforced_params...).
BUILD_ERRORS = (ConfigError, PluginError, DeploymentError, ValueError)
#: The most times the app is built again after setting a problem aside.
MAX_REBUILDS = 25
STAND_IN_MODEL = "fake/config-check-stand-in"


@dataclass
class ConfigReport:
    """What a check found: `problems` stop start-up; `ignored` LiteLLM keys go into one warning."""

    settings: Settings | None
    problems: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def warning(self) -> str | None:
        return warning_text(self.ignored) if self.ignored else None


class _Problems(list[str]):
    """Problems in the order found, each once."""

    def add(self, problem: Any) -> None:
        for line in str(problem).splitlines():
            if line.strip() and line not in self:
                self.append(line)


def check_config(config_path: str | None = None, build_app: bool = True) -> ConfigReport:
    """Check the environment and the config file (`config_path`, else $GATEWAY_CONFIG)."""
    problems = _Problems()
    hosts: list[tuple[PluginHost, bool]] = []
    installed = Installed.scan()  # once, for every build below

    def prepare(raw: dict[str, Any]) -> None:
        host = PluginHost(installed)
        try:
            host.discover(raw)
            host.prepare_environment()
        except PluginError as exc:
            problems.add(exc)
            hosts.append((host, False))
            return
        hosts.append((host, True))

    read = read_settings(config_path, prepare=prepare)
    for problem in read.problems:
        problems.add(problem)
    host, discovered = hosts[0] if hosts else (None, False)
    enabled = {name: flat_keys(slot.cls) for name, slot in host.slots.items()} if host is not None else {}
    plugins = host.eps if host is not None and discovered else None
    keys = check_keys(read.raw, enabled, plugins, _owners(plugins or {}))
    for problem in keys.errors:
        problems.add(problem)
    # A file that does not validate is checked further with its invalid parts set aside.
    settings = read.settings or _provisional(read)
    if settings is not None:
        for problem in logging_problems(settings):
            problems.add(problem)
        if build_app and host is not None and discovered:
            _check_plugin_configs(settings, host, problems)
            _build(settings, installed, problems)
    return ConfigReport(read.settings if not problems else None, sorted(problems, key=_file_order), keys.ignored)


_SECTION_ORDER = ("environment", "model_list", "router_settings", "litellm_settings", "general_settings",
                  "environment_variables", "plugins", "guardrails")


def _file_order(problem: str) -> tuple[Any, ...]:
    """Problems grouped by section, in the file's order within one (entries by index)."""
    path = problem.split(": ", 1)[0]
    if " " in path or path == problem:
        return (len(_SECTION_ORDER) + 1,)  # "plugin 'x': ...": no key path
    parts = path.split(".")
    rank = _SECTION_ORDER.index(parts[0]) if parts[0] in _SECTION_ORDER else len(_SECTION_ORDER)
    return (rank, *((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts[1:2]))


def _provisional(read: SettingsRead) -> Settings | None:
    """The settings of the file with the parts its problems name set aside, or None."""
    if read.env is None or not read.raw:
        return None
    data = resolve_env_refs(copy.deepcopy(read.raw), "", [])
    for problem in read.problems:
        set_aside(data, problem)
    _drop_set_aside(data)
    try:
        file = ConfigFile.model_validate({k: v for k, v in data.items() if k in ConfigFile.model_fields})
    except ValidationError:
        return None
    return Settings(env=read.env, file=file, config_path=read.path, raw=data)


def _owners(installed: dict[str, EntryPoint]) -> Callable[[str], list[str]]:
    """`owners(key)`: the installed plugins that take `key`. Only asked for a key nobody took, so
    plugins that are not on are imported only when the file already has a problem."""
    cache: dict[str, set[str]] = {}

    def owners(key: str) -> list[str]:
        if not cache:
            for name, ep in installed.items():
                try:
                    cache[name] = flat_keys(ep.load())
                except Exception:  # a broken plugin is reported when it is turned on, not here
                    cache[name] = set()
        return sorted(name for name, keys in cache.items() if key in keys)

    return owners


def _check_plugin_configs(settings: Settings, host: PluginHost, problems: _Problems) -> None:
    """Each plugin's config on its own, so that every plugin with a bad config is named."""
    natives = {entry.name: entry for entry in settings.file.plugins}
    for name, slot in host.slots.items():
        if slot.enabled_by == "guardrails":
            continue  # a guardrail's config sits in its entry: building the app checks it
        native = natives.get(name)
        try:
            build_config(slot.cls, f"plugin {name!r}", native.config if native else None, settings.flat_settings)
        except PluginError as exc:
            problems.add(exc)


def _build(settings: Settings, installed: Installed, problems: _Problems) -> None:
    """Build the app as start-up does; after each problem, set its part aside and build again."""
    from gateway.core.app import create_app

    data = resolve_env_refs(copy.deepcopy(settings.raw), "", [])
    seen: set[str] = set()
    for _ in range(MAX_REBUILDS):
        try:
            file = ConfigFile.model_validate({k: v for k, v in data.items() if k in ConfigFile.model_fields})
            create_app(Settings(env=settings.env, file=file, config_path=settings.config_path, raw=data,
                                installed=installed))
            return
        except BUILD_ERRORS as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            problems.add(exc)
            if first in seen or not set_aside(data, first):
                return
            seen.add(first)
        except Exception:  # noqa: BLE001 - a problem set aside made the file invalid: stop here
            return


_MODEL = re.compile(r"^model_list\.(\d+)\b")
_SETTING = re.compile(r"^(general_settings|litellm_settings|router_settings)\.(\w+)")
_GUARDRAIL = re.compile(r"^guardrail '([^']+)'")
_PLUGIN = re.compile(r"^plugin '([^']+)'")
_ENTRY = re.compile(r"^(plugins|guardrails)\.(\d+)\b")
_SECTION = re.compile(r"^(\w+): ")


class _SetAside:
    """Marks a list entry taken out (`_drop_set_aside` removes it), so that the indexes of the
    other entries, which later problems name, do not move."""


def _drop_set_aside(data: dict[str, Any]) -> None:
    for section in ("plugins", "guardrails"):
        if isinstance(data.get(section), list):
            data[section] = [e for e in data[section] if not isinstance(e, _SetAside)]


def set_aside(data: dict[str, Any], problem: str) -> bool:
    """Take the part of the file that `problem` names out of the way; False if it names none."""
    if match := _MODEL.match(problem):
        entries, i = data.get("model_list"), int(match.group(1))
        if not isinstance(entries, list) or i >= len(entries):
            return False
        entry = entries[i] if isinstance(entries[i], dict) else {}
        if isinstance(entry.get("litellm_params"), dict) and entry["litellm_params"].get("model") == STAND_IN_MODEL:
            return False
        # Same name, so that fallbacks and aliases naming the group still find it.
        name = entry.get("model_name") if isinstance(entry.get("model_name"), str) else f"config-check-stand-in-{i}"
        entries[i] = {"model_name": name, "litellm_params": {"model": STAND_IN_MODEL}}
        return True
    if match := _ENTRY.match(problem):
        entries, i = data.get(match.group(1)), int(match.group(2))
        if isinstance(entries, list) and i < len(entries) and not isinstance(entries[i], _SetAside):
            entries[i] = _SetAside()
            return True
        return False
    if (match := _SECTION.match(problem)) and match.group(1) in data:
        del data[match.group(1)]
        return True
    if match := _SETTING.match(problem):
        section = data.get(match.group(1))
        return isinstance(section, dict) and section.pop(match.group(2), None) is not None
    if match := _GUARDRAIL.match(problem):
        name = match.group(1)
        entries = data.get("guardrails")
        if isinstance(entries, list):
            kept = [e for e in entries if not (isinstance(e, dict) and e.get("guardrail_name") == name)]
            if len(kept) < len(entries):
                data["guardrails"] = kept
                return True
        old = (data.get("litellm_settings") or {}).get("guardrails")
        if isinstance(old, list):
            kept = [e for e in old if not (isinstance(e, dict) and name.split(".")[0] in e)]
            if len(kept) < len(old):
                data["litellm_settings"]["guardrails"] = kept
                return True
        return False
    if match := _PLUGIN.match(problem):
        name = match.group(1)
        if always_on(name):
            return False  # a builtin the gateway cannot run without cannot be set aside
        entries = data.setdefault("plugins", [])
        if not isinstance(entries, list):
            return False
        for entry in entries:
            if isinstance(entry, dict) and entry.get("name") == name:
                if entry.get("enabled") is False:
                    return False
                entry["enabled"] = False
                return True
        entries.append({"name": name, "enabled": False})
        return True
    return False
