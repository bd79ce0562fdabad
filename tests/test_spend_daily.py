"""`GET /spend/daily`, the Spend page's API: spend per day by key, team, user, tag or model, from the
daily roll-ups, checked against the other spend routes after real calls; its errors; a non-admin key
(and an internal user's UI session) sees only its own key; the date range, with older days written
into the roll-up as the writer would have written them (on an SQLite file of the test's own, so that
sqlite3 can write them: that test is not run again on PostgreSQL)."""

from __future__ import annotations

import sqlite3
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.ui_kit import ADMIN, api, chat, ui_config

PRICE_IN, PRICE_OUT = 1e-03, 2e-03  # dollars and cents, so that amounts read well


def spend_config(upstream_url: str) -> dict[str, Any]:
    config = ui_config(upstream_url)
    config["model_list"][0]["litellm_params"].update(input_cost_per_token=PRICE_IN, output_cost_per_token=PRICE_OUT)
    config["model_list"].append({"model_name": "gpt-cheap", "litellm_params": {
        "model": "openai/cheap-model", "api_base": upstream_url, "api_key": "sk-upstream",
        "input_cost_per_token": PRICE_IN / 10, "output_cost_per_token": PRICE_OUT / 10}})
    return config


def daily(gw: Any, headers: dict[str, str] = ADMIN, status: int = 200, **params: Any) -> Any:
    r = httpx.get(gw.url + "/spend/daily", params=params, headers=headers, timeout=10)
    assert r.status_code == status, r.text
    return r.json()


def wait_written(gw: Any, calls: int, timeout: float = 15) -> None:
    """Until the spend writer has stored `calls` rows (it writes in the background)."""
    deadline = time.monotonic() + timeout
    while len(api(gw, "GET", "/spend/logs")) < calls:
        assert time.monotonic() < deadline, "timed out waiting for the spend writer"
        time.sleep(0.05)


def words(n: int) -> str:
    return " ".join(["word"] * n)


def populate(gw: Any) -> dict[str, str]:
    """Two teams, an internal user, tagged and untagged calls of different sizes. Returns the keys."""
    api(gw, "POST", "/team/new", json={"team_id": "team-a", "team_alias": "Alpha"})
    api(gw, "POST", "/team/new", json={"team_id": "team-b", "team_alias": "Beta"})
    api(gw, "POST", "/user/new", json={"user_id": "carol", "user_role": "internal_user"})
    keys = {
        "big": api(gw, "POST", "/key/generate", json={"key_alias": "big-spender", "team_id": "team-a"})["key"],
        "mid": api(gw, "POST", "/key/generate", json={"key_alias": "mid-spender", "team_id": "team-b",
                                                       "metadata": {"tags": ["app-web"]}})["key"],
        "carol": api(gw, "POST", "/key/generate", json={"key_alias": "carol-key", "user_id": "carol"})["key"],
    }
    chat(gw, keys["big"], words(40))
    chat(gw, keys["big"], words(30), extra_body={"metadata": {"tags": ["batch"]}})
    chat(gw, keys["mid"], words(20))
    chat(gw, keys["carol"], words(5))
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=keys["carol"], max_retries=0)
    client.chat.completions.create(model="gpt-cheap", messages=[{"role": "user", "content": words(8)}])
    wait_written(gw, 5)
    return keys


@pytest.mark.db
def test_groups_add_up_to_the_other_spend_routes(gateway_server, fake_upstream):
    gw = gateway_server(spend_config(fake_upstream.url))
    populate(gw)
    logs = api(gw, "GET", "/spend/logs")
    total = sum(r["spend"] for r in logs)
    today = datetime.now(timezone.utc).date().isoformat()

    by_key = daily(gw)
    assert by_key["group_by"] == "key" and by_key["end_date"] == today
    assert by_key["start_date"] == (date.fromisoformat(today) - timedelta(days=29)).isoformat()
    assert len(by_key["days"]) == 30 and by_key["days"][-1]["date"] == today
    assert by_key["total_spend"] == pytest.approx(total) and by_key["log_count"] == 5
    assert by_key["days"][-1]["spend"] == pytest.approx(total)
    assert sum(d["spend"] for d in by_key["days"][:-1]) == 0
    per_day = api(gw, "GET", "/global/spend/logs")
    assert per_day == [{"date": today, "spend": pytest.approx(total)}]
    keys = api(gw, "GET", "/global/spend/keys")
    assert [(g["id"], g["spend"]) for g in by_key["groups"]] == [(k["api_key"], pytest.approx(k["total_spend"])) for k in keys]
    assert [g["name"] for g in by_key["groups"]] == ["big-spender", "mid-spender", "carol-key"]
    assert by_key["total"] == 3 and by_key["total_pages"] == 1 and by_key["top"] == by_key["groups"]
    assert by_key["days"][-1]["groups"] == {g["id"]: pytest.approx(g["spend"]) for g in by_key["groups"]}
    assert by_key["days"][-1]["other"] == 0

    teams = daily(gw, group_by="team")
    spend_of = {t: sum(r["spend"] for r in logs if r["team_id"] == t) for t in ("team-a", "team-b")}
    assert [(g["id"], g["name"], g["spend"]) for g in teams["groups"]] == [
        ("team-a", "Alpha", pytest.approx(spend_of["team-a"])), ("team-b", "Beta", pytest.approx(spend_of["team-b"])),
        ("", "(no team)", pytest.approx(total - spend_of["team-a"] - spend_of["team-b"]))]
    assert teams["total_spend"] == pytest.approx(total)

    models = daily(gw, group_by="model")
    assert {g["id"] for g in models["groups"]} == {r["model"] for r in logs}
    assert sum(g["log_count"] for g in models["groups"]) == 5

    users = daily(gw, group_by="user", top=1)
    assert [g["name"] for g in users["groups"]] == ["(no user)", "carol"]
    assert [g["id"] for g in users["top"]] == [""]
    last = users["days"][-1]
    assert last["groups"] == {"": pytest.approx(users["groups"][0]["spend"])}
    assert last["other"] == pytest.approx(users["groups"][1]["spend"])  # the rest of the day: carol

    tags = daily(gw, group_by="tag")
    expected = {t["individual_request_tag"]: t["total_spend"] for t in api(gw, "GET", "/spend/tags")}
    assert {g["id"]: g["spend"] for g in tags["groups"]} == pytest.approx(expected)
    assert [g["id"] for g in tags["groups"]] == sorted(expected, key=lambda t: -expected[t])

    first = daily(gw, page_size=2)
    second = daily(gw, page_size=2, page=2)
    assert [g["name"] for g in first["groups"]] == ["big-spender", "mid-spender"]
    assert [g["name"] for g in second["groups"]] == ["carol-key"]
    assert (first["total_pages"], second["page"], len(second["top"])) == (2, 2, 3)
    beyond = daily(gw, page_size=2, page=5)
    assert (beyond["groups"], beyond["total"], beyond["total_pages"]) == ([], 3, 2)


