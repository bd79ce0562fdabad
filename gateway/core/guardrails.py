"""Guardrails: named instances of guard plugins, each with its phases and the requests it runs for.

LiteLLM's two config forms are read here:

    guardrails:                                   # the current form
      - guardrail_name: no-secrets
        litellm_params: {guardrail: hide_secrets, mode: pre_call, default_on: true, <plugin config>}
    litellm_settings:
      guardrails:                                 # the older form
        - prompt_injection: {callbacks: [hide_secrets], default_on: true}

Each guardrail becomes a plugin instance of its own, registered under its own name (so one plugin
can serve several guardrails with different settings). The dispatcher runs an instance's hooks only
in its phases, and only for requests whose `Selection` switched its guardrail on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from gateway.errors import BadRequestError, PermissionDeniedError

#: Which hooks each phase runs; `during_call` runs `pre_request` concurrently with the upstream
#: call; `logging_only` runs `pre_request` / `post_response` on copies of what is logged.
PHASE_HOOKS = {
    "pre_call": ("pre_request",),
    "during_call": ("pre_request",),
    "post_call": ("post_response", "stream_chunk"),
    "logging_only": ("pre_request", "post_response"),
}
#: `litellm_params` keys that belong to the framework, not to the plugin's config.
FRAMEWORK_KEYS = frozenset({"guardrail", "mode", "default_on", "priority", "timeout_s", "on_error", "enforcement"})
OLD_FORM_KEYS = frozenset({"callbacks", "default_on", "logging_only", "callback_args", "enabled_roles"})
ALL_ROLES = {"system", "assistant", "user"}


class GuardrailConfigError(ValueError):
    """A guardrail entry is wrong; the message is one line naming it."""


@dataclass(slots=True)
class GuardrailSpec:
    """One guardrail as configured: the plugin it instantiates and when it runs."""

    name: str  # the plugin instance's name (unique among all plugins)
    group: str  # the name requests, keys and teams switch on and off
    plugin: str  # the plugin's entry-point name
    phases: tuple[str, ...]
    default_on: bool
    config: dict[str, Any] = field(default_factory=dict)
    priority: int | None = None
    timeout_s: float | None = None
    on_error: str = "fail_closed"
    mode: str = "enforce"  # the framework's enforce | monitor knob
    info: dict[str, Any] = field(default_factory=dict)
    source: str = "guardrails"


def _plugin_name(name: str, installed: Iterable[str]) -> str:
    """LiteLLM spells some integrations with hyphens (`hide-secrets`): accept either spelling."""
    names = set(installed)
    if name in names:
        return name
    alt = name.replace("-", "_")
    return alt if alt in names else name


def specs_from_config(file: Any, installed: Iterable[str]) -> list[GuardrailSpec]:
    """Every guardrail of both forms, from the validated config file. Raises GuardrailConfigError."""
    installed = list(installed)
    specs: list[GuardrailSpec] = []
    for i, entry in enumerate(file.guardrails):
        params = entry.litellm_params
        own = {k: v for k, v in (params.model_extra or {}).items() if k not in FRAMEWORK_KEYS}
        specs.append(GuardrailSpec(
            name=entry.guardrail_name, group=entry.guardrail_name,
            plugin=_plugin_name(params.guardrail, installed), phases=tuple(params.mode),
            default_on=params.default_on, config=own, priority=params.priority, timeout_s=params.timeout_s,
            on_error=params.on_error, mode=params.enforcement, info=dict(entry.guardrail_info),
            source=f"guardrails[{i}]",
        ))
    specs.extend(_old_form(file.litellm_settings.get("guardrails"), installed))
    first: dict[str, str] = {}  # guardrail name -> the entry that named it first
    for spec in specs:
        entry = spec.source.rsplit(".", 1)[0] if spec.source.startswith("litellm_settings") else spec.source
        if first.setdefault(spec.group, entry) != entry:
            raise GuardrailConfigError(f"{spec.source}: guardrail name {spec.group!r} is already used by {first[spec.group]}")
    return specs


def _old_form(value: Any, installed: list[str]) -> list[GuardrailSpec]:
    """`litellm_settings.guardrails: [{name: {callbacks: [...], default_on: bool}}]`: each name
    groups one or more plugins, switched on and off together; they run in every phase their hooks
    serve (as `callbacks` do), or only on what is logged with `logging_only: true`."""
    if value is None:
        return []
    where = "litellm_settings.guardrails"
    if not isinstance(value, list):
        raise GuardrailConfigError(f"{where}: must be a list of {{name: {{callbacks: [...], default_on: bool}}}}")
    specs: list[GuardrailSpec] = []
    for i, item in enumerate(value):
        if not (isinstance(item, dict) and len(item) == 1):
            raise GuardrailConfigError(f"{where}[{i}]: each entry is one mapping {{name: {{callbacks: [...]}}}}")
        (group, body), = item.items()
        here = f"{where}[{i}].{group}"
        if not isinstance(body, dict) or not isinstance(body.get("callbacks"), list) or not body["callbacks"]:
            raise GuardrailConfigError(f"{here}: needs `callbacks`, a non-empty list of plugin names")
        unknown = sorted(set(body) - OLD_FORM_KEYS)
        if unknown:
            raise GuardrailConfigError(f"{here}: unknown key(s) {', '.join(unknown)}; expected "
                                       + ", ".join(sorted(OLD_FORM_KEYS)))
        roles = body.get("enabled_roles")
        if roles is not None and set(roles) != ALL_ROLES:
            raise GuardrailConfigError(f"{here}: enabled_roles is not supported (guards read every role's text)")
        for flag in ("default_on", "logging_only"):
            if body.get(flag) is not None and not isinstance(body[flag], bool):
                raise GuardrailConfigError(f"{here}.{flag}: must be true or false")
        args = body.get("callback_args") or {}
        if not isinstance(args, dict):
            raise GuardrailConfigError(f"{here}.callback_args: must map a callback name to its settings")
        callbacks = body["callbacks"]
        phases = ("logging_only",) if body.get("logging_only") else ("pre_call", "post_call")
        for cb in callbacks:
            if not isinstance(cb, str):
                raise GuardrailConfigError(f"{here}.callbacks: must be plugin names")
            own = args.get(cb) or {}
            if not isinstance(own, dict):
                raise GuardrailConfigError(f"{here}.callback_args.{cb}: must be a mapping")
            specs.append(GuardrailSpec(
                name=str(group) if len(callbacks) == 1 else f"{group}.{cb}", group=str(group),
                plugin=_plugin_name(cb, installed), phases=phases, default_on=bool(body.get("default_on")),
                config=dict(own), source=here,
            ))
    return specs


def _names(value: Any, where: str) -> list[str]:
    if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise BadRequestError(f"{where} must be a list of guardrail names", param=where)
    return value


class Selection:
    """Which guardrails a request runs: `default_on` ones, then the team's, the key's, and the
    request's choices, in that order (a later one wins)."""

    def __init__(self, specs: list[GuardrailSpec]) -> None:
        self.groups = list(dict.fromkeys(s.group for s in specs))
        self.known = frozenset(self.groups)
        self.default = frozenset(s.group for s in specs if s.default_on)

    def __bool__(self) -> bool:
        return bool(self.groups)

    def check_names(self, names: Iterable[str], where: str) -> None:
        """400 naming what is not a configured guardrail (requests and management calls)."""
        unknown = [n for n in names if n not in self.known]
        if unknown:
            have = ", ".join(self.groups) or "none"
            raise BadRequestError(f"Unknown guardrail(s) in {where}: {', '.join(unknown)}. Configured guardrails: {have}",
                                  param=where)

    def _apply(self, on: set[str], value: Any, where: str, strict: bool) -> list[str]:
        """Apply a list (names switched on) or a mapping (name: bool); return the names switched off."""
        off: list[str] = []
        if isinstance(value, list):
            names = [v for v in value if isinstance(v, str)]
            if strict:
                self.check_names(_names(value, where), where)
            on.update(n for n in names if n in self.known)
        elif isinstance(value, Mapping):
            items = {k: v for k, v in value.items() if k != "modify_guardrails"}
            if strict:
                self.check_names(items, where)
                bad = [k for k, v in items.items() if not isinstance(v, bool)]
                if bad:
                    raise BadRequestError(f"{where}.{bad[0]} must be true or false", param=f"{where}.{bad[0]}")
            for name, wanted in items.items():
                if name not in self.known or not isinstance(wanted, bool):
                    continue
                if wanted:
                    on.add(name)
                elif name in on:
                    on.discard(name)
                    off.append(name)
        elif value is not None and strict:
            raise BadRequestError(f"{where} must be a list of guardrail names or a mapping of name to true/false",
                                  param=where)
        return off

    def active(self, body: dict[str, Any], principal: Any) -> frozenset[str]:
        """The guardrail names on for this request; raises 400 for unknown names in the request and
        403 when the request switches one off but its key or team may not."""
        request_value = body.get("guardrails")
        meta = body.get("metadata")
        meta_value = meta.get("guardrails") if isinstance(meta, dict) else None
        team_value = (principal.team_metadata or {}).get("guardrails")
        key_value = (principal.metadata or {}).get("guardrails")
        perms = principal.permissions or {}
        toggles = {g: perms[g] for g in self.groups if isinstance(perms.get(g), bool)} if perms else None
        if request_value is None and meta_value is None and team_value is None and key_value is None and not toggles:
            return self.default
        on = set(self.default)
        self._apply(on, team_value, "team metadata.guardrails", strict=False)
        self._apply(on, key_value, "key metadata.guardrails", strict=False)
        if toggles:
            self._apply(on, toggles, "key permissions", strict=False)
        before = set(on)
        off: list[str] = []
        if request_value is not None:
            off += self._apply(on, _names(request_value, "guardrails"), "guardrails", strict=True)
        off += self._apply(on, meta_value, "metadata.guardrails", strict=True)
        switched_off = [n for n in off if n in before]
        if switched_off:
            team_rule = team_value.get("modify_guardrails") if isinstance(team_value, Mapping) else None
            if team_rule is False:
                raise PermissionDeniedError("Your team does not have permission to modify guardrails.")
            if perms.get("modify_guardrails") is False:
                raise PermissionDeniedError("Your key does not have permission to modify guardrails.")
        return frozenset(on)


def documented_params(config_cls: Any) -> list[dict[str, Any]]:
    """A plugin's settings as `/guardrails/list` shows them: name, type, description; never a
    value (a default may come from a secret in the environment)."""
    out = []
    for name, f in getattr(config_cls, "model_fields", {}).items():
        annotation = f.annotation
        kind = getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
        out.append({"name": name, "type": kind, "description": f.description or ""})
    return out
