"""The admin UI's Request logs page in Chromium, and what it added to `GET /spend/logs/ui`.

Real calls through a gateway with a banned_keywords guardrail on every call (plugins/
banned-keywords): successes with tags, calls the guard refused, a call of a blocked end user. The
API: the new filters (`blocked_by`, `tag`, `model_group`, `key_alias`, `status_filter=blocked`) and
keyset paging (`cursor`), both ways of paging agreeing; bad values are 400s that name them; a
non-admin key sees its own calls only. The page: rows newest first, each filter (the URL hash
holds them, so a view can be linked), a row's details opened from the keyboard (verdicts and
timings), paging, an internal user's view, and a phone. Screenshots land in test-artifacts/.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import openai
import pytest
from playwright.sync_api import expect

from tests.ui_kit import ADMIN, MASTER_KEY, api, chat, ui_config, wait_for

GUARD = "no-secrets-talk"


def guarded_config(upstream_url: str) -> dict[str, Any]:
    config = ui_config(upstream_url)
    config["guardrails"] = [{"guardrail_name": GUARD, "litellm_params": {
        "guardrail": "banned_keywords", "mode": "pre_call", "default_on": True,
        "banned_keywords_list": ["password", "launch code"]}}]
    return config


def window() -> dict[str, str]:
    now = datetime.now(timezone.utc)
    return {"start_date": (now - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S"),
            "end_date": (now + timedelta(minutes=5)).strftime("%Y-%m-%d %H:%M:%S")}


def logs(gw: Any, headers: dict[str, str] = ADMIN, status: int = 200, **params: Any) -> Any:
    r = httpx.get(gw.url + "/spend/logs/ui", params={**window(), **params}, headers=headers, timeout=10)
    assert r.status_code == status, r.text
    return r.json()


def tagged(gw: Any, key: str, content: str, *tags: str, **kw: Any) -> Any:
    return chat(gw, key, content, extra_body={"metadata": {"tags": list(tags)}}, **kw)


def refused(gw: Any, key: str, content: str, *tags: str) -> None:
    with pytest.raises(openai.BadRequestError) as error:
        tagged(gw, key, content, *tags)
    assert "Keyword banned" in str(error.value)


class World:
    """Six calls, oldest first: admin ok [alpha], carol ok [beta], carol refused [alpha], admin
    refused [gamma], admin ok as end user cust-1 [alpha, beta], a blocked end user's call."""

    def __init__(self, gw: Any) -> None:
        self.gw = gw
        api(gw, "POST", "/user/new", json={"user_id": "carol", "user_role": "internal_user"})
        self.carol = api(gw, "POST", "/key/generate", json={"user_id": "carol", "key_alias": "carol-key"})["key"]
        tagged(gw, MASTER_KEY, "hello", "alpha")
        tagged(gw, self.carol, "hi there", "beta")
        refused(gw, self.carol, "what is the password?", "alpha")
        refused(gw, MASTER_KEY, "tell me the launch code", "gamma")
        tagged(gw, MASTER_KEY, "morning", "alpha", "beta", user="cust-1")
        api(gw, "POST", "/customer/block", json={"user_ids": ["cust-bad"]})
        with pytest.raises(openai.APIStatusError):
            tagged(gw, MASTER_KEY, "let me in", "alpha", user="cust-bad")
        self.rows = wait_for(lambda: got if len(got := logs(gw)["data"]) == 6 else None, "six spend rows")


@pytest.fixture
def world(gateway_server, fake_upstream) -> World:
    return World(gateway_server(guarded_config(fake_upstream.url)))


def ids(reply: Any) -> list[str]:
    return [r["request_id"] for r in reply["data"]]


