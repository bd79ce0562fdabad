"""Guardrails as LiteLLM users configure them (issue 12), the config side: start-up errors, the
older `litellm_settings.guardrails` form, a config from LiteLLM's guardrail docs, and LiteLLM's
conveniences (no `mode`, `os.environ/` params, every LLM route). Helpers as in test_guardrails.py."""

from __future__ import annotations

import os
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

pytestmark = pytest.mark.db  # spend rows are read back: runs on PostgreSQL too

MODEL = "gpt-test"
ADMIN = {"Authorization": "Bearer sk-1234"}
GATEWAY_BIN = str(Path(sys.executable).parent / "gateway")
SECRET_LINE = "Hey, how's it going, API_KEY = 'sk_1234567890abcdef'"


# -- helpers ---------------------------------------------------------------------------------------


def guardrail(name: str, plugin: str, mode: Any = "pre_call", default_on: bool = True, info: Any = None,
              **params: Any) -> dict[str, Any]:
    """One entry of the top-level `guardrails:` list; `params` go into its `litellm_params`."""
    entry: dict[str, Any] = {"guardrail_name": name,
                             "litellm_params": {"guardrail": plugin, "mode": mode, "default_on": default_on, **params}}
    if info is not None:
        entry["guardrail_info"] = info
    return entry


def config(upstream: Any, guardrails: list[dict[str, Any]] | None = None, *, litellm: dict[str, Any] | None = None,
           general: dict[str, Any] | None = None) -> dict[str, Any]:
    api_base = upstream.url if upstream is not None else "http://127.0.0.1:9/v1"
    out: dict[str, Any] = {
        "model_list": [{"model_name": MODEL, "litellm_params": {
            "model": "openai/upstream-model", "api_base": api_base, "api_key": "sk-upstream"}}],
        "router_settings": {"num_retries": 0},
        "litellm_settings": dict(litellm or {}),
        "general_settings": {"spend_flush_interval_s": 0.05, **(general or {})},
    }
    if guardrails is not None:
        out["guardrails"] = guardrails
    return out


def chat(gw: Any, text: str = "hello", key: str = "sk-1234", **extra: Any) -> httpx.Response:
    return httpx.post(gw.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, timeout=30,
                      json={"model": MODEL, "messages": [{"role": "user", "content": text}], **extra})


def applied(resp: Any) -> list[str]:
    """The `x-gateway-guardrails` header as a list (empty when absent)."""
    value = resp.headers.get("x-gateway-guardrails")
    return value.split(",") if value else []


def spend_row(gw: Any, request_id: str, timeout: float = 10.0) -> dict[str, Any]:
    """The spend row of the request whose `x-request-id` is given (a reply's row is keyed by the
    upstream's reply id, and carries ours as metadata.gateway_request_id); rows are written in the
    background, so poll for it."""
    deadline = time.monotonic() + timeout
    while True:
        rows = [r for r in httpx.get(gw.url + "/spend/logs", headers=ADMIN, timeout=10).json()
                if request_id in (r["request_id"], r["metadata"].get("gateway_request_id"))]
        if rows:
            assert len(rows) == 1, rows
            return rows[0]
        assert time.monotonic() < deadline, f"no spend row for request {request_id} within {timeout} s"
        time.sleep(0.03)


def verdicts(row: dict[str, Any]) -> dict[tuple[str, str], str]:
    """`metadata.guardrails` of a spend row as {(name, phase): verdict}, each entry's shape checked."""
    out = {}
    for entry in row["metadata"].get("guardrails") or ():
        assert set(entry) <= {"name", "phase", "verdict", "latency_ms", "message"}, entry
        assert isinstance(entry["latency_ms"], (int, float)) and entry["latency_ms"] >= 0, entry
        out[(entry["name"], entry["phase"])] = entry["verdict"]
    return out


