"""Team members (issue 15) over HTTP against a real server: members given by e-mail (looked up or
created), `/team/member_update` with `max_budget_in_team`, in-team spend in `/user/info`
(`team_memberships`, LiteLLM's shape) and the in-team budget refusing calls (429, the budget
message, through the official `openai` SDK); membership rows following the team; `/team/update`
answering LiteLLM's `{"team_id", "data"}`; `/user/update` creating an unknown user; `/user/list`
filters and pagination.

Prices: 0.001 per prompt token, 0.002 per completion token; a "hi" call costs 0.007."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
import pytest

pytestmark = pytest.mark.db

ADMIN = {"Authorization": "Bearer sk-1234"}
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def gw(gateway_server, fake_upstream):
    return gateway_server({
        "model_list": [{"model_name": "m", "litellm_params": {
            "model": "openai/up", "api_base": fake_upstream.url, "api_key": "sk-upstream",
            "input_cost_per_token": 0.001, "output_cost_per_token": 0.002}}],
        "router_settings": {"num_retries": 0},
        "litellm_settings": {"callbacks": ["probe_audit"]},
    })


def post(gw: Any, path: str, body: Any, headers: dict[str, str] = ADMIN) -> httpx.Response:
    return httpx.post(gw.url + path, json=body, headers=headers, timeout=10)


def get(gw: Any, path: str, headers: dict[str, str] = ADMIN, **params: Any) -> httpx.Response:
    return httpx.get(gw.url + path, params=params, headers=headers, timeout=10)


def ok(resp: httpx.Response) -> Any:
    assert resp.status_code == 200, resp.text
    return resp.json()


def error(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert err["code"] == str(status)
    return err


def chat(gw: Any, key: str) -> Any:
    return gw.client(api_key=key).chat.completions.create(model="m", messages=HI, max_tokens=3)


def memberships(gw: Any, user_id: str) -> dict[str, dict[str, Any]]:
    return {m["team_id"]: m for m in ok(get(gw, "/user/info", user_id=user_id))["team_memberships"]}


def test_members_by_email_are_looked_up_or_created(gw):
    ok(post(gw, "/user/new", {"user_id": "ann", "user_email": "ann@example.com", "auto_create_key": False}))
    team = ok(post(gw, "/team/new", {"team_id": "t-mail", "members_with_roles": [
        {"role": "admin", "user_email": "ann@example.com"}, {"role": "user", "user_email": "bob@example.com"}]}))
    rows = team["members_with_roles"]
    assert rows[0] == {"role": "admin", "user_id": "ann", "user_email": "ann@example.com"}
    bob = rows[1]["user_id"]
    assert rows[1]["user_email"] == "bob@example.com" and bob != "ann"
    bob_info = ok(get(gw, "/user/info", user_id=bob))
    assert bob_info["user_info"]["user_role"] == "internal_user" and bob_info["user_info"]["teams"] == ["t-mail"]
    assert set(memberships(gw, bob)) == {"t-mail"}  # a membership row from the start
    added = ok(post(gw, "/team/member_add", {"team_id": "t-mail", "member": {"role": "user",
                                                                           "user_email": "cy@example.com"}}))
    cy = added["members_with_roles"][-1]["user_id"]
    assert [u["user_email"] for u in added["updated_users"]] == ["cy@example.com"]
    assert [(m["team_id"], m["user_id"]) for m in added["updated_team_memberships"]] == [("t-mail", cy)]
    assert ok(get(gw, "/user/list", user_email="CY@EXAMPLE"))["users"][0]["user_id"] == cy
    # A member needs a user_id or a user_email; two users sharing an e-mail cannot be told apart.
    assert error(post(gw, "/team/member_add", {"team_id": "t-mail", "member": {"role": "user"}}), 400)["param"] == \
        "member.0.user_id"
    ok(post(gw, "/user/new", {"user_id": "twin1", "user_email": "twin@example.com", "auto_create_key": False}))
    ok(post(gw, "/user/new", {"user_id": "twin2", "user_email": "twin@example.com", "auto_create_key": False}))
    twin = error(post(gw, "/team/member_add", {"team_id": "t-mail", "member": {"user_email": "twin@example.com"}}), 400)
    assert twin["message"] == "Multiple users with this email found in db. Please use 'user_id' instead."


def test_member_update_sets_an_in_team_budget_that_refuses_calls(gw):
    dev = ok(post(gw, "/user/new", {"user_id": "dev", "user_email": "dev@example.com"}))
    ok(post(gw, "/team/new", {"team_id": "t-bud", "members_with_roles": [{"role": "user", "user_id": "dev"}]}))
    key = ok(post(gw, "/key/generate", {"team_id": "t-bud", "user_id": "dev"}))["key"]
    other = ok(post(gw, "/key/generate", {"team_id": "t-bud"}))["key"]  # a team key of no user
    updated = ok(post(gw, "/team/member_update", {"team_id": "t-bud", "user_email": "dev@example.com",
                                                  "max_budget_in_team": 0.01, "role": "admin"}))
    assert updated == {"team_id": "t-bud", "user_id": "dev", "user_email": "dev@example.com", "role": "admin",
                       "max_budget_in_team": 0.01}
    row = memberships(gw, "dev")["t-bud"]
    assert row["litellm_budget_table"]["max_budget"] == 0.01 and row["budget_id"] and row["spend"] == 0.0
    chat(gw, key)
    chat(gw, key)
    with pytest.raises(openai.RateLimitError) as err:
        chat(gw, key)
    assert err.value.status_code == 429 and err.value.body["type"] == "budget_exceeded"
    assert err.value.body["message"] == "Budget has been exceeded! Current cost: 0.014, Max budget: 0.01"
    assert chat(gw, other).choices  # the team itself has no budget: its other keys go on
    # dev's own key outside the team is not bound by the in-team budget
    assert chat(gw, dev["key"]).choices
    deadline = time.monotonic() + 10
    while memberships(gw, "dev")["t-bud"]["spend"] < 0.014 and time.monotonic() < deadline:
        time.sleep(0.1)  # in-team spend is written by the batch writer
    assert memberships(gw, "dev")["t-bud"]["spend"] == pytest.approx(0.014)
    # raising the in-team budget changes the same budget and applies at once
    ok(post(gw, "/team/member_update", {"team_id": "t-bud", "user_id": "dev", "max_budget_in_team": 1}))
    assert memberships(gw, "dev")["t-bud"]["budget_id"] == row["budget_id"]
    assert chat(gw, key).choices
    info = ok(get(gw, "/team/info", team_id="t-bud"))
    assert {m["user_id"]: m["litellm_budget_table"]["max_budget"] for m in info["team_memberships"]
            if m["litellm_budget_table"]} == {"dev": 1}
    assert info["team_info"]["members_with_roles"][0]["role"] == "admin"


def test_member_update_and_delete_errors(gw):
    ok(post(gw, "/team/new", {"team_id": "t-err"}))
    not_member = error(post(gw, "/team/member_update", {"team_id": "t-err", "user_id": "stranger",
                                                        "max_budget_in_team": 1}), 400)
    assert not_member["message"] == "User=stranger is not a member of team=t-err"
    assert error(post(gw, "/team/member_update", {"team_id": "t-err"}), 400)["param"] == "user_id"
    assert error(post(gw, "/team/member_update", {"team_id": "nope", "user_id": "x"}), 404)["message"] == \
        "Team not found, passed team_id=nope"
    assert error(post(gw, "/team/member_update", {"team_id": "t-err", "user_id": "default_user_id",
                                                  "max_budget_in_team": -1}), 400)["param"] == "max_budget_in_team"
    gone = error(post(gw, "/team/member_delete", {"team_id": "t-err", "user_id": "stranger"}), 400)
    assert gone["message"] == "User=stranger is not a member of team=t-err" and gone["param"] == "user_id"
    assert error(post(gw, "/team/member_delete", {"team_id": "t-err", "user_email": "no@example.com"}), 400)


def test_membership_rows_follow_member_add_delete_and_team_delete(gw):
    ok(post(gw, "/team/new", {"team_id": "t-rows"}))
    ok(post(gw, "/team/member_add", {"team_id": "t-rows", "member": [{"user_id": "r1"}, {"user_id": "r2"}],
                                     "max_budget_in_team": 2}))
    ok(post(gw, "/user/update", {"user_id": "r1"}))  # /user/update creates an unknown user (LiteLLM)
    ok(post(gw, "/user/update", {"user_id": "r2"}))
    assert memberships(gw, "r1")["t-rows"]["litellm_budget_table"]["max_budget"] == 2
    left = ok(post(gw, "/team/member_delete", {"team_id": "t-rows", "user_id": "r1"}))
    assert "r1" not in [m["user_id"] for m in left["members_with_roles"]]
    assert memberships(gw, "r1") == {}
    ok(post(gw, "/team/delete", {"team_ids": ["t-rows"]}))
    assert memberships(gw, "r2") == {}


def test_team_update_answers_team_id_and_data(gw):
    ok(post(gw, "/team/new", {"team_id": "t-shape", "team_alias": "before"}))
    out = ok(post(gw, "/team/update", {"team_id": "t-shape", "team_alias": "after"}))
    assert set(out) == {"team_id", "data"} and out["team_id"] == "t-shape"
    assert out["data"]["team_alias"] == "after" and out["data"]["team_id"] == "t-shape"
    assert "members_with_roles" in out["data"] and "organization_id" in out["data"]


def test_user_update_creates_an_unknown_user(gw):
    made = ok(post(gw, "/user/update", {"user_id": "newbie", "user_email": "n@example.com", "max_budget": 3}))
    assert made["user_id"] == "newbie" and made["user_email"] == "n@example.com" and made["max_budget"] == 3
    assert made["user_role"] == "internal_user"
    events = [e for e in ok(get(gw, "/probe/audit"))["events"] if e["table_name"] == "LiteLLM_UserTable"]
    deadline = time.monotonic() + 5
    while not events and time.monotonic() < deadline:
        time.sleep(0.05)
        events = [e for e in ok(get(gw, "/probe/audit"))["events"] if e["table_name"] == "LiteLLM_UserTable"]
    assert [(e["action"], e["object_id"]) for e in events] == [("created", "newbie")]
    again = ok(post(gw, "/user/update", {"user_id": "newbie", "user_alias": "nb"}))
    assert again["user_alias"] == "nb" and again["max_budget"] == 3
    assert error(post(gw, "/user/update", {"user_id": "bad", "user_role": "god"}), 400)["param"] == "user_role"


def test_user_list_filters_and_pages_as_litellm(gw):
    for uid, role, email in (("a1", "internal_user", "a1@corp.com"), ("a2", "proxy_admin", "a2@corp.com"),
                             ("a3", "internal_user", "a3@else.org"), ("a4", "internal_user_viewer", None)):
        ok(post(gw, "/user/new", {"user_id": uid, "user_role": role, "user_email": email, "auto_create_key": False}))
    ok(post(gw, "/team/new", {"team_id": "t-list", "members_with_roles": [{"user_id": "a1"}, {"user_id": "a3"}]}))

    def ids(**params: Any) -> list[str]:
        return [u["user_id"] for u in ok(get(gw, "/user/list", **params))["users"]]

    assert ids() == ["a1", "a2", "a3", "a4"]
    assert ids(role="internal_user") == ["a1", "a3"]
    assert ids(user_ids="a4,a2") == ["a2", "a4"]
    assert ids(user_email="corp.com") == ["a1", "a2"]
    assert ids(team="t-list") == ["a1", "a3"]
    assert ids(team="t-list", role="internal_user", user_email="else") == ["a3"]
    assert ids(sort_by="user_id", sort_order="desc") == ["a4", "a3", "a2", "a1"]
    page = ok(get(gw, "/user/list", page=2, page_size=3))
    assert page == {**page, "total": 4, "page": 2, "page_size": 3, "total_pages": 2}
    assert [u["user_id"] for u in page["users"]] == ["a4"]
    assert error(get(gw, "/user/list", sort_by="password"), 400)["param"] == "sort_by"
    assert error(get(gw, "/user/list", sort_order="up"), 400)["param"] == "sort_order"
    assert error(get(gw, "/user/list", page="x"), 400)["param"] == "page"
