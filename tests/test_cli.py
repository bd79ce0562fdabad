"""The `gateway` command as an operator types it: LiteLLM's flags, `check`, `version`, and the
logs (JSON, access log, levels per logger). Every test runs the real CLI in a subprocess."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import openai
import pytest

import gateway
from tests.test_config import chat, cli_env, deployment, free_port, stop, write

GATEWAY_BIN = str(Path(sys.executable).parent / "gateway")
FAKE_MODEL = {"model_name": "m", "litellm_params": {"model": "fake/m"}}
QUIET = ("GATEWAY_LOG_LEVEL", "LITELLM_LOG", "GATEWAY_DETAILED_DEBUG", "GATEWAY_JSON_LOGS", "JSON_LOGS",
         "GATEWAY_ACCESS_LOG", "GATEWAY_LOG_LEVELS")


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in cli_env(tmp_path, **env).items() if k not in QUIET or k in env}
    return subprocess.run([GATEWAY_BIN, *args], capture_output=True, text=True, timeout=60, env=environ, cwd=tmp_path)


@contextlib.contextmanager
def served(tmp_path: Path, config: dict[str, Any], *args: str, **env: str) -> Iterator[tuple[Any, str]]:
    """The real `gateway` serving `config`, with no stray logging variables from the test's
    environment; always killed."""
    proc, url = _serve_args(tmp_path, "--config", str(write(tmp_path, config)), *args, **env)
    try:
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def log_of(tmp_path: Path) -> str:
    return (tmp_path / "server.log").read_text()


# -- help, version, flags ------------------------------------------------------------------------


def test_help_lists_the_commands_and_litellms_flags(tmp_path):
    proc = run(tmp_path, "--help")
    assert proc.returncode == 0
    for command in ("check", "version", "plugins", "migrate", "audit"):
        assert f"\n  {command} " in proc.stdout, command
    for flag in ("--config", "--host", "--port", "--num_workers", "--debug", "--detailed_debug", "--model",
                 "--alias", "--api_base", "--version"):
        assert flag in proc.stdout, flag


@pytest.mark.parametrize("args", [["version"], ["--version"], ["-v"]])
def test_version(tmp_path, args):
    proc = run(tmp_path, *args)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"gateway {gateway.__version__}"


def test_a_flag_litellm_has_and_the_gateway_does_not_is_refused(tmp_path):
    proc = run(tmp_path, "--telemetry", "False")
    assert proc.returncode == 2
    assert "unrecognized arguments: --telemetry" in proc.stderr


def test_model_and_config_together_are_refused(tmp_path):
    proc = run(tmp_path, "--model", "fake/m", "--config", str(write(tmp_path, {"model_list": [FAKE_MODEL]})))
    assert proc.returncode == 2
    assert "gateway: error: --model serves one model without a config file" in proc.stderr


def _serve_args(tmp_path: Path, *args: str, **env: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    environ = {k: v for k, v in cli_env(tmp_path, **env).items() if k not in QUIET or k in env}
    out = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen([GATEWAY_BIN, *args, "--host", "127.0.0.1", "--port", str(port)], stdout=out,
                            stderr=subprocess.STDOUT, env=environ, cwd=tmp_path)
    out.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, log_of(tmp_path)
        assert time.monotonic() < deadline, log_of(tmp_path)
        try:
            if httpx.get(url + "/health/liveliness", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.05)


def test_model_flag_serves_one_model_with_no_config_file(tmp_path, fake_upstream):
    proc, url = _serve_args(tmp_path, "--model", "openai/upstream-model", "--api_base", fake_upstream.url,
                            OPENAI_API_KEY="sk-from-the-environment")
    try:
        client = openai.OpenAI(base_url=url + "/v1", api_key="anything")  # no master key: development mode
        assert [m.id for m in client.models.list().data] == ["openai/upstream-model"]
        for name in ("openai/upstream-model", "upstream-model"):  # its name as given, and the bare name
            reply = client.chat.completions.create(model=name, messages=[{"role": "user", "content": "hi"}])
            assert reply.choices[0].message.content == "upstream says: hi"
            assert fake_upstream.requests[-1].json["model"] == "upstream-model"
            assert fake_upstream.requests[-1].headers["Authorization"] == "Bearer sk-from-the-environment"
        assert stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_model_flag_with_an_alias(tmp_path, fake_upstream):
    proc, url = _serve_args(tmp_path, "--model", "openai/upstream-model", "--alias", "house-model",
                            "--api_base", fake_upstream.url)
    try:
        client = openai.OpenAI(base_url=url + "/v1", api_key="anything")
        assert [m.id for m in client.models.list().data] == ["house-model"]
        reply = client.chat.completions.create(model="house-model", messages=[{"role": "user", "content": "yo"}])
        assert reply.choices[0].message.content == "upstream says: yo"
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="upstream-model", messages=[{"role": "user", "content": "yo"}])
    finally:
        proc.kill()
        proc.wait(10)


# -- gateway check --------------------------------------------------------------------------------


def test_check_says_config_ok_and_reaches_no_database(tmp_path, fake_upstream):
    config = {"model_list": [deployment(fake_upstream.url)], "general_settings": {"master_key": "sk-1234"}}
    started = time.monotonic()
    # Nothing listens on port 9: serving would fail on this database, checking does not reach it.
    proc = run(tmp_path, "check", "--config", str(write(tmp_path, config)),
               DATABASE_URL="postgresql://user:pw@127.0.0.1:9/gateway")
    assert (proc.returncode, proc.stdout) == (0, "config OK\n"), proc.stderr
    assert time.monotonic() - started < 30


def test_check_reports_every_problem_and_exits_1(tmp_path):
    config = {
        "model_list": [{"model_name": "a", "litellm_params": {"model": "openia/gpt-4o"}},
                       {"model_name": "b", "litellm_params": {"model": "fake/b", "timeout": -1}}],
        "router_settings": {"routing_strategy": "fastest"},
        "general_settings": {"responses_store_days": "forever", "public_routes": ["LiteLLMRoutes.nope"]},
        "plugins": [{"name": "banned_keywords", "config": {}}],
    }
    proc = run(tmp_path, "check", "--config", str(write(tmp_path, config)))
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    found = [line.split(":", 2)[1].strip() for line in lines if line.startswith("error: ")]
    assert found == ["model_list.0.litellm_params.model", "model_list.1.litellm_params.timeout",
                     "router_settings.routing_strategy", "general_settings.public_routes",
                     "general_settings.responses_store_days", "plugin 'banned_keywords'"], lines
    assert lines[-1] == "6 problems"


# -- logs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("switch", ["config", "GATEWAY_JSON_LOGS=1", "JSON_LOGS=True"])
def test_json_logs_one_object_per_line_and_the_access_fields(tmp_path, fake_upstream, switch):
    config: dict[str, Any] = {"model_list": [deployment(fake_upstream.url)], "general_settings": {"master_key": "sk-1234"}}
    env = {}
    if switch == "config":
        config["litellm_settings"] = {"json_logs": True}
    else:
        name, _, value = switch.partition("=")
        env[name] = value
    with served(tmp_path, config, **env) as (proc, url):
        admin = {"Authorization": "Bearer sk-1234"}
        key = httpx.post(url + "/key/generate", headers=admin, json={"key_alias": "team-a-prod"}, timeout=10).json()["key"]
        reply = httpx.post(url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}", "x-request-id": "req-42"},
                           json={"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}, timeout=30)
        assert reply.status_code == 200
        assert stop(proc) == 0
    records = [json.loads(line) for line in log_of(tmp_path).splitlines() if line.strip()]  # every line is JSON
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    assert any(r["message"].startswith("gateway ready") for r in records)
    (access,) = [r for r in records if r["logger"] == "gateway.access" and r.get("request_id") == "req-42"]
    assert access["level"] == "INFO"
    assert access["key_alias"] == "team-a-prod"
    assert access["model"] == "gpt-test"
    assert access["status"] == 200
    assert access["path"] == "/v1/chat/completions"
    assert isinstance(access["latency_ms"], float)
    assert key not in log_of(tmp_path)
    assert key[-20:] not in log_of(tmp_path)


@pytest.mark.parametrize("how", ["config", "GATEWAY_ACCESS_LOG=false", "log_levels"])
def test_access_log_can_be_turned_off(tmp_path, how):
    general: dict[str, Any] = {"master_key": "sk-1234"}
    env = {}
    if how == "config":
        general["access_log"] = False
    elif how == "log_levels":
        general["log_levels"] = {"gateway.access": "WARNING"}
    else:
        env["GATEWAY_ACCESS_LOG"] = "false"
    with served(tmp_path, {"model_list": [FAKE_MODEL], "general_settings": general}, **env) as (proc, url):
        assert chat(url, "sk-1234", model="m").status_code == 200
        assert stop(proc) == 0
    log = log_of(tmp_path)
    assert "gateway ready" in log
    assert "gateway.access" not in log


def test_access_log_is_on_by_default_and_debug_wins_over_a_quiet_level(tmp_path):
    with served(tmp_path, {"model_list": [FAKE_MODEL]}, "--debug", GATEWAY_LOG_LEVEL="ERROR") as (proc, url):
        assert chat(url, "anything", model="m").status_code == 200
        assert stop(proc) == 0
    assert "INFO gateway.access: " in log_of(tmp_path)


def test_log_level_per_logger(tmp_path, fake_upstream):
    general = {"master_key": "sk-1234", "log_levels": {"gateway.upstream": "DEBUG", "gateway": "WARNING"}}
    with served(tmp_path, {"model_list": [deployment(fake_upstream.url, api_key="sk-upstream-secret-123")],
                           "general_settings": general}) as (proc, url):
        assert chat(url, "sk-1234").status_code == 200
        assert stop(proc) == 0
    log = log_of(tmp_path)
    assert "DEBUG gateway.upstream: POST Request Sent from gateway" in log
    assert "gateway ready" not in log  # `gateway` (INFO) is at WARNING
    assert "sk-upstream-secret-123" not in log


def test_a_bad_log_level_stops_start_up(tmp_path):
    proc = run(tmp_path, "check", "--config", str(write(tmp_path, {"general_settings": {"log_levels": {"gateway": "LOUD"}}})),
               GATEWAY_LOG_LEVELS="gateway.router=chatty")
    assert proc.returncode == 1
    assert "error: general_settings.log_levels.gateway: 'LOUD' is not one of CRITICAL, ERROR, WARNING, INFO, DEBUG" \
        in proc.stdout.splitlines()
    assert "error: environment: GATEWAY_LOG_LEVELS: 'gateway.router=chatty' is not logger=LEVEL " \
           "(LEVEL one of CRITICAL, ERROR, WARNING, INFO, DEBUG)" in proc.stdout.splitlines()
