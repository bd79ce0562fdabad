"""The installed plugins are looked up once per start (issue 19): `load` reads the installed
distributions' entry points, and the app is built from that one reading, whatever the config asks
of it (names, an alias, a setting that switches a plugin on, a model prefix, a guardrail)."""

from __future__ import annotations

import importlib.metadata
from typing import Any

import pytest
import yaml

from gateway.core.app import create_app, load
from gateway.core.config_check import check_config

#: A config that needs every group of entry points: names, an alias (`generic`), a switch
#: (`max_request_size_mb` -> size_limits), a provider prefix (`bedrock/`), a guardrail.
CONFIG: dict[str, Any] = {
    "general_settings": {"master_key": "sk-1234", "max_request_size_mb": 5},
    "litellm_settings": {"callbacks": ["hide_secrets", "generic"], "generic_logger_endpoint": "http://127.0.0.1:9/log",
                         "banned_keywords_list": ["forbidden"]},
    "model_list": [
        {"model_name": "chat", "litellm_params": {"model": "fake/echo"}},
        {"model_name": "claude", "litellm_params": {
            "model": "bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0", "aws_region_name": "us-east-1",
            "aws_access_key_id": "AKIDEXAMPLE", "aws_secret_access_key": "not-a-secret",
            "api_base": "http://127.0.0.1:9"}},
    ],
    "guardrails": [{"guardrail_name": "no-forbidden", "litellm_params": {"guardrail": "banned_keywords",
                                                                         "mode": "pre_call"}}],
}


@pytest.fixture
def lookups(monkeypatch) -> list[dict[str, Any]]:
    """Every reading of the installed entry points the gateway makes (another library's own
    group, such as pydantic's plugins, is not the gateway's)."""
    calls: list[dict[str, Any]] = []
    real = importlib.metadata.entry_points

    def counting(**params: Any) -> Any:
        if str(params.get("group", "gateway")).startswith("gateway"):
            calls.append(params)
        return real(**params)

    monkeypatch.setattr(importlib.metadata, "entry_points", counting)
    return calls


@pytest.fixture
def config_path(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", f"sqlite://{tmp_path / 'gateway.db'}")
    for name in ("GATEWAY_CONFIG", "CONFIG_FILE_PATH", "GATEWAY_MASTER_KEY"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    return str(path)


def test_building_the_app_from_a_config_reads_the_installed_plugins_once(config_path, lookups):
    app = create_app(load(config_path))
    assert len(lookups) == 1, lookups
    enabled = {slot.name: slot.enabled_by for slot in app.gateway.host.slots.values()}
    # Every group was answered from that one reading.
    assert enabled["hide_secrets"] == "litellm_settings.callbacks"
    assert enabled["generic_api"] == "litellm_settings.callbacks"  # through the alias `generic`
    assert enabled["size_limits"].startswith("setting max_request_size_mb")
    assert enabled["bedrock"] == "model_list prefix bedrock/"
    assert enabled["no-forbidden"] == "guardrails"
    installed = {row["name"] for row in app.gateway.host.describe()["installed"]}
    assert {"hide_secrets", "generic_api", "size_limits", "bedrock", "banned_keywords"} <= installed


def test_the_start_up_check_reads_them_once_for_all_its_builds(config_path, lookups):
    report = check_config(config_path)
    assert report.ok, report.problems
    assert len(lookups) == 1, lookups


def test_each_load_reads_them_again(config_path, lookups):
    """No reading is kept between starts: a plugin installed since (`gateway plugins dev`, then a
    config reload) is found by the next one."""
    create_app(load(config_path))
    create_app(load(config_path))
    assert len(lookups) == 2
