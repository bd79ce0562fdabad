"""Teams, users and end users over HTTP against a real server: every route, its errors, the audit
events it emits, and what the changes do to the keys that depend on them (at once, on every worker)."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

pytestmark = pytest.mark.db

ADMIN = {"Authorization": "Bearer sk-1234"}
CONFIG = {
    "model_list": [
        {"model_name": "m", "litellm_params": {"model": "fake/m"}},
        {"model_name": "other", "litellm_params": {"model": "fake/other"}},
    ],
    "litellm_settings": {"callbacks": ["probe_audit"]},
}
HI = [{"role": "user", "content": "hi"}]
GATEWAY_BIN = str(Path(sys.executable).parent / "gateway")


# -- helpers ---------------------------------------------------------------------------------------


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


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


def generate(gw: Any, **body: Any) -> dict[str, Any]:
    return ok(post(gw, "/key/generate", body))


def chat(gw: Any, key: str, model: str = "m", **kw: Any) -> Any:
    return gw.client(api_key=key).chat.completions.create(model=model, messages=HI, **kw)


def audit_events(gw: Any, count: int, **match: Any) -> list[dict[str, Any]]:
    """The audit events seen by probe_audit matching `match`; they arrive off the request path."""
    deadline = time.monotonic() + 5
    while True:
        events = [e for e in ok(get(gw, "/probe/audit"))["events"]
                  if all(e.get(k) == v for k, v in match.items())]
        if len(events) >= count or time.monotonic() > deadline:
            return events
        time.sleep(0.02)


@pytest.fixture
def gw(gateway_server):
    return gateway_server(CONFIG)


# -- teams -----------------------------------------------------------------------------------------


def test_team_new_audit_event_reproduces_the_seed_sample(gw):
    caller = "109010464461339474872"
    team = ok(post(gw, "/team/new", {"max_budget": 2}, headers={**ADMIN, "litellm-changed-by": caller}))
    team_id = team["team_id"]
    assert str(uuid.UUID(team_id)) == team_id
    assert team["members_with_roles"] == [{"role": "admin", "user_id": caller}]
    assert team["max_budget"] == 2.0 and team["blocked"] is False and team["spend"] == 0.0
    (event,) = audit_events(gw, 1, table_name="LiteLLM_TeamTable")
    assert event["action"] == "created"
    assert event["object_id"] == team_id
    assert event["changed_by"] == caller
    assert event["before_value"] is None
    expected = {"team_id": team_id, "admins": [], "members": [],
                "members_with_roles": [{"role": "admin", "user_id": caller}],
                "max_budget": 2.0, "models": [], "blocked": False}
    assert event["updated_values"] == expected
    assert list(event["updated_values"]) == list(expected)  # the seed's field order
    assert list(event["updated_values"]["members_with_roles"][0]) == ["role", "user_id"]
    assert isinstance(event["updated_values"]["max_budget"], float)
    assert event["changed_by_api_key"] == hashlib.sha256(b"sk-1234").hexdigest()  # never the raw key


def test_team_new_seed_sample_through_the_audit_store(gateway_server):
    """With the seed's config (`store_audit_logs: true`) the stored row reads back as the sample."""
    gw = gateway_server({**CONFIG, "litellm_settings": {"store_audit_logs": True}})
    caller = "109010464461339474872"
    team_id = ok(post(gw, "/team/new", {"max_budget": 2}, headers={**ADMIN, "litellm-changed-by": caller}))["team_id"]
    deadline = time.monotonic() + 5
    while not (rows := ok(get(gw, "/audit", table_name="LiteLLM_TeamTable"))["audit_logs"]):
        assert time.monotonic() < deadline, "no audit row"
        time.sleep(0.05)
    (row,) = rows
    assert {k: row[k] for k in ("changed_by", "action", "table_name", "object_id", "before_value")} == {
        "changed_by": caller, "action": "created", "table_name": "LiteLLM_TeamTable", "object_id": team_id,
        "before_value": None}
    assert row["updated_values"] == {"team_id": team_id, "admins": [], "members": [],
                                     "members_with_roles": [{"role": "admin", "user_id": caller}],
                                     "max_budget": 2.0, "models": [], "blocked": False}
    assert str(uuid.UUID(row["id"])) == row["id"] and row["updated_at"]


def test_team_new_caller_defaults_and_gateway_header(gateway_server):
    gw = gateway_server({**CONFIG, "general_settings": {"default_user_id": "ops-admin"}})
    plain = ok(post(gw, "/team/new", {}))
    assert plain["members_with_roles"] == [{"role": "admin", "user_id": "ops-admin"}]
    named = ok(post(gw, "/team/new", {}, headers={**ADMIN, "gateway-changed-by": "alice"}))
    assert named["members_with_roles"] == [{"role": "admin", "user_id": "alice"}]
    # the caller already listed keeps the role given
    given = ok(post(gw, "/team/new", {"members_with_roles": [{"role": "user", "user_id": "alice"}]},
                    headers={**ADMIN, "gateway-changed-by": "alice"}))
    assert given["members_with_roles"] == [{"role": "user", "user_id": "alice"}]


