"""The admin UI's operations pages in Chromium, and the two endpoints they added.

- Audit log: a key changed through the UI shows up with its diff; "Verify chain" says intact, and
  names the row after it was edited in the database (sqlite3). `GET /audit/verify` gives what
  `gateway audit verify` prints. Internal users get neither (UI and API).
- Models: groups, deployments and prices; a deployment whose upstream is down is unhealthy after
  "Check now"; an internal user sees the models their key may call.
- Guardrails: a configured banned_keywords guardrail and the calls it blocked (`GET
  /guardrails/blocked`: which guard, why; a non-admin key sees its own calls only).
Screenshots land in test-artifacts/.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from playwright.sync_api import expect

from tests.ui_kit import ADMIN, MASTER_KEY, api, chat, ui_config, wait_for

GATEWAY_BIN = str(Path(sys.executable).with_name("gateway"))
KEY_TABLE = "LiteLLM_VerificationToken"


# -- helpers -------------------------------------------------------------------------------------
def sqlite_url(tmp_path: Path) -> str:
    """A database of our own on SQLite, so that a test can edit it with sqlite3 (also when the
    suite runs on PostgreSQL)."""
    return f"sqlite://{tmp_path / 'ops.sqlite3'}"


def sql(url: str, statement: str, *params: Any) -> list[Any]:
    con = sqlite3.connect(url.split("://", 1)[1])
    try:
        rows = con.execute(statement, params).fetchall()
        con.commit()
        return rows
    finally:
        con.close()


def cli_verify(url: str) -> subprocess.CompletedProcess[str]:
    """The real `gateway audit verify`, as an operator runs it."""
    env = {**os.environ, "DATABASE_URL": url}
    env.pop("GATEWAY_CONFIG", None)
    return subprocess.run([GATEWAY_BIN, "audit", "verify"], env=env, capture_output=True, text=True, timeout=60)


def closed_port_url() -> str:
    """An upstream that is down: a loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def open_as(page: Any, gw: Any, where: str, key: str = MASTER_KEY) -> None:
    """Open `#/where` and log in there: the shell then routes once, straight to that page (logging
    in first and then changing the hash can let the first page's late render replace the second)."""
    page.goto(f"{gw.url}/ui/#/{where}")
    page.get_by_label("Key").fill(key)
    page.get_by_role("button", name="Log in", exact=True).click()
    page.get_by_role("button", name="Log out").wait_for()
    if where != "audit" or key == MASTER_KEY:
        page.locator(f'[data-page="{where}"].page').wait_for()


def assert_no_stray_null(page: Any) -> None:
    """A missing optional part of a page is left out, not written as the word null."""
    words = page.locator("main").inner_text().split()
    assert "null" not in words, page.locator("main").inner_text()


def internal_key(gw: Any, user_id: str = "carol", **key: Any) -> str:
    api(gw, "POST", "/user/new", json={"user_id": user_id, "user_role": "internal_user"})
    return api(gw, "POST", "/key/generate", json={"user_id": user_id, **key})["key"]


def guarded_config(upstream_url: str) -> dict[str, Any]:
    """The UI tests' gateway with a banned_keywords guardrail (plugins/banned-keywords) on every call."""
    config = ui_config(upstream_url)
    config["guardrails"] = [{"guardrail_name": "no-secrets-talk", "litellm_params": {
        "guardrail": "banned_keywords", "mode": "pre_call", "default_on": True,
        "banned_keywords_list": ["password", "launch code"]}, "guardrail_info": {"description": "Keeps secrets out"}}]
    return config


def blocked(gw: Any, key: str, text: str) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        chat(gw, key, text)
    assert "Keyword banned" in str(refused.value)


