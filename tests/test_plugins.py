"""Plugin loading and hook semantics, seen from outside: a real gateway, the openai SDK, the CLI.

The plugins are the test-only distribution `gateway-plugin-probe` (tests/dists), installed in the
environment with real entry points, so discovery goes through `importlib.metadata` as in production.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

MODEL = "probe-model"
GATEWAY_BIN = str(Path(sys.executable).parent / "gateway")


# -- helpers ---------------------------------------------------------------------------------------


def make_config(upstream: Any, *, callbacks: list[str] | None = None, plugins: list[dict[str, Any]] | None = None,
                litellm: dict[str, Any] | None = None, general: dict[str, Any] | None = None) -> dict[str, Any]:
    """A config with one deployment on the fake upstream, plus the plugin settings given."""
    api_base = upstream.url if upstream is not None else "http://127.0.0.1:9/v1"
    config: dict[str, Any] = {
        "model_list": [{"model_name": MODEL,
                        "litellm_params": {"model": "openai/upstream-model", "api_base": api_base,
                                           "api_key": "sk-upstream"}}],
        "litellm_settings": dict(litellm or {}),
        "general_settings": dict(general or {}),
    }
    if callbacks:
        config["litellm_settings"]["callbacks"] = callbacks
    if plugins:
        config["plugins"] = plugins
    return config


def chat_body(text: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": text}], **extra}


def post_chat(server: Any, text: str = "hello", **extra: Any) -> httpx.Response:
    return httpx.post(server.url + "/v1/chat/completions", json=chat_body(text, **extra),
                      headers={"Authorization": f"Bearer {server.master_key}"}, timeout=30)


def admin_get(server: Any, path: str) -> Any:
    resp = httpx.get(server.url + path, headers={"Authorization": f"Bearer {server.master_key}"}, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()


def configured(info: dict[str, Any]) -> list[dict[str, Any]]:
    """The enabled plugins of GET /plugins or `gateway plugins --json`, without the core's builtins."""
    return [row for row in info["enabled"] if row["enabled_by"] != "builtin"]


def order_of(info: dict[str, Any], hook: str) -> list[str]:
    """The run order of `hook` among the configured (non-builtin) plugins."""
    builtins = {row["name"] for row in info["enabled"] if row["enabled_by"] == "builtin"}
    return [name for name in info["order"][hook] if name not in builtins]


def probe_counters(info: dict[str, Any]) -> dict[str, dict[str, int]]:
    return {kind: {k: v for k, v in counts.items() if k.startswith("probe_")}
            for kind, counts in info["counters"].items()}


def recorded_finished(server: Any, count: int) -> list[dict[str, Any]]:
    """The `request_finished` outcomes seen by probe_recorder; they arrive off the request path."""
    deadline = time.monotonic() + 5
    while True:
        finished = admin_get(server, "/probe/recorded")["finished"]
        if len(finished) >= count or time.monotonic() > deadline:
            return finished
        time.sleep(0.02)


def assert_envelope(resp: httpx.Response, status: int, type_: str) -> str:
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert error["type"] == type_
    assert error["code"] == str(status)
    assert isinstance(error["message"], str)
    return error["message"]


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