def test_team_new_without_default_user_id_uses_the_literal(gw):
    team = ok(post(gw, "/team/new", {"team_alias": "plain"}))
    assert team["members_with_roles"] == [{"role": "admin", "user_id": "default_user_id"}]


def test_team_new_fields_and_duplicate_id(gw):
    body = {"team_id": "t-full", "team_alias": "Full", "admins": ["a1"], "members": ["m1"],
            "members_with_roles": [{"role": "user", "user_id": "u1"}], "metadata": {"cost_center": "42"},
            "max_budget": 10, "budget_duration": "30d", "models": ["m"], "tpm_limit": 1000, "rpm_limit": 10,
            "blocked": False}
    team = ok(post(gw, "/team/new", body))
    for field, value in body.items():
        if field != "members_with_roles":
            assert team[field] == value, field
    assert team["members_with_roles"] == [{"role": "user", "user_id": "u1"},
                                          {"role": "admin", "user_id": "default_user_id"}]
    assert team["budget_reset_at"] is not None
    (event,) = audit_events(gw, 1, table_name="LiteLLM_TeamTable")
    assert list(event["updated_values"]) == ["team_id", "team_alias", "admins", "members", "members_with_roles",
                                             "metadata", "tpm_limit", "rpm_limit", "max_budget",
                                             "budget_duration", "models", "blocked"]
    err = error(post(gw, "/team/new", {"team_id": "t-full"}), 400)
    assert err["message"] == "Team id = t-full already exists. Please use a different team id."
    assert err["param"] == "team_id" and err["type"] == "bad_request_error"


@pytest.mark.parametrize("body, param", [
    ({"max_budget": "lots"}, "max_budget"),
    ({"max_budget": -1}, "max_budget"),
    ({"models": "m"}, "models"),
    ({"tpm_limit": 1.5}, "tpm_limit"),
    ({"budget_duration": "forever"}, "budget_duration"),
    ({"members_with_roles": [{"role": "boss", "user_id": "u"}]}, "members_with_roles.0.role"),
    ({"members_with_roles": [{"role": "user"}]}, "members_with_roles.0.user_id"),
    ({"metadata": ["x"]}, "metadata"),
    ({"team_id": ""}, "team_id"),
])
def test_team_new_bad_input_names_the_field(gw, body, param):
    err = error(post(gw, "/team/new", body), 400)
    assert err["param"] == param
    assert err["type"] == "bad_request_error"


def test_malformed_json_is_a_400_everywhere(gw):
    for path in ("/team/new", "/team/update", "/user/new", "/customer/new", "/customer/block", "/team/delete"):
        r = httpx.post(gw.url + path, content=b"{nope", headers=ADMIN)
        assert error(r, 400)["type"] == "bad_request_error", path


def test_team_update_changes_only_the_fields_sent(gw):
    ok(post(gw, "/team/new", {"team_id": "t-up", "team_alias": "keep", "models": ["m"], "max_budget": 3}))
    out = ok(post(gw, "/team/update", {"team_id": "t-up", "max_budget": 7, "metadata": {"a": 1}}))
    assert out["team_id"] == "t-up"  # LiteLLM's shape: {"team_id", "data"}
    updated = out["data"]
    assert updated["max_budget"] == 7 and updated["team_alias"] == "keep" and updated["models"] == ["m"]
    assert updated["metadata"] == {"a": 1}
    (event,) = audit_events(gw, 1, table_name="LiteLLM_TeamTable", action="updated")
    assert event["object_id"] == "t-up"
    assert event["before_value"]["max_budget"] == 3 and event["before_value"]["team_alias"] == "keep"
    assert event["updated_values"] == {"metadata": {"a": 1}, "max_budget": 7.0}
    # null puts a list back to empty
    cleared = ok(post(gw, "/team/update", {"team_id": "t-up", "models": None}))["data"]
    assert cleared["models"] == []
    err = error(post(gw, "/team/update", {"team_id": "nope", "max_budget": 1}), 404)
    assert err["message"] == "Team not found, passed team_id=nope"
    assert err["type"] == "not_found_error"
    assert error(post(gw, "/team/update", {"max_budget": 1}), 400)["param"] == "team_id"
    assert error(post(gw, "/team/update", {"team_id": "t-up", "rpm_limit": "x"}), 400)["param"] == "rpm_limit"


