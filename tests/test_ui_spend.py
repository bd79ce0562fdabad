"""The admin UI's Spend page in Chromium, after real calls through the gateway: the totals, chart and
tables say what `GET /spend/daily` and the other spend routes say; top spenders in order; grouping by
team; the date range (and its errors); Refresh after new calls; both CSV downloads; an internal
user sees only their own key's spend, on the page and on the API it calls; a phone reads it
without scrolling sideways. Screenshots land in test-artifacts/."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.test_spend_daily import daily, populate, spend_config, wait_written, words
from tests.test_ui_ops import assert_no_stray_null, open_as
from tests.ui_kit import api, chat, money


def today() -> str:
    return datetime.now(timezone.utc).date().isoformat()


def top_rows(page: Any) -> Any:
    return page.get_by_role("table", name=re.compile("^Top spenders")).get_by_role("row")


def downloaded(page: Any, button: str) -> list[list[str]]:
    with page.expect_download() as info:
        page.get_by_role("button", name=button).click()
    with open(info.value.path(), encoding="utf-8") as f:
        return list(csv.reader(io.StringIO(f.read())))


def test_the_spend_page_shows_what_the_spend_api_says(gateway_server, fake_upstream, browser_page, screenshot):
    gw = gateway_server(spend_config(fake_upstream.url))
    populate(gw)
    report = daily(gw)
    total = sum(r["spend"] for r in api(gw, "GET", "/spend/logs"))
    assert report["total_spend"] == pytest.approx(total)
    page = browser_page
    open_as(page, gw, "spend")

    expect(page.get_by_test_id("total-spend")).to_contain_text(money(report["total_spend"]))
    expect(page.get_by_test_id("total-calls")).to_contain_text("5")
    expect(page.get_by_test_id("top-group")).to_contain_text("big-spender")
    rows = top_rows(page)
    expect(rows).to_have_count(4)  # header + three keys, highest spend first
    for i, group in enumerate(report["groups"], start=1):
        expect(rows.nth(i)).to_contain_text(group["name"])
        expect(rows.nth(i)).to_contain_text(money(group["spend"]))
    expect(rows.nth(1)).to_contain_text("big-spender")
    expect(rows.nth(3)).to_contain_text("carol-key")

    chart = page.get_by_role("img", name=f"Spend per day by key, {report['start_date']} to {report['end_date']}")
    expect(chart).to_be_visible()
    assert "The table below the chart gives every number" in chart.locator("desc").text_content()
    expect(chart.locator("g.day")).to_have_count(30)
    last = chart.locator(f'g.day[data-date="{today()}"] > title')
    assert last.text_content().startswith(f"{today()}: {money(report['days'][-1]['spend'])}, 5 calls")
    assert f"big-spender {money(report['groups'][0]['spend'])}" in last.text_content()
    expect(page.get_by_role("list", name="Chart legend").get_by_role("listitem")).to_have_count(3)

    page.get_by_text("Spend per day as a table").click()
    days = page.get_by_role("table", name="Spend per day").get_by_role("row")
    expect(days).to_have_count(31)
    expect(days.nth(1)).to_contain_text(today())
    expect(days.nth(1)).to_contain_text(money(report["days"][-1]["spend"]))
    assert_no_stray_null(page)
    screenshot(page, "spend-by-key")

    rows_csv = downloaded(page, "Download daily CSV")
    assert rows_csv[0] == ["date", "spend", "calls", "big-spender", "mid-spender", "carol-key"]
    assert len(rows_csv) == 31 and rows_csv[-1][0] == today()
    assert float(rows_csv[-1][1]) == pytest.approx(total) and rows_csv[-1][2] == "5"
    assert float(rows_csv[-1][3]) == pytest.approx(report["groups"][0]["spend"])
    top_csv = downloaded(page, "Download top spenders CSV")
    assert top_csv[0] == ["key", "id", "spend", "calls"]
    assert [(r[0], r[1], pytest.approx(float(r[2]))) for r in top_csv[1:]] == [
        (g["name"], g["id"], g["spend"]) for g in report["groups"]]

    page.get_by_label("Group by").select_option("team")
    page.get_by_role("button", name="Show").click()
    teams = daily(gw, group_by="team")
    expect(top_rows(page).nth(1)).to_contain_text("Alpha")
    expect(top_rows(page).nth(1)).to_contain_text(money(teams["groups"][0]["spend"]))
    expect(top_rows(page).nth(2)).to_contain_text("Beta")
    expect(top_rows(page).nth(3)).to_contain_text("(no team)")
    expect(page.get_by_role("img", name=re.compile("^Spend per day by team"))).to_be_visible()
    screenshot(page, "spend-by-team")

    # The range: a day with no call, then a start after the end (refused in the page, nothing asked).
    yesterday = (datetime.now(timezone.utc).date() - timedelta(days=1)).isoformat()
    page.get_by_label("From", exact=True).fill(yesterday)
    page.get_by_label("To", exact=True).fill(yesterday)
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_test_id("total-spend")).to_contain_text("$0.00")
    expect(page.get_by_text("No spend in this range.")).to_be_visible()
    expect(page.get_by_role("img", name=f"Spend per day by team, {yesterday} to {yesterday}").locator("g.day")).to_have_count(1)
    page.get_by_label("From", exact=True).fill(today())
    page.get_by_role("button", name="Show").click()
    alert = page.get_by_test_id("range-error")
    expect(alert).to_have_text("The start date must not be after the end date.")
    expect(page.get_by_label("From", exact=True)).to_have_attribute("aria-invalid", "true")
    page.get_by_label("To", exact=True).fill("")
    page.get_by_role("button", name="Show").click()
    expect(alert).to_have_text("Enter both a start and an end date.")
    page.get_by_label("To", exact=True).fill(today())
    page.get_by_role("button", name="Show").click()
    expect(alert).to_be_hidden()
    expect(page.get_by_label("From", exact=True)).not_to_have_attribute("aria-invalid", "true")
    expect(page.get_by_test_id("total-spend")).to_contain_text(money(teams["total_spend"]))

    # New calls show on Refresh.
    chat(gw, "sk-1234", words(100))
    wait_written(gw, 6)
    page.get_by_role("button", name="Refresh").click()
    fresh = daily(gw, group_by="team", start_date=today(), end_date=today())
    assert fresh["total_spend"] > teams["total_spend"]
    expect(page.get_by_test_id("total-spend")).to_contain_text(money(fresh["total_spend"]))
    expect(page.get_by_test_id("total-calls")).to_contain_text("6")
    expect(top_rows(page).nth(1)).to_contain_text("(no team)")  # the master key's call: no team, and the most


def test_an_internal_user_sees_only_their_own_spend(gateway_server, fake_upstream, browser_page, browser_requests,
                                                    session_client, screenshot):
    gw = gateway_server(spend_config(fake_upstream.url))
    keys = populate(gw)
    own = sum(r["spend"] for r in api(gw, "GET", "/spend/logs") if r["user"] == "carol")
    page = browser_page
    open_as(page, gw, "spend", keys["carol"])
    expect(page.get_by_text("The spend of your own key only.")).to_be_visible()
    expect(page.get_by_test_id("total-spend")).to_contain_text(money(own))
    expect(page.get_by_test_id("total-calls")).to_contain_text("2")
    rows = top_rows(page)
    expect(rows).to_have_count(2)
    expect(rows.nth(1)).to_contain_text("carol-key")
    text = page.locator("main").inner_text()
    assert "big-spender" not in text and "mid-spender" not in text
    page.get_by_label("Group by").select_option("model")
    page.get_by_label("To", exact=True).press("Enter")  # the keyboard's way: Enter in a field shows
    expect(rows).to_have_count(3)  # gpt-test and gpt-cheap, carol's calls only
    assert_no_stray_null(page)
    screenshot(page, "internal-user")

    asked = [u for u in browser_requests if "/spend/daily" in u]
    assert asked, browser_requests
    client, _ = session_client(gw, key=keys["carol"])  # what the page asked, with the user's session
    for url in asked:
        r = client.get(url.split(gw.url, 1)[1])
        assert r.status_code == 200, r.text
        assert r.json()["total_spend"] == pytest.approx(own)
        assert {g["name"] for g in r.json()["groups"]} <= {"carol-key", "upstream-model", "cheap-model", "gpt-test", "gpt-cheap"}


@pytest.mark.parametrize("browser_page", ["phone"], indirect=True)
def test_the_spend_page_reads_on_a_phone(gateway_server, fake_upstream, browser_page, screenshot):
    gw = gateway_server(spend_config(fake_upstream.url))
    populate(gw)
    page = browser_page
    open_as(page, gw, "spend")
    expect(page.get_by_test_id("spend-chart")).to_be_visible()
    expect(top_rows(page).nth(1)).to_contain_text("big-spender")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the spend page scrolls sideways on a phone ({width}px)"
    box = page.get_by_test_id("spend-chart").bounding_box()
    assert box and box["width"] <= 390 and box["height"] > 100
    screenshot(page, "phone-spend")