def write_config(tmp_path: Path, config: dict[str, Any], name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run_cli(tmp_path: Path, *args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    """Run `gateway ...` to completion (start-up errors, `gateway plugins`)."""
    return subprocess.run([GATEWAY_BIN, *args], capture_output=True, text=True, timeout=timeout,
                          env=cli_env(tmp_path), cwd=tmp_path)


def startup_error(tmp_path: Path, config: dict[str, Any]) -> str:
    """Start the server from `config`; it must refuse quickly with one `gateway: error:` line."""
    path = write_config(tmp_path, config)
    started = time.monotonic()
    proc = run_cli(tmp_path, "--config", str(path), "--host", "127.0.0.1", "--port", str(free_port()))
    assert time.monotonic() - started < 15
    assert proc.returncode != 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("gateway: error: ")]
    assert len(lines) == 1, proc.stderr
    return lines[0].removeprefix("gateway: error: ")


# -- enabling ----------------------------------------------------------------------------------


def test_enabled_by_name_in_litellm_callbacks(gateway_server, fake_upstream):
    server = gateway_server(make_config(fake_upstream, callbacks=["probe_block"]))
    assert server.client().chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hello"}]).choices[0].message.content
    resp = post_chat(server, "this is Forbidden talk")
    message = assert_envelope(resp, 400, "bad_request_error")
    assert message == "Blocked by probe. Keyword=forbidden"
    assert len(fake_upstream.requests) == 1  # the blocked request never reached the upstream
    enabled = configured(admin_get(server, "/plugins"))
    assert [(p["name"], p["enabled_by"]) for p in enabled] == [("probe_block", "litellm_settings.callbacks")]


def test_enabled_in_native_plugins_list_with_config_and_knobs(gateway_server, fake_upstream):
    server = gateway_server(make_config(fake_upstream, plugins=[
        {"name": "probe_block", "config": {"word": "banana"}, "priority": 123, "timeout_s": 5,
         "on_error": "fail_open", "mode": "enforce"},
    ]))
    assert post_chat(server, "forbidden is fine here").status_code == 200
    message = assert_envelope(post_chat(server, "a banana"), 400, "bad_request_error")
    assert message == "Blocked by probe. Keyword=banana"
    (row,) = configured(admin_get(server, "/plugins"))
    assert row["name"] == "probe_block"
    assert row["enabled_by"] == "plugins"
    assert (row["priority"], row["timeout_s"], row["on_error"], row["mode"]) == (123, 5, "fail_open", "enforce")
    assert row["distribution"] == "gateway-plugin-probe"
    assert row["version"] == "0.0.1"
    assert row["hooks"] == ["pre_request"]


def test_seed_style_flat_key_feeds_plugin_config(gateway_server, fake_upstream):
    server = gateway_server(make_config(fake_upstream, callbacks=["probe_block"],
                                        litellm={"probe_block_message": "Custom refusal"}))
    message = assert_envelope(post_chat(server, "forbidden"), 400, "bad_request_error")
    assert message == "Custom refusal. Keyword=forbidden"


def test_native_config_overrides_seed_flat_key(gateway_server, fake_upstream):
    server = gateway_server(make_config(
        fake_upstream, litellm={"probe_block_message": "Flat message"},
        plugins=[{"name": "probe_block", "config": {"probe_block_message": "Native message"}}]))
    message = assert_envelope(post_chat(server, "forbidden"), 400, "bad_request_error")
    assert message == "Native message. Keyword=forbidden"


def test_plugin_switched_on_by_its_own_setting(gateway_server, fake_upstream):
    server = gateway_server(make_config(fake_upstream, general={"probe_switch_limit": 1}))
    assert post_chat(server, "one message").status_code == 200
    resp = httpx.post(server.url + "/v1/chat/completions", headers={"Authorization": "Bearer sk-1234"}, json={
        "model": MODEL, "messages": [{"role": "user", "content": "one"}, {"role": "user", "content": "two"}]})
    assert assert_envelope(resp, 400, "bad_request_error") == "Too many messages. Max=1"
    (row,) = configured(admin_get(server, "/plugins"))
    assert row["name"] == "probe_switch"
    assert row["enabled_by"] == "setting probe_switch_limit"


def test_plugins_not_enabled_stay_off(gateway_server, fake_upstream):
    server = gateway_server(make_config(fake_upstream))
    assert post_chat(server, "forbidden secret").status_code == 200
    info = admin_get(server, "/plugins")
    assert configured(info) == []
    installed = {row["name"]: row for row in info["installed"]}
    assert installed["probe_block"]["enabled"] is False
    assert installed["probe_block"]["version"] == "0.0.1"


# -- pre_request ---------------------------------------------------------------------------------


def test_pre_request_rewrite_reaches_upstream(gateway_server, fake_upstream):
    server = gateway_server(make_config(fake_upstream, callbacks=["probe_rewrite"]))
    reply = server.client().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert fake_upstream.requests[-1].json["messages"][-1]["content"] == "hi [rewritten]"
    assert reply.choices[0].message.content == "upstream says: hi [rewritten]"


# probe_rewrite appends "forbidden"; whether probe_block sees it depends only on the order.
REWRITE_TO_FORBIDDEN = {"name": "probe_rewrite", "config": {"suffix": " forbidden"}}


def test_default_priorities_order_pre_request_hooks(gateway_server, fake_upstream):
    server = gateway_server(make_config(fake_upstream, plugins=[{"name": "probe_block"}, REWRITE_TO_FORBIDDEN]))
    assert order_of(admin_get(server, "/plugins"), "pre_request") == ["probe_block", "probe_rewrite"]
    assert post_chat(server, "hi").status_code == 200  # block (950) ran before rewrite (850)
    assert fake_upstream.requests[-1].json["messages"][-1]["content"] == "hi forbidden"


def test_configured_priority_changes_the_order(gateway_server, fake_upstream):
    server = gateway_server(make_config(fake_upstream, plugins=[
        {"name": "probe_block"}, {**REWRITE_TO_FORBIDDEN, "priority": 990}]))
    info = admin_get(server, "/plugins")
    assert order_of(info, "pre_request") == ["probe_rewrite", "probe_block"]
    assert [p["name"] for p in configured(info)] == ["probe_rewrite", "probe_block"]
    message = assert_envelope(post_chat(server, "hi"), 400, "bad_request_error")
    assert message == "Blocked by probe. Keyword=forbidden"
    assert fake_upstream.requests == []


def test_knobs_are_read_after_env_references_and_coercion(gateway_server, fake_upstream):
    server = gateway_server(make_config(fake_upstream, plugins=[
        {"name": "probe_block"},
        {**REWRITE_TO_FORBIDDEN, "priority": "990"},  # a quoted number, as YAML often carries them
        {"name": "probe_slow", "config": {"seconds": 0.05}, "timeout_s": "os.environ/PROBE_SLOW_TIMEOUT"},
    ]), env={"PROBE_SLOW_TIMEOUT": "2"})
    info = admin_get(server, "/plugins")
    assert order_of(info, "pre_request") == ["probe_rewrite", "probe_block", "probe_slow"]
    assert next(p for p in configured(info) if p["name"] == "probe_slow")["timeout_s"] == 2
    assert assert_envelope(post_chat(server, "hi"), 400, "bad_request_error") == "Blocked by probe. Keyword=forbidden"
    assert probe_counters(admin_get(server, "/plugins"))["errors"] == {}


def test_equal_priorities_run_by_name(gateway_server, fake_upstream):
    server = gateway_server(make_config(fake_upstream, plugins=[
        {"name": "probe_rewrite", "priority": 500}, {"name": "probe_block", "priority": 500}]))
    assert order_of(admin_get(server, "/plugins"), "pre_request") == ["probe_block", "probe_rewrite"]


# -- post_response and streams -----------------------------------------------------------------


def test_post_response_mutates_reply(gateway_server, fake_upstream):
    server = gateway_server(make_config(fake_upstream, callbacks=["probe_stream_upper"]))
    reply = server.client().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "UPSTREAM SAYS: HI"


def test_post_response_blocks_reply(gateway_server, fake_upstream):
    fake_upstream.reply = "here is the secret plan"
    server = gateway_server(make_config(fake_upstream, callbacks=["probe_judge", "probe_recorder"]))
    with pytest.raises(openai.BadRequestError) as info:
        server.client().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 400
    assert info.value.body["message"] == "Reply blocked. Keyword=secret"
    (finished,) = recorded_finished(server, 1)
    assert (finished["status"], finished["http_status"], finished["blocked_by"]) == ("blocked", 400, "probe_judge")


def test_stream_chunk_mutation_seen_by_sdk(gateway_server, fake_upstream):
    server = gateway_server(make_config(fake_upstream, callbacks=["probe_stream_upper"]))
    stream = server.client().chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "quiet words"}], stream=True)
    pieces = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 1
    assert "".join(pieces) == "UPSTREAM SAYS: QUIET WORDS"


