"""The builtins (virtual_keys, spend_logs, audit_store, builtin_providers) are plugins like any
other: a described `Config` read from the same flat keys as before, the framework's knobs from a
`plugins:` entry, the same refusals, and switched on by their own `is_switched_on`."""

from __future__ import annotations

import ast
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway import PluginConfig
from gateway.core import config_keys
from gateway.core.plugin_discovery import BUILTINS, Installed, PluginError, enabled_names
from gateway.builtins.spend_logs import SpendLogsConfig
from gateway.builtins.virtual_keys import VirtualKeysConfig
from tests.test_plugins import admin_get, make_config, startup_error

ROOT = Path(__file__).resolve().parents[1]
ALWAYS_ON = {"virtual_keys": "builtin", "spend_logs": "builtin", "builtin_providers": "builtin"}


def builtins_on(config: dict[str, Any]) -> dict[str, str]:
    return {name: why for name, why in enabled_names(config, Installed.scan()).items() if name in BUILTINS}


# -- switched on as plugins are ------------------------------------------------------------------


def test_builtins_are_switched_on_by_their_own_is_switched_on(monkeypatch):
    monkeypatch.delenv("GATEWAY_STORE_AUDIT_LOGS", raising=False)
    assert builtins_on({}) == ALWAYS_ON
    audit_on = {**ALWAYS_ON, "audit_store": "builtin"}
    assert builtins_on({"litellm_settings": {"store_audit_logs": True}}) == audit_on
    assert builtins_on({"litellm_settings": {"store_audit_logs": "on"}}) == audit_on
    assert builtins_on({"litellm_settings": {"store_audit_logs": "no"}}) == ALWAYS_ON
    # A value written as an environment reference is judged by what it refers to.
    monkeypatch.setenv("STORE_AUDIT", "false")
    assert builtins_on({"litellm_settings": {"store_audit_logs": "os.environ/STORE_AUDIT"}}) == ALWAYS_ON
    monkeypatch.setenv("STORE_AUDIT", "true")
    assert builtins_on({"litellm_settings": {"store_audit_logs": "os.environ/STORE_AUDIT"}}) == audit_on
    monkeypatch.setenv("GATEWAY_STORE_AUDIT_LOGS", "yes")
    assert builtins_on({}) == audit_on


def test_a_plugins_entry_turns_an_optional_builtin_on_or_off(monkeypatch):
    monkeypatch.delenv("GATEWAY_STORE_AUDIT_LOGS", raising=False)
    assert builtins_on({"plugins": [{"name": "audit_store"}]})["audit_store"] == "builtin"
    assert builtins_on({"litellm_settings": {"callbacks": ["audit_store"]}})["audit_store"] == "builtin"
    # `enabled: false` wins over the setting that would switch it on, as for any plugin.
    assert builtins_on({"litellm_settings": {"store_audit_logs": True},
                        "plugins": [{"name": "audit_store", "enabled": False}]}) == ALWAYS_ON


@pytest.mark.parametrize("name", sorted(ALWAYS_ON))
def test_a_builtin_the_gateway_needs_cannot_be_turned_off(name):
    with pytest.raises(PluginError) as err:
        enabled_names({"plugins": [{"name": name, "enabled": False}]}, Installed.scan())
    assert str(err.value) == (f"plugin {name!r} is part of the gateway and cannot be turned off "
                              "(`enabled: false` in its plugins: entry)")


def test_turning_virtual_keys_off_stops_start_up_with_one_line(tmp_path):
    line = startup_error(tmp_path, make_config(None, plugins=[{"name": "virtual_keys", "enabled": False}]))
    assert line == "plugin 'virtual_keys' is part of the gateway and cannot be turned off " \
                   "(`enabled: false` in its plugins: entry)"


def test_the_core_names_no_builtin():
    """app.py turns no builtin on by hand, and no core module uses a builtin as a library (the
    audit chain is `gateway.core.audit_chain`; model access `gateway.core.model_access`; budget
    checks `gateway.core.limits.budgets`): builtins import the core, never the reverse. Only the
    registry of builtins (plugin_discovery.py) names them, for the `AlwaysOn` base class."""
    uses = {}
    for path in (ROOT / "gateway" / "core").rglob("*.py"):
        tree = ast.parse(path.read_text())
        modules = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        modules |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        found = sorted(m for m in modules if m and m.startswith("gateway.builtins"))
        if found:
            uses[str(path.relative_to(ROOT))] = found
    assert uses == {"gateway/core/plugin_discovery.py": ["gateway.builtins"]}, uses


# -- a Config like any plugin's ---------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_each_builtin_has_a_described_strict_config_of_core_keys(name):
    cls = BUILTINS[name].load()
    assert cls.name == name
    assert issubclass(cls.Config, PluginConfig) and cls.Config is not PluginConfig
    assert cls.Config.__doc__
    for key, field in cls.Config.model_fields.items():
        assert field.description, (name, key)
        # A builtin's flat keys are the core's: known in exactly one section, whether or not it is on.
        sections = [s for s in config_keys.FLAT_SECTIONS if key in config_keys.IMPLEMENTED[s]]
        assert len(sections) == 1, (name, key, sections)
    for key in cls.switched_on_by:
        assert any(key in config_keys.IMPLEMENTED[s] for s in config_keys.FLAT_SECTIONS), (name, key)


