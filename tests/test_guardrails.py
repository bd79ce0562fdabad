"""Guardrails as LiteLLM users configure them (issue 12): each phase of the top-level `guardrails:`
section, named instances of one plugin, and what is observed (spend row `metadata.guardrails`, the
`x-gateway-guardrails` header, /guardrails/list, /plugins counters). A real gateway, the fake
upstream, the official `openai` SDK; the guards are the probe plugins of
tests/dists/gateway-plugin-probe and the real hide_secrets / banned_keywords.

Also: test_guardrails_config.py (start-up errors, the older `litellm_settings.guardrails` form, a
config from LiteLLM's docs), test_guardrails_selection.py (default_on, request, key, team, the bar
on switching off), test_guardrails_during_call.py (against an upstream that watches its connection)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
import pytest

pytestmark = pytest.mark.db  # spend rows are read back: runs on PostgreSQL too

MODEL = "gpt-test"
ADMIN = {"Authorization": "Bearer sk-1234"}
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


def verdict_entry(row: dict[str, Any], name: str, phase: str) -> dict[str, Any]:
    (entry,) = [e for e in row["metadata"]["guardrails"] if (e["name"], e["phase"]) == (name, phase)]
    return entry


def admin_get(gw: Any, path: str) -> Any:
    resp = httpx.get(gw.url + path, headers=ADMIN, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()


def error_of(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    return resp.json()["error"]


# -- pre_call ----------------------------------------------------------------------------------------


def test_pre_call_guardrails_block_and_rewrite_before_the_upstream_call(gateway_server, fake_upstream):
    gw = gateway_server(config(fake_upstream, [
        guardrail("no-forbidden", "probe_block", word="forbidden"),
        guardrail("suffix", "probe_rewrite", suffix=" [checked]"),
    ]))
    client = gw.client()
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert raw.parse().choices[0].message.content == "upstream says: hi [checked]"
    assert fake_upstream.requests[-1].json["messages"][-1]["content"] == "hi [checked]"
    assert "guardrails" not in fake_upstream.requests[-1].json  # a gateway field: never sent upstream
    assert applied(raw) == ["no-forbidden", "suffix"]  # priority order: probe_block 950, probe_rewrite 850
    row = spend_row(gw, raw.headers["x-request-id"])
    assert row["status"] == "success"
    assert verdicts(row) == {("no-forbidden", "pre_call"): "pass", ("suffix", "pre_call"): "rewrite"}

    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "a Forbidden thing"}])
    assert err.value.body["message"] == "Blocked by probe. Keyword=forbidden"
    assert len(fake_upstream.requests) == 1  # the block came before the call
    assert applied(err.value.response) == ["no-forbidden"]  # the rewrite never ran
    row = spend_row(gw, err.value.response.headers["x-request-id"])
    assert row["status"] == "blocked"
    assert verdicts(row) == {("no-forbidden", "pre_call"): "block"}
    assert verdict_entry(row, "no-forbidden", "pre_call")["message"] == "Blocked by probe. Keyword=forbidden"


def test_a_mode_runs_only_the_hooks_of_its_phase(gateway_server, fake_upstream):
    """probe_two_way judges requests (pre_request) and replies (post_response, stream_chunk): as
    pre_call it judges only requests, as post_call only replies."""
    gw = gateway_server(config(fake_upstream, [
        guardrail("requests-only", "probe_two_way", mode="pre_call", word="alpha"),
        guardrail("replies-only", "probe_two_way", mode="post_call", word="beta"),
    ]))
    fake_upstream.reply = "a reply with alpha in it"
    r = chat(gw, "a question with beta in it")  # neither guard's word where it looks
    assert r.status_code == 200, r.text
    assert applied(r) == ["requests-only", "replies-only"]
    assert verdicts(spend_row(gw, r.headers["x-request-id"])) == {
        ("requests-only", "pre_call"): "pass", ("replies-only", "post_call"): "pass"}
    assert error_of(chat(gw, "alpha?"), 400)["message"] == "Request blocked by probe_two_way. Keyword=alpha"
    fake_upstream.reply = "beta"
    assert error_of(chat(gw), 400)["message"] == "Reply blocked by probe_two_way. Keyword=beta"


# -- post_call ---------------------------------------------------------------------------------------


def test_post_call_guardrail_judges_the_reply(gateway_server, fake_upstream):
    gw = gateway_server(config(fake_upstream, [guardrail("judge", "probe_two_way", mode="post_call", word="badword")]))
    client = gw.client()
    ok = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "say badword"}],  # a request is not its business
        extra_body={"fake_upstream": {"reply": "a clean reply"}})
    assert ok.parse().choices[0].message.content == "a clean reply"
    assert applied(ok) == ["judge"]
    assert verdicts(spend_row(gw, ok.headers["x-request-id"])) == {("judge", "post_call"): "pass"}

    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}],
                                       extra_body={"fake_upstream": {"reply": "here is a BADWORD"}})
    assert err.value.body["message"] == "Reply blocked by probe_two_way. Keyword=badword"
    assert len(fake_upstream.requests) == 2  # post_call: the upstream was called, its reply was refused
    row = spend_row(gw, err.value.response.headers["x-request-id"])
    assert row["status"] == "blocked"
    assert verdicts(row) == {("judge", "post_call"): "block"}


def test_post_call_guardrail_judges_a_stream_chunk_by_chunk(gateway_server, fake_upstream):
    gw = gateway_server(config(fake_upstream, [guardrail("judge", "probe_two_way", mode="post_call", word="badword")]))
    client = gw.client()
    fake_upstream.reply_chunks = ["one ", "two ", "badword ", "four"]
    seen: list[str] = []
    with client.chat.completions.with_streaming_response.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True) as raw:
        assert applied(raw) == ["judge"]  # it will judge the stream: announced up front
        request_id = raw.headers["x-request-id"]
        with pytest.raises(openai.APIError) as err:
            for chunk in raw.parse():
                if chunk.choices and chunk.choices[0].delta.content:
                    seen.append(chunk.choices[0].delta.content)
    assert "Reply blocked by probe_two_way. Keyword=badword" in str(err.value)
    assert seen == ["one ", "two "]  # the chunk with the word never left
    row = spend_row(gw, request_id)
    assert row["status"] == "blocked"
    assert verdicts(row) == {("judge", "post_call"): "block"}

    # A clean stream passes whole, with the verdict recorded.
    fake_upstream.reply_chunks = ["all ", "good"]
    with client.chat.completions.with_streaming_response.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True) as raw:
        text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
        request_id = raw.headers["x-request-id"]
    assert text == "all good"
    row = spend_row(gw, request_id)
    assert row["status"] == "success"
    assert verdicts(row) == {("judge", "post_call"): "pass"}


def test_post_call_guardrail_that_buffers_holds_the_whole_stream(gateway_server, fake_upstream):
    """probe_judge_buffered (`buffers_stream`) judges the assembled reply before any byte leaves."""
    gw = gateway_server(config(fake_upstream, [
        guardrail("held", "probe_judge_buffered", mode="post_call", word="secret"),
        guardrail("off-by-default", "probe_judge_buffered", mode="post_call", word="zzz", default_on=False),
    ]))
    fake_upstream.reply_chunks = ["nothing ", "to ", "see ", "sec", "ret"]
    with httpx.stream("POST", gw.url + "/v1/chat/completions", headers=ADMIN, timeout=30, json={
            "model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True}) as resp:
        assert resp.status_code == 200
        assert applied(resp) == ["held"]
        body = resp.read().decode()
    assert "nothing" not in body  # held: no content chunk left before the verdict
    assert "Reply blocked. Keyword=secret" in body
    row = spend_row(gw, resp.headers["x-request-id"])
    assert row["status"] == "blocked"
    assert verdicts(row) == {("held", "post_call"): "block"}


# -- logging_only ------------------------------------------------------------------------------------


def test_logging_only_changes_what_is_logged_and_not_what_is_sent(gateway_server, fake_upstream):
    gw = gateway_server(config(fake_upstream, [
        guardrail("log-mark", "probe_mark", mode="logging_only", request_mark=" [logged-req]",
                  reply_mark=" [logged-reply]"),
        guardrail("log-words", "probe_block", mode="logging_only", word="forbidden"),
    ], general={"store_prompts_in_spend_logs": True}))
    raw = gw.client().chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "a forbidden question"}])
    # What was sent upstream and what the client got are untouched; a block there is only logged.
    assert fake_upstream.requests[-1].json["messages"] == [{"role": "user", "content": "a forbidden question"}]
    assert raw.parse().choices[0].message.content == "upstream says: a forbidden question"
    row = spend_row(gw, raw.headers["x-request-id"])
    assert row["status"] == "success"
    assert row["messages"] == [{"role": "user", "content": "a forbidden question [logged-req]"}]
    assert row["response"]["choices"][0]["message"]["content"] == "upstream says: a forbidden question [logged-reply]"
    assert verdicts(row) == {("log-mark", "logging_only"): "rewrite", ("log-words", "logging_only"): "would_block"}
    assert verdict_entry(row, "log-words", "logging_only")["message"] == "Blocked by probe. Keyword=forbidden"


def test_logging_only_hide_secrets_redacts_the_logged_prompt_only(gateway_server, fake_upstream):
    gw = gateway_server(config(fake_upstream, [
        guardrail("log-secrets", "hide_secrets", mode="logging_only"),
    ], general={"store_prompts_in_spend_logs": True}))
    fake_upstream.reply = "noted"
    r = chat(gw, SECRET_LINE)
    assert r.status_code == 200, r.text
    assert fake_upstream.requests[-1].json["messages"][0]["content"] == SECRET_LINE  # sent as is
    row = spend_row(gw, r.headers["x-request-id"])
    assert row["messages"] == [{"role": "user", "content": "Hey, how's it going, API_KEY = '[REDACTED]'"}]
    assert "sk_1234567890abcdef" not in str(row)
    assert verdicts(row) == {("log-secrets", "logging_only"): "rewrite"}


def test_logging_only_redacts_a_streamed_reply_in_the_log(gateway_server, fake_upstream):
    """A streamed reply is logged as the assembled reply; a logging_only guardrail that redacts
    replies must redact that copy, or the secret it exists to keep out of the log is stored."""
    gw = gateway_server(config(fake_upstream, [
        guardrail("log-secrets", "hide_secrets", mode="logging_only", hide_secrets_redact_replies=True),
    ], general={"store_prompts_in_spend_logs": True}))
    fake_upstream.reply_chunks = ["Sure: ", "API_KEY = 'sk_1234567890abcdef'", "\n"]
    with gw.client().chat.completions.with_streaming_response.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True) as raw:
        text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
        request_id = raw.headers["x-request-id"]
    assert "sk_1234567890abcdef" in text  # the client's stream is not logging_only's business
    row = spend_row(gw, request_id)
    assert row["response"]["choices"][0]["message"]["content"] == "Sure: API_KEY = '[REDACTED]'\n"
    assert "sk_1234567890abcdef" not in str(row)


# -- two named instances of one plugin -----------------------------------------------------------------


def test_two_named_instances_of_one_plugin_each_use_their_own_settings(gateway_server, fake_upstream):
    gw = gateway_server(config(fake_upstream, [
        guardrail("guard-alpha", "probe_guard_a", seconds=0.01, word="alpha"),
        guardrail("guard-beta", "probe_guard_a", mode="during_call", seconds=0.01, word="beta"),
    ]))
    r = chat(gw, "hello")
    assert r.status_code == 200, r.text
    assert sorted(applied(r)) == ["guard-alpha", "guard-beta"]
    assert verdicts(spend_row(gw, r.headers["x-request-id"])) == {
        ("guard-alpha", "pre_call"): "pass", ("guard-beta", "during_call"): "pass"}
    for word, blocker, phase in (("alpha", "guard-alpha", "pre_call"), ("beta", "guard-beta", "during_call")):
        r = chat(gw, f"some {word} text")
        # The instance answers to its guardrail's name (`self.name`), so its messages say which one.
        assert error_of(r, 400)["message"] == f"Violated content safety policy. Guard={blocker}"
        row = spend_row(gw, r.headers["x-request-id"])
        assert row["status"] == "blocked"
        assert verdicts(row)[(blocker, phase)] == "block"
        assert row["metadata"]["blocked_by"] == blocker
    listed = {g["guardrail_name"]: g for g in admin_get(gw, "/guardrails/list")["guardrails"]}
    assert {n: (g["plugin"], g["phases"]) for n, g in listed.items()} == {
        "guard-alpha": ("probe_guard_a", ["pre_call"]), "guard-beta": ("probe_guard_a", ["during_call"])}
    verdict_counts = admin_get(gw, "/plugins")["counters"]["verdicts"]
    assert verdict_counts["guard-alpha"] == {"block": 1, "pass": 2}
    assert verdict_counts["guard-beta"] == {"block": 1, "pass": 1}


def test_two_banned_keywords_instances_judge_one_stream_separately(gateway_server, fake_upstream):
    """Two instances of a plugin that keeps per-request stream state (banned_keywords holds back
    the tail of each chunk that may start a keyword) must not share that state."""
    gw = gateway_server(config(fake_upstream, [
        guardrail("no-apples", "banned_keywords", mode="post_call", banned_keywords_list=["apple"]),
        guardrail("no-bananas", "banned_keywords", mode="post_call", banned_keywords_list=["banana"]),
    ]))
    fake_upstream.reply_chunks = ["I like ", "kiwis, ", "plums ", "and ", "cherries", "."]
    with gw.client().chat.completions.with_streaming_response.create(
            model=MODEL, messages=[{"role": "user", "content": "fruit?"}], stream=True) as raw:
        text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
        request_id = raw.headers["x-request-id"]
    assert text == "I like kiwis, plums and cherries."
    assert verdicts(spend_row(gw, request_id)) == {("no-apples", "post_call"): "pass",
                                                  ("no-bananas", "post_call"): "pass"}

    fake_upstream.reply_chunks = ["I like ", "ban", "anas ", "a lot"]
    seen: list[str] = []
    with gw.client().chat.completions.with_streaming_response.create(
            model=MODEL, messages=[{"role": "user", "content": "fruit?"}], stream=True) as raw:
        request_id = raw.headers["x-request-id"]
        with pytest.raises(openai.APIError) as err:
            for c in raw.parse():
                if c.choices and c.choices[0].delta.content:
                    seen.append(c.choices[0].delta.content)
    assert "Keyword banned. Keyword=banana" in str(err.value)
    assert "banana" not in "".join(seen).lower()
    row = spend_row(gw, request_id)
    assert row["status"] == "blocked"
    assert verdicts(row) == {("no-apples", "post_call"): "pass", ("no-bananas", "post_call"): "block"}


# -- observability -------------------------------------------------------------------------------------


def test_guardrails_list_for_any_key_and_verdict_counts_for_admins(gateway_server, fake_upstream):
    gw = gateway_server(config(fake_upstream, [
        guardrail("remote", "probe_guard_a", mode="during_call", seconds=0.01, word="unsafe",
                  info={"owner": "safety team"}),
        guardrail("optional", "probe_block", default_on=False),
    ]))
    chat(gw, "hello")
    chat(gw, "unsafe")
    key = httpx.post(gw.url + "/key/generate", headers=ADMIN, json={}, timeout=10).json()["key"]
    mine = httpx.get(gw.url + "/guardrails/list", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert mine.status_code == 200, mine.text
    listed = {g["guardrail_name"]: g for g in mine.json()["guardrails"]}
    assert set(listed) == {"remote", "optional"}
    remote = listed["remote"]
    assert remote["litellm_params"] == {"guardrail": "probe_guard_a", "mode": "during_call", "default_on": True}
    assert remote["guardrail_info"] == {"owner": "safety team"}
    assert {p["name"]: p["type"] for p in remote["params"]} == {"seconds": "float", "word": "str"}
    assert all(p["description"] for p in remote["params"])
    assert "verdicts" not in remote
    assert listed["optional"]["default_on"] is False and listed["optional"]["phases"] == ["pre_call"]

    admin = {g["guardrail_name"]: g for g in admin_get(gw, "/guardrails/list")["guardrails"]}
    assert admin["remote"]["verdicts"] == {"block": 1, "pass": 1}
    assert admin["optional"]["verdicts"] == {}
    assert httpx.get(gw.url + "/guardrails/list", timeout=10).status_code == 401


def test_plugins_route_shows_each_guardrail_instance(gateway_server, fake_upstream):
    gw = gateway_server(config(fake_upstream, [
        guardrail("words", "probe_block", word="x", priority=123, timeout_s=2, on_error="fail_open"),
        guardrail("watch", "probe_guard_a", mode="during_call", enforcement="monitor", default_on=False),
    ]))
    info = admin_get(gw, "/plugins")
    rows = {row["name"]: row for row in info["enabled"] if row["enabled_by"] == "guardrails"}
    assert set(rows) == {"words", "watch"}
    assert (rows["words"]["plugin"], rows["words"]["priority"], rows["words"]["timeout_s"],
            rows["words"]["on_error"]) == ("probe_block", 123, 2, "fail_open")
    assert rows["words"]["guardrail"] == {"phases": ["pre_call"], "default_on": True}
    assert (rows["watch"]["plugin"], rows["watch"]["mode"]) == ("probe_guard_a", "monitor")
    assert rows["watch"]["guardrail"] == {"phases": ["during_call"], "default_on": False}


def test_monitor_enforcement_records_would_block_and_lets_the_request_through(gateway_server, fake_upstream):
    gw = gateway_server(config(fake_upstream, [
        guardrail("watch", "probe_guard_a", mode="during_call", seconds=0.01, word="unsafe", enforcement="monitor"),
        guardrail("words", "probe_block", word="forbidden", enforcement="monitor"),
    ]))
    r = chat(gw, "unsafe and forbidden")
    assert r.status_code == 200, r.text
    row = spend_row(gw, r.headers["x-request-id"])
    assert row["status"] == "success"
    assert verdicts(row) == {("words", "pre_call"): "would_block", ("watch", "during_call"): "would_block"}
    counts = admin_get(gw, "/plugins")["counters"]
    assert counts["verdicts"]["watch"] == {"would_block": 1} and counts["monitored"]["words"] == 1


def test_a_failing_guardrail_is_recorded_as_error(gateway_server, fake_upstream):
    gw = gateway_server(config(fake_upstream, [
        guardrail("closed", "probe_broken", default_on=False),
        guardrail("open", "probe_broken", on_error="fail_open", default_on=False),
        guardrail("slow", "probe_guard_a", mode="during_call", seconds=5, timeout_s=0.2, default_on=False),
    ]))
    r = chat(gw, "hi", guardrails=["open"])
    assert r.status_code == 200, r.text
    assert verdicts(spend_row(gw, r.headers["x-request-id"])) == {("open", "pre_call"): "error"}
    r = chat(gw, "hi", guardrails=["closed"])
    assert error_of(r, 503) == {"message": "Guardrail closed is unavailable (RuntimeError)",
                                "type": "guardrail_unavailable", "param": None, "code": "503"}
    row = spend_row(gw, r.headers["x-request-id"])
    assert verdicts(row) == {("closed", "pre_call"): "error"}
    assert verdict_entry(row, "closed", "pre_call")["message"] == "RuntimeError"
    r = chat(gw, "hi", guardrails=["slow"])
    assert error_of(r, 503)["message"] == "Guardrail slow is unavailable (timed out)"
    row = spend_row(gw, r.headers["x-request-id"])
    assert verdicts(row) == {("slow", "during_call"): "error"}
    assert verdict_entry(row, "slow", "during_call")["message"] == "timed out"


def test_no_guardrails_header_without_guardrails(gateway_server, fake_upstream):
    gw = gateway_server(config(fake_upstream, [guardrail("optional", "probe_block", default_on=False)]))
    r = chat(gw)
    assert r.status_code == 200, r.text
    assert "x-gateway-guardrails" not in r.headers
    assert "guardrails" not in spend_row(gw, r.headers["x-request-id"])["metadata"]
