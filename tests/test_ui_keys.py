"""The admin UI's keys page in Chromium: log in, create a key, use it with the openai SDK, edit,
block, regenerate and delete it; an internal user sees only their own keys. Screenshots land in
test-artifacts/."""

from __future__ import annotations

import openai
import pytest
from playwright.sync_api import expect

from tests.ui_kit import api, chat, login


def test_create_a_key_use_it_then_block_it(ui_gw, browser_page, screenshot):
    page = browser_page
    login(page, ui_gw, where="keys")
    page.get_by_role("button", name="Create key").click()
    dialog = page.get_by_role("dialog", name="Create a key")
    dialog.get_by_label("Alias").fill("ui-made")
    dialog.get_by_label("Max budget ($)").fill("5")
    dialog.get_by_label("Models").fill("gpt-test")
    dialog.get_by_label("Requests per minute").fill("100")
    dialog.get_by_label("Metadata (JSON)").fill('{"team": "ops"}')
    dialog.get_by_role("button", name="Create").click()
    shown = page.get_by_role("dialog", name="Your new key")
    raw = shown.get_by_test_id("raw-key").inner_text()
    assert raw.startswith("sk-")
    screenshot(page, "raw-key-shown-once")
    shown.get_by_role("button", name="Done").click()
    row = page.get_by_role("row").filter(has_text="ui-made")
    expect(row).to_contain_text("$5.00")
    expect(row).to_contain_text("active")
    stored = api(ui_gw, "GET", "/key/info", params={"key": raw})["info"]
    assert (stored["max_budget"], stored["models"], stored["rpm_limit"], stored["metadata"]) == (
        5.0, ["gpt-test"], 100, {"team": "ops"})
    assert raw not in page.content()  # shown once, then gone from the page

    assert chat(ui_gw, raw).choices[0].message.content
    row.get_by_role("button", name="Block ui-made").click()
    expect(row).to_contain_text("blocked")
    with pytest.raises(openai.AuthenticationError) as refused:
        chat(ui_gw, raw)
    assert refused.value.status_code == 401
    screenshot(page, "keys")
    row.get_by_role("button", name="Unblock ui-made").click()
    expect(row).to_contain_text("active")
    assert chat(ui_gw, raw).choices[0].message.content


def test_edit_regenerate_and_delete(ui_gw, browser_page):
    page = browser_page
    old = api(ui_gw, "POST", "/key/generate", json={"key_alias": "to-edit", "max_budget": 1,
                                                    "metadata": {"owner": "ops"}})["key"]
    login(page, ui_gw, where="keys")
    row = page.get_by_role("row").filter(has_text="to-edit")
    row.get_by_role("button", name="Edit to-edit").click()
    dialog = page.get_by_role("dialog", name="Edit to-edit")
    expect(dialog.get_by_label("Max budget ($)")).to_have_value("1")
    expect(dialog.get_by_label("Metadata (JSON)")).to_have_value('{"owner":"ops"}')
    dialog.get_by_label("Max budget ($)").fill("7.5")
    dialog.get_by_label("Tokens per minute").fill("1000")
    dialog.get_by_role("button", name="Save").click()
    expect(row).to_contain_text("$7.50")
    info = api(ui_gw, "GET", "/key/info", params={"key": old})["info"]
    assert (info["max_budget"], info["tpm_limit"]) == (7.5, 1000)

    row.get_by_role("button", name="Regenerate to-edit").click()
    page.get_by_role("dialog", name="Regenerate key").get_by_role("button", name="Regenerate").click()
    fresh = page.get_by_role("dialog", name="The regenerated key").get_by_test_id("raw-key").inner_text()
    page.get_by_role("button", name="Done").click()
    assert fresh != old and chat(ui_gw, fresh).choices[0].message.content
    with pytest.raises(openai.AuthenticationError):
        chat(ui_gw, old)

    row.get_by_role("button", name="Delete to-edit").click()
    page.get_by_role("dialog", name="Delete key").get_by_role("button", name="Delete").click()
    expect(page.get_by_role("row").filter(has_text="to-edit")).to_have_count(0)
    with pytest.raises(openai.AuthenticationError):
        chat(ui_gw, fresh)


def test_an_internal_user_sees_only_their_own_keys_and_no_admin_pages(ui_gw, browser_page, screenshot):
    page = browser_page
    api(ui_gw, "POST", "/user/new", json={"user_id": "carol", "user_role": "internal_user"})
    mine = api(ui_gw, "POST", "/key/generate", json={"user_id": "carol", "key_alias": "carol-key"})["key"]
    api(ui_gw, "POST", "/key/generate", json={"key_alias": "someone-else"})
    login(page, ui_gw, key=mine, where="keys")
    expect(page.get_by_role("row").filter(has_text="carol-key")).to_have_count(1)
    expect(page.get_by_text("someone-else")).to_have_count(0)
    nav = page.get_by_role("navigation", name="Pages", exact=True)
    expect(nav.get_by_role("link", name="Audit log")).to_have_count(0)
    expect(nav.get_by_role("link", name="Teams")).to_have_count(0)
    screenshot(page, "internal-user")
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in to the gateway")).to_be_visible()
    expect(page.get_by_text("You are logged out.")).to_be_visible()


@pytest.mark.parametrize("browser_page", ["phone"], indirect=True)
def test_keys_page_reads_on_a_phone(ui_gw, browser_page, screenshot):
    page = browser_page
    api(ui_gw, "POST", "/key/generate", json={"key_alias": "pocket", "max_budget": 2})
    login(page, ui_gw, where="keys")
    expect(page.get_by_role("navigation", name="Pages", exact=True)).to_be_hidden()  # behind the menu button
    page.get_by_role("button", name="Menu").click()
    expect(page.get_by_role("link", name="Keys")).to_be_visible()
    page.get_by_role("link", name="Keys").click()
    expect(page.get_by_text("pocket")).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone ({width}px)"
    screenshot(page, "phone")


def test_a_page_that_loads_slowly_does_not_replace_the_one_the_user_moved_to(ui_gw, browser_page, browser_requests):
    page = browser_page
    held: list = []
    page.route("**/static/pages/keys.js", lambda route: held.append(route))  # held back until released below
    page.goto(ui_gw.url + "/ui/")
    page.get_by_label("Key").fill("sk-1234")
    page.get_by_role("button", name="Log in", exact=True).click()  # lands on the keys page...
    page.get_by_role("button", name="Log out").wait_for()
    for _ in range(200):  # the held request reaches this thread when Playwright next dispatches events
        if held:
            break
        page.wait_for_timeout(50)
    assert len(held) == 1, browser_requests  # the keys page is loading...
    page.goto(ui_gw.url + "/ui/#/models")  # ...but the user moves on before it has loaded
    page.locator('[data-page="models"].page').wait_for()
    held[0].continue_()
    page.wait_for_timeout(1000)
    expect(page.locator('[data-page="keys"].page')).to_have_count(0)
    expect(page.locator('[data-page="models"].page')).to_have_count(1)