def blocked_calls(gw: Any, headers: dict[str, str] = ADMIN, **params: Any) -> dict[str, Any]:
    r = httpx.get(gw.url + "/guardrails/blocked", params=params, headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


# -- the API the pages added ---------------------------------------------------------------------
def test_audit_verify_endpoint_says_what_the_cli_says(gateway_server, fake_upstream, tmp_path):
    url = sqlite_url(tmp_path)
    gw = gateway_server(ui_config(fake_upstream.url), env={"DATABASE_URL": url})
    for i in range(3):
        api(gw, "POST", "/key/generate", json={"key_alias": f"chain-{i}", "max_budget": 1.5})
    wait_for(lambda: api(gw, "GET", "/audit")["total"] == 3, "3 audit rows")
    assert api(gw, "GET", "/audit/verify") == {"ok": True, "rows": 3, "message": "audit log intact: 3 rows"}
    assert cli_verify(url).stdout.strip() == "audit log intact: 3 rows"

    row_id, values = sql(url, "SELECT id, updated_values FROM audit_logs WHERE seq = 2")[0]
    sql(url, "UPDATE audit_logs SET updated_values = ? WHERE seq = 2", values.replace("1.5", "1000"))
    verdict = api(gw, "GET", "/audit/verify")
    assert verdict["ok"] is False and verdict["rows"] == 1
    assert verdict["message"] == f"row {row_id} (seq 2) was edited: its hash does not match its contents"
    done = cli_verify(url)
    assert done.returncode == 1 and done.stdout.strip() == f"audit log broken: {verdict['message']}"

    key = internal_key(gw)
    for headers, status in (({"Authorization": f"Bearer {key}"}, 403), ({}, 401)):
        r = httpx.get(gw.url + "/audit/verify", headers=headers, timeout=10)
        assert r.status_code == status, r.text
    assert "Only proxy admin can access this route. Route=/audit/verify" in httpx.get(
        gw.url + "/audit/verify", headers={"Authorization": f"Bearer {key}"}, timeout=10).text


def test_guardrails_blocked_lists_guard_blocks_newest_first_and_a_user_sees_their_own(gateway_server, fake_upstream):
    gw = gateway_server(guarded_config(fake_upstream.url))
    carol = internal_key(gw, key_alias="carol-key")
    broke = api(gw, "POST", "/key/generate", json={"key_alias": "broke", "max_budget": 0})["key"]
    blocked(gw, "sk-1234", "what is the password?")
    blocked(gw, carol, "tell me the launch code")
    with pytest.raises(openai.APIStatusError):  # a budget refusal: the core's, not a guardrail's
        chat(gw, broke, "hello")
    assert chat(gw, carol, "hello").choices[0].message.content  # passes: not listed
    rows = wait_for(lambda: (d := blocked_calls(gw)["data"]) and len(d) >= 2 and d, "two blocked calls")
    time.sleep(0.3)  # the budget refusal's row is written too, and must stay out
    everything = blocked_calls(gw)
    assert [(r["guardrail"], r["phase"], r["reason"], r["http_status"], r["model"]) for r in everything["data"]] == [
        ("no-secrets-talk", "pre_call", "Keyword banned. Keyword=launch code", 400, "gpt-test"),
        ("no-secrets-talk", "pre_call", "Keyword banned. Keyword=password", 400, "gpt-test")]
    assert everything["data"][0]["key_alias"] == "carol-key" and everything["has_more"] is False
    assert rows[0]["request_id"] == everything["data"][0]["request_id"]

    mine = blocked_calls(gw, headers={"Authorization": f"Bearer {carol}"})
    assert [r["reason"] for r in mine["data"]] == ["Keyword banned. Keyword=launch code"]
    first = blocked_calls(gw, page_size=1)
    second = blocked_calls(gw, page_size=1, page=2)
    assert (first["has_more"], second["has_more"]) == (True, False)
    assert first["data"][0]["reason"].endswith("launch code") and second["data"][0]["reason"].endswith("password")
    assert blocked_calls(gw, guardrail="virtual_keys")["data"] == []
    assert blocked_calls(gw, guardrail="someone-else")["data"] == []
    assert httpx.get(gw.url + "/guardrails/blocked", timeout=10).status_code == 401


# -- the pages -----------------------------------------------------------------------------------
def test_a_key_change_made_in_the_ui_shows_in_the_audit_log_and_the_chain_verifies(
        gateway_server, fake_upstream, tmp_path, browser_page, screenshot):
    url = sqlite_url(tmp_path)
    gw = gateway_server(ui_config(fake_upstream.url), env={"DATABASE_URL": url})
    api(gw, "POST", "/key/generate", json={"key_alias": "audited", "max_budget": 1})
    page = browser_page
    open_as(page, gw, "keys")
    row = page.get_by_role("row").filter(has_text="audited")
    row.get_by_role("button", name="Edit audited").click()
    dialog = page.get_by_role("dialog", name="Edit audited")
    dialog.get_by_label("Max budget ($)").fill("7.5")
    dialog.get_by_label("Requests per minute").fill("60")
    dialog.get_by_role("button", name="Save").click()
    expect(row).to_contain_text("$7.50")
    wait_for(lambda: api(gw, "GET", "/audit", params={"action": "updated"})["total"] == 1, "the update's audit row")

    page.get_by_role("navigation", name="Pages").get_by_role("link", name="Audit log").click()
    page.locator('[data-page="audit"].page').wait_for()
    page.get_by_label("Table").select_option(KEY_TABLE)
    page.get_by_label("Action").select_option("updated")
    page.get_by_role("button", name="Filter").click()
    rows = page.get_by_role("row").filter(has_text="audited")
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text("updated")
    screenshot(page, "audit-log")
    rows.get_by_role("button", name="Show changes: updated audited").click()
    diff = page.get_by_role("dialog", name="updated audited")
    budget = diff.get_by_role("row").filter(has=page.locator("code", has_text="max_budget"))
    expect(budget).to_contain_text("changed")
    expect(budget.locator("del")).to_have_text("1")
    expect(budget.locator("ins")).to_have_text("7.5")
    rpm = diff.get_by_role("row").filter(has=page.locator("code", has_text="rpm_limit"))
    expect(rpm.locator("del")).to_have_text("null")
    expect(rpm.locator("ins")).to_have_text("60")
    expect(diff.get_by_role("row").filter(has=page.locator("code", has_text="key_alias"))).to_have_count(0)  # unchanged
    screenshot(page, "audit-diff")
    diff.get_by_role("button", name="Close").click()

    page.get_by_role("button", name="Verify chain").click()
    result = page.get_by_test_id("chain-result")
    total = api(gw, "GET", "/audit")["total"]
    expect(result).to_contain_text(f"intact ({total} rows)")

    seq, row_id, values = sql(url, "SELECT seq, id, updated_values FROM audit_logs WHERE action = 'updated'")[0]
    sql(url, "UPDATE audit_logs SET updated_values = ? WHERE seq = ?", values.replace("7.5", "750"), seq)
    page.get_by_role("button", name="Verify chain").click()
    expect(result).to_contain_text(f"broken: row {row_id} (seq {seq}) was edited")
    screenshot(page, "chain-broken")


def test_models_page_lists_groups_deployments_prices_and_checks_health(gateway_server, fake_upstream,
                                                                      browser_page, screenshot):
    config = ui_config(fake_upstream.url)
    config["model_list"] += [
        {"model_name": "gpt-test", "litellm_params": {"model": "openai/second-upstream", "api_base": fake_upstream.url,
                                                      "api_key": "sk-upstream-2", "rpm": 100, "tpm": 50000,
                                                      "input_cost_per_token": 3e-06, "output_cost_per_token": 4e-06}},
        {"model_name": "gpt-down", "litellm_params": {"model": "openai/down-model", "api_base": closed_port_url(),
                                                      "api_key": "sk-down-secret", "rpm": 10,
                                                      "input_cost_per_token": 5e-07, "output_cost_per_token": 1.5e-06}},
    ]
    gw = gateway_server(config)
    page = browser_page
    open_as(page, gw, "models")
    test_group = page.get_by_role("region", name="gpt-test")
    down_group = page.get_by_role("region", name="gpt-down")
    expect(test_group).to_contain_text("Price per 1M tokens: $3.00 in · $4.00 out")  # the highest wherever it lands
    expect(test_group.get_by_role("row")).to_have_count(3)  # header + two deployments
    first = test_group.get_by_role("row").filter(has_text="openai/upstream-model")
    expect(first).to_contain_text("$1.00 in · $2.00 out")
    expect(first).to_contain_text(fake_upstream.url)
    second = test_group.get_by_role("row").filter(has_text="openai/second-upstream")
    expect(second).to_contain_text("rpm 100 · tpm 50,000")
    expect(second).to_contain_text("$3.00 in · $4.00 out")
    down = down_group.get_by_role("row").filter(has_text="openai/down-model")
    expect(down).to_contain_text("$0.50 in · $1.50 out")
    expect(down).to_contain_text("not checked")
    content = page.content()
    assert "sk-upstream" not in content and "sk-down-secret" not in content

    page.get_by_role("button", name="Check now").click()
    expect(page.get_by_test_id("health-status")).to_contain_text("2 healthy, 1 unhealthy")
    expect(down).to_contain_text("unhealthy")
    expect(down).to_contain_text("Connection error")
    expect(first.locator(".badge")).to_have_text("healthy")
    expect(second.locator(".badge")).to_have_text("healthy")
    screenshot(page, "models")

    down_group.get_by_role("button", name="Check gpt-down").click()  # one group at a time
    expect(page.get_by_test_id("health-status")).to_contain_text("Checked gpt-down")
    expect(page.get_by_test_id("health-status")).to_contain_text("0 healthy, 1 unhealthy")

    page.get_by_label("Model name").fill("down")
    page.get_by_role("button", name="Find").click()
    expect(page.get_by_role("region", name="gpt-test")).to_have_count(0)
    expect(page.get_by_role("region", name="gpt-down")).to_have_count(1)


def test_an_internal_user_sees_their_models_and_no_health_button(gateway_server, fake_upstream, browser_page):
    config = ui_config(fake_upstream.url)
    config["model_list"].append({"model_name": "gpt-other", "litellm_params": {
        "model": "openai/other", "api_base": fake_upstream.url, "api_key": "sk-x"}})
    gw = gateway_server(config)
    key = internal_key(gw, models=["gpt-test"])
    page = browser_page
    open_as(page, gw, "models", key)
    expect(page.get_by_role("region", name="gpt-test")).to_contain_text("$1.00 in · $2.00 out")
    expect(page.get_by_role("region", name="gpt-other")).to_have_count(0)
    expect(page.get_by_role("button", name="Check now")).to_have_count(0)
    expect(page.get_by_role("columnheader", name="Health")).to_have_count(0)
    assert_no_stray_null(page)


def test_guardrails_page_shows_the_guardrail_and_the_calls_it_blocked(gateway_server, fake_upstream,
                                                                     browser_page, screenshot):
    gw = gateway_server(guarded_config(fake_upstream.url))
    carol = internal_key(gw, key_alias="carol-key")
    blocked(gw, "sk-1234", "what is the password?")
    blocked(gw, carol, "tell me the launch code")
    wait_for(lambda: len(blocked_calls(gw)["data"]) == 2, "two blocked calls")
    page = browser_page
    open_as(page, gw, "guardrails")
    guard = page.get_by_role("table", name="Configured guardrails").get_by_role("row").filter(has_text="no-secrets-talk")
    expect(guard).to_contain_text("banned_keywords")
    expect(guard).to_contain_text("pre_call")
    expect(guard).to_contain_text("on for every call")
    expect(guard).to_contain_text("Keeps secrets out")
    expect(guard).to_contain_text("enforce")
    expect(guard).to_contain_text("block 2")
    calls = page.get_by_role("table", name="Recent blocked calls, newest first")
    expect(calls.get_by_role("row")).to_have_count(3)
    newest = calls.get_by_role("row").nth(1)
    expect(newest).to_contain_text("no-secrets-talk")
    expect(newest).to_contain_text("Keyword banned. Keyword=launch code")
    expect(newest).to_contain_text("carol-key")
    assert_no_stray_null(page)
    screenshot(page, "guardrails")

    blocked(gw, "sk-1234", "password again")  # a new block shows on Refresh
    wait_for(lambda: len(blocked_calls(gw)["data"]) == 3, "a third blocked call")
    page.get_by_role("button", name="Refresh").click()
    expect(calls.get_by_role("row")).to_have_count(4)
    expect(calls.get_by_role("row").nth(1)).to_contain_text("Keyword=password")

    page.get_by_role("button", name="Log out").click()
    open_as(page, gw, "guardrails", carol)
    expect(page.get_by_role("table", name="Configured guardrails")).to_contain_text("no-secrets-talk")
    mine = page.get_by_role("table", name="Recent blocked calls, newest first").get_by_role("row")
    expect(mine).to_have_count(2)
    expect(mine.nth(1)).to_contain_text("launch code")
    expect(page.get_by_text("Keyword=password")).to_have_count(0)
    assert_no_stray_null(page)
    screenshot(page, "guardrails-internal-user")


def test_guard_plugins_on_every_call_and_the_blocked_by_filter(gateway_server, fake_upstream, browser_page):
    config = guarded_config(fake_upstream.url)
    config["litellm_settings"].update(callbacks=["banned_keywords"], banned_keywords_list=["forbidden-word"])
    gw = gateway_server(config)
    blocked(gw, "sk-1234", "a forbidden-word here")  # the callbacks instance
    blocked(gw, "sk-1234", "the password")  # the guardrail
    wait_for(lambda: len(blocked_calls(gw)["data"]) == 2, "two blocked calls")
    page = browser_page
    open_as(page, gw, "guardrails")
    every_call = page.get_by_role("table", name="Guard plugins on every call").get_by_role("row")
    expect(every_call).to_have_count(2)
    expect(every_call.nth(1)).to_contain_text("banned_keywords")
    expect(every_call.nth(1)).to_contain_text("pre_request")
    expect(every_call.nth(1)).to_contain_text("block 1")
    calls = page.get_by_role("table", name="Recent blocked calls, newest first").get_by_role("row")
    expect(calls).to_have_count(3)
    page.get_by_label("Blocked by").select_option("banned_keywords")
    page.get_by_role("button", name="Show").click()
    expect(calls).to_have_count(2)
    expect(calls.nth(1)).to_contain_text("Keyword banned. Keyword=forbidden-word")
    page.get_by_label("Blocked by").select_option("no-secrets-talk")
    page.get_by_role("button", name="Show").click()
    expect(calls.nth(1)).to_contain_text("Keyword=password")
    expect(calls).to_have_count(2)


def test_an_internal_user_cannot_open_the_audit_log(ui_gw, browser_page, session_client):
    key = internal_key(ui_gw)
    page = browser_page
    open_as(page, ui_gw, "audit", key)
    expect(page.get_by_role("heading", name="No such page")).to_be_visible()
    expect(page.get_by_role("navigation", name="Pages").get_by_role("link", name="Audit log")).to_have_count(0)
    expect(page.get_by_role("button", name="Verify chain")).to_have_count(0)
    client, _ = session_client(ui_gw, key=key)  # the API the page would call, with the user's session
    for path in ("/audit", "/audit/verify"):
        r = client.get(path)
        assert r.status_code == 403, r.text
        assert r.json()["error"]["message"] == f"Only proxy admin can access this route. Route={path}"


@pytest.mark.parametrize("browser_page", ["phone"], indirect=True)
def test_the_pages_read_on_a_phone(gateway_server, fake_upstream, browser_page, screenshot):
    gw = gateway_server(guarded_config(fake_upstream.url))
    blocked(gw, "sk-1234", "what is the password?")
    api(gw, "POST", "/key/generate", json={"key_alias": "pocket"})
    wait_for(lambda: blocked_calls(gw)["data"] and api(gw, "GET", "/audit")["total"], "a blocked call and an audit row")
    page = browser_page
    open_as(page, gw, "models")
    for where, shows in (("models", "gpt-test"), ("guardrails", "Keyword=password"), ("audit", "pocket")):
        page.goto(f"{gw.url}/ui/#/{where}")
        page.locator(f'[data-page="{where}"].page').wait_for()
        expect(page.get_by_text(shows).first).to_be_visible()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the {where} page scrolls sideways on a phone ({width}px)"
        screenshot(page, f"phone-{where}")