def test_stream_block_after_bytes_left_ends_with_sse_error(gateway_server, fake_upstream):
    fake_upstream.reply = "the secret is out"
    server = gateway_server(make_config(fake_upstream, callbacks=["probe_judge", "probe_recorder"]))
    received = []
    with pytest.raises(openai.APIError) as info:
        for chunk in server.client().chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
    assert "Reply blocked. Keyword=secret" in str(info.value.message)
    assert "".join(received) == "the secret is out"  # not held: the bytes had already left
    (finished,) = recorded_finished(server, 1)
    assert finished["status"] == "blocked"
    assert finished["blocked_by"] == "probe_judge"
    assert probe_counters(admin_get(server, "/plugins"))["blocks"] == {"probe_judge": 1}


def test_buffered_judge_holds_stream_until_verdict(gateway_server, fake_upstream):
    fake_upstream.reply = "the secret is out"
    server = gateway_server(make_config(fake_upstream, callbacks=["probe_judge_buffered"]))
    received = []
    with pytest.raises(openai.APIError) as info:
        for chunk in server.client().chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
    assert "Reply blocked. Keyword=secret" in str(info.value.message)
    assert received == []
    # On the wire too: the only event is the error.
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=chat_body(stream=True),
                      headers={"Authorization": "Bearer sk-1234"}, timeout=30) as resp:
        events = [line for line in resp.iter_lines() if line.startswith("data:")]
    assert len(events) == 1
    assert json.loads(events[0][5:])["error"]["message"] == "Reply blocked. Keyword=secret"
    assert configured(admin_get(server, "/plugins"))[0]["buffers_stream"] is True