def test_team_info_shows_keys_without_raw_keys_and_list(gw):
    ok(post(gw, "/team/new", {"team_id": "t-info", "team_alias": "Info"}))
    ok(post(gw, "/team/new", {"team_id": "t-other"}))
    key = generate(gw, team_id="t-info")
    outsider = generate(gw, team_id="t-other")["key"]
    info = ok(get(gw, "/team/info", team_id="t-info"))
    assert info["team_id"] == "t-info" and info["team_info"]["team_alias"] == "Info"
    assert [k["token"] for k in info["keys"]] == [key["token"]]
    assert key["key"] not in str(info)
    # a team's own key may read it (with or without the parameter); another team's may not
    assert ok(get(gw, "/team/info", headers=bearer(key["key"]), team_id="t-info"))["team_id"] == "t-info"
    assert ok(get(gw, "/team/info", headers=bearer(key["key"])))["team_id"] == "t-info"
    assert error(get(gw, "/team/info", headers=bearer(outsider), team_id="t-info"), 403)["type"] == "auth_error"
    assert error(get(gw, "/team/info", team_id="missing"), 404)["message"] == \
        "Team not found, passed team_id=missing"
    assert error(get(gw, "/team/info"), 400)["param"] == "team_id"
    listed = ok(get(gw, "/team/list"))
    assert [t["team_id"] for t in listed] == ["t-info", "t-other"]
    assert [t["team_id"] for t in ok(get(gw, "/team/list", user_id="default_user_id"))] == ["t-info", "t-other"]
    assert ok(get(gw, "/team/list", user_id="nobody")) == []
    err = error(get(gw, "/team/list", headers=bearer(outsider)), 403)
    assert err["message"] == "Only proxy admin can access this route. Route=/team/list"


def test_team_members_add_and_delete(gw):
    ok(post(gw, "/team/new", {"team_id": "t-mem"}))
    ok(post(gw, "/user/new", {"user_id": "u-known", "auto_create_key": False}))
    one = ok(post(gw, "/team/member_add", {"team_id": "t-mem", "member": {"role": "user", "user_id": "u-known"}}))
    assert one["members_with_roles"][-1] == {"role": "user", "user_id": "u-known"}
    many = ok(post(gw, "/team/member_add", {"team_id": "t-mem", "member": [
        {"role": "admin", "user_id": "u-a"}, {"role": "user", "user_id": "u-b", "user_email": "b@example.com"}]}))
    assert [m["user_id"] for m in many["members_with_roles"]] == ["default_user_id", "u-known", "u-a", "u-b"]
    assert many["members_with_roles"][-1]["user_email"] == "b@example.com"
    # an existing user's teams follow the membership
    assert ok(get(gw, "/user/info", user_id="u-known"))["user_info"]["teams"] == ["t-mem"]
    dup = error(post(gw, "/team/member_add", {"team_id": "t-mem", "member": {"role": "user", "user_id": "u-a"}}),
                400)
    assert dup["message"] == "User=u-a is already a member of team=t-mem" and dup["param"] == "member"
    assert error(post(gw, "/team/member_add", {"team_id": "nope", "member": {"user_id": "x"}}), 404)["message"] \
        == "Team not found, passed team_id=nope"
    assert error(post(gw, "/team/member_add", {"team_id": "t-mem", "member": {"role": "owner", "user_id": "x"}}),
                 400)["param"].startswith("member")
    assert error(post(gw, "/team/member_add", {"team_id": "t-mem"}), 400)["param"] == "member"
    left = ok(post(gw, "/team/member_delete", {"team_id": "t-mem", "user_id": "u-known"}))
    assert "u-known" not in [m["user_id"] for m in left["members_with_roles"]]
    assert ok(get(gw, "/user/info", user_id="u-known"))["user_info"]["teams"] == []
    gone = error(post(gw, "/team/member_delete", {"team_id": "t-mem", "user_id": "u-known"}), 400)
    assert gone["message"] == "User=u-known is not a member of team=t-mem" and gone["param"] == "user_id"
    assert error(post(gw, "/team/member_delete", {"team_id": "t-mem"}), 400)["param"] == "user_id"
    events = audit_events(gw, 3, table_name="LiteLLM_TeamTable", action="updated")
    assert len(events) == 3
    assert events[-1]["updated_values"] == {"members_with_roles": left["members_with_roles"]}


