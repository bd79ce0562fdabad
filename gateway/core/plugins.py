"""Find the enabled plugins through entry points, build their configs, register them with pluggy.

A plugin is enabled by name (`litellm_settings.callbacks`, the seed's way, or the native `plugins:`
list) or by a seed setting it declares (`switched_on_by`). Its config comes from its native entry,
else from the seed's flat keys its `Config` declares. Every failure is one clear line.
"""

from __future__ import annotations

import inspect
import logging
import os
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Mapping

import pluggy
from pydantic import ValidationError

from gateway import hookspecs
from gateway.core.guardrails import PHASE_HOOKS, GuardrailConfigError, GuardrailSpec, specs_from_config
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


@dataclass(slots=True)
class PluginSlot:
    """One enabled plugin with the framework's knobs as configured."""

    name: str
    cls: type[Plugin]
    distribution: str | None
    version: str | None
    priority: int
    timeout_s: float | None
    on_error: str
    mode: str
    config: dict[str, Any] = field(default_factory=dict)
    enabled_by: str = "config"
    instance: Plugin | None = None
    #: Set for a guardrail's instance (`guardrails:`): the entry-point name of its plugin, its
    #: spec (phases, default_on, ...). None for a plugin enabled by `callbacks` or `plugins:`,
    #: which runs all of its hooks on every request.
    plugin: str | None = None
    guardrail: GuardrailSpec | None = None


def installed_entry_points() -> dict[str, EntryPoint]:
    """Every plugin installed in this environment, by entry-point name (not imported)."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def switchable_entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=SWITCHABLE_GROUP)}


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


def canonical_name(name: str, eps: Mapping[str, EntryPoint]) -> str:
    """The `gateway` entry-point name behind an alias (`generic` -> `generic_api`), else `name`."""
    if name in eps:
        return name
    alias = next((ep for ep in entry_points(group=ALIASES_GROUP) if ep.name == name), None)
    if alias is None:
        return name
    return next((n for n, ep in eps.items() if ep.value == alias.value), name)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def enabled_names(raw_config: Mapping[str, Any], eps: Mapping[str, EntryPoint]) -> dict[str, str]:
    """Names of the plugins to enable, each with why: 'callbacks', 'plugins', or the setting."""
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
                names.setdefault(canonical_name(name, eps), f"litellm_settings.{key}")
    disabled: set[str] = set()
    for entry in _list(raw_config.get("plugins")):
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            if entry.get("enabled", True) is False:
                disabled.add(entry["name"])  # `enabled: false` wins over callbacks and switches
            else:
                names.setdefault(canonical_name(entry["name"], eps), "plugins")
    for name in disabled:
        names.pop(name, None)
    flat = {**general, **litellm}
    for name, ep in switchable_entry_points().items():
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
    served = {ep.name: ep for ep in entry_points(group=PROVIDERS_GROUP)}
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


def check_phases(slot: PluginSlot, hooks: list[str]) -> None:
    """A guardrail's phases must run some of its plugin's hooks, and `during_call` needs a plugin
    that only reads the request (it runs while the request is already upstream)."""
    spec = slot.guardrail
    assert spec is not None
    served = {p: [h for h in PHASE_HOOKS[p] if h in hooks] for p in spec.phases}
    if not any(served.values()) or (spec.source.startswith("guardrails[") and not all(served.values())):
        idle = [p for p, h in served.items() if not h]
        have = ", ".join(h for h in hooks if h in ("pre_request", "post_response", "stream_chunk")) or "no request hook"
        raise PluginError(f"guardrail {slot.name!r}: plugin {slot.plugin!r} has no hook for mode "
                          f"{', '.join(idle)} (it implements {have})")
    if "during_call" in spec.phases and not getattr(slot.instance, "concurrent", False):
        raise PluginError(f"guardrail {slot.name!r}: plugin {slot.plugin!r} may rewrite the request, so it cannot "
                          f"run during_call (the request is already upstream); use mode: pre_call")


def model_prefixes(raw_config: Mapping[str, Any]) -> set[str]:
    """The provider prefixes `model_list` uses (`bedrock` of `bedrock/anthropic.claude-3`)."""
    out = set()
    for entry in _list(raw_config.get("model_list")):
        model = _mapping(_mapping(entry).get("litellm_params")).get("model")
        if isinstance(model, str) and "/" in model:
            out.add(model.split("/", 1)[0])
    return out


def config_keys(config_cls: Any) -> set[str]:
    """The flat keys a plugin's `Config` takes: its field names and their string aliases."""
    fields = config_cls.model_fields
    accepted = set(fields)
    for f in fields.values():
        if f.alias:
            accepted.add(f.alias)
        if f.validation_alias and isinstance(f.validation_alias, str):
            accepted.add(f.validation_alias)
    return accepted