def test_buffered_judge_passes_clean_stream(gateway_server, fake_upstream):
    server = gateway_server(make_config(fake_upstream, callbacks=["probe_judge_buffered"]))
    stream = server.client().chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "all clean"}], stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "upstream says: all clean"


# -- knobs: timeout_s, on_error, mode --------------------------------------------------------------


@pytest.mark.parametrize("on_error", ["fail_closed", "fail_open"])
def test_timeout_applies_on_error(gateway_server, fake_upstream, on_error):
    server = gateway_server(make_config(fake_upstream, plugins=[
        {"name": "probe_slow", "config": {"seconds": 5}, "timeout_s": 0.2, "on_error": on_error}]))
    started = time.monotonic()
    resp = post_chat(server, "hi")
    assert time.monotonic() - started < 3  # cut at 0.2 s, not after the hook's 5 s
    if on_error == "fail_closed":
        message = assert_envelope(resp, 503, "guardrail_unavailable")
        assert message == "Guardrail probe_slow is unavailable (timed out)"
        assert fake_upstream.requests == []
    else:
        assert resp.status_code == 200, resp.text
        assert len(fake_upstream.requests) == 1
    assert probe_counters(admin_get(server, "/plugins"))["errors"] == {"probe_slow": 1}


def test_timeout_within_limit_is_not_an_error(gateway_server, fake_upstream):
    server = gateway_server(make_config(fake_upstream, plugins=[
        {"name": "probe_slow", "config": {"seconds": 0.05}, "timeout_s": 2}]))
    assert post_chat(server, "hi").status_code == 200
    assert probe_counters(admin_get(server, "/plugins"))["errors"] == {}


def test_broken_plugin_fail_closed_gives_503(gateway_server, fake_upstream):
    server = gateway_server(make_config(fake_upstream, callbacks=["probe_recorder"],
                                        plugins=[{"name": "probe_broken"}]))
    with pytest.raises(openai.APIStatusError) as info:
        server.client().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 503
    assert info.value.body["type"] == "guardrail_unavailable"
    assert info.value.body["message"] == "Guardrail probe_broken is unavailable (RuntimeError)"
    assert fake_upstream.requests == []
    assert probe_counters(admin_get(server, "/plugins"))["errors"] == {"probe_broken": 1}
    (finished,) = recorded_finished(server, 1)
    assert finished["http_status"] == 503
    assert finished["status"] != "success"


def test_broken_plugin_fail_open_lets_request_through(gateway_server, fake_upstream):
    server = gateway_server(make_config(fake_upstream, plugins=[{"name": "probe_broken", "on_error": "fail_open"}]))
    for _ in range(2):
        reply = server.client().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content == "upstream says: hi"
    counters = probe_counters(admin_get(server, "/plugins"))
    assert counters["errors"] == {"probe_broken": 2}
    assert counters["blocks"] == {}