def test_team_members_read_their_team_but_only_the_proxy_admin_manages_it(gw):
    lead = ok(post(gw, "/user/new", {"user_id": "lead"}))
    ok(post(gw, "/team/new", {"team_id": "t-self", "members_with_roles": [{"role": "admin", "user_id": "lead"}]}))
    ok(post(gw, "/team/new", {"team_id": "t-foreign"}))
    # a member reads their team's info with their own key, even when the key is not in the team
    assert ok(get(gw, "/team/info", headers=bearer(lead["key"]), team_id="t-self"))["team_id"] == "t-self"
    assert error(get(gw, "/team/info", headers=bearer(lead["key"]), team_id="t-foreign"), 403)["message"] == \
        "You can only view information about your own team"
    for path, body in (("/team/member_add", {"team_id": "t-self", "member": {"user_id": "x"}}),
                       ("/team/member_delete", {"team_id": "t-self", "user_id": "lead"})):
        err = error(post(gw, path, body, headers=bearer(lead["key"])), 403)
        assert err["message"] == f"Only proxy admin can access this route. Route={path}"


def test_team_block_refuses_its_keys_at_once_and_unblock_restores_them(gw):
    ok(post(gw, "/team/new", {"team_id": "t-block"}))
    raw = generate(gw, team_id="t-block")["key"]
    chat(gw, raw)
    blocked = ok(post(gw, "/team/block", {"team_id": "t-block"}))
    assert blocked["blocked"] is True
    with pytest.raises(openai.AuthenticationError) as err:
        chat(gw, raw)
    assert err.value.status_code == 401
    assert err.value.body["message"] == "Authentication Error, Team=t-block is blocked."
    assert err.value.body["type"] == "auth_error"
    r = get(gw, "/key/info", headers=bearer(raw))  # management routes are refused too
    assert error(r, 401)["message"] == "Authentication Error, Team=t-block is blocked."
    assert ok(post(gw, "/team/unblock", {"team_id": "t-block"}))["blocked"] is False
    assert chat(gw, raw).choices[0].message.content
    events = audit_events(gw, 2, table_name="LiteLLM_TeamTable", object_id="t-block")
    events = [e for e in events if e["action"] in ("blocked", "unblocked")]
    assert [(e["action"], e["updated_values"]) for e in events] == [
        ("blocked", {"blocked": True}), ("unblocked", {"blocked": False})]
    assert events[0]["before_value"]["blocked"] is False
    assert error(post(gw, "/team/block", {"team_id": "nope"}), 404)["message"] == \
        "Team not found, passed team_id=nope"
    assert error(post(gw, "/team/block", {}), 400)["param"] == "team_id"


def test_team_delete_removes_its_keys(gw):
    ok(post(gw, "/team/new", {"team_id": "t-del"}))
    ok(post(gw, "/team/new", {"team_id": "t-keep"}))
    doomed = [generate(gw, team_id="t-del") for _ in range(2)]
    kept = generate(gw, team_id="t-keep")["key"]
    for k in doomed:
        chat(gw, k["key"])  # cached now: the delete must evict them
    out = ok(post(gw, "/team/delete", {"team_ids": ["t-del"]}))
    assert out["deleted_teams"] == ["t-del"]
    assert sorted(out["deleted_keys"]) == sorted(k["token"] for k in doomed)
    for k in doomed:
        with pytest.raises(openai.AuthenticationError) as err:
            chat(gw, k["key"])
        assert err.value.body["message"] == "Authentication Error, Invalid proxy server token passed"
    chat(gw, kept)
    assert error(get(gw, "/team/info", team_id="t-del"), 404)["message"] == "Team not found, passed team_id=t-del"
    key_events = audit_events(gw, 2, table_name="LiteLLM_VerificationToken", action="deleted")
    assert sorted(e["object_id"] for e in key_events) == sorted(k["token"] for k in doomed)
    assert all(e["updated_values"] is None and e["before_value"]["team_id"] == "t-del" for e in key_events)
    (team_event,) = audit_events(gw, 1, table_name="LiteLLM_TeamTable", action="deleted")
    assert team_event["object_id"] == "t-del" and team_event["before_value"]["team_id"] == "t-del"
    # unknown ids delete nothing
    err = error(post(gw, "/team/delete", {"team_ids": ["t-keep", "nope"]}), 404)
    assert err["message"] == "Team not found, passed team_id=nope"
    assert ok(get(gw, "/team/info", team_id="t-keep"))["team_id"] == "t-keep"
    assert error(post(gw, "/team/delete", {"team_ids": []}), 400)["param"] == "team_ids"
    assert error(post(gw, "/team/delete", {"team_ids": "t-keep"}), 400)["param"] == "team_ids"


def test_team_models_restrict_its_keys(gw):
    ok(post(gw, "/team/new", {"team_id": "t-models", "models": ["other"]}))
    raw = generate(gw, team_id="t-models")["key"]
    with pytest.raises(openai.AuthenticationError) as err:
        chat(gw, raw, model="m")
    assert err.value.body["message"] == (
        "Authentication Error, API Key not allowed to access model. "
        "This token can only access models=['other']. Tried to access m")
    assert chat(gw, raw, model="other").choices
    # widening the team's models takes effect on the next request
    ok(post(gw, "/team/update", {"team_id": "t-models", "models": ["other", "m"]}))
    assert chat(gw, raw, model="m").choices


