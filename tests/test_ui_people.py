"""The admin UI's Teams, Users and End users pages in Chromium, and the list routes they page
through: `/v2/team/list` (LiteLLM's paginated team list, with `members_count`), `/user/list` (with
each user's `key_count`) and `/customer/list?page=...`. Screenshots land in test-artifacts/."""

from __future__ import annotations

import time

import httpx
import openai
import pytest
from playwright.sync_api import expect

from tests.test_openapi import Shapes, spec_of
from tests.ui_kit import ADMIN, api, chat, login

# -- the list routes ------------------------------------------------------------------------------


def test_v2_team_list_pages_filters_and_counts_members(ui_gw):
    for alias, members in (("Alpha", ["u1", "u2"]), ("beta", ["u2"]), ("alphabet", [])):
        api(ui_gw, "POST", "/team/new", json={"team_id": alias.lower(), "team_alias": alias,
                                               "members_with_roles": [{"role": "user", "user_id": m} for m in members]})
    first = api(ui_gw, "GET", "/v2/team/list", params={"page_size": 2})
    assert (first["total"], first["page"], first["page_size"], first["total_pages"]) == (3, 1, 2, 2)
    assert [t["team_alias"] for t in first["teams"]] == ["Alpha", "beta"]  # oldest first
    second = api(ui_gw, "GET", "/v2/team/list", params={"page_size": 2, "page": 2})
    assert [t["team_alias"] for t in second["teams"]] == ["alphabet"]
    # The caller (the master key's default user) joins each team it creates as an admin.
    assert [t["members_count"] for t in first["teams"]] == [3, 2]

    aliased = api(ui_gw, "GET", "/v2/team/list", params={"team_alias": "ALPHA"})
    assert sorted(t["team_id"] for t in aliased["teams"]) == ["alpha", "alphabet"] and aliased["total"] == 2
    member = api(ui_gw, "GET", "/v2/team/list", params={"user_id": "u2", "sort_by": "team_alias", "sort_order": "desc"})
    assert [t["team_id"] for t in member["teams"]] == ["beta", "alpha"]
    assert api(ui_gw, "GET", "/v2/team/list", params={"team_id": "beta"})["total"] == 1

    Shapes(spec_of(ui_gw)).check(first, "/v2/team/list", "get")  # the shape /openapi.json documents
    bad = httpx.get(ui_gw.url + "/v2/team/list", params={"sort_by": "spend"}, headers=ADMIN)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "sort_by"


def test_user_list_counts_each_users_keys(ui_gw):
    api(ui_gw, "POST", "/user/new", json={"user_id": "two-keys"})  # its first key
    api(ui_gw, "POST", "/key/generate", json={"user_id": "two-keys"})
    api(ui_gw, "POST", "/user/new", json={"user_id": "no-keys", "auto_create_key": False})
    listed = api(ui_gw, "GET", "/user/list", params={"user_ids": "two-keys,no-keys"})
    assert {u["user_id"]: u["key_count"] for u in listed["users"]} == {"two-keys": 2, "no-keys": 0}
    Shapes(spec_of(ui_gw)).check(listed, "/user/list", "get")


def test_customer_list_pages_only_when_asked(ui_gw):
    for user_id, alias in (("c-1", "Acme"), ("c-2", None), ("acme-3", None)):
        api(ui_gw, "POST", "/customer/new", json={"user_id": user_id, "alias": alias})
    everyone = api(ui_gw, "GET", "/customer/list")
    assert [e["user_id"] for e in everyone] == ["c-1", "c-2", "acme-3"]  # LiteLLM's reply: a list
    page = api(ui_gw, "GET", "/customer/list", params={"page": 2, "page_size": 2})
    assert [e["user_id"] for e in page["customers"]] == ["acme-3"]
    assert (page["total"], page["page"], page["page_size"], page["total_pages"]) == (3, 2, 2, 2)
    found = api(ui_gw, "GET", "/end_user/list", params={"search": "ACME", "page_size": 10})
    assert [e["user_id"] for e in found["customers"]] == ["c-1", "acme-3"]  # by alias, and by id
    shapes = Shapes(spec_of(ui_gw))
    shapes.check(everyone, "/customer/list", "get")
    shapes.check(page, "/customer/list", "get")


# -- the pages -----------------------------------------------------------------------------------