def test_the_configs_read_the_seed_values_as_the_core_always_did():
    spend = SpendLogsConfig.model_validate
    assert spend({}).model_dump() == {"store_prompts_in_spend_logs": False, "disable_spend_logs": False,
                                      "spend_batch_size": 500, "spend_flush_interval_s": 1.0,
                                      "spend_max_queued": 100_000}
    # Empty or 0 numbers mean the default; numbers may be quoted; only true/"true"/"1"/"yes" store prompts.
    got = spend({"spend_batch_size": 0, "spend_flush_interval_s": None, "spend_max_queued": "7",
                 "store_prompts_in_spend_logs": " Yes ", "disable_spend_logs": 1})
    assert (got.spend_batch_size, got.spend_flush_interval_s, got.spend_max_queued) == (500, 1.0, 7)
    assert got.store_prompts_in_spend_logs is True and got.disable_spend_logs is True
    assert spend({"store_prompts_in_spend_logs": 1}).store_prompts_in_spend_logs is False
    keys = VirtualKeysConfig.model_validate
    assert keys({}).model_dump() == {"budget_reservation_ttl_s": 600.0, "budget_default_max_tokens": 1024,
                                     "rate_limit_redis_failure": "fail_open", "budget_reset_interval_s": 60.0}
    got = keys({"budget_reservation_ttl_s": None, "budget_default_max_tokens": 2.5,
                "rate_limit_redis_failure": "", "budget_reset_interval_s": "0.2"})
    assert got.model_dump() == {"budget_reservation_ttl_s": 600.0, "budget_default_max_tokens": 2,
                                "rate_limit_redis_failure": "fail_open", "budget_reset_interval_s": 0.2}


@pytest.mark.parametrize("settings, line", [
    ({"budget_reservation_ttl_s": True}, "plugin 'virtual_keys': config key budget_reservation_ttl_s: "
                                         "general_settings.budget_reservation_ttl_s: must be a number greater "
                                         "than 0, got True"),
    ({"spend_batch_size": [1]}, "plugin 'spend_logs': config key spend_batch_size: int() argument must be a "
                                "string, a bytes-like object or a real number, not 'list'"),
])
def test_a_bad_seed_value_of_a_builtin_stops_start_up_with_one_line(tmp_path, settings, line):
    assert startup_error(tmp_path, make_config(None, general=settings)) == line


# -- a `plugins:` entry, like any plugin's ------------------------------------------------------------


@pytest.mark.parametrize("entry", [
    {"prio": 5},
    {"on_error": "sometimes"},
    {"timeout_s": -1},
    {"config": {"spend_batch_sise": 5}},
])
def test_a_bad_option_is_refused_for_a_builtin_as_for_an_external_plugin(tmp_path, entry):
    external = startup_error(tmp_path, make_config(None, plugins=[{"name": "probe_block", **entry}]))
    builtin = startup_error(tmp_path, make_config(None, plugins=[{"name": "spend_logs", **entry}]))
    assert builtin == external.replace("probe_block", "spend_logs")


@pytest.mark.db
def test_a_plugins_entry_gives_builtins_their_knobs_and_config(gateway_server, fake_upstream, monkeypatch):
    monkeypatch.delenv("GATEWAY_STORE_AUDIT_LOGS", raising=False)
    config = make_config(fake_upstream, callbacks=["probe_recorder", "probe_block"], plugins=[
        # Below probe_recorder (10) instead of above it (its default 50); the native config wins
        # over the flat key.
        {"name": "spend_logs", "priority": 5, "timeout_s": 2, "on_error": "fail_open",
         "config": {"store_prompts_in_spend_logs": True}},
        {"name": "virtual_keys", "priority": 900},  # after probe_block (950) instead of before it
        {"name": "audit_store", "timeout_s": 3},  # on by its entry alone
    ], general={"spend_flush_interval_s": 0.05, "store_prompts_in_spend_logs": False})
    server = gateway_server(config)
    info = admin_get(server, "/plugins")
    rows = {row["name"]: row for row in info["enabled"]}
    assert {k: rows["spend_logs"][k] for k in ("priority", "timeout_s", "on_error", "enabled_by", "distribution")} \
        == {"priority": 5, "timeout_s": 2, "on_error": "fail_open", "enabled_by": "builtin", "distribution": "gateway"}
    assert (rows["virtual_keys"]["priority"], rows["audit_store"]["timeout_s"]) == (900, 3)
    finished = info["order"]["request_finished"]
    assert finished.index("probe_recorder") < finished.index("spend_logs")
    pre = info["order"]["pre_request"]
    assert pre.index("probe_block") < pre.index("virtual_keys")

    reply = server.client().chat.completions.create(model="probe-model", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content
    (row,) = server.spend_logs(1)
    assert row["messages"] == [{"role": "user", "content": "hi"}]
    headers = {"Authorization": f"Bearer {server.master_key}"}
    assert httpx.post(server.url + "/key/generate", json={}, headers=headers, timeout=10).status_code == 200
    deadline = time.monotonic() + 10
    while not httpx.get(server.url + "/audit", headers=headers, timeout=10).json()["audit_logs"]:
        assert time.monotonic() < deadline, "no audit row"
        time.sleep(0.05)