def test_team_budget_is_enforced(gw):
    ok(post(gw, "/team/new", {"team_id": "t-budget", "max_budget": 1}))
    raw = generate(gw, team_id="t-budget")["key"]
    chat(gw, raw)
    ok(post(gw, "/team/update", {"team_id": "t-budget", "spend": 1.25}))
    with pytest.raises(openai.RateLimitError) as err:
        chat(gw, raw)
    assert err.value.body["type"] == "budget_exceeded"
    assert err.value.body["message"] == "Budget has been exceeded! Current cost: 1.25, Max budget: 1.0"


def test_team_routes_need_the_proxy_admin(gw):
    raw = generate(gw)["key"]
    ok(post(gw, "/team/new", {"team_id": "t-admin"}))
    for path, body in (("/team/new", {}), ("/team/update", {"team_id": "t-admin"}),
                       ("/team/delete", {"team_ids": ["t-admin"]}), ("/team/block", {"team_id": "t-admin"}),
                       ("/team/unblock", {"team_id": "t-admin"})):
        err = error(post(gw, path, body, headers=bearer(raw)), 403)
        assert err["message"] == f"Only proxy admin can access this route. Route={path}"
    assert error(post(gw, "/team/new", {}, headers={}), 401)["message"] == \
        "Authentication Error, No api key passed in."


# -- users -----------------------------------------------------------------------------------------


def test_user_new_returns_a_key_for_the_user(gw):
    out = ok(post(gw, "/user/new", {"user_id": "u1", "user_alias": "Ann", "user_email": "ann@example.com",
                                     "user_role": "internal_user", "models": ["m"], "max_budget": 5,
                                     "metadata": {"dept": "x"}, "tpm_limit": 10, "rpm_limit": 2}))
    assert out["user_id"] == "u1" and out["user_role"] == "internal_user" and out["max_budget"] == 5
    assert out["key"].startswith("sk-") and out["key_name"] == "sk-..." + out["key"][-4:]
    assert chat(gw, out["key"]).choices  # the key works, with the user's models
    with pytest.raises(openai.AuthenticationError):
        chat(gw, out["key"], model="other")
    info = ok(get(gw, "/user/info", user_id="u1"))
    assert info["user_info"]["user_email"] == "ann@example.com"
    assert [k["token"] for k in info["keys"]] == [out["token"]]
    assert info["keys"][0]["user_id"] == "u1" and out["key"] not in str(info)
    (event,) = audit_events(gw, 1, table_name="LiteLLM_UserTable")
    assert event["action"] == "created" and event["object_id"] == "u1" and event["before_value"] is None
    assert event["updated_values"]["user_role"] == "internal_user" and "spend" not in event["updated_values"]
    (key_event,) = audit_events(gw, 1, table_name="LiteLLM_VerificationToken", action="created")
    assert key_event["object_id"] == out["token"] and out["key"] not in str(key_event)
    bare = ok(post(gw, "/user/new", {"auto_create_key": False}))
    assert "key" not in bare and str(uuid.UUID(bare["user_id"])) == bare["user_id"]
    assert bare["user_role"] == "internal_user"


def test_user_errors(gw):
    ok(post(gw, "/user/new", {"user_id": "dup"}))
    err = error(post(gw, "/user/new", {"user_id": "dup"}), 400)
    assert err["message"] == "User id = dup already exists. Please use a different user id."
    assert err["param"] == "user_id"
    bad_role = error(post(gw, "/user/new", {"user_role": "root"}), 400)
    assert bad_role["param"] == "user_role" and "user_role" in bad_role["message"]
    assert error(post(gw, "/user/new", {"max_budget": "x"}), 400)["param"] == "max_budget"
    assert error(post(gw, "/user/new", {"teams": "t"}), 400)["param"] == "teams"
    assert error(post(gw, "/user/new", {"duration": "ever"}), 400)["param"] == "duration"
    missing = error(get(gw, "/user/info", user_id="ghost"), 404)
    assert missing["message"] == "User not found, passed user_id=ghost"
    assert error(post(gw, "/user/update", {"user_id": "dup", "user_role": "god"}), 400)["param"] == "user_role"
    assert error(post(gw, "/user/delete", {"user_ids": ["dup", "ghost"]}), 404)["message"] == \
        "User not found, passed user_id=ghost"
    assert ok(get(gw, "/user/info", user_id="dup"))["user_id"] == "dup"  # nothing was deleted
    assert error(post(gw, "/user/delete", {}), 400)["param"] == "user_ids"
    assert error(get(gw, "/user/info"), 400)["param"] == "user_id"


