"""Config loading, seen from outside: a real gateway in-process, or the real `gateway` CLI.

The file keeps the LiteLLM proxy's shape (model_list, litellm_settings, general_settings,
router_settings, environment_variables); every problem in it stops start-up, each on a line of its own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
import yaml

GATEWAY_BIN = str(Path(sys.executable).parent / "gateway")


# -- helpers ---------------------------------------------------------------------------------------


def deployment(api_base: str, model_name: str = "gpt-test", **params: Any) -> dict[str, Any]:
    return {"model_name": model_name,
            "litellm_params": {"model": "openai/upstream-model", "api_base": api_base, **params}}


def chat(url: str, key: str, model: str = "gpt-test", text: str = "hello") -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                      json={"model": model, "messages": [{"role": "user", "content": text}]}, timeout=30)


def isolate_env(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Make sure `names` are unset now and are removed again at teardown, whatever the gateway
    exports meanwhile (`environment_variables` writes to this process's environment)."""
    for name in names:
        monkeypatch.setenv(name, "placeholder")
        monkeypatch.delenv(name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment for a CLI subprocess: no stray master key or config, its own SQLite file."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("GATEWAY_MASTER_KEY", "LITELLM_MASTER_KEY", "GATEWAY_CONFIG", "CONFIG_FILE_PATH", "PORT")}
    env["DATABASE_URL"] = f"sqlite://{tmp_path / 'cli.db'}"
    env.update(extra)
    return env


def write(tmp_path: Path, config: dict[str, Any] | str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(config if isinstance(config, str) else yaml.safe_dump(config, sort_keys=False))
    return path


def startup_error(tmp_path: Path, config: dict[str, Any] | str, **env: str) -> str:
    """Start the CLI server on `config`: it must exit non-zero quickly with one clear line."""
    path = write(tmp_path, config)
    started = time.monotonic()
    proc = subprocess.run([GATEWAY_BIN, "--config", str(path), "--host", "127.0.0.1", "--port", str(free_port())],
                          capture_output=True, text=True, timeout=20, env=cli_env(tmp_path, **env), cwd=tmp_path)
    assert time.monotonic() - started < 15
    assert proc.returncode != 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("gateway: error: ")]
    assert len(lines) == 1, proc.stderr
    return lines[0].removeprefix("gateway: error: ")


def startup_errors(tmp_path: Path, config: dict[str, Any] | str, **env: str) -> list[str]:
    """Start the CLI server on `config`: it must exit 2 quickly, every problem on a line of its own."""
    path = write(tmp_path, config)
    proc = subprocess.run([GATEWAY_BIN, "--config", str(path), "--host", "127.0.0.1", "--port", str(free_port())],
                          capture_output=True, text=True, timeout=30, env=cli_env(tmp_path, **env), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "serving on" not in proc.stderr
    return [line.removeprefix("gateway: error: ") for line in proc.stderr.splitlines()
            if line.startswith("gateway: error: ")]


@contextlib.contextmanager
def cli_server(tmp_path: Path, config: dict[str, Any] | str, *args: str, **env: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """The real `gateway` serving `config` on a free port; yields (process, base URL); always killed."""
    path = write(tmp_path, config)
    port = free_port()
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen([GATEWAY_BIN, "--config", str(path), "--host", "127.0.0.1", "--port", str(port), *args],
                            stdout=log, stderr=subprocess.STDOUT, env=cli_env(tmp_path, **env), cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, f"gateway exited: {(tmp_path / 'server.log').read_text()}"
            assert time.monotonic() < deadline, f"gateway not ready: {(tmp_path / 'server.log').read_text()}"
            try:
                if httpx.get(url + "/health/liveliness", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()


def stop(proc: subprocess.Popen[bytes], timeout: float = 10) -> int:
    """SIGTERM, then the exit code (which must come within `timeout`)."""
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout)


# -- the seed's shape -----------------------------------------------------------------------------

SEED_SHAPED = """\
model_list:
  - model_name: gpt-test
    litellm_params:
      model: openai/upstream-model
      api_base: {api_base}
      api_key: os.environ/MY_UPSTREAM_KEY
      rpm: 100
    model_info:
      id: first-deployment
  - model_name: gpt-test-2
    litellm_params:
      model: openai/other-model
      api_base: {api_base}
      api_key: sk-literal
litellm_settings:
  drop_params: true
  num_retries: 1
  request_timeout: 30
  set_verbose: false
general_settings:
  master_key: sk-1234
  alerting_threshold: 300
router_settings:
  routing_strategy: simple-shuffle
  num_retries: 0
  timeout: 30
environment_variables:
  SOME_FLAG: "on"
"""


def test_seed_shaped_config_serves(gateway_server, fake_upstream, monkeypatch):
    isolate_env(monkeypatch, "SOME_FLAG")
    config = yaml.safe_load(SEED_SHAPED.format(api_base=fake_upstream.url))
    server = gateway_server(config, env={"MY_UPSTREAM_KEY": "sk-upstream-from-env"})
    models = server.client().models.list()
    assert [m.id for m in models.data] == ["gpt-test", "gpt-test-2"]
    reply = server.client().chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "upstream says: hi"
    reply = server.client().chat.completions.create(model="gpt-test-2", messages=[{"role": "user", "content": "yo"}])
    assert reply.choices[0].message.content == "upstream says: yo"
    first, second = fake_upstream.requests
    assert first.json["model"] == "upstream-model"
    assert first.headers["Authorization"] == "Bearer sk-upstream-from-env"
    assert second.json["model"] == "other-model"
    assert second.headers["Authorization"] == "Bearer sk-literal"
    assert os.environ["SOME_FLAG"] == "on"


def test_env_reference_reaches_upstream_as_bearer(gateway_server, fake_upstream):
    server = gateway_server({"model_list": [deployment(fake_upstream.url, api_key="os.environ/MY_UPSTREAM_KEY")]},
                            env={"MY_UPSTREAM_KEY": "sk-real-provider-key"})
    assert chat(server.url, "sk-1234").status_code == 200
    assert fake_upstream.requests[-1].headers["Authorization"] == "Bearer sk-real-provider-key"


def test_env_reference_for_master_key(gateway_server, fake_upstream):
    server = gateway_server({"model_list": [deployment(fake_upstream.url)],
                             "general_settings": {"master_key": "os.environ/MY_MASTER"}},
                            env={"MY_MASTER": "sk-master-from-env"})
    assert chat(server.url, "sk-master-from-env").status_code == 200
    assert chat(server.url, "sk-1234").status_code == 401
    assert chat(server.url, "os.environ/MY_MASTER").status_code == 401


def test_environment_variables_exported_before_references_resolve(gateway_server, fake_upstream, monkeypatch):
    isolate_env(monkeypatch, "EXPORTED_UPSTREAM_KEY", "OPENAI_API_KEY")
    server = gateway_server({
        "model_list": [deployment(fake_upstream.url, "by-reference", api_key="os.environ/EXPORTED_UPSTREAM_KEY"),
                       deployment(fake_upstream.url, "by-default-variable")],
        "environment_variables": {"EXPORTED_UPSTREAM_KEY": "sk-exported", "OPENAI_API_KEY": "sk-openai-default"},
    })
    assert chat(server.url, "sk-1234", model="by-reference").status_code == 200
    assert fake_upstream.requests[-1].headers["Authorization"] == "Bearer sk-exported"
    assert chat(server.url, "sk-1234", model="by-default-variable").status_code == 200
    assert fake_upstream.requests[-1].headers["Authorization"] == "Bearer sk-openai-default"


def test_unset_env_reference_names_key_and_variable(tmp_path):
    line = startup_error(tmp_path, {"model_list": [deployment("http://127.0.0.1:9/v1",
                                                              api_key="os.environ/SURELY_UNSET_KEY_4711")]})
    assert line == "model_list.0.litellm_params.api_key: environment variable SURELY_UNSET_KEY_4711 is not set"


def test_unset_env_reference_in_general_settings(tmp_path):
    line = startup_error(tmp_path, {"general_settings": {"master_key": "os.environ/SURELY_UNSET_MASTER_4711"}})
    assert line == "general_settings.master_key: environment variable SURELY_UNSET_MASTER_4711 is not set"


# -- one clear line for every mistake --------------------------------------------------------------


def test_invalid_yaml_gives_line_and_column(tmp_path):
    text = "model_list:\n  - model_name: a\n    litellm_params: {model: openai/x\n"
    line = startup_error(tmp_path, text)
    assert "not valid YAML" in line
    assert "line 4, column 1" in line
    assert str(tmp_path / "config.yaml") in line


def test_tab_indentation_is_reported_with_position(tmp_path):
    line = startup_error(tmp_path, "general_settings:\n\tmaster_key: sk-1\n")
    assert "not valid YAML at line 2, column 1" in line


@pytest.mark.parametrize("config, expected", [
    ({"model_list": "gpt-4"}, "model_list: "),
    ({"model_list": [{"model_name": "a", "litellm_params": {"api_base": "http://x"}}]},
     "model_list.0.litellm_params.model: Field required"),
    ({"model_list": [{"litellm_params": {"model": "openai/x"}}]}, "model_list.0.model_name: Field required"),
    ({"model_list": [deployment("http://127.0.0.1:9/v1"), {"model_name": "b", "litellm_params": "openai/x"}]},
     "model_list.1.litellm_params: "),
    ({"general_settings": ["master_key"]}, "general_settings: "),
    ({"litellm_settings": "callbacks"}, "litellm_settings: "),
    ({"plugins": 5}, "plugins: "),
    ({"plugins": [{"config": {}}]}, "plugins.0.name: Field required"),
    ({"router_settings": {"num_retries": "many"}}, "router_settings.num_retries: "),
    ({"model_lists": []}, "model_lists: "),
    ({"model_list": [deployment("http://127.0.0.1:9/v1", timeout=-5)]}, "model_list.0.litellm_params.timeout: "),
])
def test_wrong_type_names_key_path(tmp_path, config, expected):
    line = startup_error(tmp_path, config)
    assert line.startswith(expected), line


def test_top_level_must_be_a_mapping(tmp_path):
    line = startup_error(tmp_path, "- model_name: a\n")
    assert "top level must be a mapping" in line


def test_missing_config_file(tmp_path):
    proc = subprocess.run([GATEWAY_BIN, "--config", str(tmp_path / "nope.yaml"), "--port", str(free_port())],
                          capture_output=True, text=True, timeout=20, env=cli_env(tmp_path), cwd=tmp_path)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "gateway: error: config file" in proc.stderr and "does not exist" in proc.stderr


def test_unknown_provider_prefix(tmp_path):
    line = startup_error(tmp_path, {"model_list": [
        {"model_name": "a", "litellm_params": {"model": "openia/gpt-4o", "api_key": "sk-x"}}]})
    assert line.startswith("model_list.0.litellm_params.model: provider 'openia' is not supported"), line
    assert "openai" in line  # the list of supported providers helps spot the typo


def test_provider_without_model_after_prefix(tmp_path):
    line = startup_error(tmp_path, {"model_list": [
        {"model_name": "a", "litellm_params": {"model": "openai/", "api_key": "sk-x"}}]})
    assert line.startswith("model_list.0.litellm_params.model: "), line


# -- master key from the environment (the real CLI) ----------------------------------------------


@pytest.mark.parametrize("variable", ["GATEWAY_MASTER_KEY", "LITELLM_MASTER_KEY"])
def test_master_key_from_environment(tmp_path, fake_upstream, variable):
    config = {"model_list": [deployment(fake_upstream.url)]}
    with cli_server(tmp_path, config, **{variable: "sk-env-master"}) as (proc, url):
        resp = httpx.get(url + "/v1/models", timeout=10)
        assert resp.status_code == 401
        assert resp.json()["error"]["message"] == "Authentication Error, No api key passed in."
        assert httpx.get(url + "/v1/models", headers={"Authorization": "Bearer sk-wrong"}, timeout=10).status_code == 401
        assert chat(url, "sk-env-master").status_code == 200
        assert stop(proc) == 0
    assert "NO MASTER KEY" not in (tmp_path / "server.log").read_text()


def test_config_master_key_wins_over_environment(tmp_path, fake_upstream):
    config = {"model_list": [deployment(fake_upstream.url)], "general_settings": {"master_key": "sk-from-file"}}
    with cli_server(tmp_path, config, GATEWAY_MASTER_KEY="sk-from-env") as (proc, url):
        assert chat(url, "sk-from-file").status_code == 200
        assert chat(url, "sk-from-env").status_code == 401


def test_no_master_key_is_announced(tmp_path, fake_upstream):
    with cli_server(tmp_path, {"model_list": [deployment(fake_upstream.url)]}) as (proc, url):
        assert chat(url, "anything").status_code == 200  # development mode: every caller is admin
        assert stop(proc) == 0
    assert "NO MASTER KEY IS SET" in (tmp_path / "server.log").read_text()


# -- the seed's examples and the serving flags --------------------------------------------------

# seed/enterprise-features.txt, "Set Max Request / Response Size on LiteLLM Proxy", as written there.
SEED_SIZE_LIMITS = """\
model_list:
  - model_name: fake-openai-endpoint
    litellm_params:
      model: openai/fake
      api_key: fake-key
      api_base: https://exampleopenaiendpoint-production.up.railway.app/
general_settings:
  master_key: sk-1234

  # Security controls
  max_request_size_mb: 0.000000001 # 👈 Key Change - Max Request Size in MB. Set this very low for testing
  max_response_size_mb: 100 # 👈 Key Change - Max Response Size in MB
"""


def test_seed_size_limit_example_starts(tmp_path):
    with cli_server(tmp_path, SEED_SIZE_LIMITS) as (proc, url):
        assert httpx.get(url + "/health/liveliness", timeout=5).text.strip('"') == "I'm alive!"
        models = httpx.get(url + "/v1/models", headers={"Authorization": "Bearer sk-1234"}, timeout=5).json()
        assert [m["id"] for m in models["data"]] == ["fake-openai-endpoint"]
        assert stop(proc) == 0


def _children(pid: int) -> list[str]:
    """Command lines of the live child processes of `pid` (Linux /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                out.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (OSError, ValueError, IndexError):
            continue
    return out


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="counts worker processes through /proc")
def test_num_workers_starts_that_many_workers(tmp_path, fake_upstream):
    config = {"model_list": [deployment(fake_upstream.url)], "general_settings": {"master_key": "sk-1234"}}
    with cli_server(tmp_path, config, "--num_workers", "2") as (proc, url):
        deadline = time.monotonic() + 20
        while True:
            workers = [c for c in _children(proc.pid) if "spawn_main" in c]
            ready = (tmp_path / "server.log").read_text().count("gateway ready")
            if (len(workers) == 2 and ready == 2) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert len(workers) == 2, workers
        assert ready == 2
        for _ in range(4):
            assert chat(url, "sk-1234").status_code == 200
        started = time.monotonic()
        assert stop(proc) == 0
        assert time.monotonic() - started < 10
    assert "with 2 worker(s)" in (tmp_path / "server.log").read_text()


def test_a_bad_responses_store_days_stops_start_up(tmp_path):
    config = {"model_list": [{"model_name": "m", "litellm_params": {"model": "fake/m"}}],
              "general_settings": {"responses_store_days": "forever"}}
    assert "general_settings.responses_store_days: expected a number >= 0, got 'forever'" in startup_error(tmp_path, config)


# -- every problem in one start --------------------------------------------------------------------


def test_every_problem_of_the_file_in_one_start(tmp_path):
    """One start names every problem, in every section, each with its key path."""
    config = {
        "model_list": [
            {"model_name": "a", "litellm_params": {"model": "openia/gpt-4o"}},
            deployment("ftp://127.0.0.1/v1", "b"),
            {"model_name": "c", "litellm_params": {"model": "fake/c", "timeout": -5}},
            {"litellm_params": {"model": "fake/d"}},
            {"model_name": "e", "litellm_params": {"model": "fake/e", "api_key": "os.environ/SURELY_UNSET_KEY_4712"}},
        ],
        "router_settings": {"num_retries": "many", "routing_strategy": "fastest"},
        "litellm_settings": {"callbaks": ["hide_secrets"], "cache": True, "cache_params": {"type": "memcached"}},
        "general_settings": {"master_key": "sk-1234", "enforced_params": "user", "allowed_routes": ["LiteLLMRoutes.nope"],
                             "responses_store_days": "forever", "database_query_timeout_s": 0},
        "plugins": [{"name": "probe_block", "config": {"wrod": "x"}}],
    }
    lines = startup_errors(tmp_path, config)
    assert lines == [
        "model_list.0.litellm_params.model: provider 'openia' is not supported; use one of: "
        + lines[0].split("use one of: ", 1)[1],
        "model_list.1.litellm_params.api_base: must start with http:// or https://",
        "model_list.2.litellm_params.timeout: Input should be greater than 0",
        "model_list.3.model_name: Field required",
        "model_list.4.litellm_params.api_key: environment variable SURELY_UNSET_KEY_4712 is not set",
        "router_settings.num_retries: Input should be a valid integer, unable to parse string as an integer",
        "router_settings.routing_strategy: 'fastest' is not one of: simple-shuffle, least-busy, latency-based-routing, "
        "usage-based-routing, usage-based-routing-v2, cost-based-routing",
        "litellm_settings.cache_params.type: 'memcached' is not supported; use one of: "
        + lines[7].split("use one of: ", 1)[1],
        "litellm_settings.callbaks: unknown key; did you mean callbacks?",
        "general_settings.allowed_routes: unknown route group 'LiteLLMRoutes.nope'; known: "
        + lines[9].split("known: ", 1)[1],
        "general_settings.database_query_timeout_s: expected a number > 0, got 0",
        "general_settings.enforced_params: must be a list of parameter names like user or metadata.generation_name",
        "general_settings.responses_store_days: expected a number >= 0, got 'forever'",
        "plugin 'probe_block': config key wrod: Extra inputs are not permitted",
    ], "\n".join(lines)


def test_one_problem_is_one_line(tmp_path):
    assert startup_errors(tmp_path, {"general_settings": {"master_key": "sk-1", "max_request_size_md": 1}}) == [
        "general_settings.max_request_size_md: unknown key; did you mean max_request_size_mb?"]
