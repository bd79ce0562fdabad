"""The enabled plugins built and registered with pluggy: each one's config (from its native entry,
else from the seed's flat keys its `Config` declares), the framework's knobs, its instance.

Which plugins are enabled is `plugin_discovery`'s: `PluginHost.discover` asks it, then
`prepare_environment` and `instantiate` run in that order while the app is built. Every failure is
one clear line (`PluginError`).
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

import pluggy
from pydantic import ValidationError

from gateway import hookspecs
from gateway.core.guardrails import PHASE_HOOKS, GuardrailConfigError, GuardrailSpec, specs_from_config
from gateway.core.plugin_discovery import (BUILTINS, Installed, PluginError, enabled_names, guardrail_plugins,
                                           is_builtin, load_class, load_guardrail_class)
from gateway.plugin import Plugin


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
    settings that switch it on (`config_keys.py` counts them as known while the plugin is on).
    Nothing for a builtin: its keys are the core's (`config_keys.IMPLEMENTED`), known in their own section only."""
    if is_builtin(cls):
        return set()
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

    def __init__(self, installed: Installed) -> None:
        self.pm = pluggy.PluginManager("gateway")
        self.pm.add_hookspecs(hookspecs)
        self.slots: dict[str, PluginSlot] = {}
        self.installed = installed
        self.eps = installed.plugins
        self.raw_config: dict[str, Any] = {}
        self.guardrails: list[GuardrailSpec] = []

    def discover(self, raw_config: Mapping[str, Any]) -> None:
        """Load the classes of the enabled plugins (no instances yet); keep the raw config for
        `prepare_environment`, which may rewrite it in place."""
        self.raw_config = raw_config  # type: ignore[assignment]
        entries = raw_config.get("plugins")  # not validated yet: read leniently
        natives = {
            e["name"]: e for e in (entries if isinstance(entries, list) else []) if isinstance(e, dict) and "name" in e
        }
        for name, why in enabled_names(raw_config, self.installed).items():
            cls, dist, version = load_class(name, BUILTINS if why == "builtin" else self.eps)
            if why == "builtin":
                dist = "gateway"
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
            if name in self.slots and self.slots[name].enabled_by == "builtin":
                raise PluginError(f"guardrail {name!r}: the name is the gateway's builtin {name!r}; "
                                  "choose another guardrail_name")
            if name in self.slots:
                raise PluginError(f"guardrail {name!r}: the name is already used by the plugin enabled in "
                                  f"{self.slots[name].enabled_by}; choose another guardrail_name")
            cls, dist, version = load_guardrail_class(name, plugin, self.eps)
            self.slots[name] = PluginSlot(
                name=name, cls=cls, distribution=dist, version=version, priority=cls.priority, timeout_s=None,
                on_error="fail_closed", mode="enforce", enabled_by="guardrails", plugin=cls.name or plugin,
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
            if native is not None:
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