def test_monitor_mode_records_would_have_blocked(gateway_server, fake_upstream):
    server = gateway_server(make_config(fake_upstream, callbacks=["probe_recorder"],
                                        plugins=[{"name": "probe_block", "mode": "monitor"}]))
    reply = server.client().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "forbidden"}])
    assert reply.choices[0].message.content == "upstream says: forbidden"
    (finished,) = recorded_finished(server, 1)
    assert finished["status"] == "success"
    assert finished["blocked_by"] is None
    assert finished["monitored"] == [
        {"plugin": "probe_block", "status": 400, "message": "Blocked by probe. Keyword=forbidden"}]
    counters = probe_counters(admin_get(server, "/plugins"))
    assert counters["monitored"] == {"probe_block": 1}
    assert counters["blocks"] == {}


def test_counters_count_blocks_per_plugin(gateway_server, fake_upstream):
    server = gateway_server(make_config(fake_upstream, callbacks=["probe_block"],
                                        plugins=[{"name": "probe_broken", "on_error": "fail_open"}]))
    for text in ("forbidden", "forbidden", "fine"):
        post_chat(server, text)
    counters = probe_counters(admin_get(server, "/plugins"))
    # probe_block (950) blocks before probe_broken (750) runs; only the third request reaches it.
    assert counters == {"errors": {"probe_broken": 1}, "blocks": {"probe_block": 2}, "monitored": {},
                        "verdicts": {"probe_block": {"block": 2, "pass": 1}, "probe_broken": {"error": 1}}}


# -- observers and lifecycle ------------------------------------------------------------------------


def test_request_finished_sees_success_failure_and_block(gateway_server, fake_upstream):
    server = gateway_server(make_config(fake_upstream, callbacks=["probe_recorder", "probe_block"]))
    client = server.client()
    client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "one two three"}])
    fake_upstream.fail_next(400, message="bad thing", type="invalid_request_error")
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "forbidden"}])
    list(client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "streamed"}], stream=True))

    finished = recorded_finished(server, 4)
    by_status: dict[str, list[dict[str, Any]]] = {}
    for row in finished:
        by_status.setdefault(row["status"], []).append(row)
    assert sorted(by_status) == ["blocked", "failure", "success"]
    success = sorted(by_status["success"], key=lambda r: r["usage"]["prompt_tokens"])
    assert [r["usage"]["prompt_tokens"] for r in success] == [1, 3]  # the stream's usage, then the JSON reply's
    assert all(r["usage"]["total_tokens"] > r["usage"]["prompt_tokens"] for r in success)
    assert all(r["http_status"] == 200 and r["model"] == MODEL and r["deployment"] for r in success)
    (failure,) = by_status["failure"]
    assert failure["http_status"] == 400
    assert failure["deployment"] is not None
    (blocked,) = by_status["blocked"]
    assert (blocked["http_status"], blocked["blocked_by"], blocked["usage"]) == (400, "probe_block", None)
    assert blocked["deployment"] is None  # blocked before a deployment was chosen


def test_startup_hook_runs_before_serving(gateway_server, fake_upstream):
    server = gateway_server(make_config(fake_upstream, callbacks=["probe_recorder"]))
    assert admin_get(server, "/probe/recorded")["events"] == ["startup"]


