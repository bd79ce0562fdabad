"""The admin UI end to end, as an operator uses it in one sitting (Chromium):

log in with the master key, create a key on the Keys page, call the gateway with it through the
openai SDK, see the spend on the Spend page and the calls on the Request logs page, block the key,
see its next call refused, find the creation and the block on the Audit log page and verify the
chain; then an internal user, logged in with their own key, sees their own key, spend and calls
and no one else's, on every page and on the API those pages call; and a change sent with the
session but without its CSRF token is refused. A screenshot of every page lands in test-artifacts/.
"""

from __future__ import annotations

import re
from typing import Any

import openai
import pytest
from playwright.sync_api import expect

from tests.ui_kit import MASTER_KEY, api, chat, login, money, wait_for

ALIAS = "journey-key"


def go(page: Any, gw: Any, where: str) -> None:
    """Open a page from the navigation, as a user does."""
    page.get_by_role("navigation", name="Pages", exact=True).get_by_role("link", name=where, exact=True).click()
    page.locator(".page[data-page]").first.wait_for()


def create_key(page: Any, alias: str, user_id: str = "") -> str:
    """On the Keys page: create a key, read the raw key shown once, close the dialog."""
    page.get_by_role("button", name="Create key").click()
    dialog = page.get_by_role("dialog", name="Create a key")
    dialog.get_by_label("Alias").fill(alias)
    if user_id:
        dialog.get_by_label("User", exact=True).fill(user_id)
    dialog.get_by_label("Max budget ($)").fill("10")
    dialog.get_by_role("button", name="Create").click()
    shown = page.get_by_role("dialog", name="Your new key")
    raw = shown.get_by_test_id("raw-key").inner_text()
    shown.get_by_role("button", name="Done").click()
    expect(shown).to_have_count(0)
    return raw