def admin_get(gw: Any, path: str) -> Any:
    resp = httpx.get(gw.url + path, headers=ADMIN, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()


def error_of(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    return resp.json()["error"]


# -- start-up errors through the real CLI (as tests/test_plugins.py does) -------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def startup_error(tmp_path: Path, cfg: dict[str, Any]) -> str:
    """Start `gateway` from `cfg`; it must refuse quickly with exactly one `gateway: error:` line."""
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    env = {k: v for k, v in os.environ.items()
           if k not in ("GATEWAY_MASTER_KEY", "LITELLM_MASTER_KEY", "GATEWAY_CONFIG", "CONFIG_FILE_PATH", "PORT")}
    env["DATABASE_URL"] = f"sqlite://{tmp_path / 'cli.db'}"
    proc = subprocess.run([GATEWAY_BIN, "--config", str(path), "--host", "127.0.0.1", "--port", str(_free_port())],
                          capture_output=True, text=True, timeout=30, env=env, cwd=tmp_path)
    assert proc.returncode != 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("gateway: error: ")]
    assert len(lines) == 1, proc.stderr
    return lines[0].removeprefix("gateway: error: ")


@pytest.mark.parametrize("form", ["guardrails", "litellm_settings.guardrails"])
def test_unknown_guardrail_plugin_fails_start_up_listing_the_installed_plugins(tmp_path, form):
    if form == "guardrails":
        cfg = config(None, [guardrail("aporia-pre-guard", "aporia", mode="during_call")])
    else:  # LiteLLM's older docs: a callback that is none of ours
        cfg = config(None, litellm={"guardrails": [
            {"aporia-pre-guard": {"callbacks": ["aporia"], "default_on": True}}]})
    line = startup_error(tmp_path, cfg)
    assert line.startswith("guardrail 'aporia-pre-guard': no installed plugin is called 'aporia'"), line
    installed = line.split("installed: ", 1)[1].split(", ")
    for name in ("banned_keywords", "hide_secrets", "probe_block", "probe_guard_a", "probe_mark"):
        assert name in installed, line


@pytest.mark.parametrize("entry, expected", [
    # during_call runs while the request is already upstream: a plugin that may rewrite cannot.
    (guardrail("rewriter", "probe_rewrite", mode="during_call"),
     "guardrail 'rewriter': plugin 'probe_rewrite' may rewrite the request, so it cannot run during_call"),
    # A mode that runs none of the plugin's hooks.
    (guardrail("judge", "probe_judge", mode="pre_call"),
     "guardrail 'judge': plugin 'probe_judge' has no hook for mode pre_call"),
    (guardrail("judge", "probe_judge", mode=["pre_call", "post_call"]),
     "guardrail 'judge': plugin 'probe_judge' has no hook for mode pre_call"),
    (guardrail("words", "probe_block", mode="post_call"),
     "guardrail 'words': plugin 'probe_block' has no hook for mode post_call"),
    # The plugin's own config is checked like any plugin's, naming the guardrail and the key.
    (guardrail("words", "probe_block", wrod="x"), "guardrail 'words' (plugin 'probe_block'): config key wrod"),
    (guardrail("slow", "probe_guard_a", seconds="soon"),
     "guardrail 'slow' (plugin 'probe_guard_a'): config key seconds"),
])
def test_start_up_refuses_a_guardrail_its_plugin_cannot_serve(tmp_path, entry, expected):
    assert expected in startup_error(tmp_path, config(None, [entry]))


@pytest.mark.parametrize("guardrails, expected", [
    ([guardrail("g", "probe_block", mode="mid_call")], "mid_call"),
    ([guardrail("g", "probe_block"), guardrail("g", "probe_guard_a")], "'g'"),
    ([{"guardrail_name": "g", "litellm_params": {"mode": "pre_call"}}], "guardrail"),
])
def test_start_up_refuses_a_wrong_guardrails_section(tmp_path, guardrails, expected):
    line = startup_error(tmp_path, config(None, guardrails))
    assert "guardrails" in line and expected in line, line


# -- the older form: litellm_settings.guardrails ---------------------------------------------------


def test_older_litellm_settings_guardrails_form(gateway_server, fake_upstream):
    gw = gateway_server(config(fake_upstream, litellm={"guardrails": [
        {"prompt_injection": {"callbacks": ["probe_block"], "default_on": True}},
        {"reply_check": {"callbacks": ["probe_two_way"], "default_on": False,
                         "callback_args": {"probe_two_way": {"word": "zebra"}}}},
        {"audit_copy": {"callbacks": ["probe_mark"], "default_on": True, "logging_only": True}},
    ]}, general={"store_prompts_in_spend_logs": True}))
    assert error_of(chat(gw, "forbidden words"), 400)["message"] == "Blocked by probe. Keyword=forbidden"

    # reply_check is off by default: a zebra in the request or the reply passes.
    fake_upstream.reply = "a zebra"
    r = chat(gw, "zebra?")
    assert r.status_code == 200, r.text
    assert fake_upstream.requests[-1].json["messages"][-1]["content"] == "zebra?"  # audit_copy: logged only
    row = spend_row(gw, r.headers["x-request-id"])
    assert row["messages"][-1]["content"] == "zebra? [req-mark]"
    assert verdicts(row) == {("prompt_injection", "pre_call"): "pass", ("audit_copy", "logging_only"): "rewrite"}

    # Switched on by the request (LiteLLM's documented way), it runs before the call and on the reply.
    on = {"metadata": {"guardrails": {"reply_check": True}}}
    assert error_of(chat(gw, "zebra?", **on), 400)["message"] == "Request blocked by probe_two_way. Keyword=zebra"
    r = chat(gw, "hello", **on)
    assert error_of(r, 400)["message"] == "Reply blocked by probe_two_way. Keyword=zebra"
    assert verdicts(spend_row(gw, r.headers["x-request-id"]))[("reply_check", "post_call")] == "block"

    # And a default_on one is switched off the same way.
    fake_upstream.reply = None
    r = chat(gw, "forbidden words", metadata={"guardrails": {"prompt_injection": False}})
    assert r.status_code == 200, r.text
    listed = {g["guardrail_name"]: g for g in admin_get(gw, "/guardrails/list")["guardrails"]}
    assert {n: (g["plugin"], g["phases"], g["default_on"]) for n, g in listed.items()} == {
        "prompt_injection": ("probe_block", ["pre_call", "post_call"], True),
        "reply_check": ("probe_two_way", ["pre_call", "post_call"], False),
        "audit_copy": ("probe_mark", ["logging_only"], True),
    }


def test_older_form_group_of_several_callbacks_switches_together(gateway_server, fake_upstream):
    gw = gateway_server(config(fake_upstream, litellm={"guardrails": [
        {"strict": {"callbacks": ["probe_block", "probe_rewrite"], "default_on": False,
                    "callback_args": {"probe_block": {"word": "nope"}, "probe_rewrite": {"suffix": " !"}}}},
    ]}))
    r = chat(gw, "nope")
    assert r.status_code == 200, r.text
    assert fake_upstream.requests[-1].json["messages"][-1]["content"] == "nope"
    r = chat(gw, "fine", guardrails=["strict"])
    assert r.status_code == 200, r.text
    assert fake_upstream.requests[-1].json["messages"][-1]["content"] == "fine !"
    assert verdicts(spend_row(gw, r.headers["x-request-id"])) == {
        ("strict.probe_block", "pre_call"): "pass", ("strict.probe_rewrite", "pre_call"): "rewrite"}
    assert error_of(chat(gw, "nope", guardrails=["strict"]), 400)["message"] == "Blocked by probe. Keyword=nope"


# -- a config from LiteLLM's guardrail docs ----------------------------------------------------------


LITELLM_DOCS_GUARDRAILS = """
guardrails:
  - guardrail_name: "hide-secrets-guard"
    litellm_params:
      guardrail: hide-secrets      # LiteLLM's spelling
      mode: "pre_call"
      default_on: true
  - guardrail_name: "banned-words"
    litellm_params:
      guardrail: banned_keywords
      mode: [pre_call, post_call]
      banned_keywords_list: ["hacking"]
    guardrail_info:                # Optional field, info is returned on GET /guardrails/list
      params:
        - name: "toxicity_score"
          type: "float"
          description: "Score between 0-1 indicating content toxicity level"
        - name: "pii_detection"
          type: "boolean"
"""


def test_a_config_from_litellms_guardrail_docs_starts_and_behaves_as_documented(gateway_server, fake_upstream):
    cfg = config(fake_upstream)
    cfg.update(yaml.safe_load(LITELLM_DOCS_GUARDRAILS))
    gw = gateway_server(cfg)
    client = gw.client()

    # hide-secrets (default_on, pre_call) redacts before the call; the header lists it.
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": SECRET_LINE}])
    assert fake_upstream.requests[-1].json["messages"][0]["content"] == "Hey, how's it going, API_KEY = '[REDACTED]'"
    assert "sk_1234567890abcdef" not in raw.parse().choices[0].message.content
    assert applied(raw) == ["hide-secrets-guard"]
    assert verdicts(spend_row(gw, raw.headers["x-request-id"])) == {("hide-secrets-guard", "pre_call"): "rewrite"}

    # banned-words is off until a request asks for it (`"guardrails": [...]` in the body).
    assert client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hacking tips"}]).choices
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hacking tips"}],
                                       extra_body={"guardrails": ["banned-words"]})
    assert err.value.body["message"] == "Keyword banned. Keyword=hacking"
    assert applied(err.value.response) == ["banned-words"]  # blocked first (priority 950), hide-secrets never ran
    with pytest.raises(openai.BadRequestError) as err:  # and as post_call, on the reply
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}],
                                       extra_body={"guardrails": ["banned-words"],
                                                   "fake_upstream": {"reply": "let's go hacking"}})
    assert err.value.body["message"] == "Keyword banned. Keyword=hacking"
    row = spend_row(gw, err.value.response.headers["x-request-id"])
    assert verdicts(row) == {("banned-words", "pre_call"): "pass", ("hide-secrets-guard", "pre_call"): "pass",
                             ("banned-words", "post_call"): "block"}

    listed = {g["guardrail_name"]: g for g in admin_get(gw, "/guardrails/list")["guardrails"]}
    assert set(listed) == {"banned-words", "hide-secrets-guard"}
    words = listed["banned-words"]
    assert words["guardrail_info"] == yaml.safe_load(LITELLM_DOCS_GUARDRAILS)["guardrails"][1]["guardrail_info"]
    assert words["litellm_params"] == {"guardrail": "banned_keywords", "mode": ["pre_call", "post_call"],
                                       "default_on": False}
    assert (words["plugin"], words["phases"], words["default_on"]) == (
        "banned_keywords", ["pre_call", "post_call"], False)
    assert [p["name"] for p in words["params"]] == ["banned_keywords_list"]
    assert words["params"][0]["description"].startswith("The banned keywords")
    assert "hacking" not in str(words)  # documented params, never their values
    secrets = listed["hide-secrets-guard"]
    assert secrets["plugin"] == "hide_secrets"
    assert secrets["litellm_params"]["guardrail"] in ("hide-secrets", "hide_secrets")
    assert (secrets["litellm_params"]["mode"], secrets["default_on"]) == ("pre_call", True)
    assert "hide_secrets_disabled_detectors" in {p["name"] for p in secrets["params"]}
    assert secrets["guardrail_info"] == {}