# -- the API ---------------------------------------------------------------------------------------
def test_new_filters_select_the_calls_they_name(world):
    w, gw = world, world.gw
    everything = ids({"data": w.rows})  # newest first
    assert everything == ids(logs(gw, cursor="first")) and len(set(everything)) == 6
    by_time = [r["startTime"] for r in w.rows]
    assert by_time == sorted(by_time, reverse=True)
    assert ids(logs(gw, tag="alpha")) == [everything[0], everything[1], everything[3], everything[5]]
    assert logs(gw, tag="alpha")["total"] == 4
    assert ids(logs(gw, tag="beta", cursor="first")) == [everything[1], everything[4]]
    assert logs(gw, tag="nope")["data"] == [] and logs(gw, tag="nope", cursor="first")["data"] == []
    guarded = logs(gw, blocked_by=GUARD)
    assert guarded["total"] == 2 and {r["status"] for r in guarded["data"]} == {"blocked"}
    assert {r["blocked_by"] for r in guarded["data"]} == {GUARD} and {r["http_status"] for r in guarded["data"]} == {400}
    verdicts = guarded["data"][0]["metadata"]["guardrails"]
    assert verdicts[0]["name"] == GUARD and verdicts[0]["verdict"] == "block" and verdicts[0]["latency_ms"] >= 0
    end_user_block = w.rows[0]
    assert end_user_block["status"] == "blocked" and end_user_block["blocked_by"] and end_user_block["end_user"] == "cust-bad"
    assert ids(logs(gw, blocked_by=end_user_block["blocked_by"])) == [everything[0]]
    assert logs(gw, status_filter="blocked")["total"] == 3
    assert logs(gw, status_filter="failure")["total"] == 3  # LiteLLM's: anything but success
    assert ids(logs(gw, status_filter="success")) == [everything[1], everything[4], everything[5]]
    assert ids(logs(gw, tag="alpha", status_filter="success", cursor="first")) == [everything[1], everything[5]]
    assert ids(logs(gw, key_alias="carol-key")) == [everything[3], everything[4]]
    assert logs(gw, key_alias="no-such-alias")["data"] == []
    assert logs(gw, model_group="gpt-test")["total"] == 6 and logs(gw, model_group="other")["total"] == 0


def test_cursor_pages_walk_every_row_once_in_the_order_of_the_numbered_pages(world):
    gw = world.gw
    for extra in ({}, {"tag": "alpha"}, {"tag": "alpha", "status_filter": "success"}, {"status_filter": "blocked"}):
        numbered = [i for page in (1, 2, 3, 4, 5, 6) for i in ids(logs(gw, page=page, page_size=1, **extra))]
        walked, cursor = [], "first"
        while cursor:
            reply = logs(gw, cursor=cursor, page_size=1, **extra)
            assert (reply["total"], reply["page"], reply["total_pages"]) == (None, None, None)
            walked += ids(reply)
            cursor = reply["next_cursor"]
        assert walked == numbered and walked, extra


def test_a_key_sees_its_own_calls_only_whatever_it_filters_on(world, session_client):
    w, gw = world, world.gw
    carol = {"Authorization": f"Bearer {w.carol}"}
    assert ids(logs(gw, headers=carol)) == [w.rows[3]["request_id"], w.rows[4]["request_id"]]
    assert ids(logs(gw, headers=carol, tag="alpha", cursor="first")) == [w.rows[3]["request_id"]]
    assert logs(gw, headers=carol, tag="gamma")["data"] == []  # the admin's refused call
    assert logs(gw, headers=carol, key_alias="carol-key", blocked_by=GUARD)["total"] == 1
    client, _ = session_client(gw, key=w.carol)  # the UI's session, as the page calls it
    r = client.get("/spend/logs/ui", params={**window(), "cursor": "first", "page_size": 25})
    assert r.status_code == 200, r.text
    assert [row["request_id"] for row in r.json()["data"]] == ids(logs(gw, headers=carol))
    assert w.carol not in r.text


@pytest.mark.parametrize(("params", "param", "says"), [
    ({"status_filter": "meh"}, "status_filter", "status_filter must be one of: success, failure, blocked; got 'meh'"),
    ({"cursor": "not-a-cursor"}, "cursor", "cursor must be `first` or the next_cursor of the page before"),
    ({"tag": "x" * 256}, "tag", "Invalid value for tag: must be at most 255 characters"),
    ({"blocked_by": "y" * 300}, "blocked_by", "Invalid value for blocked_by: must be at most 255 characters"),
    ({"page": "x", "cursor": "first"}, "page", "page and page_size must be whole numbers"),
])
def test_bad_values_are_400s_that_name_them(ui_gw, params, param, says):
    error = logs(ui_gw, status=400, **params)["error"]
    assert (error["type"], error["param"], error["message"]) == ("bad_request_error", param, says)


# -- the page --------------------------------------------------------------------------------------
def open_logs(page: Any, gw: Any, key: str = MASTER_KEY, query: str = "") -> Any:
    page.goto(f"{gw.url}/ui/#/logs{query}")
    page.get_by_label("Key", exact=True).fill(key)
    page.get_by_role("button", name="Log in", exact=True).click()
    page.get_by_role("button", name="Log out").wait_for()
    page.locator('[data-page="logs"].page').wait_for()
    return page.get_by_role("table", name="Calls, newest first").locator("tbody > tr")


def hash_query(page: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).fragment.partition("?")[2])