@pytest.mark.db
def test_bad_requests_are_named(ui_gw):
    cases = [
        ({"start_date": "yesterday"}, "start_date must be a date like 2024-06-30; got 'yesterday'"),
        ({"end_date": "2026-13-01"}, "end_date must be a date like 2024-06-30"),
        ({"start_date": "2026-11-02", "end_date": "2026-11-01"}, "start_date must not be after end_date"),
        ({"start_date": "2024-01-01", "end_date": "2026-01-01"}, "The date range must be at most 366 days; got 732"),
        ({"group_by": "customer"}, "group_by must be one of: key, team, user, tag, model; got 'customer'"),
        ({"top": "0"}, "top must be from 1 to 10; got 0"),
        ({"top": "many"}, "top must be a whole number; got 'many'"),
        ({"page_size": "x"}, "page and page_size must be whole numbers"),
    ]
    for params, message in cases:
        body = daily(ui_gw, status=400, **params)
        assert message in body["error"]["message"], (params, body)
    assert httpx.get(ui_gw.url + "/spend/daily", timeout=10).status_code == 401
    leap = daily(ui_gw, start_date="2024-01-01", end_date="2024-12-31")  # 366 days: allowed
    assert len(leap["days"]) == 366 and leap["total"] == 0 and leap["groups"] == [] and leap["top"] == []


@pytest.mark.db
def test_a_non_admin_key_and_an_internal_users_session_see_only_their_own_key(gateway_server, fake_upstream,
                                                                            session_client):
    gw = gateway_server(spend_config(fake_upstream.url))
    keys = populate(gw)
    mine = [r for r in api(gw, "GET", "/spend/logs") if r["user"] == "carol"]
    own = sum(r["spend"] for r in mine)
    client, _ = session_client(gw, key=keys["carol"])
    for group_by in ("key", "team", "user", "model", "tag"):
        by_header = daily(gw, headers={"Authorization": f"Bearer {keys['carol']}"}, group_by=group_by)
        r = client.get("/spend/daily", params={"group_by": group_by})
        assert r.status_code == 200, r.text
        assert r.json() == by_header
        if group_by != "tag":
            assert by_header["total_spend"] == pytest.approx(own) and by_header["log_count"] == 2
    assert [g["name"] for g in daily(gw, headers={"Authorization": f"Bearer {keys['carol']}"})["groups"]] == ["carol-key"]
    assert daily(gw, headers={"Authorization": f"Bearer {keys['carol']}"}, group_by="tag")["groups"] == []
    assert [g["name"] for g in daily(gw, headers={"Authorization": f"Bearer {keys['mid']}"}, group_by="tag")["groups"]] == ["app-web"]


def test_the_date_range_reads_only_its_days(gateway_server, fake_upstream, tmp_path: Path):
    url = f"sqlite://{tmp_path / 'daily.sqlite3'}"
    gw = gateway_server(spend_config(fake_upstream.url), env={"DATABASE_URL": url})
    populate(gw)
    # Older days, as the spend writer would have rolled them up.
    con = sqlite3.connect(url.split("://", 1)[1])
    with con:
        con.executemany('INSERT INTO spend_daily (day, api_key, model, "user", log_count, total_spend) '
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        [("2026-01-10", "k-old", "gpt-test", "", 3, 1.5), ("2026-01-12", "k-old", "gpt-test", "", 1, 0.25),
                         ("2026-01-12", "k-other", "gpt-cheap", "dave", 2, 4.0), ("2026-02-01", "k-old", "gpt-test", "", 9, 9.0)])
    con.close()
    january = daily(gw, start_date="2026-01-10", end_date="2026-01-12")
    assert [(d["date"], d["spend"], d["log_count"]) for d in january["days"]] == [
        ("2026-01-10", 1.5, 3), ("2026-01-11", 0.0, 0), ("2026-01-12", 4.25, 3)]
    assert [(g["id"], g["spend"]) for g in january["groups"]] == [("k-other", 4.0), ("k-old", 1.75)]
    assert january["total_spend"] == 5.75
    one_day = daily(gw, start_date="2026-01-12", end_date="2026-01-12", group_by="user")
    assert [(g["name"], g["spend"]) for g in one_day["groups"]] == [("dave", 4.0), ("(no user)", 0.25)]