# -- LiteLLM conveniences ----------------------------------------------------------------------------


def test_a_guardrail_without_mode_runs_pre_call(gateway_server, fake_upstream):
    """`mode` is optional in `litellm_params` (the default is pre_call): a guardrail that leaves it
    out must start and run before the call."""
    gw = gateway_server(config(fake_upstream, [
        {"guardrail_name": "words", "litellm_params": {"guardrail": "probe_block", "default_on": True, "word": "nope"}},
    ]))
    r = chat(gw, "nope")
    assert error_of(r, 400)["message"] == "Blocked by probe. Keyword=nope"
    assert fake_upstream.requests == []
    assert verdicts(spend_row(gw, r.headers["x-request-id"])) == {("words", "pre_call"): "block"}
    (listed,) = admin_get(gw, "/guardrails/list")["guardrails"]
    assert (listed["phases"], listed["litellm_params"]["mode"]) == (["pre_call"], "pre_call")


def test_guardrail_params_may_come_from_the_environment(gateway_server, fake_upstream):
    gw = gateway_server(config(fake_upstream, [guardrail("words", "probe_block", word="os.environ/GUARD_WORD")]),
                        env={"GUARD_WORD": "pineapple"})
    assert error_of(chat(gw, "pineapple pizza"), 400)["message"] == "Blocked by probe. Keyword=pineapple"
    assert chat(gw, "forbidden").status_code == 200