def usd(amount: float) -> str:
    """An amount as the page writes it (dom.js money): 2 to 6 decimals."""
    text = f"{amount:,.6f}".rstrip("0")
    return "$" + (text + "0" * (2 - len(text.split(".")[1])))


def wait_for(probe, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return value


def test_create_a_team_add_a_member_and_change_budgets(ui_gw, browser_page, screenshot):
    page = browser_page
    api(ui_gw, "POST", "/user/new", json={"user_id": "bob", "auto_create_key": False})
    login(page, ui_gw, where="teams")
    page.get_by_role("button", name="Create team").click()
    dialog = page.get_by_role("dialog", name="Create a team")
    dialog.get_by_label("Team id").fill("ui-team")
    dialog.get_by_label("Alias", exact=True).fill("ui-made")
    dialog.get_by_label("Models").fill("gpt-test")
    dialog.get_by_label("Max budget ($)").fill("10")
    dialog.get_by_label("Budget period").fill("30d")
    dialog.get_by_label("Requests per minute").fill("60")
    dialog.get_by_label("Metadata (JSON)").fill('{"cost_center": "ops"}')
    dialog.get_by_role("button", name="Create").click()
    row = page.get_by_role("row").filter(has_text="ui-made")
    expect(row).to_contain_text("$0.00 of $10.00 / 30d")
    expect(row).to_contain_text("active")
    info = api(ui_gw, "GET", "/team/info", params={"team_id": "ui-team"})["team_info"]
    assert (info["max_budget"], info["models"], info["rpm_limit"], info["metadata"]) == (
        10.0, ["gpt-test"], 60, {"cost_center": "ops"})

    row.get_by_role("button", name="Edit ui-made").click()
    edit = page.get_by_role("dialog", name="Edit ui-made")
    expect(edit.get_by_label("Max budget ($)")).to_have_value("10")
    edit.get_by_label("Max budget ($)").fill("25")
    edit.get_by_label("Requests per minute").fill("")  # cleared: no limit
    edit.get_by_role("button", name="Save").click()
    expect(row).to_contain_text("$0.00 of $25.00 / 30d")
    info = api(ui_gw, "GET", "/team/info", params={"team_id": "ui-team"})["team_info"]
    assert (info["max_budget"], info["rpm_limit"], info["metadata"]) == (25.0, None, {"cost_center": "ops"})
    screenshot(page, "teams")

    row.get_by_role("link", name="Members of ui-made").click()
    expect(page.get_by_role("heading", name="Team ui-made")).to_be_visible()
    add = page.get_by_role("form", name="Add a member")
    add.get_by_label("User id or e-mail").fill("bob")
    add.get_by_label("Budget in the team ($)").fill("2")
    add.get_by_role("button", name="Add member").click()
    bob = page.get_by_role("row").filter(has_text="bob")
    expect(bob).to_contain_text("$2.00")
    bob.get_by_role("button", name="Edit bob").click()
    member = page.get_by_role("dialog", name="Edit member bob")
    expect(member.get_by_label("Budget in the team ($)")).to_have_value("2")
    member.get_by_label("Role", exact=True).select_option("admin")
    member.get_by_label("Budget in the team ($)").fill("3.5")
    member.get_by_role("button", name="Save").click()
    expect(bob.get_by_role("cell").nth(1)).to_have_text("admin")
    expect(bob.get_by_role("cell").nth(3)).to_have_text("$3.50")
    rows = api(ui_gw, "GET", "/team/info", params={"team_id": "ui-team"})["team_memberships"]
    assert [r["litellm_budget_table"]["max_budget"] for r in rows if r["user_id"] == "bob"] == [3.5]

    # bob's spend inside the team, as the membership row has it, once he makes a call.
    key = api(ui_gw, "POST", "/key/generate", json={"user_id": "bob", "team_id": "ui-team", "key_alias": "bob-in-team"})["key"]
    assert chat(ui_gw, key).choices[0].message.content

    def spent() -> float:
        rows = api(ui_gw, "GET", "/team/info", params={"team_id": "ui-team"})["team_memberships"]
        return next(r["spend"] for r in rows if r["user_id"] == "bob")

    spend = wait_for(spent)
    page.reload()
    expect(bob.get_by_role("cell").nth(2)).to_have_text(usd(spend))
    expect(page.get_by_role("row").filter(has_text="bob-in-team")).to_contain_text("active")
    screenshot(page, "team-members")

    bob.get_by_role("button", name="Remove bob").click()
    page.get_by_role("dialog", name="Remove member").get_by_role("button", name="Remove").click()
    expect(page.get_by_role("row").filter(has_text="bob").filter(has_not_text="bob-in-team")).to_have_count(0)
    page.get_by_role("link", name="All teams").click()
    row.get_by_role("button", name="Block ui-made").click()
    expect(row).to_contain_text("blocked")
    with pytest.raises(openai.APIStatusError):
        chat(ui_gw, key)
    row.get_by_role("button", name="Delete ui-made").click()
    page.get_by_role("dialog", name="Delete team").get_by_role("button", name="Delete").click()
    expect(row).to_have_count(0)
    assert api(ui_gw, "GET", "/v2/team/list")["total"] == 0


def test_block_an_end_user_and_see_their_calls_refused(ui_gw, browser_page, screenshot):
    page = browser_page
    key = api(ui_gw, "POST", "/key/generate", json={"key_alias": "app"})["key"]
    login(page, ui_gw, where="end-users")
    page.get_by_role("button", name="Create end user").click()
    dialog = page.get_by_role("dialog", name="Create an end user")
    dialog.get_by_label("End user id").fill("cust-42")
    dialog.get_by_label("Alias", exact=True).fill("Acme")
    dialog.get_by_label("Max budget ($)").fill("4")
    dialog.get_by_role("button", name="Create").click()
    row = page.get_by_role("row").filter(has_text="cust-42")
    expect(row).to_contain_text("$0.00 of $4.00")
    assert chat(ui_gw, key, user="cust-42").choices[0].message.content

    row.get_by_role("button", name="Block Acme").click()
    expect(row).to_contain_text("blocked")
    with pytest.raises(openai.BadRequestError) as refused:
        chat(ui_gw, key, user="cust-42")
    assert refused.value.status_code == 400
    assert refused.value.body["message"] == "User blocked from making LLM API Calls. User=cust-42"
    screenshot(page, "end-users")

    row.get_by_role("button", name="Unblock Acme").click()
    expect(row).to_contain_text("active")
    assert chat(ui_gw, key, user="cust-42").choices[0].message.content

    # An id never seen before can be blocked ahead of its first call.
    block = page.get_by_role("form", name="Block an end user by id")
    block.get_by_label("Block an end user").fill("stranger")
    block.get_by_role("button", name="Block").click()
    expect(page.get_by_role("row").filter(has_text="stranger")).to_contain_text("blocked")
    with pytest.raises(openai.BadRequestError):
        chat(ui_gw, key, user="stranger")

    page.get_by_role("button", name="Delete Acme").click()
    page.get_by_role("dialog", name="Delete end user").get_by_role("button", name="Delete").click()
    expect(row).to_have_count(0)
    assert [e["user_id"] for e in api(ui_gw, "GET", "/customer/list")] == ["stranger"]


def test_create_a_user_see_their_keys_edit_and_delete(ui_gw, browser_page, screenshot):
    page = browser_page
    login(page, ui_gw, where="users")
    page.get_by_role("button", name="Create user").click()
    dialog = page.get_by_role("dialog", name="Create a user")
    dialog.get_by_label("User id").fill("dana")
    dialog.get_by_label("E-mail").fill("dana@example.com")
    dialog.get_by_label("Max budget ($)").fill("3")
    dialog.get_by_label("Key alias").fill("dana-first")
    dialog.get_by_role("button", name="Create").click()
    shown = page.get_by_role("dialog", name="The user's first key")
    raw = shown.get_by_test_id("raw-key").inner_text()
    shown.get_by_role("button", name="Done").click()
    expect(shown).to_have_count(0)  # closed (the page then reloads the list): only now is the key gone
    assert raw not in page.content()
    assert chat(ui_gw, raw).choices[0].message.content
    row = page.get_by_role("row").filter(has_text="dana@example.com")
    expect(row).to_contain_text("$0.00 of $3.00")
    expect(row.get_by_role("cell").nth(4)).to_have_text("1")  # keys
    expect(row).to_contain_text("internal_user")

    row.get_by_role("button", name="Keys dana").click()
    keys = page.get_by_role("dialog", name="Keys of dana")
    expect(keys.get_by_role("row").filter(has_text="dana-first")).to_contain_text("active")
    screenshot(page, "user-keys")
    keys.get_by_role("button", name="Close").click()

    row.get_by_role("button", name="Edit dana").click()
    edit = page.get_by_role("dialog", name="Edit dana")
    edit.get_by_label("Max budget ($)").fill("4.5")
    edit.get_by_label("Role", exact=True).select_option("proxy_admin")
    edit.get_by_label("Max budget ($)").press("Enter")  # the keyboard's way to Save
    expect(row).to_contain_text(" of $4.50")  # spend: the call above
    expect(row).to_contain_text("proxy_admin")
    assert api(ui_gw, "GET", "/user/info", params={"user_id": "dana"})["user_info"]["max_budget"] == 4.5
    screenshot(page, "users")

    row.get_by_role("button", name="Delete dana").click()
    page.get_by_role("dialog", name="Delete user").get_by_role("button", name="Delete").click()
    expect(row).to_have_count(0)
    with pytest.raises(openai.AuthenticationError):
        chat(ui_gw, raw)  # their keys went with them


def test_an_internal_user_has_none_of_these_pages_and_the_api_refuses_them(ui_gw, browser_page, session_client):
    page = browser_page
    api(ui_gw, "POST", "/user/new", json={"user_id": "carol", "user_role": "internal_user", "auto_create_key": False})
    mine = api(ui_gw, "POST", "/key/generate", json={"user_id": "carol", "key_alias": "carol-key"})["key"]
    api(ui_gw, "POST", "/team/new", json={"team_id": "secret-team", "members_with_roles": [{"role": "user", "user_id": "carol"}]})
    login(page, ui_gw, key=mine, where="keys")
    nav = page.get_by_role("navigation", name="Pages", exact=True)
    expect(nav.get_by_role("link", name="Keys")).to_be_visible()
    for label in ("Teams", "Users", "End users"):
        expect(nav.get_by_role("link", name=label, exact=True)).to_have_count(0)
    for where in ("teams", "users", "end-users"):
        page.goto(f"{ui_gw.url}/ui/#/{where}")
        expect(page.get_by_role("heading", name="No such page")).to_be_visible()

    client, csrf = session_client(ui_gw, key=mine)
    for path in ("/v2/team/list", "/team/list", "/user/list", "/customer/list"):
        r = client.get(path, params={"page": 1})
        assert r.status_code == 403, (path, r.text)
    for path, body in (("/team/new", {"team_alias": "mine"}), ("/team/member_update", {"team_id": "secret-team",
                       "user_id": "carol", "max_budget_in_team": 100}), ("/customer/block", {"user_ids": ["x"]}),
                       ("/user/new", {"user_id": "eve", "user_role": "proxy_admin"})):
        r = client.post(path, json=body, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 403, (path, r.text)
    assert api(ui_gw, "GET", "/user/list", params={"user_ids": "eve"})["total"] == 0


@pytest.mark.parametrize("browser_page", ["phone"], indirect=True)
def test_the_pages_read_on_a_phone(ui_gw, browser_page, screenshot):
    page = browser_page
    api(ui_gw, "POST", "/team/new", json={"team_id": "pocket-team", "team_alias": "pocket", "max_budget": 5,
                                         "models": ["gpt-test"]})
    api(ui_gw, "POST", "/user/new", json={"user_id": "pocket-user", "user_email": "pocket@example.com", "max_budget": 1})
    api(ui_gw, "POST", "/customer/new", json={"user_id": "pocket-customer", "alias": "Pocket Inc", "max_budget": 2})
    login(page, ui_gw, where="keys")
    expect(page.get_by_role("navigation", name="Pages", exact=True)).to_be_hidden()  # behind the menu button
    for where, label, shows in (("teams", "Teams", "pocket"), ("users", "Users", "pocket@example.com"),
                                ("end-users", "End users", "Pocket Inc")):
        page.get_by_role("button", name="Menu").click()
        page.get_by_role("link", name=label, exact=True).click()
        expect(page.locator(f'[data-page="{where}"].page').get_by_text(shows, exact=True)).to_be_visible()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the {label} page scrolls sideways on a phone ({width}px)"
        screenshot(page, where)
    page.goto(f"{ui_gw.url}/ui/#/teams?team_id=pocket-team")
    expect(page.get_by_role("heading", name="Team pocket")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "team")
