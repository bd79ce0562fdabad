"""End-to-end tests of `blocked_user_check`: a real gateway with the plugin enabled, a fake OpenAI
upstream on loopback, and the official `openai` SDK as the client.

`fake_upstream`, `gateway_server` and `database_url` come from `gateway.testing`, the pytest plugin
that installing `gateway` brings. Tests marked `db` also run on PostgreSQL.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from gateway_plugin_blocked_users import BlockedUserCheck, BlockedUsersConfig
from gateway_plugin_blocked_users.config import parse_ids

NAME = BlockedUserCheck.name
ADMIN = {"Authorization": "Bearer sk-1234"}
POEM = [{"role": "user", "content": "this is a test request, write a short poem"}]


def seed_config(upstream: Any, **litellm_settings: Any) -> dict[str, Any]:
    """The seed's example: `callbacks: ["blocked_user_check"]` plus `blocked_user_list`."""
    return {
        "model_list": [{"model_name": "gpt-3.5-turbo", "litellm_params": {
            "model": "openai/upstream-model", "api_base": upstream.url, "api_key": "sk-up"}}],
        "litellm_settings": {"callbacks": [NAME], **litellm_settings},
    }


def native_config(upstream: Any, **entry: Any) -> dict[str, Any]:
    cfg = seed_config(upstream)
    del cfg["litellm_settings"]
    cfg["plugins"] = [{"name": NAME, **entry}]
    return cfg


def refusal(user: str) -> dict[str, Any]:
    return {"error": {"message": f"User blocked from making LLM API Calls. User={user}",
                      "type": "bad_request_error", "param": "user", "code": "400"}}


def ask(client: Any, user: str | None = None) -> Any:
    extra = {} if user is None else {"user": user}
    return client.chat.completions.create(model="gpt-3.5-turbo", messages=POEM, **extra)


def assert_refused(client: Any, user: str) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        ask(client, user)
    assert err.value.status_code == 400
    assert err.value.response.json() == refusal(user)


def post(server: Any, path: str, body: Any) -> Any:
    resp = httpx.post(server.url + path, json=body, headers=ADMIN, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()


def counters(server: Any) -> dict[str, Any]:
    return httpx.get(server.url + "/plugins", headers=ADMIN, timeout=10).json()["counters"]


def spend_rows(server: Any, count: int) -> list[dict[str, Any]]:
    """The spend log, oldest first, once it holds `count` rows (they are written in the background)."""
    deadline = time.monotonic() + 10
    while True:
        rows = httpx.get(server.url + "/spend/logs", headers=ADMIN, timeout=10).json()
        if len(rows) >= count or time.monotonic() > deadline:
            return rows[::-1]
        time.sleep(0.05)


# -- the seed's example ----------------------------------------------------------------------------


SEED_SETTINGS = """
litellm_settings:
  callbacks: ["blocked_user_check"]
  blocked_user_list: ["user_id_1", "user_id_2", ...] # can also be a .txt filepath e.g. `/relative/path/blocked_list.txt`
"""


def test_the_seed_example_as_written(fake_upstream, gateway_server):
    settings = yaml.safe_load(SEED_SETTINGS)["litellm_settings"]  # the seed's lines, indented
    server = gateway_server(seed_config(fake_upstream, **settings))
    client = openai.OpenAI(api_key="sk-1234", base_url=server.url, max_retries=0)  # the seed's base_url
    try:
        assert_refused(client, "user_id_1")
        assert_refused(client, "user_id_2")
        assert ask(client, "user_id_3").choices[0].message.content.startswith("upstream says:")
        assert ask(client).choices[0].message.content.startswith("upstream says:")
    finally:
        client.close()
    assert [r.json.get("user") for r in fake_upstream.requests] == ["user_id_3", None]
    assert counters(server)["blocks"] == {NAME: 2}
    rows = spend_rows(server, 4)
    assert [(r["end_user"], r["status"], r["metadata"].get("blocked_by")) for r in rows] == [
        ("user_id_1", "blocked", NAME), ("user_id_2", "blocked", NAME), ("user_id_3", "success", None),
        (None, "success", None)]


def test_every_llm_route_and_streams(fake_upstream, gateway_server):
    server = gateway_server(seed_config(fake_upstream, blocked_user_list=["u1"]))
    client = server.client()
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="gpt-3.5-turbo", messages=POEM, user="u1", stream=True)
    assert err.value.response.json() == refusal("u1")  # refused before the stream starts
    with pytest.raises(openai.BadRequestError, match="User=u1"):
        client.completions.create(model="gpt-3.5-turbo", prompt="hi", user="u1")
    with pytest.raises(openai.BadRequestError, match="User=u1"):
        client.embeddings.create(model="gpt-3.5-turbo", input="hi", user="u1")
    for path, body in (("/chat/completions", {"model": "gpt-3.5-turbo", "messages": POEM}),
                       ("/openai/deployments/gpt-3.5-turbo/chat/completions", {"messages": POEM}),
                       ("/engines/gpt-3.5-turbo/embeddings", {"input": "hi"})):
        resp = httpx.post(server.url + path, json={**body, "user": "u1"}, headers=ADMIN, timeout=10)
        assert resp.status_code == 400 and resp.json() == refusal("u1"), path
    assert fake_upstream.requests == []
    stream = client.chat.completions.create(model="gpt-3.5-turbo", messages=POEM, user="u2", stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


def test_runs_before_the_keys_checks(fake_upstream, gateway_server):
    server = gateway_server(seed_config(fake_upstream, blocked_user_list=["u1"]))
    order = httpx.get(server.url + "/plugins", headers=ADMIN, timeout=10).json()["order"]["pre_request"]
    assert order.index(NAME) < order.index("virtual_keys")


# -- the file form ---------------------------------------------------------------------------------

LIST_FILE = """\
# people who opted out of AI features
user_id_1
  user_id_2   # asked on 2026-11-02

team#7
"""


def test_a_file_next_to_the_config(fake_upstream, gateway_server, tmp_path):
    (tmp_path / "blocked_list.txt").write_text(LIST_FILE)  # gateway_server writes its config in tmp_path
    server = gateway_server(seed_config(fake_upstream, blocked_user_list="blocked_list.txt"))
    client = server.client()
    for user in ("user_id_1", "user_id_2", "team#7"):
        assert_refused(client, user)
    for user in ("team", "# people who opted out of AI features", "asked", "user_id_"):
        assert ask(client, user).choices
    assert server.gateway.host.slots[NAME].instance.blocked == {"user_id_1", "user_id_2", "team#7"}


def test_a_file_in_a_native_entry_absolute_path(fake_upstream, gateway_server, tmp_path):
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "blocked.txt").write_text("u-file\n")
    server = gateway_server(native_config(fake_upstream, config={"blocked_user_list": str(lists / "blocked.txt")}))
    assert_refused(server.client(), "u-file")