def test_guardrails_run_on_every_llm_route(gateway_server, fake_upstream):
    gw = gateway_server(config(fake_upstream, [guardrail("words", "probe_block", word="nope", default_on=False)]))
    for path, body in (("/v1/completions", {"prompt": "nope"}), ("/v1/embeddings", {"input": "nope"}),
                       ("/chat/completions", {"messages": [{"role": "user", "content": "nope"}]})):
        r = httpx.post(gw.url + path, headers=ADMIN, timeout=30, json={"model": MODEL, **body})
        assert r.status_code == 200, (path, r.text)
        assert "guardrails" not in fake_upstream.requests[-1].json
        r = httpx.post(gw.url + path, headers=ADMIN, timeout=30, json={"model": MODEL, "guardrails": ["words"], **body})
        assert error_of(r, 400)["message"] == "Blocked by probe. Keyword=nope", path
        assert applied(r) == ["words"]
    assert len(fake_upstream.requests) == 3


def test_two_guardrails_of_a_plugin_that_serves_routes(gateway_server, fake_upstream):
    """size_limits returns a blueprint from its `routes` hook; two guardrails of it (two limits)
    must both start and each apply its own limit."""
    gw = gateway_server(config(fake_upstream, [
        guardrail("replies-1mb", "size_limits", mode="post_call", max_response_size_mb=1),
        guardrail("replies-tiny", "size_limits", mode="post_call", max_response_size_mb=0.0001, default_on=False),
    ]))
    fake_upstream.reply = "x" * 200
    r = chat(gw)
    assert r.status_code == 200, r.text
    assert applied(r) == ["replies-1mb"]
    r = chat(gw, guardrails=["replies-tiny"])
    assert error_of(r, 400)["message"].startswith("Response size is too large."), r.text
    assert "Max size is 0.0001 MB" in r.json()["error"]["message"]


def test_a_guardrail_name_taken_by_a_builtin_is_refused_clearly(tmp_path):
    line = startup_error(tmp_path, config(None, [guardrail("spend_logs", "probe_block")]))
    assert line.startswith("guardrail 'spend_logs': "), line
    assert "config changed" not in line and "guardrail_name" in line, line
