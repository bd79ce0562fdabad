"""Virtual keys over HTTP against a real server: their whole life, as users see it."""

from __future__ import annotations

import hashlib
import time

import httpx
import openai
import pytest

pytestmark = pytest.mark.db

ADMIN = {"Authorization": "Bearer sk-1234"}
CONFIG = {
    "model_list": [
        {"model_name": "m", "litellm_params": {"model": "fake/m"}},
        {"model_name": "other", "litellm_params": {"model": "fake/other"}},
    ],
    "general_settings": {"budget_reset_interval_s": 0.2},
}
HI = [{"role": "user", "content": "hi"}]


def post(gw, path, body, headers=ADMIN):
    return httpx.post(gw.url + path, json=body, headers=headers, timeout=10)


def generate(gw, **body):
    r = post(gw, "/key/generate", body)
    assert r.status_code == 200, r.text
    return r.json()


def chat(gw, key, model="m", **kw):
    return gw.client(api_key=key).chat.completions.create(model=model, messages=HI, **kw)


def spend_recorded(gw, key, timeout=5.0):
    """Wait until the spend writer has added a call's cost to the key (it writes in batches)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = httpx.get(gw.url + "/key/info", params={"key": key}, headers=ADMIN).json()["info"]
        if info["spend"] > 0:
            return
        time.sleep(0.05)
    raise AssertionError("the call's spend was never added to the key")


@pytest.fixture
def gw(gateway_server):
    return gateway_server(CONFIG)


def test_generate_returns_the_raw_key_once_and_stores_only_its_hash(gw):
    out = generate(gw, key_alias="svc-a", models=["m"], metadata={"tags": ["t1"]}, max_budget=5)
    raw = out["key"]
    assert raw.startswith("sk-") and len(raw) >= 25
    assert out["token"] == hashlib.sha256(raw.encode()).hexdigest()
    assert out["key_name"] == "sk-..." + raw[-4:]
    assert out["key_alias"] == "svc-a" and out["models"] == ["m"] and out["max_budget"] == 5
    assert out["expires"] is None and out["created_at"]
    info = httpx.get(gw.url + "/key/info", params={"key": raw}, headers=ADMIN).json()
    assert info["key"] == raw
    assert raw not in str(info["info"])
    assert info["info"]["token"] == out["token"]
    by_hash = httpx.get(gw.url + "/key/info", params={"key": out["token"]}, headers=ADMIN).json()
    assert by_hash["info"] == info["info"]


def test_seed_permissions_example(gw):
    out = generate(gw, permissions={"hide_secrets": False})
    assert out["permissions"] == {"hide_secrets": False}
    assert out["key"].startswith("sk-")


@pytest.mark.parametrize("header", ["authorization", "api-key", "x-api-key"])
def test_every_header_form_authenticates(gw, header):
    raw = generate(gw)["key"]
    value = f"Bearer {raw}" if header == "authorization" else raw
    r = httpx.post(gw.url + "/v1/chat/completions", headers={header: value}, json={"model": "m", "messages": HI})
    assert r.status_code == 200, r.text


def test_model_restriction(gw):
    raw = generate(gw, models=["m"])["key"]
    assert chat(gw, raw).choices[0].message.content
    with pytest.raises(openai.AuthenticationError) as err:
        chat(gw, raw, model="other")
    assert err.value.body["message"] == (
        "Authentication Error, API Key not allowed to access model. "
        "This token can only access models=['m']. Tried to access other")
    assert [m.id for m in gw.client(api_key=raw).models.list()] == ["m"]


def test_block_unblock_delete(gw):
    raw = generate(gw)["key"]
    chat(gw, raw)
    assert post(gw, "/key/block", {"key": raw}).json()["blocked"] is True
    with pytest.raises(openai.AuthenticationError) as err:
        chat(gw, raw)
    assert err.value.body["message"] == "Authentication Error, Key is blocked."
    assert post(gw, "/key/unblock", {"key": raw}).json()["blocked"] is False
    chat(gw, raw)
    r = post(gw, "/key/delete", {"keys": [raw]})
    assert r.json() == {"deleted_keys": [raw]}
    with pytest.raises(openai.AuthenticationError) as err:
        chat(gw, raw)
    assert err.value.body["message"] == "Authentication Error, Invalid proxy server token passed"
    missing = post(gw, "/key/delete", {"keys": [raw]})
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == f"Key not found: sk-...{raw[-4:]}"


def test_expiry(gw):
    raw = generate(gw, duration="1s")["key"]
    chat(gw, raw)
    time.sleep(1.2)
    r = httpx.post(gw.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {raw}"},
                   json={"model": "m", "messages": HI})
    assert r.status_code == 401
    err = r.json()["error"]
    assert err["type"] == "expired_key"
    assert err["message"].startswith("Authentication Error - Expired Key. Key Expiry time ")
    assert " and current time " in err["message"]


def test_budget_crossed_gives_429_and_spend_reset_reopens(gw):
    raw = generate(gw, max_budget=1.0)["key"]
    chat(gw, raw)
    spend_recorded(gw, raw)  # else the call's cost may land on top of the spend set below
    post(gw, "/key/update", {"key": raw, "spend": 1.5})
    with pytest.raises(openai.RateLimitError) as err:
        chat(gw, raw)
    assert err.value.status_code == 429
    assert err.value.body["type"] == "budget_exceeded"
    assert err.value.body["message"] == "Budget has been exceeded! Current cost: 1.5, Max budget: 1.0"
    post(gw, "/key/update", {"key": raw, "spend": 0})
    chat(gw, raw)


def test_budget_duration_resets_spend(gw):
    raw = generate(gw, max_budget=1.0, budget_duration="1s")["key"]
    post(gw, "/key/update", {"key": raw, "spend": 2.0})
    with pytest.raises(openai.RateLimitError):
        chat(gw, raw)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        info = httpx.get(gw.url + "/key/info", params={"key": raw}, headers=ADMIN).json()["info"]
        if info["spend"] == 0:
            break
        time.sleep(0.1)
    assert info["spend"] == 0
    chat(gw, raw)


def test_update_changes_only_the_fields_sent(gw):
    out = generate(gw, key_alias="keep-me", models=["m"], max_budget=3)
    r = post(gw, "/key/update", {"key": out["key"], "max_budget": 7})
    assert r.status_code == 200
    updated = r.json()
    assert updated["max_budget"] == 7 and updated["key_alias"] == "keep-me" and updated["models"] == ["m"]


def test_regenerate_invalidates_the_old_key_at_once(gw):
    out = generate(gw, key_alias="rot", models=["m"])
    chat(gw, out["key"])
    r = post(gw, "/key/regenerate", {"key": out["key"]})
    assert r.status_code == 200
    new = r.json()
    assert new["key"] != out["key"] and new["key_alias"] == "rot" and new["models"] == ["m"]
    with pytest.raises(openai.AuthenticationError):
        chat(gw, out["key"])
    chat(gw, new["key"])


def test_bad_input_names_the_field(gw):
    for body, param in (({"models": "m"}, "models"), ({"max_budget": "lots"}, "max_budget"),
                        ({"duration": "forever"}, "duration"), ({"metadata": {"tags": "x"}}, "metadata.tags")):
        r = post(gw, "/key/generate", body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"]["param"] == param
    r = httpx.post(gw.url + "/key/generate", content=b"{nope", headers=ADMIN)
    assert r.status_code == 400 and r.json()["error"]["type"] == "bad_request_error"
    assert post(gw, "/key/update", {"max_budget": 1}).json()["error"]["param"] == "key"
    assert post(gw, "/key/update", {"key": "sk-doesnotexist00000"}).status_code == 404


def test_duplicate_alias_is_refused(gw):
    generate(gw, key_alias="dup")
    r = post(gw, "/key/generate", {"key_alias": "dup"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "key_alias"


def test_a_plain_key_is_not_admin(gw):
    raw = generate(gw)["key"]
    r = post(gw, "/key/generate", {}, headers={"Authorization": f"Bearer {raw}"})
    assert r.status_code == 403
    assert r.json()["error"]["message"] == "Only proxy admin can access this route. Route=/key/generate"
    own = httpx.get(gw.url + "/key/info", headers={"Authorization": f"Bearer {raw}"})
    assert own.status_code == 200 and own.json()["info"]["key_name"] == "sk-..." + raw[-4:]


def test_list_paginates(gw):
    tokens = {generate(gw)["token"] for _ in range(5)}
    page1 = httpx.get(gw.url + "/key/list", params={"page": 1, "size": 3}, headers=ADMIN).json()
    page2 = httpx.get(gw.url + "/key/list", params={"page": 2, "size": 3}, headers=ADMIN).json()
    assert page1["total_count"] == 5 and page1["total_pages"] == 2
    assert set(page1["keys"]) | set(page2["keys"]) == tokens


def test_keys_survive_a_restart(gateway_server, database_url):
    url = database_url()
    first = gateway_server(CONFIG, env={"DATABASE_URL": url})
    raw = generate(first, models=["m"])["key"]
    first.stop()
    second = gateway_server(CONFIG, env={"DATABASE_URL": url})
    assert chat(second, raw).choices