def test_startup_and_shutdown_hooks_run_in_the_cli_server(tmp_path):
    events = tmp_path / "events.txt"
    path = write_config(tmp_path, make_config(None, plugins=[
        {"name": "probe_recorder", "config": {"events_file": str(events)}}]))
    port = free_port()
    proc = subprocess.Popen([GATEWAY_BIN, "--config", str(path), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(tmp_path), cwd=tmp_path)
    try:
        deadline = time.monotonic() + 20
        while not events.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert events.read_text().split() == ["startup"]
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
        assert proc.returncode == 0
        assert events.read_text().split() == ["startup", "shutdown"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


# -- start-up errors (the real CLI) --------------------------------------------------------------


def test_startup_error_plugin_not_installed_lists_the_choices_and_never_guesses_a_package(tmp_path):
    line = startup_error(tmp_path, make_config(None, callbacks=["no_such_guard"]))
    assert line.startswith("plugin 'no_such_guard' is enabled in the config but not installed; "), line
    assert "installed plugins: " in line and "probe_recorder" in line  # what is here
    assert "first-party plugins not installed here: " in line  # what we publish (all installed here: none)
    assert "gateway-plugin-no-such-guard" not in line and "pip install" not in line  # a name anybody could take


def test_startup_error_native_plugin_not_installed(tmp_path):
    line = startup_error(tmp_path, make_config(None, plugins=[{"name": "ghost"}]))
    assert "'ghost' is enabled in the config but not installed" in line
    assert "gateway-plugin-ghost" not in line


def test_startup_error_litellm_python_callback_says_to_write_a_plugin(tmp_path):
    line = startup_error(tmp_path, make_config(None, callbacks=["custom_callbacks.proxy_handler_instance"]))
    assert "a Python callback (module.instance) is not loaded: write it as a plugin (`gateway plugins new`)" in line


@pytest.mark.parametrize("key", ["success_callback", "failure_callback"])
def test_litellm_success_and_failure_callbacks_enable_plugins(gateway_server, fake_upstream, key):
    cfg = make_config(fake_upstream)
    cfg.setdefault("litellm_settings", {})[key] = ["probe_recorder"]
    server = gateway_server(cfg)
    assert admin_get(server, "/probe/recorded")["events"] == ["startup"]


def test_an_unknown_success_callback_stops_start_up(tmp_path):
    cfg = make_config(None)
    cfg.setdefault("litellm_settings", {})["success_callback"] = ["langsmith"]
    line = startup_error(tmp_path, cfg)
    assert line.startswith("plugin 'langsmith' is enabled in the config but not installed; "), line


@pytest.mark.parametrize("config, key", [
    ({"seconds": "abc"}, "seconds"),
    ({"secnds": 1}, "secnds"),
])
def test_startup_error_bad_plugin_config(tmp_path, config, key):
    line = startup_error(tmp_path, make_config(None, plugins=[{"name": "probe_slow", "config": config}]))
    assert line.startswith(f"plugin 'probe_slow': config key {key}: "), line


def test_startup_error_bad_seed_flat_key(tmp_path):
    line = startup_error(tmp_path, make_config(None, general={"probe_switch_limit": "lots"}))
    assert line.startswith("plugin 'probe_switch': config key probe_switch_limit: "), line


@pytest.mark.parametrize("entry, key", [
    ({"name": "probe_block", "on_error": "sometimes"}, "plugins.0.on_error"),
    ({"name": "probe_block", "mode": "audit"}, "plugins.0.mode"),
    ({"name": "probe_block", "timeout_s": -1}, "plugins.0.timeout_s"),
    ({"name": "probe_block", "prio": 5}, "plugins.0.prio"),
])
def test_startup_error_bad_knob(tmp_path, entry, key):
    line = startup_error(tmp_path, make_config(None, plugins=[entry]))
    assert line.startswith(f"{key}: "), line


def test_startup_error_callbacks_not_a_list(tmp_path):
    line = startup_error(tmp_path, make_config(None, litellm={"callbacks": 5}))
    assert line.startswith("litellm_settings.callbacks: "), line


def test_startup_error_impl_not_in_spec(tmp_path):
    line = startup_error(tmp_path, make_config(None, callbacks=["probe_badhook"]))
    assert "'probe_badhook'" in line
    assert "pre_reqest" in line


def test_startup_error_plugin_fails_to_import(tmp_path):
    line = startup_error(tmp_path, make_config(None, callbacks=["probe_import_error"]))
    assert "'probe_import_error'" in line
    assert "failed to import" in line
    assert "cannot be imported (on purpose)" in line


# -- listing plugins ------------------------------------------------------------------------------


def test_gateway_plugins_command_json(tmp_path):
    path = write_config(tmp_path, make_config(None, callbacks=["probe_recorder"],
                                              plugins=[{"name": "probe_block", "mode": "monitor"}]))
    proc = run_cli(tmp_path, "plugins", "--config", str(path), "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    installed = {row["name"]: row for row in info["installed"]}
    assert {"probe_block", "probe_recorder", "probe_slow", "probe_badhook"} <= set(installed)
    assert installed["probe_block"] == {
        "name": "probe_block", "distribution": "gateway-plugin-probe", "version": "0.0.1",
        "entry_point": "gateway_plugin_probe:BlockWord", "enabled": True}
    assert installed["probe_slow"]["enabled"] is False
    enabled = configured(info)
    assert [row["name"] for row in enabled] == ["probe_block", "probe_recorder"]  # priority 950, then 10
    block, recorder = enabled
    assert (block["mode"], block["priority"], block["hooks"]) == ("monitor", 950, ["pre_request"])
    assert recorder["hooks"] == ["alert", "request_finished", "routes", "shutdown", "startup"]
    assert recorder["version"] == "0.0.1"
    assert recorder["enabled_by"] == "litellm_settings.callbacks"


def test_gateway_plugins_command_text(tmp_path):
    path = write_config(tmp_path, make_config(None, plugins=[{"name": "probe_slow", "timeout_s": 0.5}],
                                              callbacks=["probe_block"]))
    proc = run_cli(tmp_path, "plugins", "--config", str(path))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "installed:" in out and "enabled, in order:" in out
    enabled_part = out.split("enabled, in order:", 1)[1]
    assert enabled_part.index("probe_block") < enabled_part.index("probe_slow")
    slow_line = next(line for line in enabled_part.splitlines() if "probe_slow" in line)
    assert "timeout_s=0.5" in slow_line and "hooks=pre_request" in slow_line
    installed_part = out.split("enabled, in order:", 1)[0]
    block_line = next(line for line in installed_part.splitlines() if "probe_block" in line)
    assert "gateway-plugin-probe" in block_line and "0.0.1" in block_line


def test_gateway_plugins_command_reports_config_error(tmp_path):
    path = write_config(tmp_path, make_config(None, callbacks=["missing_one"]))
    proc = run_cli(tmp_path, "plugins", "--config", str(path))
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "gateway: error: plugin 'missing_one' is enabled in the config but not installed; " in proc.stderr


def test_plugins_route_is_for_admins_only(gateway_server, fake_upstream):
    server = gateway_server(make_config(fake_upstream, callbacks=["probe_block"]))
    resp = httpx.get(server.url + "/plugins", timeout=10)
    assert assert_envelope(resp, 401, "auth_error") == "Authentication Error, No api key passed in."
    resp = httpx.get(server.url + "/plugins", headers={"Authorization": "Bearer sk-wrong"}, timeout=10)
    assert resp.status_code == 401
    generated = httpx.post(server.url + "/key/generate", json={}, timeout=10,
                           headers={"Authorization": f"Bearer {server.master_key}"})
    assert generated.status_code == 200, generated.text
    resp = httpx.get(server.url + "/plugins", headers={"Authorization": f"Bearer {generated.json()['key']}"},
                     timeout=10)
    assert assert_envelope(resp, 403, "auth_error") == "Only proxy admin can access this route. Route=/plugins"
    info = admin_get(server, "/plugins")
    assert set(info) >= {"installed", "enabled", "counters", "order"}
    assert order_of(info, "pre_request") == ["probe_block"]


def test_a_failing_startup_hook_stops_the_cli_with_one_line(tmp_path):
    """A plugin whose startup raises: the server exits non-zero with one line, and never hangs."""
    import subprocess as sp
    import sys as _sys

    cfg = tmp_path / "c.yaml"
    cfg.write_text("general_settings:\n  master_key: sk-1234\nlitellm_settings:\n  callbacks: [probe_startup_fails]\n")
    proc = sp.run([_sys.executable, "-m", "gateway.core.cli", "--config", str(cfg), "--port", "0"],
                  capture_output=True, text=True, timeout=60, cwd=tmp_path,
                  env={"PATH": "/usr/bin:/bin", "DATABASE_URL": f"sqlite://{tmp_path}/x.db"})
    assert proc.returncode == 3
    errors = [line for line in proc.stderr.splitlines() if line.startswith("gateway: error:")]
    assert errors == ["gateway: error: plugin 'probe_startup_fails' failed to start: "
                      "RuntimeError: cannot reach the moderation service (on purpose)"]
    assert "Traceback" not in proc.stderr


def test_a_failed_start_closes_what_it_opened(gateway_server):
    """After a plugin's startup fails in-process, the next gateway starts cleanly (nothing left open)."""
    with pytest.raises(RuntimeError, match="probe_startup_fails"):
        gateway_server({"litellm_settings": {"callbacks": ["probe_startup_fails"]}})
    gw = gateway_server({"model_list": [{"model_name": "m", "litellm_params": {"model": "fake/m"}}]})
    assert gw.client().chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}]).choices


