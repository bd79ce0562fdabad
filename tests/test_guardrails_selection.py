"""Which guardrails run for a request (issue 12): `default_on`, then the team's, the key's, then the
request's choice (`"guardrails": [...]` in the body, `metadata.guardrails` as a list or a mapping),
and the bar on switching guardrails off (`modify_guardrails: false` on a key or a team). Keys and
teams are made through /key/generate and /team/new, as users make them."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
import pytest

pytestmark = pytest.mark.db  # keys, teams and spend rows: runs on PostgreSQL too

MODEL = "gpt-test"
ADMIN = {"Authorization": "Bearer sk-1234"}
ALPHA = "a question about alpha"  # blocked by "always" (default_on)
BETA = "a question about beta"  # blocked by "optional" (off unless asked for)
GAMMA = "a question about gamma"  # blocked by "extra" (off unless asked for)


def guardrail(name: str, plugin: str, default_on: bool, **params: Any) -> dict[str, Any]:
    return {"guardrail_name": name,
            "litellm_params": {"guardrail": plugin, "mode": "pre_call", "default_on": default_on, **params}}


@pytest.fixture
def gw(gateway_server, fake_upstream):
    return gateway_server({
        "model_list": [{"model_name": MODEL, "litellm_params": {
            "model": "openai/upstream-model", "api_base": fake_upstream.url, "api_key": "sk-upstream"}}],
        "router_settings": {"num_retries": 0},
        "general_settings": {"spend_flush_interval_s": 0.05},
        "guardrails": [
            guardrail("always", "probe_block", True, word="alpha", probe_block_message="Blocked by always"),
            guardrail("optional", "probe_block", False, word="beta", probe_block_message="Blocked by optional"),
            guardrail("extra", "probe_guard_a", False, word="gamma", seconds=0.01),
        ],
    })


def chat(gw: Any, text: str, key: str = "sk-1234", **extra: Any) -> httpx.Response:
    return httpx.post(gw.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, timeout=30,
                      json={"model": MODEL, "messages": [{"role": "user", "content": text}], **extra})


def post(gw: Any, path: str, body: dict[str, Any], status: int = 200) -> Any:
    r = httpx.post(gw.url + path, headers=ADMIN, json=body, timeout=10)
    assert r.status_code == status, r.text
    return r.json()


def applied(resp: httpx.Response) -> list[str]:
    value = resp.headers.get("x-gateway-guardrails")
    return value.split(",") if value else []


def runs(gw: Any, key: str = "sk-1234", **extra: Any) -> set[str]:
    """Which of the three guardrails run for requests made with `key` and `extra`: each is probed
    with the text that only it blocks (the blocked text never reaches the upstream)."""
    out = set()
    for name, text in (("always", ALPHA), ("optional", BETA), ("extra", GAMMA)):
        r = chat(gw, text, key, **extra)
        if r.status_code == 400 and r.json()["error"]["message"] in (
                f"Blocked by {name}. Keyword={name_word(name)}", f"Violated content safety policy. Guard={name}"):
            out.add(name)
        else:
            assert r.status_code == 200, r.text
    return out


def name_word(name: str) -> str:
    return {"always": "alpha", "optional": "beta", "extra": "gamma"}[name]


def spend_row(gw: Any, request_id: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        rows = [r for r in httpx.get(gw.url + "/spend/logs", headers=ADMIN, timeout=10).json()
                if request_id in (r["request_id"], r["metadata"].get("gateway_request_id"))]
        if rows:
            assert len(rows) == 1, rows
            return rows[0]
        assert time.monotonic() < deadline, f"no spend row for request {request_id} within {timeout} s"
        time.sleep(0.03)


def new_key(gw: Any, **fields: Any) -> str:
    return post(gw, "/key/generate", fields)["key"]


# -- default_on and the request's choice -----------------------------------------------------------


def test_default_on_runs_unless_the_request_chooses_otherwise(gw):
    assert runs(gw) == {"always"}
    r = chat(gw, "hello")
    assert applied(r) == ["always"]
    assert [(e["name"], e["verdict"]) for e in spend_row(gw, r.headers["x-request-id"])["metadata"]["guardrails"]] == [
        ("always", "pass")]


@pytest.mark.parametrize("extra, expected", [
    ({"guardrails": ["optional"]}, {"always", "optional"}),  # top-level list: switched on
    ({"guardrails": ["optional", "extra"]}, {"always", "optional", "extra"}),
    ({"metadata": {"guardrails": ["extra"]}}, {"always", "extra"}),  # metadata list: switched on
    ({"metadata": {"guardrails": {"optional": True}}}, {"always", "optional"}),  # mapping: on ...
    ({"metadata": {"guardrails": {"always": False}}}, set()),  # ... and off
    ({"metadata": {"guardrails": {"always": False, "extra": True}}}, {"extra"}),
    ({"guardrails": ["optional"], "metadata": {"guardrails": {"always": False}}}, {"optional"}),
    ({"guardrails": []}, {"always"}),  # an empty list asks for nothing more
])
def test_the_request_switches_guardrails_on_and_off(gw, extra, expected):
    assert runs(gw, **extra) == expected


def test_the_request_switches_through_the_openai_sdk(gw, fake_upstream):
    client = gw.client()
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "hello"}],
        extra_body={"guardrails": ["optional"], "metadata": {"guardrails": {"extra": True}}})
    assert raw.parse().choices[0].message.content == "upstream says: hello"
    assert sorted(applied(raw)) == ["always", "extra", "optional"]
    sent = fake_upstream.requests[-1].json
    assert "guardrails" not in sent and "metadata" not in sent  # gateway fields never go upstream
    row = spend_row(gw, raw.headers["x-request-id"])
    assert {(e["name"], e["phase"], e["verdict"]) for e in row["metadata"]["guardrails"]} == {
        ("always", "pre_call", "pass"), ("optional", "pre_call", "pass"), ("extra", "pre_call", "pass")}
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": GAMMA}],
                                       extra_body={"guardrails": ["extra"]})
    assert err.value.body["message"] == "Violated content safety policy. Guard=extra"


@pytest.mark.parametrize("extra, param", [
    ({"guardrails": ["nope"]}, "guardrails"),
    ({"guardrails": ["optional", "nope"]}, "guardrails"),
    ({"guardrails": "optional"}, "guardrails"),
    ({"guardrails": [1]}, "guardrails"),
    ({"metadata": {"guardrails": ["nope"]}}, "metadata.guardrails"),
    ({"metadata": {"guardrails": {"nope": True}}}, "metadata.guardrails"),
    ({"metadata": {"guardrails": "optional"}}, "metadata.guardrails"),
])
def test_unknown_or_malformed_guardrails_in_a_request_are_a_400(gw, fake_upstream, extra, param):
    r = chat(gw, "hello", **extra)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == param, error
    assert error["type"] == "bad_request_error"
    assert fake_upstream.requests == []
    if "nope" in str(extra):
        assert "nope" in error["message"] and "always, optional, extra" in error["message"], error


def test_a_request_naming_guardrails_on_a_gateway_without_any_is_a_400(gateway_server, fake_upstream):
    gw = gateway_server({"model_list": [{"model_name": MODEL, "litellm_params": {
        "model": "openai/upstream-model", "api_base": fake_upstream.url, "api_key": "sk-upstream"}}]})
    r = chat(gw, "hello", guardrails=["pii"])
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "guardrails"
    assert chat(gw, "hello").status_code == 200


# -- per key ------------------------------------------------------------------------------------------


def test_a_key_created_with_guardrails_runs_them(gw):
    key = new_key(gw, guardrails=["optional"])
    info = httpx.get(gw.url + "/key/info", params={"key": key}, headers=ADMIN, timeout=10).json()
    assert info["info"]["metadata"]["guardrails"] == ["optional"]
    assert runs(gw, key) == {"always", "optional"}
    assert runs(gw) == {"always"}  # the master key is not that key
    # The request may still add one, and (no bar on this key) switch one off.
    assert runs(gw, key, guardrails=["extra"]) == {"always", "optional", "extra"}
    assert runs(gw, key, metadata={"guardrails": {"optional": False}}) == {"always"}
    r = chat(gw, "hello", key)
    assert applied(r) == ["always", "optional"]


def test_key_update_changes_a_keys_guardrails_at_once(gw):
    key = new_key(gw)
    assert runs(gw, key) == {"always"}
    post(gw, "/key/update", {"key": key, "guardrails": ["extra"]})
    assert runs(gw, key) == {"always", "extra"}
    post(gw, "/key/update", {"key": key, "metadata": {"guardrails": {"always": False}}})
    assert runs(gw, key) == set()
    post(gw, "/key/update", {"key": key, "guardrails": None})
    assert runs(gw, key) == {"always"}


def test_key_permissions_switch_guardrails_the_older_way(gw):
    key = new_key(gw, permissions={"optional": True, "always": False})
    assert runs(gw, key) == {"optional"}


@pytest.mark.parametrize("path, body", [
    ("/key/generate", {"guardrails": ["nope"]}),
    ("/key/generate", {"metadata": {"guardrails": ["nope"]}}),
    ("/key/generate", {"metadata": {"guardrails": {"optional": "yes"}}}),
    ("/key/generate", {"guardrails": "optional"}),
    ("/team/new", {"guardrails": ["nope"]}),
    ("/team/new", {"metadata": {"guardrails": ["nope"]}}),
])
def test_management_calls_refuse_unknown_guardrails(gw, path, body):
    r = httpx.post(gw.url + path, headers=ADMIN, json=body, timeout=10)
    assert r.status_code in (400, 422), r.text
    if "nope" in str(body):
        assert "nope" in r.json()["error"]["message"], r.text


def test_key_update_and_team_update_refuse_unknown_guardrails(gw):
    key = new_key(gw)
    team = post(gw, "/team/new", {"team_alias": "t"})["team_id"]
    for path, body in (("/key/update", {"key": key, "guardrails": ["nope"]}),
                       ("/team/update", {"team_id": team, "guardrails": ["nope"]}),
                       ("/team/update", {"team_id": team, "metadata": {"guardrails": ["nope"]}})):
        r = httpx.post(gw.url + path, headers=ADMIN, json=body, timeout=10)
        assert r.status_code == 400, (path, r.text)
        assert "nope" in r.json()["error"]["message"]
    assert runs(gw, key) == {"always"}


# -- per team -----------------------------------------------------------------------------------------


def test_a_team_created_with_guardrails_runs_them_for_its_keys(gw):
    team = post(gw, "/team/new", {"team_alias": "safety", "guardrails": ["extra"]})["team_id"]
    info = httpx.get(gw.url + "/team/info", params={"team_id": team}, headers=ADMIN, timeout=10).json()
    assert info["team_info"]["metadata"]["guardrails"] == ["extra"]
    key = new_key(gw, team_id=team)
    assert runs(gw, key) == {"always", "extra"}
    # The key's choice comes after the team's, and the request's after both.
    both = new_key(gw, team_id=team, guardrails=["optional"])
    assert runs(gw, both) == {"always", "optional", "extra"}
    off = new_key(gw, team_id=team, metadata={"guardrails": {"extra": False}})
    assert runs(gw, off) == {"always"}
    assert runs(gw, off, guardrails=["extra"]) == {"always", "extra"}
    # /team/update applies to the team's keys at once.
    post(gw, "/team/update", {"team_id": team, "guardrails": ["optional"]})
    assert runs(gw, key) == {"always", "optional"}


# -- the bar on switching guardrails off -------------------------------------------------------------


def test_a_key_barred_from_modifying_guardrails_cannot_switch_one_off(gw):
    key = new_key(gw, permissions={"modify_guardrails": False})
    r = chat(gw, ALPHA, key, metadata={"guardrails": {"always": False}})
    assert r.status_code == 403, r.text
    assert r.json()["error"]["message"] == "Your key does not have permission to modify guardrails."
    # The request cannot lift the bar itself.
    r = chat(gw, ALPHA, key, metadata={"guardrails": {"modify_guardrails": True, "always": False}})
    assert r.status_code == 403, r.text
    # Switching one on is not modifying what protects the key: allowed.
    assert runs(gw, key, guardrails=["optional"]) == {"always", "optional"}
    assert runs(gw, key, metadata={"guardrails": {"extra": True}}) == {"always", "extra"}
    # Naming an off guardrail as off changes nothing: not refused.
    assert runs(gw, key, metadata={"guardrails": {"optional": False}}) == {"always"}
    # The same request with a key that is not barred switches it off.
    free = new_key(gw)
    assert runs(gw, free, metadata={"guardrails": {"always": False}}) == set()


def test_a_key_barred_cannot_switch_off_the_guardrails_it_was_given(gw):
    key = new_key(gw, guardrails=["optional"], permissions={"modify_guardrails": False})
    r = chat(gw, BETA, key, metadata={"guardrails": {"optional": False}})
    assert r.status_code == 403, r.text
    assert r.json()["error"]["message"] == "Your key does not have permission to modify guardrails."


def test_a_team_barred_from_modifying_guardrails_bars_its_keys(gw):
    team = post(gw, "/team/new", {"team_alias": "locked",
                                  "metadata": {"guardrails": {"modify_guardrails": False}}})["team_id"]
    key = new_key(gw, team_id=team)
    r = chat(gw, ALPHA, key, metadata={"guardrails": {"always": False}})
    assert r.status_code == 403, r.text
    assert r.json()["error"]["message"] == "Your team does not have permission to modify guardrails."
    assert runs(gw, key) == {"always"}
    assert runs(gw, key, guardrails=["extra"]) == {"always", "extra"}


def test_a_team_with_guardrails_and_the_bar_keeps_both(gw):
    """`guardrails: [...]` and `metadata.guardrails.modify_guardrails: false` on one /team/new: the
    team runs its guardrails, and its keys may not switch them off."""
    team = post(gw, "/team/new", {"team_alias": "strict", "guardrails": ["optional"],
                                  "metadata": {"guardrails": {"modify_guardrails": False}}})["team_id"]
    key = new_key(gw, team_id=team)
    assert runs(gw, key) == {"always", "optional"}
    r = chat(gw, BETA, key, metadata={"guardrails": {"optional": False}})
    assert r.status_code == 403, r.text
    assert r.json()["error"]["message"] == "Your team does not have permission to modify guardrails."
