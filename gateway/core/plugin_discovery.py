"""Which plugins are installed and which the config turns on, before any is built.

A plugin is enabled by name (`litellm_settings.callbacks`, the seed's way, or the native `plugins:`
list), by a seed setting it declares (`switched_on_by`), by a `model_list` prefix it serves, or as
a guardrail's plugin. The installed ones are read once per start (`Installed.scan`). The core's own
features (`gateway.builtins`) are listed in `BUILTINS` instead of the installed entry points, and
each is switched on by its `is_switched_on`. Every failure is one clear line (`PluginError`).
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
from dataclasses import dataclass
from importlib.metadata import EntryPoint
from typing import Any, Mapping

from gateway.builtins import AlwaysOn
from gateway.core.settings import resolve_env_refs
from gateway.plugin import Plugin

ENTRY_POINT_GROUP = "gateway"
#: Plugins that a seed setting can switch on list themselves here too (same name and object);
#: only these are imported when not named in the config, to ask `is_switched_on`.
SWITCHABLE_GROUP = "gateway.switchable"
#: Plugins that serve a model prefix (`bedrock/...`) list themselves here too, named by the prefix
#: (the same object as in the `gateway` group): a `model_list` entry using the prefix switches the
#: plugin on, with no `callbacks` entry.
PROVIDERS_GROUP = "gateway.providers"
#: Other names a plugin answers to in the config (LiteLLM's `generic` for `generic_api`), each the
#: same object as the plugin's entry in the `gateway` group.
ALIASES_GROUP = "gateway.aliases"
#: The core's own features: plugins like any other, found here instead of in the installed entry
#: points because they ship in the core distribution. Each is on when its `is_switched_on` says so
#: (those deriving from `gateway.builtins.AlwaysOn` always are, and refuse `enabled: false`: the
#: core relies on them) or when a `callbacks` / `plugins:` entry names it; a `plugins:` entry gives
#: it the framework's knobs and its `config`, as it would any plugin. Its flat keys are the core's
#: (`config_keys.IMPLEMENTED` lists each in its section).
BUILTINS: dict[str, EntryPoint] = {ep.name: ep for ep in (
    EntryPoint("virtual_keys", "gateway.builtins.virtual_keys:VirtualKeys", ENTRY_POINT_GROUP),
    EntryPoint("spend_logs", "gateway.builtins.spend_logs:SpendLogs", ENTRY_POINT_GROUP),
    EntryPoint("builtin_providers", "gateway.builtins.providers:BuiltinProviders", ENTRY_POINT_GROUP),
    EntryPoint("audit_store", "gateway.builtins.audit_store:AuditStore", ENTRY_POINT_GROUP),
)}
#: The `litellm_settings` lists that enable plugins by name. LiteLLM splits loggers between
#: success and failure lists; a plugin here sees every call and picks what it records.
CALLBACK_KEYS = ("callbacks", "success_callback", "failure_callback")

#: The first-party plugins' distributions, for the "not installed" hint (entry-point names do not
#: always spell the distribution: `llmguard_moderations` ships in `gateway-plugin-llmguard`).
KNOWN_DISTRIBUTIONS = {
    "hide_secrets": "gateway-plugin-hide-secrets",
    "llmguard_moderations": "gateway-plugin-llmguard",
    "llamaguard_moderations": "gateway-plugin-llamaguard",
    "google_text_moderation": "gateway-plugin-google-moderation",
    "blocked_user_check": "gateway-plugin-blocked-users",
    "banned_keywords": "gateway-plugin-banned-keywords",
    "aws_kms": "gateway-plugin-aws-kms",
    "size_limits": "gateway-plugin-size-limits",
    "slack_alerting": "gateway-plugin-slack-alerting",
    "prometheus": "gateway-plugin-prometheus",
    "otel": "gateway-plugin-otel",
    "generic_api": "gateway-plugin-generic-api",
    "generic": "gateway-plugin-generic-api",
    "langfuse": "gateway-plugin-langfuse",
}
#: Environment switches of first-party plugins. When the plugin is absent its `is_switched_on`
#: cannot be asked, so the core knows these itself: the switch then stops start-up, naming the
#: distribution, instead of being silently ignored (an encrypted DATABASE_URL must not fall back).
KNOWN_ENV_SWITCHES = {"USE_AWS_KMS": "aws_kms"}
log = logging.getLogger("gateway.plugins")


class PluginError(Exception):
    """A plugin cannot be loaded, configured or registered; the message is one line."""


@dataclass(frozen=True, slots=True)
class Installed:
    """The plugins installed in this environment, as their entry points (nothing imported), by
    name in each group. Reading the installed distributions' metadata takes ~10 ms, so a process
    reads it once (`scan`) and hands the result to each `PluginHost` it builds: `load` and
    `create_app` share one through `Settings.installed`."""

    plugins: Mapping[str, EntryPoint]  # the `gateway` group: every plugin, by the name the config uses
    switchable: Mapping[str, EntryPoint]
    providers: Mapping[str, EntryPoint]  # by model prefix
    aliases: Mapping[str, EntryPoint]

    @classmethod
    def scan(cls) -> Installed:
        """Read every installed distribution's entry points, once."""
        found = importlib.metadata.entry_points()

        def group(name: str) -> dict[str, EntryPoint]:
            return {ep.name: ep for ep in found.select(group=name)}

        return cls(group(ENTRY_POINT_GROUP), group(SWITCHABLE_GROUP), group(PROVIDERS_GROUP), group(ALIASES_GROUP))