OBSERVER = """
    import asyncio, time
    from gateway import Plugin, hookimpl

    SEEN = []  # (plugin, event, time)

    class Guard(Plugin):
        name = "{name}"
        priority = {priority}

        @hookimpl
        async def request_finished(self, ctx, outcome):
            SEEN.append(("{name}", "start", time.monotonic()))
            await asyncio.sleep({sleep})
            SEEN.append(("{name}", "end", time.monotonic()))
            if {fail}:
                raise RuntimeError("observer broke")
    """


def test_request_finished_observers_run_in_priority_order_off_the_request_path(gateway_server, fake_upstream,
                                                                                local_plugin):
    first = local_plugin("first_observer", OBSERVER.format(name="first_observer", priority=900, sleep=0.4, fail=True))
    second = local_plugin("second_observer", OBSERVER.format(name="second_observer", priority=100, sleep=0, fail=False))
    server = gateway_server(make_config(fake_upstream, callbacks=[second, first]))
    started = time.monotonic()
    server.client().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert time.monotonic() - started < 0.4  # the client never waits for observers
    def seen() -> list[tuple[str, str, float]]:  # the in-process gateway imported both modules
        return [e for name in (first, second) for e in importlib.import_module(f"gateway_plugin_{name}").SEEN]

    deadline = time.monotonic() + 5
    while len(seen()) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    order = [(name, event) for name, event, _ in sorted(seen(), key=lambda s: s[2])]
    # Higher priority first; the next starts when it has ended, even though it raised.
    assert order == [("first_observer", "start"), ("first_observer", "end"),
                     ("second_observer", "start"), ("second_observer", "end")]


