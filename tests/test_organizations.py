"""Organizations (issue 15) over HTTP against a real server: every /organization route, its errors
and audit events; teams inside an organization (checked against its models and budget); and what
the organization does to its teams' calls (models refused 401, budget refused 429, spend rows
carrying `metadata.user_api_key_org_id`), checked with the official `openai` SDK.

Prices: 0.001 per prompt token, 0.002 per completion token; the fake upstream answers "hi" with
1 prompt and 3 completion tokens, so a call costs 0.007."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
import pytest

pytestmark = pytest.mark.db

ADMIN = {"Authorization": "Bearer sk-1234"}
HI = [{"role": "user", "content": "hi"}]
ONE_CALL = 0.007


@pytest.fixture
def gw(gateway_server, fake_upstream):
    priced = {"api_base": fake_upstream.url, "api_key": "sk-upstream", "input_cost_per_token": 0.001,
              "output_cost_per_token": 0.002}
    return gateway_server({
        "model_list": [{"model_name": "m", "litellm_params": {"model": "openai/up", **priced}},
                       {"model_name": "other", "litellm_params": {"model": "openai/up2", **priced}}],
        "router_settings": {"num_retries": 0},
        "litellm_settings": {"callbacks": ["probe_audit"]},
    })


def call(gw: Any, method: str, path: str, body: Any = None, headers: dict[str, str] = ADMIN,
         **params: Any) -> httpx.Response:
    return httpx.request(method, gw.url + path, json=body, params=params or None, headers=headers, timeout=10)


def ok(resp: httpx.Response) -> Any:
    assert resp.status_code == 200, resp.text
    return resp.json()


def error(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert err["code"] == str(status)
    return err


def audit_events(gw: Any, count: int, **match: Any) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 5
    while True:
        events = [e for e in ok(call(gw, "GET", "/probe/audit"))["events"]
                  if all(e.get(k) == v for k, v in match.items())]
        if len(events) >= count or time.monotonic() > deadline:
            return events
        time.sleep(0.02)


def chat(gw: Any, key: str, model: str = "m") -> Any:
    return gw.client(api_key=key).chat.completions.create(model=model, messages=HI, max_tokens=3)


def test_organization_new_info_list_update_with_audit_rows(gw):
    org = ok(call(gw, "POST", "/organization/new", {"organization_alias": "acme", "models": ["m"],
                                                    "max_budget": 10, "budget_duration": "30d",
                                                    "metadata": {"cost_center": "7"}}))
    org_id = org["organization_id"]
    assert org["organization_alias"] == "acme" and org["models"] == ["m"] and org["spend"] == 0.0
    assert org["max_budget"] == 10 and org["budget_duration"] == "30d" and org["budget_reset_at"]
    assert org["litellm_budget_table"]["max_budget"] == 10 and org["litellm_budget_table"]["budget_id"] is None
    assert org["members"] == [] and org["teams"] == [] and org["created_by"] == "default_user_id"
    (created,) = audit_events(gw, 1, table_name="LiteLLM_OrganizationTable", action="created")
    assert created["object_id"] == org_id and created["before_value"] is None
    assert created["updated_values"]["models"] == ["m"] and created["updated_values"]["max_budget"] == 10

    info = ok(call(gw, "GET", "/organization/info", organization_id=org_id))
    assert info["organization_id"] == org_id and info["metadata"] == {"cost_center": "7"}
    assert [o["organization_id"] for o in ok(call(gw, "GET", "/organization/list"))] == [org_id]
    assert [o["organization_id"] for o in ok(call(gw, "POST", "/organization/info",
                                                  {"organizations": [org_id]}))] == [org_id]

    # LiteLLM's verb is PATCH; POST works too. Only the fields sent change.
    patched = ok(call(gw, "PATCH", "/organization/update", {"organization_id": org_id, "models": ["m", "other"]}))
    assert patched["models"] == ["m", "other"] and patched["max_budget"] == 10
    posted = ok(call(gw, "POST", "/organization/update", {"organization_id": org_id, "organization_alias": "acme2"}))
    assert posted["organization_alias"] == "acme2" and posted["models"] == ["m", "other"]
    (updated, _) = audit_events(gw, 2, table_name="LiteLLM_OrganizationTable", action="updated")
    assert updated["before_value"]["models"] == ["m"] and updated["updated_values"] == {"models": ["m", "other"]}

    # errors
    assert error(call(gw, "GET", "/organization/info", organization_id="nope"), 404)["message"] == \
        "Organization not found for organization_id=nope"
    assert error(call(gw, "GET", "/organization/info"), 400)["param"] == "organization_id"
    assert error(call(gw, "PATCH", "/organization/update", {"organization_id": "nope"}), 404)["type"] == \
        "not_found_error"
    dup = error(call(gw, "POST", "/organization/new", {"organization_id": org_id}), 400)
    assert dup["param"] == "organization_id" and "already exists" in dup["message"]
    assert error(call(gw, "POST", "/organization/new", {"budget_id": "missing"}), 400)["param"] == "budget_id"
    assert error(call(gw, "POST", "/organization/new", {"max_budget": "lots"}), 400)["param"] == "max_budget"
    assert error(call(gw, "POST", "/organization/new", {"budget_duration": "ever"}), 400)["param"] == \
        "budget_duration"


def test_organization_with_a_budget_id_shows_and_enforces_that_budget(gw):
    ok(call(gw, "POST", "/budget/new", {"budget_id": "org-budget", "max_budget": 0.01}))
    org = ok(call(gw, "POST", "/organization/new", {"organization_id": "o-b", "budget_id": "org-budget"}))
    assert org["budget_id"] == "org-budget" and org["litellm_budget_table"]["max_budget"] == 0.01
    ok(call(gw, "POST", "/team/new", {"team_id": "t-b", "organization_id": "o-b"}))
    key = ok(call(gw, "POST", "/key/generate", {"team_id": "t-b"}))["key"]
    chat(gw, key)
    chat(gw, key)  # 0.007 spent, below 0.01: admitted
    with pytest.raises(openai.RateLimitError) as err:
        chat(gw, key)
    assert err.value.status_code == 429 and err.value.body["type"] == "budget_exceeded"
    assert err.value.body["message"] == "Budget has been exceeded! Current cost: 0.014, Max budget: 0.01"


def test_organization_members_add_update_delete(gw):
    ok(call(gw, "POST", "/organization/new", {"organization_id": "o-m"}))
    ok(call(gw, "POST", "/user/new", {"user_id": "known", "user_email": "known@example.com", "auto_create_key": False}))
    added = ok(call(gw, "POST", "/organization/member_add", {"organization_id": "o-m", "member": [
        {"role": "org_admin", "user_email": "known@example.com"},
        {"role": "internal_user", "user_email": "fresh@example.com"},
        {"role": "internal_user_viewer", "user_id": "by-id"}]}))
    assert added["organization_id"] == "o-m"
    ids = [m["user_id"] for m in added["updated_organization_memberships"]]
    assert ids[0] == "known" and len(ids) == 3 and "by-id" in ids
    fresh = next(u for u in added["updated_users"] if u["user_email"] == "fresh@example.com")
    assert fresh["user_role"] == "internal_user"  # created for an e-mail no user had
    roles = {m["user_id"]: m["user_role"] for m in added["updated_organization_memberships"]}
    assert roles == {"known": "org_admin", fresh["user_id"]: "internal_user", "by-id": "internal_user_viewer"}
    assert len(audit_events(gw, 3, table_name="LiteLLM_OrganizationMembership", action="created")) == 3

    dup = error(call(gw, "POST", "/organization/member_add", {"organization_id": "o-m",
                                                              "member": {"role": "internal_user", "user_id": "known"}}), 400)
    assert dup["message"] == "User=known is already a member of organization=o-m"
    assert error(call(gw, "POST", "/organization/member_add", {"organization_id": "o-m", "member": {
        "role": "boss", "user_id": "x"}}), 400)["param"].startswith("member")
    assert error(call(gw, "POST", "/organization/member_add", {"organization_id": "nope", "member": {
        "user_id": "x"}}), 404)["message"] == "Organization not found for organization_id=nope"

    updated = ok(call(gw, "PATCH", "/organization/member_update", {
        "organization_id": "o-m", "user_email": "known@example.com", "role": "internal_user",
        "max_budget_in_organization": 5}))
    assert updated["user_role"] == "internal_user" and updated["litellm_budget_table"]["max_budget"] == 5
    (event,) = audit_events(gw, 1, table_name="LiteLLM_OrganizationMembership", action="updated")
    assert event["before_value"]["user_role"] == "org_admin" and event["updated_values"]["user_role"] == "internal_user"
    info = ok(call(gw, "GET", "/organization/info", organization_id="o-m"))
    assert {m["user_id"] for m in info["members"]} == set(ids)

    gone = ok(call(gw, "DELETE", "/organization/member_delete", {"organization_id": "o-m", "user_id": "by-id"}))
    assert gone["user_id"] == "by-id"
    missing = error(call(gw, "DELETE", "/organization/member_delete", {"organization_id": "o-m", "user_id": "by-id"}),
                    404)
    assert missing["message"] == "Member not found in organization for user_id=by-id"
    assert error(call(gw, "POST", "/organization/member_update", {"organization_id": "o-m"}), 400)["param"] == \
        "user_id"
    assert len(ok(call(gw, "GET", "/organization/info", organization_id="o-m"))["members"]) == 2


def test_teams_in_an_organization_are_bound_by_its_models_and_budget(gw):
    ok(call(gw, "POST", "/organization/new", {"organization_id": "o-t", "models": ["m"], "max_budget": 5}))
    team = ok(call(gw, "POST", "/team/new", {"team_id": "t-in", "organization_id": "o-t", "models": ["m"]}))
    assert team["organization_id"] == "o-t"
    bad_model = error(call(gw, "POST", "/team/new", {"organization_id": "o-t", "models": ["other"]}), 400)
    assert bad_model["param"] == "models"
    assert bad_model["message"] == "Model=other not in the organization's allowed models=['m']. Organization id=o-t"
    assert error(call(gw, "POST", "/team/new", {"organization_id": "o-t", "max_budget": 6}), 400)["param"] == \
        "max_budget"
    missing = error(call(gw, "POST", "/team/new", {"organization_id": "ghost"}), 400)
    assert missing["param"] == "organization_id" and "ghost" in missing["message"]
    assert error(call(gw, "POST", "/team/update", {"team_id": "t-in", "models": ["other"]}), 400)["param"] == "models"
    ok(call(gw, "POST", "/team/new", {"team_id": "t-out"}))
    moved = ok(call(gw, "POST", "/team/update", {"team_id": "t-out", "organization_id": "o-t"}))
    assert moved["data"]["organization_id"] == "o-t"
    assert ok(call(gw, "GET", "/team/info", team_id="t-out"))["team_info"]["organization_id"] == "o-t"
    info = ok(call(gw, "GET", "/organization/info", organization_id="o-t"))
    assert [t["team_id"] for t in info["teams"]] == ["t-in", "t-out"]


def test_organization_models_and_budget_refuse_calls_and_spend_rows_name_the_org(gw):
    ok(call(gw, "POST", "/organization/new", {"organization_id": "o-call", "models": ["m"], "max_budget": 0.01}))
    ok(call(gw, "POST", "/team/new", {"team_id": "t-call", "organization_id": "o-call"}))  # no models of its own
    key = ok(call(gw, "POST", "/key/generate", {"team_id": "t-call"}))["key"]
    with pytest.raises(openai.AuthenticationError) as err:
        chat(gw, key, model="other")
    assert err.value.status_code == 401 and err.value.body["message"] == (
        "Authentication Error, API Key not allowed to access model. This token can only access models=['m']. "
        "Tried to access other")
    chat(gw, key)
    chat(gw, key)
    with pytest.raises(openai.RateLimitError) as err:
        chat(gw, key)
    assert err.value.body["message"] == "Budget has been exceeded! Current cost: 0.014, Max budget: 0.01"
    # The spend rows carry the organization, and the organization's spend is written.
    deadline = time.monotonic() + 10
    while True:
        rows = ok(call(gw, "GET", "/spend/logs"))
        org = ok(call(gw, "GET", "/organization/info", organization_id="o-call"))
        if (len([r for r in rows if r["spend"]]) >= 2 and org["spend"] >= 0.014) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert {r["metadata"]["user_api_key_org_id"] for r in rows if r["spend"]} == {"o-call"}
    assert org["spend"] == pytest.approx(0.014)
    # Raising the budget lets the team's keys call again at once.
    ok(call(gw, "PATCH", "/organization/update", {"organization_id": "o-call", "max_budget": 1}))
    assert chat(gw, key).choices[0].message.content


def test_organization_delete_takes_its_teams_and_their_keys(gw):
    ok(call(gw, "POST", "/organization/new", {"organization_id": "o-del"}))
    ok(call(gw, "POST", "/organization/member_add", {"organization_id": "o-del", "member": {"user_id": "u-d"}}))
    ok(call(gw, "POST", "/team/new", {"team_id": "t-del", "organization_id": "o-del"}))
    key = ok(call(gw, "POST", "/key/generate", {"team_id": "t-del"}))["key"]
    chat(gw, key)
    assert error(call(gw, "DELETE", "/organization/delete", {"organization_ids": ["o-del", "nope"]}), 404)["param"] \
        == "organization_ids"
    assert ok(call(gw, "GET", "/organization/info", organization_id="o-del"))  # nothing was deleted
    deleted = ok(call(gw, "DELETE", "/organization/delete", {"organization_ids": ["o-del"]}))
    assert [o["organization_id"] for o in deleted] == ["o-del"] and deleted[0]["teams"][0]["team_id"] == "t-del"
    assert error(call(gw, "GET", "/organization/info", organization_id="o-del"), 404)
    assert error(call(gw, "GET", "/team/info", team_id="t-del"), 404)
    with pytest.raises(openai.AuthenticationError):
        chat(gw, key)
    assert audit_events(gw, 1, table_name="LiteLLM_OrganizationTable", action="deleted")[0]["object_id"] == "o-del"
    assert audit_events(gw, 1, table_name="LiteLLM_TeamTable", action="deleted")[0]["object_id"] == "t-del"
    assert audit_events(gw, 1, table_name="LiteLLM_OrganizationMembership", action="deleted")


def test_only_the_proxy_admin_manages_organizations_and_members_read_their_own(gw):
    ok(call(gw, "POST", "/organization/new", {"organization_id": "o-own"}))
    ok(call(gw, "POST", "/organization/new", {"organization_id": "o-foreign"}))
    ok(call(gw, "POST", "/team/new", {"team_id": "t-own", "organization_id": "o-own"}))
    team_key = ok(call(gw, "POST", "/key/generate", {"team_id": "t-own"}))["key"]
    member = ok(call(gw, "POST", "/user/new", {"user_id": "orgie"}))
    ok(call(gw, "POST", "/organization/member_add", {"organization_id": "o-foreign", "member": {"user_id": "orgie"}}))
    as_team = {"Authorization": f"Bearer {team_key}"}
    as_member = {"Authorization": f"Bearer {member['key']}"}
    assert ok(call(gw, "GET", "/organization/info", headers=as_team, organization_id="o-own"))
    assert ok(call(gw, "GET", "/organization/info", headers=as_member, organization_id="o-foreign"))
    assert error(call(gw, "GET", "/organization/info", headers=as_team, organization_id="o-foreign"), 403)[
        "message"] == "You can only view information about your own organization"
    assert [o["organization_id"] for o in ok(call(gw, "POST", "/organization/info", {"organizations": ["o-own"]},
                                                  headers=as_team))] == ["o-own"]
    assert error(call(gw, "POST", "/organization/info", {"organizations": ["o-own", "o-foreign"]}, headers=as_team),
                 403)["type"] == "auth_error"
    for method, path, body in (("POST", "/organization/new", {}), ("GET", "/organization/list", None),
                               ("PATCH", "/organization/update", {"organization_id": "o-own"}),
                               ("POST", "/organization/member_add", {"organization_id": "o-own",
                                                                     "member": {"user_id": "x"}})):
        err = error(call(gw, method, path, body, headers=as_member), 403)
        assert err["message"] == f"Only proxy admin can access this route. Route={path}"


def test_a_script_written_for_litellms_api(gw):
    """What a LiteLLM user's provisioning script does, unchanged: an organization, a team in it with
    members given by e-mail, an in-team budget, a key per member, calls through the openai SDK."""
    base = gw.url
    with httpx.Client(base_url=base, headers=ADMIN, timeout=10) as admin:
        org = admin.post("/organization/new", json={"organization_alias": "research", "models": ["m"],
                                                    "max_budget": 100}).json()
        team = admin.post("/team/new", json={
            "team_alias": "nlp", "organization_id": org["organization_id"], "models": ["m"],
            "members_with_roles": [{"role": "admin", "user_email": "lead@example.com"},
                                   {"role": "user", "user_email": "intern@example.com"}]}).json()
        emails = {m.get("user_email"): m["user_id"] for m in team["members_with_roles"]}
        intern = emails["intern@example.com"]
        r = admin.post("/team/member_update", json={"team_id": team["team_id"], "user_email": "intern@example.com",
                                                    "max_budget_in_team": 0.01})
        assert r.status_code == 200 and r.json()["max_budget_in_team"] == 0.01
        keys = {}
        for email, user_id in emails.items():
            if email is None:
                continue
            out = admin.post("/key/generate", json={"team_id": team["team_id"], "user_id": user_id,
                                                    "key_alias": email}).json()
            assert out["token_id"] == out["token"]
            keys[email] = out["key"]
        client = openai.OpenAI(api_key=keys["intern@example.com"], base_url=base + "/v1", max_retries=0)
        for _ in range(2):
            assert client.chat.completions.create(model="m", messages=HI, max_tokens=3).choices[0].message.content
        with pytest.raises(openai.RateLimitError) as err:
            client.chat.completions.create(model="m", messages=HI, max_tokens=3)
        assert err.value.body["message"] == "Budget has been exceeded! Current cost: 0.014, Max budget: 0.01"
        lead = openai.OpenAI(api_key=keys["lead@example.com"], base_url=base + "/v1", max_retries=0)
        assert lead.chat.completions.create(model="m", messages=HI, max_tokens=3).choices
        deadline = time.monotonic() + 10
        while True:
            info = admin.get("/user/info", params={"user_id": intern}).json()
            (membership,) = info["team_memberships"]
            if membership["spend"] >= 0.014 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert membership["team_id"] == team["team_id"] and membership["spend"] == pytest.approx(0.014)
        assert membership["litellm_budget_table"]["max_budget"] == 0.01
        assert info["user_info"]["user_email"] == "intern@example.com"
        org_info = admin.get("/organization/info", params={"organization_id": org["organization_id"]}).json()
        assert [t["team_alias"] for t in org_info["teams"]] == ["nlp"]