def test_an_operators_journey_through_every_page(ui_gw, browser_page, screenshot, session_client):
    gw, page = ui_gw, browser_page
    login(page, gw)
    page.locator('[data-page="keys"].page').wait_for()

    # A key made in the UI, used through the openai SDK.
    raw = create_key(page, ALIAS)
    assert raw.startswith("sk-") and raw not in page.content()
    screenshot(page, "journey-keys")
    replies = [chat(gw, raw, f"question {i}", extra_body={"metadata": {"tags": ["journey"]}}) for i in range(3)]
    assert all(r.choices[0].message.content for r in replies)
    token = api(gw, "GET", "/key/info", params={"key": raw})["info"]["token"]
    logged = wait_for(lambda: r if len(r := api(gw, "GET", "/spend/logs", params={"api_key": token})) == 3
                      else None, "three spend rows")
    spent = sum(r["spend"] for r in logged)
    assert spent > 0
    # The key's counter and its rows are written in batches: both end at the same amount.
    wait_for(lambda: api(gw, "GET", "/key/info", params={"key": raw})["info"]["spend"] == pytest.approx(spent),
             "the key's spend to match its rows")

    # Spend: the key leads the top spenders with what it spent.
    go(page, gw, "Spend")
    top = page.get_by_role("table", name=re.compile("^Top spenders")).get_by_role("row")
    expect(top.nth(1)).to_contain_text(ALIAS)
    expect(top.nth(1)).to_contain_text(money(spent))
    expect(page.get_by_test_id("total-calls")).to_contain_text("3")
    expect(page.get_by_role("img", name=re.compile("^Spend per day by key"))).to_be_visible()
    screenshot(page, "journey-spend")

    # Request logs: the three calls, newest first, with their details.
    go(page, gw, "Request logs")
    calls = page.get_by_role("table", name="Calls, newest first").locator("tbody > tr")
    expect(calls).to_have_count(3)
    newest = logged[0]["request_id"]
    page.get_by_role("button", name=f"Details of {newest}").click()
    expect(page.locator("tr.log-details-row")).to_contain_text(newest)
    expect(page.locator("tr.log-details-row")).to_contain_text("journey")
    screenshot(page, "journey-logs")

    # Block the key: the next call is refused.
    go(page, gw, "Keys")
    row = page.get_by_role("row").filter(has_text=ALIAS)
    row.get_by_role("button", name=f"Block {ALIAS}").click()
    expect(row).to_contain_text("blocked")
    with pytest.raises(openai.AuthenticationError) as refused:
        chat(gw, raw)
    assert refused.value.status_code == 401

    # Audit: the creation and the block, and an intact chain.
    go(page, gw, "Audit log")
    audit_rows = page.get_by_role("row")
    expect(audit_rows.filter(has_text="created")).not_to_have_count(0)
    expect(audit_rows.filter(has_text="blocked")).not_to_have_count(0)
    actions = [(r["action"], r["object_id"]) for r in api(gw, "GET", "/audit", params={"page_size": 100})["audit_logs"]]
    assert ("blocked", token) in actions and ("created", token) in actions, actions
    page.get_by_role("button", name="Verify chain").click()
    total = api(gw, "GET", "/audit")["total"]
    expect(page.get_by_test_id("chain-result")).to_contain_text(f"intact ({total} rows)")
    screenshot(page, "journey-audit")
    for where in ("Teams", "Users", "End users", "Models", "Guardrails"):
        go(page, gw, where)
        screenshot(page, "journey-" + where.lower().replace(" ", "-"))

    # An internal user: their own key, spend and calls only, in the UI and on the API it calls.
    api(gw, "POST", "/user/new", json={"user_id": "dana", "user_role": "internal_user"})
    go(page, gw, "Keys")
    dana = create_key(page, "dana-key", user_id="dana")
    chat(gw, dana, "dana's question")
    wait_for(lambda: api(gw, "GET", "/key/info", params={"key": dana})["info"]["spend"] > 0, "dana's spend")
    page.get_by_role("button", name="Log out").click()
    login(page, gw, key=dana)
    expect(page.get_by_role("row").filter(has_text="dana-key")).to_have_count(1)
    expect(page.get_by_text(ALIAS)).to_have_count(0)
    go(page, gw, "Spend")
    top = page.get_by_role("table", name=re.compile("^Top spenders")).get_by_role("row")
    expect(top).to_have_count(2)  # header + dana's key
    expect(top.nth(1)).to_contain_text("dana-key")
    go(page, gw, "Request logs")
    expect(page.get_by_role("table", name="Calls, newest first").locator("tbody > tr")).to_have_count(1)
    expect(page.get_by_text(ALIAS)).to_have_count(0)
    screenshot(page, "journey-internal-user")
    client, csrf = session_client(gw, key=dana)
    listed = client.get("/key/list", params={"return_full_object": "true"}).json()["keys"]
    assert {k["user_id"] for k in listed} == {"dana"}  # her first key (from /user/new) and dana-key
    assert "dana-key" in {k["key_alias"] for k in listed} and ALIAS not in {k["key_alias"] for k in listed}
    assert {g["name"] for g in client.get("/spend/daily", params={"group_by": "key"}).json()["groups"]} == {"dana-key"}
    window = {"start_date": "2000-01-01", "end_date": "2100-01-01"}
    assert [r["api_key"] for r in client.get("/spend/logs/ui", params=window).json()["data"]] == [
        api(gw, "GET", "/key/info", params={"key": dana})["info"]["token"]]
    assert client.get("/key/info", params={"key": raw}).status_code in (403, 404)

    # CSRF: a change with the session but without its token is refused, and nothing changes.
    refused_change = client.post("/key/generate", json={"key_alias": "no-token"})
    assert refused_change.status_code == 403
    assert refused_change.json()["error"]["message"].startswith("CSRF token missing or invalid")
    made = client.post("/key/generate", json={"key_alias": "with-token"}, headers={"X-CSRF-Token": csrf})
    assert made.status_code == 200, made.text
    aliases = {k["key_alias"] for k in api(gw, "GET", "/key/list", params={"return_full_object": "true"})["keys"]}
    assert "no-token" not in aliases and "with-token" in aliases

    # Nothing the browser keeps holds a raw key (the session cookie is HttpOnly: not in document.cookie).
    kept = page.evaluate("JSON.stringify([{...localStorage}, {...sessionStorage}, document.cookie])")
    assert dana not in kept and raw not in kept and MASTER_KEY not in kept