PLAIN_OBSERVER = """
    import time
    from gateway import Plugin, hookimpl

    SEEN = []  # (plugin, request id, time)

    class Guard(Plugin):
        name = "{name}"
        priority = {priority}

        @hookimpl
        def request_finished(self, ctx, outcome):  # a plain function: run in a loop callback, no task
            SEEN.append(("{name}", ctx.request_id, time.monotonic()))
            if {fail}:
                raise RuntimeError("observer broke")
    """


def test_plain_function_observers_run_in_priority_order_and_a_failing_one_stops_neither_the_next_nor_the_spend_row(
        gateway_server, fake_upstream, local_plugin):
    first = local_plugin("plain_first", PLAIN_OBSERVER.format(name="plain_first", priority=900, fail=True))
    second = local_plugin("plain_second", PLAIN_OBSERVER.format(name="plain_second", priority=100, fail=False))
    server = gateway_server(make_config(fake_upstream, callbacks=[second, first]))
    replies = [post_chat(server) for _ in range(3)]
    ids = [r.headers["x-request-id"] for r in replies]

    def seen() -> list[tuple[str, str, float]]:
        return [e for name in (first, second) for e in importlib.import_module(f"gateway_plugin_{name}").SEEN]

    deadline = time.monotonic() + 5
    while len(seen()) < 6 and time.monotonic() < deadline:
        time.sleep(0.05)
    order = [(name, request_id) for name, request_id, _ in sorted(seen(), key=lambda s: s[2])]
    assert order == [(name, rid) for rid in ids for name in ("plain_first", "plain_second")]
    assert admin_get(server, "/plugins")["counters"]["errors"] == {"plain_first": 3}
    # The built-in observers are plain functions too: every call has its spend row.
    assert sorted(row["request_id"] for row in server.spend_logs(3)) == sorted(r.json()["id"] for r in replies)