def flat_keys(cls: type[Plugin]) -> set[str]:
    """The `litellm_settings` / `general_settings` keys a plugin reads: its Config's, and the
    settings that switch it on (`config_keys.py` counts them as known while the plugin is on)."""
    return config_keys(cls.Config) | set(cls.switched_on_by or ())


def build_config(slot_cls: type[Plugin], who: str, native: dict[str, Any] | None, flat: Mapping[str, Any]) -> Any:
    """Validate a plugin's config: the seed's flat keys overlaid by its own entry's (`plugins:`
    `config`, or a guardrail's `litellm_params`). `who` names it in the error ("plugin 'x'")."""
    accepted = config_keys(slot_cls.Config)
    data = {k: v for k, v in flat.items() if k in accepted}
    if native:
        data.update(native)
    try:
        return slot_cls.Config.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "(config)"
        raise PluginError(f"{who}: config key {key}: {first['msg']}") from None


class PluginHost:
    """The pluggy manager plus the enabled plugins and their knobs, in one place."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("gateway")
        self.pm.add_hookspecs(hookspecs)
        self.slots: dict[str, PluginSlot] = {}
        self.eps: dict[str, EntryPoint] = {}
        self.raw_config: dict[str, Any] = {}
        self.guardrails: list[GuardrailSpec] = []

    def discover(self, raw_config: Mapping[str, Any]) -> None:
        """Load the classes of the enabled plugins (no instances yet); keep the raw config for
        `prepare_environment`, which may rewrite it in place."""
        self.eps = installed_entry_points()
        self.raw_config = raw_config  # type: ignore[assignment]
        natives = {
            e["name"]: e for e in _list(raw_config.get("plugins")) if isinstance(e, dict) and "name" in e
        }
        for name, why in enabled_names(raw_config, self.eps).items():
            cls, dist, version = load_class(name, self.eps)
            priority = natives.get(name, {}).get("priority")
            # The raw file may still hold `os.environ/` references or quoted numbers: this order
            # only serves `prepare_environment`; `instantiate` applies the validated knobs.
            self.slots[name] = PluginSlot(
                name=name,
                cls=cls,
                distribution=dist,
                version=version,
                priority=priority if isinstance(priority, int) else cls.priority,
                timeout_s=None,
                on_error="fail_closed",
                mode="enforce",
                enabled_by=why,
            )
        for name, plugin in guardrail_plugins(raw_config):
            if name in self.slots:
                raise PluginError(f"guardrail {name!r}: the name is already used by the plugin enabled in "
                                  f"{self.slots[name].enabled_by}; choose another guardrail_name")
            cls, dist, version = load_guardrail_class(name, plugin, self.eps)
            self.slots[name] = PluginSlot(
                name=name, cls=cls, distribution=dist, version=version, priority=cls.priority, timeout_s=None,
                on_error="fail_closed", mode="enforce", enabled_by="guardrails", plugin=cls.name or plugin,
            )

    def add_builtin(self, cls: type[Plugin], **knobs: Any) -> None:
        """Core features that run through the same hooks (virtual-key auth, audit store...)."""
        taken = self.slots.get(cls.name)
        if taken is not None and taken.enabled_by == "guardrails":
            raise PluginError(f"guardrail {cls.name!r}: the name is the gateway's builtin {cls.name!r}; "
                              "choose another guardrail_name")
        self.slots[cls.name] = PluginSlot(
            name=cls.name, cls=cls, distribution="gateway", version=None,
            priority=knobs.get("priority", cls.priority), timeout_s=knobs.get("timeout_s"),
            on_error=knobs.get("on_error", "fail_closed"), mode="enforce", enabled_by="builtin",
        )

    def prepare_environment(self) -> None:
        """Run `prepare_environment` of the enabled plugins before the config is read.

        It runs before any plugin is built, so a plugin declares it as a staticmethod or
        classmethod. Arguments go by name, as pluggy passes them: an impl takes any of
        `environ` (os.environ) and `config` (the raw config given to `discover`)."""
        offered = {"environ": os.environ, "config": self.raw_config}
        for slot in self.ordered():
            raw = inspect.getattr_static(slot.cls, "prepare_environment", None)
            fn = getattr(slot.cls, "prepare_environment", None)
            # @hookimpl may sit above or below @staticmethod: the mark is on one or the other.
            if fn is None or not (hasattr(fn, "gateway_impl") or hasattr(raw, "gateway_impl")):
                continue
            if not isinstance(raw, (staticmethod, classmethod)):
                raise PluginError(
                    f"plugin {slot.name!r}: prepare_environment must be a staticmethod or classmethod"
                )
            wanted = inspect.signature(fn).parameters
            try:
                fn(**{k: v for k, v in offered.items() if k in wanted})
            except Exception as exc:
                raise PluginError(f"plugin {slot.name!r}: prepare_environment failed: {exc}") from None

    def instantiate(self, settings: Any, gateway: Any) -> None:
        """Build each plugin's config and instance, then register it with pluggy."""
        natives = {e.name: e for e in settings.file.plugins}
        flat = settings.flat_settings
        self._apply_guardrail_specs(settings)
        for slot in self.slots.values():
            native = natives.get(slot.name)
            if native is not None and slot.enabled_by != "builtin":
                slot.priority = slot.cls.priority if native.priority is None else native.priority
                slot.timeout_s, slot.on_error, slot.mode = native.timeout_s, native.on_error, native.mode
        for slot in self.ordered():
            native = natives.get(slot.name) if slot.guardrail is None else None
            own = slot.guardrail.config if slot.guardrail is not None else (native.config if native else None)
            who = f"plugin {slot.name!r}" if slot.guardrail is None else f"guardrail {slot.name!r} (plugin {slot.plugin!r})"
            config = build_config(slot.cls, who, own, flat)
            slot.config = config.model_dump()
            try:
                slot.instance = slot.cls(config, gateway)
            except Exception as exc:
                raise PluginError(f"plugin {slot.name!r} failed to start: {type(exc).__name__}: {exc}") from None
            slot.instance.mode, slot.instance.on_error, slot.instance.timeout_s = slot.mode, slot.on_error, slot.timeout_s
            if slot.guardrail is not None:
                # The instance answers to its guardrail's name (its state, its logs); the class
                # keeps the plugin's name (`type(self).name`).
                slot.instance.name = slot.name  # type: ignore[misc]
                check_phases(slot, self.hooks_of(slot))
            try:
                self.pm.register(slot.instance, name=slot.name)
            except (pluggy.PluginValidationError, ValueError) as exc:
                raise PluginError(f"plugin {slot.name!r}: {exc}") from None
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            name = self.pm.get_name(exc.plugin) or type(exc.plugin).__name__
            unknown = sorted(c.name for c in self.pm.get_hookcallers(exc.plugin) or () if not c.has_spec())
            raise PluginError(
                f"plugin {name!r} implements {', '.join(unknown) or exc}, which is not a hook in gateway.hookspecs"
            ) from None

    def _apply_guardrail_specs(self, settings: Any) -> None:
        """The validated `guardrails` (both forms) onto the slots `discover` made for them."""
        try:
            specs = specs_from_config(settings.file, self.eps)
        except GuardrailConfigError as exc:
            raise PluginError(str(exc)) from None
        self.guardrails = specs
        for spec in specs:
            slot = self.slots.get(spec.name)
            if slot is None or slot.enabled_by != "guardrails":  # discover saw the same file
                raise PluginError(f"guardrail {spec.name!r}: not loaded (the config changed after discovery)")
            slot.guardrail = spec
            slot.priority = slot.cls.priority if spec.priority is None else spec.priority
            slot.timeout_s, slot.on_error, slot.mode = spec.timeout_s, spec.on_error, spec.mode

    def ordered(self) -> list[PluginSlot]:
        """Plugins by priority, high first; ties by name."""
        return sorted(self.slots.values(), key=lambda s: (-s.priority, s.name))

    def hooks_of(self, slot: PluginSlot) -> list[str]:
        if slot.instance is None:
            return []
        return sorted(
            name for name in dir(hookspecs) if not name.startswith("_")
            and hasattr(getattr(slot.instance, name, None), "gateway_impl")
        )

    def describe(self) -> dict[str, Any]:
        """What `gateway plugins` and `GET /plugins` show."""
        installed = []
        for name, ep in sorted(self.eps.items()):
            installed.append({
                "name": name,
                "distribution": ep.dist.name if ep.dist else None,
                "version": ep.dist.version if ep.dist else None,
                "entry_point": ep.value,
                "enabled": name in self.slots,
            })
        enabled = [
            {
                "name": s.name, "plugin": s.plugin or s.name, "distribution": s.distribution, "version": s.version,
                "enabled_by": s.enabled_by, "priority": s.priority, "timeout_s": s.timeout_s,
                "on_error": s.on_error, "mode": s.mode, "buffers_stream": s.cls.buffers_stream,
                "hooks": self.hooks_of(s),
                **({"guardrail": {"phases": list(s.guardrail.phases), "default_on": s.guardrail.default_on}}
                   if s.guardrail is not None else {}),
            }
            for s in self.ordered()
        ]
        return {"installed": installed, "enabled": enabled}