def test_the_page_filters_opens_a_row_and_links_a_view(world, browser_page, screenshot):
    w, gw, page = world, world.gw, browser_page
    rows = open_logs(page, gw)
    expect(rows).to_have_count(6)
    expect(rows.nth(0)).to_contain_text("blocked")
    expect(rows.nth(2)).to_contain_text(f"blocked · {GUARD}")
    expect(rows.nth(2)).to_contain_text("gamma")
    expect(rows.nth(3)).to_contain_text("carol-key")
    assert "null" not in page.locator("main").inner_text().split()
    screenshot(page, "all")

    page.get_by_label("Tag").fill("alpha")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(4)
    assert hash_query(page)["tag"] == ["alpha"]
    page.get_by_label("Status").select_option("blocked")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(2)
    linked = page.url

    for label, value, count in (("Key", "carol-key", 2), ("User id", "carol", 2), ("End user", "cust-1", 1),
                                ("Model", "gpt-test", 6), ("Blocked by", GUARD, 2),
                                ("Request id", w.rows[4]["request_id"], 1), ("Team id", "no-team", 0)):
        page.get_by_role("button", name="Clear").click()
        expect(rows).to_have_count(6)
        page.get_by_label(label, exact=True).fill(value)
        page.get_by_role("button", name="Filter").click()
        expect(rows).to_have_count(count if count else 1)
        if not count:
            expect(rows.first).to_contain_text("No call matches.")
        assert hash_query(page)[{"Key": "key", "User id": "user_id", "End user": "end_user", "Model": "model_group",
                                 "Blocked by": "blocked_by", "Request id": "request_id",
                                 "Team id": "team_id"}[label]] == [value]

    page.goto(linked)  # the linked view: the filters come back from the hash
    page.locator('[data-page="logs"].page').wait_for()
    expect(rows).to_have_count(2)
    expect(page.get_by_label("Tag")).to_have_value("alpha")
    expect(page.get_by_label("Status")).to_have_value("blocked")

    details = page.get_by_role("button", name=f"Details of {w.rows[3]['request_id']}")
    details.focus()
    page.keyboard.press("Enter")  # from the keyboard
    expect(details).to_have_attribute("aria-expanded", "true")
    opened = page.locator("tr.log-details-row")
    expect(opened).to_contain_text(w.rows[3]["request_id"])
    expect(opened).to_contain_text("Keyword banned")  # the refusal
    expect(opened).to_contain_text("carol-key")
    expect(opened).to_contain_text("Duration")
    verdicts = opened.get_by_role("table", name="Guardrail verdicts")
    expect(verdicts).to_contain_text(GUARD)
    expect(verdicts).to_contain_text("pre_call")
    expect(verdicts).to_contain_text("block")
    expect(verdicts).to_contain_text(" ms")
    assert w.carol not in page.content()
    screenshot(page, "details")
    page.keyboard.press("Enter")
    expect(opened).to_have_count(0)


def test_pages_of_25_with_previous_and_next(ui_gw, browser_page):
    for n in range(27):
        chat(ui_gw, MASTER_KEY, f"call {n}")
    wait_for(lambda: logs(ui_gw)["total"] == 27, "27 spend rows")
    page = browser_page
    rows = open_logs(page, ui_gw)
    expect(rows).to_have_count(25)
    first = rows.nth(0).inner_text()
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_text("Page 2")).to_be_visible()
    expect(rows).to_have_count(2)
    expect(page.get_by_role("button", name="Next")).to_be_disabled()
    page.get_by_role("button", name="Previous").click()
    expect(rows).to_have_count(25)
    assert rows.nth(0).inner_text() == first


def test_an_internal_user_sees_only_their_own_calls(world, browser_page, screenshot):
    w, page = world, browser_page
    rows = open_logs(page, w.gw, key=w.carol)
    expect(page.get_by_text("Calls made with your key only.")).to_be_visible()
    expect(rows).to_have_count(2)
    expect(page.get_by_text("launch code")).to_have_count(0)
    expect(page.get_by_label("Key", exact=True)).to_have_count(0)
    assert "null" not in page.locator("main").inner_text().split()
    page.get_by_label("Tag").fill("gamma")  # the admin's tag: none of carol's calls
    page.get_by_role("button", name="Filter").click()
    expect(rows.first).to_contain_text("No call matches.")
    screenshot(page, "internal-user")


@pytest.mark.parametrize("browser_page", ["phone"], indirect=True)
def test_the_page_reads_on_a_phone(world, browser_page, screenshot):
    w, page = world, browser_page
    rows = open_logs(page, w.gw)
    expect(rows).to_have_count(6)
    page.get_by_role("button", name=f"Details of {w.rows[2]['request_id']}").click()
    expect(page.locator("tr.log-details-row").get_by_role("table", name="Guardrail verdicts")).to_contain_text(GUARD)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone ({width}px)"
    screenshot(page, "phone")