def test_user_update_info_and_delete(gw):
    out = ok(post(gw, "/user/new", {"user_id": "u2", "user_alias": "keep", "max_budget": 1}))
    extra = generate(gw, user_id="u2")["key"]
    updated = ok(post(gw, "/user/update", {"user_id": "u2", "max_budget": 9, "teams": ["t1"]}))
    assert updated["max_budget"] == 9 and updated["user_alias"] == "keep" and updated["teams"] == ["t1"]
    (event,) = audit_events(gw, 1, table_name="LiteLLM_UserTable", action="updated")
    assert event["before_value"]["max_budget"] == 1 and event["updated_values"] == {"teams": ["t1"],
                                                                                    "max_budget": 9.0}
    # a user reads their own record with their own key, not someone else's
    mine = ok(get(gw, "/user/info", headers=bearer(out["key"])))
    assert mine["user_id"] == "u2" and len(mine["keys"]) == 2
    ok(post(gw, "/user/new", {"user_id": "u3", "auto_create_key": False}))
    assert error(get(gw, "/user/info", headers=bearer(out["key"]), user_id="u3"), 403)["type"] == "auth_error"
    listed = ok(get(gw, "/user/list", page_size=1))
    assert listed["total"] == 2 and listed["total_pages"] == 2 and listed["users"][0]["user_id"] == "u2"
    deleted = ok(post(gw, "/user/delete", {"user_ids": ["u2"]}))
    assert deleted["deleted_users"] == ["u2"] and len(deleted["deleted_keys"]) == 2
    for raw in (out["key"], extra):
        with pytest.raises(openai.AuthenticationError) as err:
            chat(gw, raw)
        assert err.value.body["message"] == "Authentication Error, Invalid proxy server token passed"
    assert error(get(gw, "/user/info", user_id="u2"), 404)["param"] == "user_id"
    assert len(audit_events(gw, 2, table_name="LiteLLM_VerificationToken", action="deleted")) == 2
    (deleted_event,) = audit_events(gw, 1, table_name="LiteLLM_UserTable", action="deleted")
    assert deleted_event["before_value"]["user_id"] == "u2" and deleted_event["updated_values"] is None


def test_a_proxy_admin_users_key_is_admin(gw):
    boss = ok(post(gw, "/user/new", {"user_id": "boss", "user_role": "proxy_admin"}))
    # (an internal_user's key may make keys for its own user: tests/test_self_service_keys.py)
    worker = ok(post(gw, "/user/new", {"user_id": "worker", "user_role": "internal_user_viewer"}))
    made = ok(post(gw, "/key/generate", {"key_alias": "by-boss"}, headers=bearer(boss["key"])))
    assert made["created_by"] == "boss"
    err = error(post(gw, "/key/generate", {}, headers=bearer(worker["key"])), 403)
    assert err["message"] == "Only proxy admin can access this route. Route=/key/generate"
    assert err["type"] == "auth_error"
    # the admin's user id is the caller recorded on a team it creates
    team = ok(post(gw, "/team/new", {}, headers=bearer(boss["key"])))
    assert team["members_with_roles"] == [{"role": "admin", "user_id": "boss"}]
    (event,) = audit_events(gw, 1, table_name="LiteLLM_TeamTable")
    assert event["changed_by"] == "boss" and event["changed_by_api_key"] == boss["token"]
    # a role change applies to the user's keys on the very next request, both ways
    ok(post(gw, "/user/update", {"user_id": "worker", "user_role": "proxy_admin"}))
    ok(post(gw, "/key/generate", {}, headers=bearer(worker["key"])))
    ok(post(gw, "/user/update", {"user_id": "boss", "user_role": "proxy_admin_viewer"}))
    error(post(gw, "/key/generate", {}, headers=bearer(boss["key"])), 403)


def test_user_budget_is_enforced(gw):
    out = ok(post(gw, "/user/new", {"user_id": "spender", "max_budget": 2}))
    chat(gw, out["key"])
    ok(post(gw, "/user/update", {"user_id": "spender", "spend": 2}))
    with pytest.raises(openai.RateLimitError) as err:
        chat(gw, out["key"])
    assert err.value.body["message"] == "Budget has been exceeded! Current cost: 2.0, Max budget: 2.0"


