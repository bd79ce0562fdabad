"""Models added at runtime (`/model/new|update|delete`, `store_model_in_db: true`) and the model
info routes, against real servers: each route's answers and errors, credentials never shown,
logged, audited or stored in clear, a model added on one instance served by a second one without a
restart, `/v1/models` scoped to the key and its team, and the model-access check answered before
the model-existence check. Marked `db`: the suite runs again on PostgreSQL with
GATEWAY_TEST_DATABASE_URL set."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
import openai
import pytest

pytestmark = pytest.mark.db

ADMIN = {"Authorization": "Bearer sk-1234"}
HI = [{"role": "user", "content": "hi"}]
SECRET = "sk-upstream-secret-7f3a9c41d2"
CONFIG_MODELS = [{"model_name": "cfg", "litellm_params": {"model": "fake/cfg"}, "model_info": {"id": "cfg-1"}}]


def config(store: bool = True, models: list[dict[str, Any]] = CONFIG_MODELS) -> dict[str, Any]:
    return {"model_list": models, "litellm_settings": {"store_audit_logs": True},
            "general_settings": {"store_model_in_db": store}}


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


def until(check: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)
    return result


def listed(gw: Any, key: str = "sk-1234", **params: Any) -> list[str]:
    return [m["id"] for m in ok(get(gw, "/v1/models", {"Authorization": f"Bearer {key}"}, **params))["data"]]


def chat(gw: Any, model: str, key: str = "sk-1234") -> httpx.Response:
    return post(gw, "/v1/chat/completions", {"model": model, "messages": HI}, {"Authorization": f"Bearer {key}"})


def new_key(gw: Any, **body: Any) -> str:
    return ok(post(gw, "/key/generate", body))["key"]


def audit_rows(gw: Any, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 5
    while True:
        rows = ok(get(gw, "/audit", page_size=1000, table_name="LiteLLM_ProxyModelTable"))["audit_logs"][::-1]
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def stored_params(gw: Any, model_id: str) -> str:
    """The `litellm_params` column as the database holds it (read on the server's own loop)."""
    from gateway.core.db.models import ProxyModel

    async def read() -> str:
        return (await ProxyModel.get(model_id=model_id)).litellm_params

    return asyncio.run_coroutine_threadsafe(read(), gw._thread.loop).result(10)


def runtime_model(upstream: Any, **info: Any) -> dict[str, Any]:
    return {"model_name": "runtime", "litellm_params": {"model": "openai/gpt-4o", "api_base": upstream.url,
                                                        "api_key": SECRET},
            "model_info": {"id": "rt-1", **info}}


def test_model_routes_need_store_model_in_db_and_an_admin(gateway_server, fake_upstream):
    gw = gateway_server(config(store=False))
    err = error(post(gw, "/model/new", runtime_model(fake_upstream)), 400)
    assert "STORE_MODEL_IN_DB" in err["message"] and "store_model_in_db" in err["message"]
    assert SECRET not in err["message"]
    key = new_key(gw)
    err = error(post(gw, "/model/new", runtime_model(fake_upstream), {"Authorization": f"Bearer {key}"}), 403)
    assert err["message"] == "Only proxy admin can access this route. Route=/model/new"
    err = error(post(gw, "/model/delete", {"id": "cfg-1"}), 400)  # a config model: never through the API
    assert "config file" in err["message"]
    assert [d["model_info"]["id"] for d in ok(get(gw, "/model/info"))["data"]] == ["cfg-1"]


def test_add_call_update_and_delete_a_model_without_leaking_its_key(gateway_server, fake_upstream, caplog):
    caplog.set_level(logging.DEBUG)
    gw = gateway_server(config())
    created = ok(post(gw, "/model/new", runtime_model(fake_upstream, mode="chat")))
    assert created["model_id"] == "rt-1" and created["model_name"] == "runtime"
    assert created["litellm_params"] == {"model": "openai/gpt-4o", "api_base": fake_upstream.url}
    assert created["model_info"]["db_model"] is True and created["created_by"]
    # Served at once, with the stored key sent upstream.
    reply = gw.client().chat.completions.create(model="runtime", messages=HI)
    assert reply.choices[0].message.content == "upstream says: hi"
    assert fake_upstream.requests[-1].headers["authorization"] == f"Bearer {SECRET}"
    assert "runtime" in listed(gw)
    # Described without the key; db_model tells it from the config's.
    info = ok(get(gw, "/model/info", litellm_model_id="rt-1"))["data"]
    assert len(info) == 1 and info[0]["model_name"] == "runtime"
    assert info[0]["model_info"]["db_model"] is True and info[0]["model_info"]["mode"] == "chat"
    assert info[0]["litellm_params"] == {"model": "openai/gpt-4o", "api_base": fake_upstream.url}
    assert ok(get(gw, "/model/info", litellm_model_id="cfg-1"))["data"][0]["model_info"]["db_model"] is False
    err = error(get(gw, "/model/info", litellm_model_id="nope"), 400)
    assert err["message"] == "Model id = nope not found on litellm proxy"
    page = ok(get(gw, "/v2/model/info", size=1, page=2, sortBy="model_name"))
    assert (page["total_count"], page["current_page"], page["total_pages"], page["size"]) == (2, 2, 2, 1)
    assert [d["model_name"] for d in page["data"]] == ["runtime"]
    assert [d["model_name"] for d in ok(get(gw, "/v2/model/info", search="RUN"))["data"]] == ["runtime"]
    error(get(gw, "/v2/model/info", sortBy="price"), 400)
    groups = {e["model_group"]: e for e in ok(get(gw, "/model_group/info"))["data"]}
    assert groups["runtime"]["providers"] == ["openai"] and groups["runtime"]["model_ids"] == ["rt-1"]
    # Stored encrypted.
    column = stored_params(gw, "rt-1")
    assert SECRET not in column and "gateway-enc:v1:" in column
    # Update: only what is sent changes; the key is kept.
    updated = ok(post(gw, "/model/update", {"model_info": {"id": "rt-1", "max_input_tokens": 1000},
                                             "litellm_params": {"temperature": 0.25}}))
    assert updated["litellm_params"]["temperature"] == 0.25 and "api_key" not in updated["litellm_params"]
    assert updated["model_info"]["max_input_tokens"] == 1000
    gw.client().chat.completions.create(model="runtime", messages=HI)
    sent = fake_upstream.requests[-1]
    assert sent.headers["authorization"] == f"Bearer {SECRET}" and sent.json["temperature"] == 0.25
    # Invalid params: a 400 naming the key, nothing stored or served.
    err = error(post(gw, "/model/update", {"model_info": {"id": "rt-1"}, "litellm_params": {"model": "nosuch/x"}}), 400)
    assert err["param"] == "litellm_params.model" and "nosuch" in err["message"]
    bad = {"model_name": "bad", "litellm_params": {"model": "openai/x", "api_base": "ftp://h", "api_key": SECRET}}
    err = error(post(gw, "/model/new", bad), 400)
    assert err["param"] == "litellm_params.api_base" and SECRET not in err["message"]
    err = error(post(gw, "/model/new", {"model_name": "bad", "litellm_params": {"model": "fake/x", "rpm": "lots"}}), 400)
    assert err["param"] == "litellm_params.rpm"
    assert "bad" not in listed(gw)
    error(post(gw, "/model/new", runtime_model(fake_upstream)), 400)  # the id is taken
    error(post(gw, "/model/update", {"litellm_params": {"temperature": 1}}), 400)  # no id
    err = error(post(gw, "/model/update", {"model_info": {"id": "cfg-1"}, "model_name": "x"}), 400)
    assert "config file" in err["message"]
    err = error(post(gw, "/model/delete", {"id": "nope"}), 404)
    assert err["message"] == "Model with id=nope not found in db"
    assert gw.client().chat.completions.create(model="runtime", messages=HI).choices
    # LiteLLM's PATCH form: the id in the path.
    r = httpx.patch(gw.url + "/model/rt-1/update", headers=ADMIN, timeout=10,
                    json={"model_info": {"max_input_tokens": 2000}})
    assert r.status_code == 200 and r.json()["model_info"]["max_input_tokens"] == 2000 and SECRET not in r.text
    assert httpx.patch(gw.url + "/model/nope/update", headers=ADMIN, json={}, timeout=10).status_code == 404
    # Delete: gone at once.
    assert ok(post(gw, "/model/delete", {"id": "rt-1"})) == {"message": "Model: rt-1 deleted successfully"}
    err = error(chat(gw, "runtime"), 400)
    assert err["message"].startswith("Invalid model name passed in model=runtime")
    assert "runtime" not in listed(gw)
    # Audit rows: one per change, LiteLLM's table name, the key shown as *** and never in clear.
    rows = audit_rows(gw, 4)
    assert [(r["action"], r["object_id"]) for r in rows] == [("created", "rt-1"), ("updated", "rt-1"),
                                                             ("updated", "rt-1"), ("deleted", "rt-1")]
    assert rows[0]["updated_values"]["litellm_params"]["api_key"] == "***"
    assert rows[1]["before_value"]["litellm_params"]["api_key"] == "***"
    assert rows[1]["updated_values"]["litellm_params"]["temperature"] == 0.25
    assert rows[2]["updated_values"]["model_info"]["max_input_tokens"] == 2000 and rows[3]["updated_values"] is None
    assert SECRET not in str(rows)
    assert SECRET not in caplog.text


def test_a_model_added_on_one_instance_is_served_by_another_without_restart(
        gateway_server, fake_upstream, redis_url, database_url):
    env = {"DATABASE_URL": database_url(), "REDIS_URL": redis_url}
    first = gateway_server(config(), env=env)
    second = gateway_server(config(), env=env)  # its own process, same database and Redis
    assert second.url != first.url
    error(chat(second, "runtime"), 400)
    ok(post(first, "/model/new", runtime_model(fake_upstream)))
    until(lambda: "runtime" in listed(second))
    reply = second.client().chat.completions.create(model="runtime", messages=HI)
    assert reply.choices[0].message.content == "upstream says: hi"
    assert fake_upstream.requests[-1].headers["authorization"] == f"Bearer {SECRET}"
    ok(post(first, "/model/update", {"model_info": {"id": "rt-1"}, "litellm_params": {"model": "fake/x",
                                                                                       "mock_response": "changed"}}))
    until(lambda: chat(second, "runtime").json().get("choices", [{}])[0].get("message", {}).get("content") == "changed")
    ok(post(first, "/model/delete", {"id": "rt-1"}))
    until(lambda: chat(second, "runtime").status_code == 400)
    assert "runtime" not in listed(second)


MODELS = [{"model_name": n, "litellm_params": {"model": f"fake/{n}"}} for n in ("a", "b")] + [
    {"model_name": "c", "litellm_params": {"model": "fake/c"}, "model_info": {"access_groups": ["grp"]}}]


def test_v1_models_lists_what_the_key_and_its_team_allow(gateway_server):
    gw = gateway_server(config(store=False, models=MODELS))
    team = ok(post(gw, "/team/new", {"models": ["a"]}))["team_id"]
    in_team = new_key(gw, team_id=team)
    wider_key = new_key(gw, team_id=team, models=["a", "b"])
    grouped = new_key(gw, models=["grp"])
    assert listed(gw) == ["a", "b", "c"]
    assert listed(gw, in_team) == ["a"]  # the team allows one model: the key sees that one
    assert listed(gw, wider_key) == ["a"]
    assert listed(gw, grouped) == ["c"]  # an access group stands for its members
    assert [d["model_name"] for d in ok(get(gw, "/model/info", {"Authorization": f"Bearer {in_team}"}))["data"]] == ["a"]
    assert [g["model_group"] for g in ok(get(gw, "/model_group/info",
                                             {"Authorization": f"Bearer {grouped}"}))["data"]] == ["c"]
    assert listed(gw, only_model_access_groups="True") == ["grp"]
    assert listed(gw, grouped, only_model_access_groups="True") == ["grp"]
    assert listed(gw, in_team, only_model_access_groups="True") == []
    assert listed(gw, in_team, only_model_access_groups="False") == ["a"]
    assert chat(gw, "a", in_team).status_code == 200
    err = error(chat(gw, "b", in_team), 401)
    assert "not allowed to access model" in err["message"]


def test_a_barred_key_gets_401_even_for_a_model_that_does_not_exist(gateway_server):
    gw = gateway_server(config(store=False, models=MODELS))
    key = new_key(gw, models=["a"])
    err = error(chat(gw, "no-such-model", key), 401)
    assert err["message"] == ("Authentication Error, API Key not allowed to access model. This token can only "
                              "access models=['a']. Tried to access no-such-model")
    assert err["type"] == "auth_error"
    team = ok(post(gw, "/team/new", {"models": ["b"]}))["team_id"]
    err = error(chat(gw, "no-such-model", new_key(gw, team_id=team)), 401)
    assert "models=['b']" in err["message"]
    # An unrestricted key (and the admin) still learn the name does not exist.
    for k in (new_key(gw), "sk-1234"):
        err = error(chat(gw, "no-such-model", k), 400)
        assert err["message"].startswith("Invalid model name passed in model=no-such-model")
    with pytest.raises(openai.AuthenticationError):
        gw.client(api_key=key).chat.completions.create(model="b", messages=HI)


def test_a_team_model_is_called_by_its_public_name_by_that_team_only(gateway_server, fake_upstream):
    gw = gateway_server(config(models=MODELS))
    mine = ok(post(gw, "/team/new", {"team_alias": "mine", "models": ["a"]}))["team_id"]
    other = ok(post(gw, "/team/new", {"team_alias": "other"}))["team_id"]
    body = runtime_model(fake_upstream, team_id=mine)
    body["model_name"] = "my-team-model"
    created = ok(post(gw, "/model/new", body))
    assert created["model_name"].startswith(f"model_name_{mine}_")
    assert created["model_info"]["team_public_model_name"] == "my-team-model" and created["team_id"] == mine
    # The team's model list names it (the team lists models), with an audit row for the team.
    assert ok(get(gw, "/team/info", team_id=mine))["team_info"]["models"] == ["a", "my-team-model"]
    my_key, other_key = new_key(gw, team_id=mine), new_key(gw, team_id=other)
    assert listed(gw, my_key) == ["a", "my-team-model"]
    assert "my-team-model" not in listed(gw, other_key)
    assert not any(n.startswith("model_name_") for n in listed(gw, other_key))
    assert chat(gw, "my-team-model", my_key).status_code == 200
    assert fake_upstream.requests[-1].headers["authorization"] == f"Bearer {SECRET}"
    error(chat(gw, "my-team-model", other_key), 400)
    error(chat(gw, created["model_name"], other_key), 400)  # nor by its internal name
    info = ok(get(gw, "/model/info", {"Authorization": f"Bearer {my_key}"}))["data"]
    assert "my-team-model" in [d["model_name"] for d in info]
    assert SECRET not in str(info)
    ok(post(gw, "/model/delete", {"id": "rt-1"}))
    assert ok(get(gw, "/team/info", team_id=mine))["team_info"]["models"] == ["a"]
    error(chat(gw, "my-team-model", my_key), 401)  # no longer one of the team's models
    error(post(gw, "/model/new", {**body, "model_info": {"team_id": "no-such-team"}}), 400)


def test_a_team_admin_adds_a_model_for_their_team(gateway_server, fake_upstream):
    gw = gateway_server(config(models=MODELS))
    team = ok(post(gw, "/team/new", {"members_with_roles": [{"role": "admin", "user_id": "lead"}]}))["team_id"]
    lead = {"Authorization": f"Bearer {new_key(gw, team_id=team, user_id='lead')}"}
    body = runtime_model(fake_upstream, team_id=team)
    ok(post(gw, "/model/new", body, lead))
    err = error(post(gw, "/model/new", {**body, "model_info": {"id": "x"}}, lead), 403)
    assert "Only proxy admin" in err["message"]