def test_an_empty_list_refuses_nobody(fake_upstream, gateway_server, tmp_path):
    (tmp_path / "empty.txt").write_text("# nobody yet\n\n")
    for setting in ({}, {"blocked_user_list": []}, {"blocked_user_list": None}, {"blocked_user_list": "empty.txt"}):
        server = gateway_server(seed_config(fake_upstream, **setting))
        assert ask(server.client(), "anyone").choices
        server.stop()


def test_parse_ids():
    assert parse_ids(LIST_FILE) == ["user_id_1", "user_id_2", "team#7"]
    assert parse_ids("a\r\nb # c\n#d\n e#f \n") == ["a", "b", "e#f"]


def test_config_forms():
    assert BlockedUsersConfig(blocked_user_list=[" a ", "b", 42, ""]).blocked_user_list == ["a", "b", "42"]
    assert BlockedUsersConfig(blocked_user_list=" list.txt ").blocked_user_list == "list.txt"
    assert BlockedUsersConfig().blocked_user_list == []


# -- bad configs: one line -------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "message"), [
    ({"a": 1}, "config key blocked_user_list: Value error, must be a list of user ids or a file path, not dict"),
    (5, "config key blocked_user_list: Value error, must be a list of user ids or a file path, not int"),
    (True, "config key blocked_user_list: Value error, must be a list of user ids or a file path, not bool"),
    (["ok", {"id": "x"}], "config key blocked_user_list: Value error, item 1 must be a user id (a string), not dict"),
    (["ok", 1.5], "config key blocked_user_list: Value error, item 1 must be a user id (a string), not float"),
    ("  ", "config key blocked_user_list: Value error, an empty string is neither a list of user ids nor a file path"),
])
def test_a_wrong_type_stops_start_up_with_one_line(fake_upstream, gateway_server, value, message):
    with pytest.raises(Exception) as err:
        gateway_server(seed_config(fake_upstream, blocked_user_list=value))
    assert str(err.value) == f"plugin '{NAME}': {message}"


def test_an_unknown_native_key_stops_start_up(fake_upstream, gateway_server):
    with pytest.raises(Exception) as err:
        gateway_server(native_config(fake_upstream, config={"blocked_users": ["u1"]}))
    assert str(err.value) == f"plugin '{NAME}': config key blocked_users: Extra inputs are not permitted"