# -- end users -------------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["/customer", "/end_user"])
def test_end_user_lifecycle(gw, prefix):
    made = ok(post(gw, f"{prefix}/new", {"user_id": "c1", "alias": "Carol", "max_budget": 4,
                                         "budget_duration": "1d", "metadata": {"plan": "pro"}}))
    assert made["user_id"] == "c1" and made["alias"] == "Carol" and made["max_budget"] == 4
    assert made["spend"] == 0.0 and made["blocked"] is False and made["budget_reset_at"] is not None
    assert ok(get(gw, f"{prefix}/info", end_user_id="c1")) == made
    assert ok(get(gw, f"{prefix}/info", user_id="c1"))["alias"] == "Carol"
    updated = ok(post(gw, f"{prefix}/update", {"user_id": "c1", "alias": "Caz", "spend": 1.5}))
    assert updated["alias"] == "Caz" and updated["spend"] == 1.5 and updated["max_budget"] == 4
    ok(post(gw, f"{prefix}/new", {"user_id": "c2"}))
    assert [e["user_id"] for e in ok(get(gw, f"{prefix}/list"))] == ["c1", "c2"]
    dup = error(post(gw, f"{prefix}/new", {"user_id": "c1"}), 400)
    assert dup["message"] == "End user id = c1 already exists. Please use a different user id."
    assert dup["param"] == "user_id"
    assert error(post(gw, f"{prefix}/new", {"alias": "x"}), 400)["param"] == "user_id"
    assert error(post(gw, f"{prefix}/new", {"user_id": "c3", "max_budget": -1}), 400)["param"] == "max_budget"
    assert error(post(gw, f"{prefix}/new", {"user_id": "c3", "blocked": "maybe"}), 400)["param"] == "blocked"
    assert error(post(gw, f"{prefix}/update", {"user_id": "c1", "spend": "x"}), 400)["param"] == "spend"
    missing = error(get(gw, f"{prefix}/info", end_user_id="ghost"), 404)
    assert missing["message"] == "End user not found, passed user_id=ghost"
    assert error(get(gw, f"{prefix}/info"), 400)["param"] == "end_user_id"
    assert error(post(gw, f"{prefix}/update", {"user_id": "ghost"}), 404)["param"] == "user_id"
    assert error(post(gw, f"{prefix}/delete", {"user_ids": ["c1", "ghost"]}), 404)["param"] == "user_ids"
    assert ok(post(gw, f"{prefix}/delete", {"user_ids": ["c1"]})) == {"deleted_customers": ["c1"]}
    error(get(gw, f"{prefix}/info", end_user_id="c1"), 404)
    actions = [(e["action"], e["object_id"]) for e in audit_events(gw, 4, table_name="LiteLLM_EndUserTable")]
    assert actions == [("created", "c1"), ("updated", "c1"), ("created", "c2"), ("deleted", "c1")]
    raw = generate(gw)["key"]
    assert error(get(gw, f"{prefix}/list", headers=bearer(raw)), 403)["message"] == \
        f"Only proxy admin can access this route. Route={prefix}/list"


def test_end_user_block_and_unblock_persist(gw):
    ok(post(gw, "/customer/new", {"user_id": "known"}))
    out = ok(post(gw, "/customer/block", {"user_ids": ["known", "never-seen"]}))
    assert out == {"blocked_users": ["known", "never-seen"]}
    assert ok(get(gw, "/customer/info", end_user_id="known"))["blocked"] is True
    assert ok(get(gw, "/customer/info", end_user_id="never-seen"))["blocked"] is True  # created blocked
    # the seed's alias for unblocking
    assert ok(post(gw, "/user/unblock", {"user_ids": ["known"]})) == {"unblocked_users": ["known"]}
    assert ok(get(gw, "/customer/info", end_user_id="known"))["blocked"] is False
    ok(post(gw, "/end_user/unblock", {"user_ids": ["never-seen"]}))
    assert ok(get(gw, "/end_user/info", end_user_id="never-seen"))["blocked"] is False
    err = error(post(gw, "/customer/unblock", {"user_ids": ["ghost"]}), 404)
    assert err["message"] == "End user not found, passed user_id=ghost"
    assert error(post(gw, "/customer/block", {"user_ids": "known"}), 400)["param"] == "user_ids"
    assert error(post(gw, "/customer/block", {"user_ids": []}), 400)["param"] == "user_ids"
    assert error(post(gw, "/customer/block", {}), 400)["param"] == "user_ids"
    events = [(e["action"], e["object_id"], e["before_value"] is None)
              for e in audit_events(gw, 6, table_name="LiteLLM_EndUserTable")]
    assert events == [("created", "known", True), ("blocked", "known", False), ("blocked", "never-seen", True),
                      ("unblocked", "known", False), ("unblocked", "never-seen", False)]


def test_end_user_over_budget_gets_429(gw):
    ok(post(gw, "/customer/new", {"user_id": "big-spender", "max_budget": 1}))
    raw = generate(gw)["key"]
    assert chat(gw, raw, user="big-spender").choices
    ok(post(gw, "/customer/update", {"user_id": "big-spender", "spend": 1.5}))
    with pytest.raises(openai.RateLimitError) as err:
        chat(gw, raw, user="big-spender")
    assert err.value.status_code == 429
    assert err.value.body["type"] == "budget_exceeded"
    assert err.value.body["message"] == "Budget has been exceeded! Current cost: 1.5, Max budget: 1.0"
    assert chat(gw, raw, user="someone-else").choices  # other end users are unaffected
    ok(post(gw, "/end_user/update", {"user_id": "big-spender", "max_budget": 10}))
    assert chat(gw, raw, user="big-spender").choices


