"""The base class of every plugin, and its config model.

A plugin is a class with a `name`, a default `priority`, a pydantic `Config`, and methods marked
with `@hookimpl` whose names are hooks from `gateway.hookspecs`. The gateway builds one instance
per enabled plugin: `Plugin(config, gateway)`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

import pluggy
from pydantic import BaseModel, ConfigDict

from gateway.protocol import Gateway

hookimpl = pluggy.HookimplMarker("gateway")


class PluginConfig(BaseModel):
    """Base of a plugin's config: unknown keys are refused, so typos fail at start-up."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Plugin:
    """Subclass this; set `name` (the entry-point name users write) and `priority`.

    Priority bands (high runs first): identity 1000-1999, cheap limits 900-999, transforms
    800-899, remote guards 700-799, observers 0-99.
    """

    name: ClassVar[str] = ""
    priority: ClassVar[int] = 500
    Config: ClassVar[type[PluginConfig]] = PluginConfig
    #: Hold a streamed reply until `post_response` has judged all of it.
    buffers_stream: ClassVar[bool] = False
    #: Seed settings (in `general_settings`/`litellm_settings`, or the environment) whose presence
    #: switches this plugin on without naming it in `callbacks`. Such a plugin also lists itself
    #: in the `gateway.switchable` entry-point group, so the core knows to ask it.
    switched_on_by: ClassVar[tuple[str, ...]] = ()
    #: False for an observer whose request hooks judge nothing (a tracer starting a span in
    #: `pre_request`): it then gets no verdict on the spend row nor in `x-gateway-guardrails`.
    records_verdicts: ClassVar[bool] = True
    #: Only reads the request in `pre_request` / `post_response` (a remote guard): neighbours in
    #: priority order that also set it run together, so their latencies overlap instead of adding
    #: up. The first to block wins and the others are cancelled. An instance may turn it off
    #: (in `__init__`) when its config makes it rewrite the request.
    concurrent: bool = False

    #: The framework's knobs for this plugin as configured (set before `startup`): a plugin that
    #: rewrites requests can read `mode` and only report in "monitor".
    mode: str = "enforce"
    on_error: str = "fail_closed"
    timeout_s: float | None = None

    def __init__(self, config: PluginConfig, gateway: Gateway) -> None:
        self.config = config
        self.gateway = gateway

    @classmethod
    def is_switched_on(cls, settings: Mapping[str, Any], environ: Mapping[str, str]) -> bool:
        """True when a seed-style setting turns this plugin on. Override for finer rules."""
        for key in cls.switched_on_by:
            value = settings.get(key, environ.get(key))
            # 0 counts as set, so that a bad limit is reported by the plugin's config, not ignored.
            if value is None or value is False or value == [] or value in ("", "False", "false"):
                continue
            return True
        return False