def test_a_missing_or_unreadable_file_stops_start_up_naming_the_path(fake_upstream, gateway_server, tmp_path):
    with pytest.raises(Exception) as err:
        gateway_server(seed_config(fake_upstream, blocked_user_list="missing.txt"))
    assert str(err.value) == (f"plugin '{NAME}' failed to start: ValueError: blocked_user_list: cannot read "
                              f"{tmp_path / 'missing.txt'}: No such file or directory")
    (tmp_path / "a-folder").mkdir()
    with pytest.raises(Exception, match=r"blocked_user_list: cannot read .*a-folder: Is a directory$"):
        gateway_server(seed_config(fake_upstream, blocked_user_list="a-folder"))
    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9\n")
    with pytest.raises(Exception, match=r"blocked_user_list: cannot read .*latin1.txt: UnicodeDecodeError$"):
        gateway_server(seed_config(fake_upstream, blocked_user_list="latin1.txt"))


def test_the_command_reports_a_missing_file_in_one_line(tmp_path):
    """`gateway --config` from another folder: the path is taken from the config file's folder."""
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "config.yaml").write_text(yaml.safe_dump({
        "model_list": [{"model_name": "m", "litellm_params": {"model": "fake/m"}}],
        "general_settings": {"master_key": "sk-1234", "database_url": f"sqlite://{tmp_path / 'db.sqlite3'}"},
        "litellm_settings": {"callbacks": [NAME], "blocked_user_list": "blocked_list.txt"},
    }))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "GATEWAY_CONFIG")}
    proc = subprocess.run([str(Path(sys.executable).parent / "gateway"), "--config", "../conf/config.yaml"],
                          cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == (
        f"gateway: error: plugin '{NAME}' failed to start: ValueError: blocked_user_list: cannot read "
        f"{conf / 'blocked_list.txt'}: No such file or directory")
    assert "Traceback" not in proc.stderr


# -- the framework's knobs -------------------------------------------------------------------------


def test_monitor_mode_records_and_lets_the_call_through(fake_upstream, gateway_server):
    server = gateway_server(native_config(fake_upstream, config={"blocked_user_list": ["u1"]}, mode="monitor"))
    assert ask(server.client(), "u1").choices[0].message.content.startswith("upstream says:")
    assert len(fake_upstream.requests) == 1
    seen = counters(server)
    assert seen["monitored"] == {NAME: 1} and NAME not in seen["blocks"]
    (row,) = spend_rows(server, 1)
    assert row["status"] == "success" and row["metadata"]["would_have_blocked"] == [
        {"plugin": NAME, "status": 400, "message": "User blocked from making LLM API Calls. User=u1"}]


@pytest.mark.db
def test_a_key_opts_out_through_its_permissions(fake_upstream, gateway_server):
    server = gateway_server(seed_config(fake_upstream, blocked_user_list=["u1"]))
    opted_out = post(server, "/key/generate", {"permissions": {"blocked_user_check": False}})
    plain = post(server, "/key/generate", {})
    assert ask(server.client(api_key=opted_out["key"]), "u1").choices
    assert_refused(server.client(api_key=plain["key"]), "u1")
    assert_refused(server.client(), "u1")  # the master key has no permissions: checked
    post(server, "/key/update", {"key": opted_out["key"], "permissions": {"blocked_user_check": True}})
    assert_refused(server.client(api_key=opted_out["key"]), "u1")  # at once
    post(server, "/key/update", {"key": opted_out["key"], "permissions": {"blocked_user_check": "false"}})
    assert ask(server.client(api_key=opted_out["key"]), "u1").choices
    # Blocks made through the API are the core's: no key opts out of them.
    post(server, "/customer/block", {"user_ids": ["u2"]})
    assert_refused(server.client(api_key=opted_out["key"]), "u2")


# -- the list beside the API's blocks --------------------------------------------------------------


@pytest.mark.db
def test_api_blocks_work_beside_the_list(fake_upstream, gateway_server):
    server = gateway_server(seed_config(fake_upstream, blocked_user_list=["listed"]))
    client = server.client()
    assert ask(client, "api-user").choices
    assert post(server, "/customer/block", {"user_ids": ["api-user", "listed"]}) == {
        "blocked_users": ["api-user", "listed"]}
    assert_refused(client, "api-user")
    assert post(server, "/user/unblock", {"user_ids": ["api-user", "listed"]}) == {
        "unblocked_users": ["api-user", "listed"]}
    assert ask(client, "api-user").choices
    assert_refused(client, "listed")  # still on the config's list
    assert counters(server)["blocks"] == {"virtual_keys": 1, NAME: 1}


@pytest.mark.db
def test_in_monitor_mode_api_blocks_still_apply(fake_upstream, gateway_server):
    server = gateway_server(native_config(fake_upstream, config={"blocked_user_list": ["listed"]}, mode="monitor"))
    post(server, "/customer/block", {"user_ids": ["api-user"]})
    assert_refused(server.client(), "api-user")
    assert ask(server.client(), "listed").choices