# -- durability and workers ------------------------------------------------------------------------


def test_teams_users_and_end_users_survive_a_restart(gateway_server, database_url):
    url = database_url()
    first = gateway_server(CONFIG, env={"DATABASE_URL": url})
    ok(post(first, "/team/new", {"team_id": "t-durable", "models": ["m"], "max_budget": 3}))
    user = ok(post(first, "/user/new", {"user_id": "u-durable", "user_role": "proxy_admin"}))
    team_key = generate(first, team_id="t-durable")["key"]
    ok(post(first, "/customer/new", {"user_id": "c-durable", "max_budget": 2}))
    ok(post(first, "/customer/block", {"user_ids": ["c-durable"]}))
    ok(post(first, "/team/block", {"team_id": "t-durable"}))
    first.stop()
    second = gateway_server(CONFIG, env={"DATABASE_URL": url})
    team = ok(get(second, "/team/info", team_id="t-durable"))["team_info"]
    assert team["models"] == ["m"] and team["max_budget"] == 3 and team["blocked"] is True
    with pytest.raises(openai.AuthenticationError) as err:
        chat(second, team_key)
    assert err.value.body["message"] == "Authentication Error, Team=t-durable is blocked."
    assert ok(get(second, "/user/info", user_id="u-durable"))["user_info"]["user_role"] == "proxy_admin"
    ok(post(second, "/key/generate", {}, headers=bearer(user["key"])))  # still an admin's key
    customer = ok(get(second, "/customer/info", end_user_id="c-durable"))
    assert customer["blocked"] is True and customer["max_budget"] == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def two_workers(tmp_path, database_url):
    """`gateway --num_workers 2` as a subprocess on a migrated database; yields its base URL."""
    port = _free_port()
    config = tmp_path / "two-workers.yaml"
    config.write_text(yaml.safe_dump({**CONFIG, "litellm_settings": {},
                                      "general_settings": {"master_key": "sk-1234"}}))
    env = {**os.environ, "DATABASE_URL": database_url()}
    log = open(tmp_path / "gateway.log", "wb")
    proc = subprocess.Popen([GATEWAY_BIN, "--config", str(config), "--num_workers", "2", "--port", str(port),
                             "--host", "127.0.0.1"], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (tmp_path / "gateway.log").read_text()
            try:
                if httpx.get(url + "/health/liveliness", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "gateway did not start"
            time.sleep(0.1)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()


def _fresh(url: str, method: str, path: str, key: str, body: Any = None) -> httpx.Response:
    """One request on a new connection (so the OS may hand it to either worker)."""
    with httpx.Client(base_url=url, timeout=10) as client:
        return client.request(method, path, json=body, headers=bearer(key))


def test_blocks_apply_on_every_worker_at_once(two_workers):
    url = two_workers
    team = ok(_fresh(url, "POST", "/team/new", "sk-1234", {"team_id": "t-workers"}))
    assert team["team_id"] == "t-workers"
    key = ok(_fresh(url, "POST", "/key/generate", "sk-1234", {"team_id": "t-workers"}))["key"]
    chat_body = {"model": "m", "messages": HI}
    for _ in range(20):  # warm both workers' caches with the key and its team
        ok(_fresh(url, "POST", "/v1/chat/completions", key, chat_body))
    ok(_fresh(url, "POST", "/team/block", "sk-1234", {"team_id": "t-workers"}))
    for _ in range(10):
        err = error(_fresh(url, "POST", "/v1/chat/completions", key, chat_body), 401)
        assert err["message"] == "Authentication Error, Team=t-workers is blocked."
    ok(_fresh(url, "POST", "/team/unblock", "sk-1234", {"team_id": "t-workers"}))
    for _ in range(10):
        ok(_fresh(url, "POST", "/v1/chat/completions", key, chat_body))
    ok(_fresh(url, "POST", "/key/block", "sk-1234", {"key": key}))
    for _ in range(10):
        err = error(_fresh(url, "POST", "/v1/chat/completions", key, chat_body), 401)
        assert err["message"] == "Authentication Error, Key is blocked."
    ok(_fresh(url, "POST", "/key/unblock", "sk-1234", {"key": key}))
    ok(_fresh(url, "POST", "/team/delete", "sk-1234", {"team_ids": ["t-workers"]}))
    for _ in range(10):
        err = error(_fresh(url, "POST", "/v1/chat/completions", key, chat_body), 401)
        assert err["message"] == "Authentication Error, Invalid proxy server token passed"
