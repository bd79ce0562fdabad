"""Keys and users (issue 15): `/key/generate` answers `token_id`; a key of an `internal_user` creates,
lists and deletes that user's keys and nobody else's (LiteLLM's self-service rules: for themselves,
in teams they belong to, within their own models); `/key/info` of an unknown key is a 404 whoever
asks. Against a real server; the keys made are used through the official `openai` SDK."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

pytestmark = pytest.mark.db

ADMIN = {"Authorization": "Bearer sk-1234"}
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def gw(gateway_server, fake_upstream):
    up = {"api_base": fake_upstream.url, "api_key": "sk-upstream"}
    return gateway_server({
        "model_list": [{"model_name": "m", "litellm_params": {"model": "openai/up", **up}},
                       {"model_name": "other", "litellm_params": {"model": "openai/up2", **up}}],
        "router_settings": {"num_retries": 0},
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


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_generate_answers_token_id_the_hash(gw):
    out = ok(post(gw, "/key/generate", {}))
    assert out["token_id"] == out["token"] and len(out["token_id"]) == 64 and out["key"] not in out["token_id"]
    assert ok(get(gw, "/key/info", key=out["token_id"]))["info"]["token"] == out["token_id"]


def test_an_internal_user_manages_their_own_keys(gw):
    me = ok(post(gw, "/user/new", {"user_id": "me", "user_role": "internal_user"}))
    ok(post(gw, "/user/new", {"user_id": "you", "auto_create_key": False}))
    yours = ok(post(gw, "/key/generate", {"user_id": "you"}))
    ok(post(gw, "/team/new", {"team_id": "t-mine", "members_with_roles": [{"role": "user", "user_id": "me"}]}))
    ok(post(gw, "/team/new", {"team_id": "t-theirs"}))
    mine = bearer(me["key"])

    made = ok(post(gw, "/key/generate", {"key_alias": "laptop"}, headers=mine))
    assert made["user_id"] == "me" and made["token_id"] == made["token"] and made["created_by"] == "me"
    in_team = ok(post(gw, "/key/generate", {"team_id": "t-mine", "user_id": "me"}, headers=mine))
    assert in_team["team_id"] == "t-mine"
    assert gw.client(api_key=made["key"]).chat.completions.create(model="m", messages=HI).choices

    # never for someone else, nor in a team they are not in, nor loosening policy
    other = error(post(gw, "/key/generate", {"user_id": "you"}, headers=mine), 403)
    assert other["message"] == "User can only create keys for themselves. Got user_id=you, Your ID=me"
    assert other["type"] == "auth_error"
    team = error(post(gw, "/key/generate", {"team_id": "t-theirs"}, headers=mine), 403)
    assert team["message"] == "User=me not assigned to team=t-theirs"
    assert error(post(gw, "/key/generate", {"team_id": "ghost"}, headers=mine), 403)["param"] == "team_id"
    assert error(post(gw, "/key/generate", {"permissions": {"hide_secrets": False}}, headers=mine), 403)[
        "message"] == "Only proxy admin can set permissions"

    # listing: their own keys only
    listed = ok(get(gw, "/key/list", headers=mine))
    assert set(listed["keys"]) == {me["token"], made["token"], in_team["token"]} and listed["total_count"] == 3
    assert error(get(gw, "/key/list", headers=mine, user_id="you"), 403)["param"] == "user_id"
    # info: their own user's keys; someone else's is refused; an unknown key is a 404
    assert ok(get(gw, "/key/info", headers=mine, key=made["token"]))["info"]["key_alias"] == "laptop"
    assert error(get(gw, "/key/info", headers=mine, key=yours["token"]), 403)["type"] == "auth_error"
    missing = error(get(gw, "/key/info", headers=mine, key="sk-unknown-unknown-0000"), 404)
    assert missing["message"] == "Key not found: sk-...0000"

    # deleting: their own keys; someone else's is refused and nothing is deleted
    refused = error(post(gw, "/key/delete", {"keys": [made["key"], yours["key"]]}, headers=mine), 403)
    assert refused["message"] == "You can only delete your own keys"
    assert ok(get(gw, "/key/info", key=made["token"]))
    assert ok(post(gw, "/key/delete", {"keys": [made["key"]]}, headers=mine))["deleted_keys"] == [made["key"]]
    with pytest.raises(openai.AuthenticationError):
        gw.client(api_key=made["key"]).chat.completions.create(model="m", messages=HI)
    assert ok(get(gw, "/key/info", key=yours["token"]))  # untouched


def test_an_internal_users_key_stays_within_their_models(gw):
    u = ok(post(gw, "/user/new", {"user_id": "narrow", "models": ["m"]}))
    made = ok(post(gw, "/key/generate", {}, headers=bearer(u["key"])))
    assert made["models"] == ["m"]  # no models asked: the user's
    with pytest.raises(openai.AuthenticationError) as err:
        gw.client(api_key=made["key"]).chat.completions.create(model="other", messages=HI)
    assert err.value.status_code == 401
    wider = error(post(gw, "/key/generate", {"models": ["m", "other"]}, headers=bearer(u["key"])), 403)
    assert wider["param"] == "models" and "other" in wider["message"]


def test_other_roles_and_plain_keys_do_not_self_serve(gw):
    viewer = ok(post(gw, "/user/new", {"user_id": "viewer", "user_role": "internal_user_viewer"}))
    admin_viewer = ok(post(gw, "/user/new", {"user_id": "aviewer", "user_role": "proxy_admin_viewer"}))
    plain = ok(post(gw, "/key/generate", {}))["key"]
    for key in (viewer["key"], admin_viewer["key"], plain):
        for path, body in (("/key/generate", {}), ("/key/delete", {"keys": [plain]})):
            err = error(post(gw, path, body, headers=bearer(key)), 403)
            assert err["message"] == f"Only proxy admin can access this route. Route={path}"
    # a viewer lists their own keys; a proxy_admin_viewer lists every key; a key with no user, none
    assert ok(get(gw, "/key/list", headers=bearer(viewer["key"])))["keys"] == [viewer["token"]]
    assert ok(get(gw, "/key/list", headers=bearer(admin_viewer["key"])))["total_count"] == 3
    assert error(get(gw, "/key/list", headers=bearer(plain)), 403)["message"] == \
        "Only proxy admin can access this route. Route=/key/list"


def test_key_info_of_an_unknown_key_is_a_404_for_any_caller(gw):
    plain = ok(post(gw, "/key/generate", {}))["key"]
    for headers in (ADMIN, bearer(plain)):
        for ref in ("sk-never-issued-abcd", "0" * 64):
            err = error(get(gw, "/key/info", headers=headers, key=ref), 404)
            assert err["type"] == "not_found_error" and err["param"] == "key"
