"""Every key of the config's sections is implemented, taken by an enabled plugin, ignored with one
warning, or refused; anything else is a misspelling that stops start-up with a suggestion. Seen
through the real `gateway check` and `gateway` commands; the table and its page must agree."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.core import config_keys
from tests.test_config import cli_env, cli_server, stop, write

GATEWAY_BIN = str(Path(sys.executable).parent / "gateway")
ROOT = Path(__file__).resolve().parents[1]
FAKE_MODEL = {"model_name": "m", "litellm_params": {"model": "fake/m"}}


def check(tmp_path: Path, config: dict[str, Any] | str | Path, **env: str) -> tuple[int, list[str]]:
    """`gateway check --config FILE`: its exit code and its output lines."""
    path = config if isinstance(config, Path) else write(tmp_path, config)
    proc = subprocess.run([GATEWAY_BIN, "check", "--config", str(path)], capture_output=True, text=True, timeout=60,
                          env=cli_env(tmp_path, **env), cwd=tmp_path)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, proc.stdout.splitlines()


def errors(lines: list[str]) -> list[str]:
    return [line.removeprefix("error: ") for line in lines if line.startswith("error: ")]


def warnings(lines: list[str]) -> list[str]:
    return [line.removeprefix("warning: ") for line in lines if line.startswith("warning: ")]


# -- the table and its page ----------------------------------------------------------------------


def test_the_page_shows_the_table_as_the_module_has_it():
    page = (ROOT / "docs" / "configuration.md").read_text()
    shown = config_keys.documented(page)
    assert shown is not None, "docs/configuration.md lost its config-keys markers"
    assert shown == config_keys.render(), "run: python -m gateway.core.config_keys --write"


def test_a_key_has_one_status_per_section():
    for section in (config_keys.TOP_LEVEL, *config_keys.SECTIONS):
        implemented, ignored = config_keys.IMPLEMENTED[section], config_keys.IGNORED[section]
        refused = set(config_keys.REFUSED[section])
        assert not implemented & ignored, (section, implemented & ignored)
        assert not implemented & refused, (section, implemented & refused)
        assert not ignored & refused, (section, ignored & refused)
        if section in config_keys.FLAT_SECTIONS:
            assert not set(config_keys.PLUGIN_KEYS) & (implemented | ignored | refused)


def test_every_setting_the_code_names_is_in_the_table():
    """A key read in gateway/ (`general_settings.x`, `general.get("x")`) but missing from the table
    would stop every config that uses it: whoever adds a setting adds it to config_keys.py."""
    patterns = [re.compile(r"\b(general_settings|litellm_settings|router_settings)\.([a-z][a-z0-9_]*)\b"),
                re.compile(r"\b(general|litellm_settings|general_settings|router_extra)\.get\(\"([a-z_]+)\""),
                re.compile(r"\b(general)\.get\(([A-Z_]+)\)")]
    constants = {"FAILURE_SETTING": "rate_limit_redis_failure"}
    sections = {"general": "general_settings", "router_extra": "router_settings"}
    missing = []
    for path in (ROOT / "gateway").rglob("*.py"):
        for pattern in patterns:
            for section, key in pattern.findall(path.read_text()):
                section, key = sections.get(section, section), constants.get(key, key)
                if key in ("get", "model_extra", "items") or key in config_keys.PLUGIN_KEYS:
                    continue
                if key not in config_keys.IMPLEMENTED[section]:
                    missing.append(f"{section}.{key} ({path.relative_to(ROOT)})")
    assert not missing, missing


# -- what `gateway check` says -------------------------------------------------------------------


def test_misspelt_keys_are_errors_with_a_suggestion_all_at_once(tmp_path):
    code, lines = check(tmp_path, {
        "model_list": [FAKE_MODEL],
        "litellm_settings": {"callbaks": ["hide_secrets"]},
        "general_settings": {"max_request_size_md": 3},
        "router_settings": {"num_retry": 2},
    })
    assert code == 1
    assert errors(lines) == [
        "router_settings.num_retry: unknown key; did you mean num_retries?",
        "litellm_settings.callbaks: unknown key; did you mean callbacks?",
        "general_settings.max_request_size_md: unknown key; did you mean max_request_size_mb?",
    ]
    assert lines[-1] == "3 problems"


def test_a_key_in_the_wrong_section_says_where_it_belongs(tmp_path):
    code, lines = check(tmp_path, {"model_list": [FAKE_MODEL], "litellm_settings": {"master_key": "sk-1"}})
    assert code == 1
    assert errors(lines) == ["litellm_settings.master_key: unknown key; it belongs in general_settings.master_key"]


def test_litellm_keys_not_implemented_give_one_warning_and_pass(tmp_path):
    code, lines = check(tmp_path, {
        "model_list": [FAKE_MODEL],
        "litellm_settings": {"set_verbose": True, "service_callback": ["prometheus_system"]},
        "general_settings": {"alerting_threshold": 300},
        "router_settings": {"redis_host": "localhost", "enable_pre_call_checks": True},
        "callback_settings": {"otel": {"message_logging": False}},
    })
    assert code == 0, lines
    assert lines[-1] == "config OK"
    (warning,) = warnings(lines)
    for key in ("callback_settings", "general_settings.alerting_threshold", "litellm_settings.set_verbose",
                "litellm_settings.service_callback", "router_settings.redis_host",
                "router_settings.enable_pre_call_checks"):
        assert key in warning, (key, warning)


def test_refused_keys_say_why(tmp_path):
    code, lines = check(tmp_path, {"model_list": [FAKE_MODEL], "general_settings": {"allowed_ips": ["10.0.0.1"]},
                                   "litellm_settings": {"max_budget": 100}})
    assert code == 1
    assert errors(lines) == [
        "litellm_settings.max_budget: not supported: " + config_keys.REFUSED["litellm_settings"]["max_budget"],
        "general_settings.allowed_ips: not supported: " + config_keys.REFUSED["general_settings"]["allowed_ips"],
    ]


def test_a_plugin_key_counts_only_while_the_plugin_is_on(tmp_path):
    config: dict[str, Any] = {"model_list": [FAKE_MODEL], "litellm_settings": {"email_mask_replacement": "[hidden]"}}
    code, lines = check(tmp_path, config)
    assert code == 1
    assert errors(lines) == ["litellm_settings.email_mask_replacement: read by plugin 'email_mask', which is not on; "
                             "turn it on with litellm_settings.callbacks: [email_mask]"]
    config["litellm_settings"]["callbacks"] = ["email_mask"]
    code, lines = check(tmp_path, config)
    assert (code, lines) == (0, ["config OK"])


def test_a_litellm_plugin_key_without_its_plugin_is_ignored_with_the_warning(tmp_path):
    # The seed's fragments set a plugin's key on its own (`google_moderation_confidence_threshold:
    # 0.4`): it starts, and the warning says which plugin would read it.
    code, lines = check(tmp_path, {"model_list": [FAKE_MODEL],
                                   "litellm_settings": {"google_moderation_confidence_threshold": 0.4,
                                                        "toxic_confidence_threshold": 0.1}})
    assert code == 0, lines
    (warning,) = warnings(lines)
    assert "litellm_settings.google_moderation_confidence_threshold (plugin 'google_text_moderation' is not on)" in warning
    assert "litellm_settings.toxic_confidence_threshold (plugin 'google_text_moderation' is not on)" in warning


def test_an_unknown_section_gets_a_suggestion(tmp_path):
    code, lines = check(tmp_path, {"model_list": [FAKE_MODEL], "general_setting": {"master_key": "sk-1"}})
    assert code == 1
    assert errors(lines) == ["general_setting: unknown section; did you mean general_settings?"]


# -- every config the repository ships still passes -------------------------------------------------

SEED_COMBINED = {  # every key of the seed's examples (seed/enterprise-features.txt) in one file
    "model_list": [{"model_name": "fake-openai-endpoint", "litellm_params": {
        "model": "openai/fake", "api_key": "fake-key",
        "api_base": "https://exampleopenaiendpoint-production.up.railway.app/"}}],
    "litellm_settings": {"callbacks": ["llmguard_moderations", "banned_keywords", "blocked_user_check",
                                       "google_text_moderation", "hide_secrets"],
                         "store_audit_logs": True, "llm_guard_mode": "key-specific", "banned_keywords_list": ["hello"],
                         "blocked_user_list": ["user_id_1", "user_id_2"], "google_moderation_confidence_threshold": 0.4,
                         "toxic_confidence_threshold": 0.1},
    "general_settings": {"master_key": "sk-1234", "enforced_params": ["user", "metadata.generation_name"],
                         "public_routes": ["LiteLLMRoutes.public_routes", "/spend/calculate"],
                         "admin_only_routes": ["/key/generate"],
                         "allowed_routes": ["/chat/completions", "/spend/calculate", "LiteLLMRoutes.public_routes"],
                         "max_request_size_mb": 0.000000001, "max_response_size_mb": 100},
}


SHIPPED = sorted(str(p.relative_to(ROOT)) for p in [ROOT / "contrib" / "quickstart.yaml", *ROOT.glob("bench/*.yaml"),
                                                    *ROOT.glob("contrib/docker/*config*.yaml")])


@pytest.mark.parametrize("name", [*SHIPPED, "seed"])
def test_shipped_configs_pass_the_check(tmp_path, name):
    path = write(tmp_path, SEED_COMBINED) if name == "seed" else ROOT / name
    code, lines = check(tmp_path, path, BENCH_API_BASE="http://127.0.0.1:9/v1", LLM_GUARD_API_BASE="http://127.0.0.1:9")
    assert code == 0, lines
    assert lines[-1] == "config OK"
    assert not warnings(lines), lines


def test_serving_warns_once_about_ignored_keys(tmp_path):
    """One WARNING per start, however many workers: the workers do not check again."""
    config = {"model_list": [FAKE_MODEL], "general_settings": {"master_key": "sk-1234", "alerting_threshold": 300},
              "litellm_settings": {"set_verbose": False}}
    with cli_server(tmp_path, config, "--num_workers", "2") as (proc, url):
        deadline = time.monotonic() + 20
        while (tmp_path / "server.log").read_text().count("gateway ready") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert stop(proc) == 0
    log = (tmp_path / "server.log").read_text()
    lines = [line for line in log.splitlines() if "does not implement" in line]
    assert len(lines) == 1, log
    assert "WARNING gateway.config" in lines[0]
    assert "general_settings.alerting_threshold" in lines[0] and "litellm_settings.set_verbose" in lines[0]
    assert log.count("gateway ready") == 2


def test_example_config_of_the_page_is_valid_yaml():
    """The page's examples of this feature parse (they are copied by users)."""
    page = (ROOT / "docs" / "configuration.md").read_text()
    section = page.split("## Logs", 1)[1].split("## Command line", 1)[0]
    (block,) = re.findall(r"```yaml\n(.*?)```", section, re.S)
    assert yaml.safe_load(block)["general_settings"]["log_levels"] == {"gateway.upstream": "DEBUG",
                                                                       "gateway.access": "WARNING"}