def _not_installed(name: str, eps: Mapping[str, EntryPoint]) -> str:
    """One line for a plugin named in the config but not installed. A first-party name gets its
    distribution; any other name gets the lists to choose from, never a guessed package name (a
    name we do not publish is one anybody could publish)."""
    head = f"plugin {name!r} is enabled in the config but not installed"
    if name in KNOWN_DISTRIBUTIONS:
        return f"{head}; install it with: pip install {KNOWN_DISTRIBUTIONS[name]}"
    installed = ", ".join(sorted(eps)) or "none"
    here = {KNOWN_DISTRIBUTIONS[n] for n in eps if n in KNOWN_DISTRIBUTIONS}
    missing: dict[str, list[str]] = {}
    for n, d in sorted(KNOWN_DISTRIBUTIONS.items()):
        if d not in here:
            missing.setdefault(d, []).append(n)
    first_party = ", ".join(f"{'/'.join(names)} ({d})" for d, names in sorted(missing.items()))
    hint = ("; a Python callback (module.instance) is not loaded: write it as a plugin (`gateway plugins new`)"
            if "." in name else "")
    return (f"{head}; installed plugins: {installed}; first-party plugins not installed here: "
            f"{first_party or 'none'}{hint}")


def load_class(name: str, eps: Mapping[str, EntryPoint]) -> tuple[type[Plugin], str | None, str | None]:
    ep = eps.get(name)
    if ep is None:
        raise PluginError(_not_installed(name, eps))
    try:
        cls = ep.load()
    except Exception as exc:  # a broken plugin must not give a traceback wall
        raise PluginError(f"plugin {name!r} failed to import ({ep.value}): {type(exc).__name__}: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, Plugin)):
        raise PluginError(f"plugin {name!r}: entry point {ep.value} is not a gateway.Plugin subclass")
    dist = ep.dist.name if ep.dist else None
    version = ep.dist.version if ep.dist else None
    return cls, dist, version


def canonical_name(name: str, installed: Installed) -> str:
    """The `gateway` entry-point name behind an alias (`generic` -> `generic_api`), else `name`."""
    eps = installed.plugins
    if name in eps:
        return name
    alias = installed.aliases.get(name)
    if alias is None:
        return name
    return next((n for n, ep in eps.items() if ep.value == alias.value), name)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def enabled_names(raw_config: Mapping[str, Any], installed: Installed) -> dict[str, str]:
    """Names of the plugins to enable, each with why: 'callbacks', 'plugins', or the setting."""
    eps = installed.plugins
    names: dict[str, str] = {}
    # The file is not validated yet: a section of the wrong type is skipped here and reported,
    # as one line naming it, when the config is validated.
    litellm = _mapping(raw_config.get("litellm_settings"))
    general = _mapping(raw_config.get("general_settings"))
    for key in CALLBACK_KEYS:
        callbacks = litellm.get(key) or []
        if isinstance(callbacks, str):
            callbacks = [callbacks]
        if not isinstance(callbacks, list):
            raise PluginError(f"litellm_settings.{key}: must be a list of plugin names")
        for name in callbacks:
            if isinstance(name, str):
                names.setdefault(canonical_name(name, installed), f"litellm_settings.{key}")
    disabled: set[str] = set()
    for entry in _list(raw_config.get("plugins")):
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            if entry.get("enabled", True) is False:
                disabled.add(entry["name"])  # `enabled: false` wins over callbacks and switches
            else:
                names.setdefault(canonical_name(entry["name"], installed), "plugins")
    for name in disabled:
        names.pop(name, None)
    # A switch may be written `os.environ/NAME`, as any value: the plugin judges the value.
    flat = resolve_env_refs({**general, **litellm}, "", [])
    for name, ep in BUILTINS.items():
        if name in disabled:
            if always_on(name):
                raise PluginError(f"plugin {name!r} is part of the gateway and cannot be turned off "
                                  "(`enabled: false` in its plugins: entry)")
            continue
        if name in names or ep.load().is_switched_on(flat, os.environ):
            names[name] = "builtin"
    for name, ep in installed.switchable.items():
        if name in names or name in disabled or name not in eps:
            continue
        # Only plugins listed as switchable are imported to ask; their modules import cheaply.
        try:
            cls = ep.load()
        except Exception as exc:
            log.warning("installed plugin %r could not be imported, skipped: %s", name, exc)
            continue
        if isinstance(cls, type) and issubclass(cls, Plugin) and cls.switched_on_by:
            if cls.is_switched_on(flat, os.environ):
                names[name] = "setting " + "/".join(cls.switched_on_by)
    served = installed.providers
    for prefix in sorted(model_prefixes(raw_config) & set(served)):
        plugin = next((n for n, ep in eps.items() if ep.value == served[prefix].value), None)
        if plugin is not None and plugin not in disabled:
            names.setdefault(plugin, f"model_list prefix {prefix}/")
    for setting, name in KNOWN_ENV_SWITCHES.items():
        value = os.environ.get(setting, "")
        if name not in eps and name not in disabled and value.strip().lower() in ("true", "1"):
            raise PluginError(f"{setting}={value} needs plugin {name!r}, which is not installed; "
                              f"install it with: pip install {KNOWN_DISTRIBUTIONS[name]}")
    return names


def guardrail_plugins(raw_config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(instance name, plugin name) of every guardrail in the raw file, read leniently: the file is
    validated later (`instantiate`), with one line naming any wrong key."""
    out: list[tuple[str, str]] = []
    for entry in _list(raw_config.get("guardrails")):
        params = _mapping(_mapping(entry).get("litellm_params"))
        name, plugin = _mapping(entry).get("guardrail_name"), params.get("guardrail")
        if isinstance(name, str) and isinstance(plugin, str):
            out.append((name, plugin))
    for item in _list(_mapping(raw_config.get("litellm_settings")).get("guardrails")):
        for group, body in _mapping(item).items():
            callbacks = [c for c in _list(_mapping(body).get("callbacks")) if isinstance(c, str)]
            for cb in callbacks:
                out.append((str(group) if len(callbacks) == 1 else f"{group}.{cb}", cb))
    return out


def load_guardrail_class(name: str, plugin: str, eps: Mapping[str, EntryPoint]) -> tuple[type[Plugin], str | None, str | None]:
    """A guardrail's plugin class; an unknown plugin name fails with one line listing what is installed."""
    plugin = plugin if plugin in eps else plugin.replace("-", "_")
    if plugin not in eps:
        hint = (f"install it with: pip install {KNOWN_DISTRIBUTIONS[plugin]}; " if plugin in KNOWN_DISTRIBUTIONS else "")
        raise PluginError(f"guardrail {name!r}: no installed plugin is called {plugin!r}; {hint}installed: "
                          + (", ".join(sorted(eps)) or "none"))
    return load_class(plugin, eps)


def model_prefixes(raw_config: Mapping[str, Any]) -> set[str]:
    """The provider prefixes `model_list` uses (`bedrock` of `bedrock/anthropic.claude-3`)."""
    out = set()
    for entry in _list(raw_config.get("model_list")):
        model = _mapping(_mapping(entry).get("litellm_params")).get("model")
        if isinstance(model, str) and "/" in model:
            out.add(model.split("/", 1)[0])
    return out


def always_on(name: str) -> bool:
    """Whether `name` is a builtin the gateway cannot run without (`enabled: false` is refused)."""
    return name in BUILTINS and issubclass(BUILTINS[name].load(), AlwaysOn)


def is_builtin(cls: type[Plugin]) -> bool:
    return any(ep.value == f"{cls.__module__}:{cls.__qualname__}" for ep in BUILTINS.values())
