"""LiteLLM's spend reports (`/global/spend/*`, `/spend/logs/ui`) read back after real calls: a real
gateway, the official openai SDK, a fake upstream whose usage is known. Admins see everything; a
non-admin key only its own calls, whatever it asks for. Runs on SQLite, and on PostgreSQL when
`GATEWAY_TEST_DATABASE_URL` is set."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.db

ADMIN = {"Authorization": "Bearer sk-1234"}
IN_PRICE, OUT_PRICE = 0.0015, 0.002
TIGHT = 1e-9


def sha(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def bearer(raw: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw}"}


def call(gw: Any, path: str, headers: dict[str, str] = ADMIN, status: int = 200, **params: Any) -> Any:
    r = httpx.get(gw.url + path, params=params, headers=headers, timeout=10)
    assert r.status_code == status, r.text
    return r.json()


def post(gw: Any, path: str, body: dict[str, Any]) -> Any:
    r = httpx.post(gw.url + path, json=body, headers=ADMIN, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def cost(reply: Any) -> float:
    return reply.usage.prompt_tokens * IN_PRICE + reply.usage.completion_tokens * OUT_PRICE


@dataclass
class World:
    gw: Any
    k1: str  # in team "Prod Team", user u1
    k2: str  # no team
    team_id: str
    spend: dict[str, float]  # by key hash
    replies: list[Any]
    day: str


@pytest.fixture
def world(gateway_server, fake_upstream) -> World:
    gw = gateway_server({
        "model_list": [{"model_name": "gpt-test", "litellm_params": {
            "model": "openai/upstream-model", "api_base": fake_upstream.url, "api_key": "sk-upstream",
            "input_cost_per_token": IN_PRICE, "output_cost_per_token": OUT_PRICE}}],
        "router_settings": {"num_retries": 0},
        "general_settings": {"spend_flush_interval_s": 0.05}})
    team = post(gw, "/team/new", {"team_alias": "Prod Team"})["team_id"]
    k1 = post(gw, "/key/generate", {"team_id": team, "user_id": "u1", "key_alias": "one"})["key"]
    k2 = post(gw, "/key/generate", {"key_alias": "two"})["key"]
    client = lambda key: gw.client(api_key=key).chat.completions  # noqa: E731
    replies = [
        client(k1).create(model="gpt-test", messages=[{"role": "user", "content": "one two three"}], user="cust-1",
                          extra_body={"metadata": {"tags": ["alpha"]}}),
        client(k1).create(model="gpt-test", messages=[{"role": "user", "content": "four five"}], user="cust-1",
                          extra_body={"metadata": {"tags": ["alpha", "beta"]}}),
        client(k2).create(model="gpt-test", messages=[{"role": "user", "content": " ".join(["w"] * 30)}],
                          user="cust-2", extra_body={"metadata": {"tags": ["beta"]}}),
        client(None).create(model="gpt-test", messages=[{"role": "user", "content": "master"}]),
    ]
    writer = gw.gateway.spend_writer
    deadline = time.monotonic() + 15
    while writer.written < 4 or writer.queue:
        assert time.monotonic() < deadline, "the spend rows were never written"
        time.sleep(0.02)
    spend = {sha(k1): cost(replies[0]) + cost(replies[1]), sha(k2): cost(replies[2]), sha("sk-1234"): cost(replies[3])}
    day = datetime.now(timezone.utc).date().isoformat()
    return World(gw, k1, k2, team, spend, replies, day)


def approx(x: float) -> Any:
    return pytest.approx(x, rel=TIGHT)


def test_global_spend_logs_per_day_and_per_key(world):
    w = world
    assert call(w.gw, "/global/spend/logs") == [{"date": w.day, "spend": approx(sum(w.spend.values()))}]
    assert call(w.gw, "/global/spend/logs", api_key=w.k1) == [
        {"date": w.day, "spend": approx(w.spend[sha(w.k1)]), "api_key": sha(w.k1)}]
    # A non-admin key sees its own days, whichever key it names.
    assert call(w.gw, "/global/spend/logs", headers=bearer(w.k2), api_key=w.k1) == [
        {"date": w.day, "spend": approx(w.spend[sha(w.k2)]), "api_key": sha(w.k2)}]
    old = (datetime.now(timezone.utc).date() - timedelta(days=40)).isoformat()
    assert call(w.gw, "/global/spend/logs", start_date=old, end_date=old) == []
    error = call(w.gw, "/global/spend/logs", status=400, start_date=w.day, end_date=old)["error"]
    assert error["param"] == "start_date"


def test_global_spend_keys_top_n(world):
    w = world
    top = call(w.gw, "/global/spend/keys")
    ranked = sorted(w.spend, key=lambda k: -w.spend[k])
    assert [k["api_key"] for k in top] == ranked
    by_key = {k["api_key"]: k for k in top}
    assert by_key[sha(w.k1)]["key_alias"] == "one" and by_key[sha(w.k1)]["total_spend"] == approx(w.spend[sha(w.k1)])
    assert by_key[sha(w.k1)]["key_name"].startswith("sk-")
    assert [k["api_key"] for k in call(w.gw, "/global/spend/keys", limit=1)] == ranked[:1]
    assert [k["api_key"] for k in call(w.gw, "/global/spend/keys", headers=bearer(w.k1))] == [sha(w.k1)]
    assert call(w.gw, "/global/spend/keys", status=400, limit="many")["error"]["param"] == "limit"


def test_global_spend_teams(world):
    w = world
    body = call(w.gw, "/global/spend/teams")
    unassigned = w.spend[sha(w.k2)] + w.spend[sha("sk-1234")]
    assert body["daily_spend"] == [{"date": w.day, "Prod Team": approx(w.spend[sha(w.k1)]),
                                    "Unassigned": approx(unassigned)}]
    assert body["teams"] == ["Prod Team", "Unassigned"]
    assert body["total_spend_per_team"] == sorted(
        [{"team_id": "Prod Team", "total_spend": approx(w.spend[sha(w.k1)])},
         {"team_id": "Unassigned", "total_spend": approx(unassigned)}], key=lambda t: -t["total_spend"].expected)
    own = call(w.gw, "/global/spend/teams", headers=bearer(w.k1))
    assert own["teams"] == ["Prod Team"]


def test_global_spend_tags(world):
    w = world
    assert call(w.gw, "/global/spend/tags", status=400)["error"]["message"] == "Please provide start_date and end_date"
    body = call(w.gw, "/global/spend/tags", start_date=w.day, end_date=w.day)
    beta = cost(w.replies[1]) + cost(w.replies[2])
    alpha = w.spend[sha(w.k1)]
    assert body == {"spend_per_tag": sorted([{"name": "alpha", "spend": approx(alpha), "log_count": 2},
                                             {"name": "beta", "spend": approx(beta), "log_count": 2}],
                                            key=lambda t: -t["spend"].expected)}
    only = call(w.gw, "/global/spend/tags", start_date=w.day, end_date=w.day, tags="beta")
    assert [t["name"] for t in only["spend_per_tag"]] == ["beta"]
    mine = call(w.gw, "/global/spend/tags", headers=bearer(w.k2), start_date=w.day, end_date=w.day)
    assert mine == {"spend_per_tag": [{"name": "beta", "spend": approx(cost(w.replies[2])), "log_count": 1}]}


def test_spend_tags_for_a_key_come_from_its_roll_up(world):
    w = world
    assert call(w.gw, "/spend/tags", headers=bearer(w.k1)) == [
        {"individual_request_tag": "alpha", "log_count": 2, "total_spend": approx(w.spend[sha(w.k1)])},
        {"individual_request_tag": "beta", "log_count": 1, "total_spend": approx(cost(w.replies[1]))}]
    assert call(w.gw, "/spend/tags", headers=bearer(w.k1), start_date=w.day, end_date=w.day) == \
        call(w.gw, "/spend/tags", headers=bearer(w.k1))
    tomorrow = (datetime.now(timezone.utc).date() + timedelta(days=1)).isoformat()
    assert call(w.gw, "/spend/tags", headers=bearer(w.k1), start_date=tomorrow) == []
    assert call(w.gw, "/spend/tags", headers=bearer(w.k1), status=400, start_date=tomorrow, end_date=w.day)


def test_global_spend_report_group_by(world):
    w = world
    missing = call(w.gw, "/global/spend/report", status=400)["error"]["message"]
    assert missing == "Please provide start_date and end_date"
    dates = {"start_date": w.day, "end_date": w.day}
    assert call(w.gw, "/global/spend/report", status=400, group_by="planet", **dates)["error"]["param"] == "group_by"
    [teams] = call(w.gw, "/global/spend/report", **dates)  # group_by=team is the default
    assert teams["group_by_day"] == f"{w.day}T00:00:00+00:00"
    by_team = {t["team_name"]: t for t in teams["teams"]}
    assert set(by_team) == {"Prod Team", "Unassigned Team"}
    assert by_team["Prod Team"]["total_spend"] == approx(w.spend[sha(w.k1)])
    assert by_team["Prod Team"]["metadata"] == [{"model": "upstream-model", "api_key": sha(w.k1),
                                                 "spend": approx(w.spend[sha(w.k1)]),
                                                 "total_tokens": sum(r.usage.total_tokens for r in w.replies[:2])}]
    [customers] = call(w.gw, "/global/spend/report", group_by="customer", **dates)
    by_customer = {c["customer"]: c["total_spend"] for c in customers["customers"]}
    assert by_customer == {"cust-1": approx(w.spend[sha(w.k1)]), "cust-2": approx(w.spend[sha(w.k2)]),
                           None: approx(w.spend[sha("sk-1234")])}
    [tags] = call(w.gw, "/global/spend/report", group_by="tag", **dates)
    assert {t["tag"]: t["log_count"] for t in tags["tags"]} == {"alpha": 2, "beta": 2}
    keys = call(w.gw, "/global/spend/report", group_by="api_key", **dates)
    assert [k["api_key"] for k in keys] == sorted(w.spend, key=lambda k: -w.spend[k])
    one = call(w.gw, "/global/spend/report", api_key=w.k1, **dates)
    assert one == [{"api_key": sha(w.k1), "total_cost": approx(w.spend[sha(w.k1)]),
                    "total_input_tokens": sum(r.usage.prompt_tokens for r in w.replies[:2]),
                    "total_output_tokens": sum(r.usage.completion_tokens for r in w.replies[:2]),
                    "model_details": [{"model": "upstream-model", "total_cost": approx(w.spend[sha(w.k1)]),
                                       "total_input_tokens": sum(r.usage.prompt_tokens for r in w.replies[:2]),
                                       "total_output_tokens": sum(r.usage.completion_tokens
                                                                  for r in w.replies[:2])}]}]
    assert [k["api_key"] for k in call(w.gw, "/global/spend/report", internal_user_id="u1", **dates)] == [sha(w.k1)]
    # A non-admin key's report covers its own calls only.
    [mine] = call(w.gw, "/global/spend/report", headers=bearer(w.k2), group_by="customer", **dates)
    assert [c["customer"] for c in mine["customers"]] == ["cust-2"]
    old = (datetime.now(timezone.utc).date() - timedelta(days=3)).isoformat()
    assert call(w.gw, "/global/spend/report", start_date=old, end_date=old) == []


def test_spend_logs_ui_pages_and_filters(world):
    w = world
    assert call(w.gw, "/spend/logs/ui", status=400)["error"]["message"] == "Start date and end date are required"
    now = datetime.now(timezone.utc)
    window = {"start_date": (now - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S"),
              "end_date": (now + timedelta(minutes=5)).strftime("%Y-%m-%d %H:%M:%S")}
    first = call(w.gw, "/spend/logs/ui", page_size=3, **window)
    assert (first["total"], first["page"], first["page_size"], first["total_pages"]) == (4, 1, 3, 2)
    second = call(w.gw, "/spend/logs/ui", page_size=3, page=2, **window)
    ids = [r["request_id"] for r in first["data"] + second["data"]]
    assert ids == [r.id for r in reversed(w.replies)]  # newest first, no row twice
    assert call(w.gw, "/spend/logs/ui", page=3, page_size=3, **window)["data"] == []
    team = call(w.gw, "/spend/logs/ui", team_id=w.team_id, **window)
    assert [r["request_id"] for r in team["data"]] == [w.replies[1].id, w.replies[0].id]
    rich = call(w.gw, "/spend/logs/ui", min_spend=w.spend[sha(w.k2)], **window)
    assert [r["request_id"] for r in rich["data"]] == [w.replies[2].id]
    assert call(w.gw, "/spend/logs/ui", status_filter="failure", **window)["total"] == 0
    assert call(w.gw, "/spend/logs/ui", end_user="cust-1", user_id="u1", **window)["total"] == 2
    assert call(w.gw, "/spend/logs/ui", api_key=sha(w.k2), **window)["total"] == 1
    mine = call(w.gw, "/spend/logs/ui", headers=bearer(w.k2), api_key=w.k1, **window)
    assert mine["total"] == 0  # asked for another key's rows: none of its own match
    mine = call(w.gw, "/spend/logs/ui", headers=bearer(w.k2), **window)
    assert [r["request_id"] for r in mine["data"]] == [w.replies[2].id] and "sk-upstream" not in str(mine)
    assert call(w.gw, "/spend/logs/ui", start_date=w.day, end_date=w.day)["total"] == 4  # days: whole days
    for bad in ({"start_date": "yesterday", "end_date": w.day}, {**window, "min_spend": "lots"},
                {**window, "status_filter": "meh"}, {**window, "page": "x"},
                {"start_date": window["end_date"], "end_date": window["start_date"]}):
        assert call(w.gw, "/spend/logs/ui", status=400, **bad)["error"]["type"] == "bad_request_error"
