"""Audit logs end to end: one row per change, no raw key anywhere, GET /audit, the hash chain and
`gateway audit verify`, no loss at shutdown, several writers on one database.

Tests marked `db` run again on PostgreSQL (GATEWAY_TEST_DATABASE_URL).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gateway.builtins.audit_store import row_from_event
from gateway.context import AuditEvent
from gateway.core.audit_chain import GENESIS, canonical_json, row_hash
from gateway.testing import MASTER_KEY

ADMIN = {"Authorization": f"Bearer {MASTER_KEY}"}
MASTER_HASH = hashlib.sha256(MASTER_KEY.encode()).hexdigest()
KEY_TABLE = "LiteLLM_VerificationToken"
TEAM_TABLE = "LiteLLM_TeamTable"
ON = {"litellm_settings": {"store_audit_logs": True},
      "model_list": [{"model_name": "fake-model", "litellm_params": {"model": "fake/echo-1"}}]}
GATEWAY_BIN = str(Path(sys.executable).with_name("gateway"))


# -- helpers -----------------------------------------------------------------------------------
def post(server: Any, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
    r = httpx.post(server.url + path, json=body, headers={**ADMIN, **(headers or {})}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def audit(server: Any, headers: dict[str, str] | None = None, **params: Any) -> httpx.Response:
    return httpx.get(server.url + "/audit", params=params, headers=ADMIN if headers is None else headers, timeout=30)


def wait_rows(server: Any, n: int, timeout: float = 20, **params: Any) -> dict[str, Any]:
    """GET /audit once `total` reached n (the store writes in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        r = audit(server, page_size=1000, **params)
        assert r.status_code == 200, r.text
        body = r.json()
        if body["total"] >= n or time.monotonic() > deadline:
            assert body["total"] == n, f"expected {n} audit rows, found {body['total']}"
            return body
        time.sleep(0.05)


def oldest_first(body: dict[str, Any]) -> list[dict[str, Any]]:
    return list(reversed(body["audit_logs"]))


def verify(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The real `gateway audit verify`, as an operator runs it."""
    env = {**os.environ, "DATABASE_URL": url}
    env.pop("GATEWAY_CONFIG", None)
    return subprocess.run([GATEWAY_BIN, "audit", "verify", *args], env=env, capture_output=True, text=True,
                          timeout=60)


def sql(url: str, statement: str, *params: Any) -> list[Any]:
    """Run SQL on the test database behind the gateway's back (sqlite3 or asyncpg)."""
    if url.startswith("sqlite"):
        con = sqlite3.connect(url.split("://", 1)[1])
        try:
            rows = con.execute(re.sub(r"\$\d+", "?", statement), params).fetchall()
            con.commit()
            return rows
        finally:
            con.close()

    async def run() -> list[Any]:
        import asyncpg

        con = await asyncpg.connect(url)
        try:
            if not params and not statement.lstrip().upper().startswith("SELECT"):
                await con.execute(statement)  # DDL, possibly with $$ bodies
                return []
            return [tuple(r) for r in await con.fetch(statement, *params)]
        finally:
            await con.close()

    return asyncio.run(run())


def row_at(url: str, seq: int) -> tuple[str, str]:
    return sql(url, "SELECT id, updated_values FROM audit_logs WHERE seq = $1", seq)[0]


def db_url() -> str:
    return os.environ["DATABASE_URL"]  # set by the gateway_server fixture for the current server


# -- unit: canonical form and cleaning ---------------------------------------------------------
def test_canonical_json_is_sorted_compact_and_numbers_are_by_value():
    assert canonical_json({"b": [1, 2.5], "a": None, "c": {"y": True, "x": "é"}}) == \
        '{"a":null,"b":[1,25e-1],"c":{"x":"\\u00e9","y":true}}'
    # jsonb keeps a number's value, not its spelling: both spellings hash alike
    for python_value, as_read_back in ((2.0, 2.0), (1e16, 10**16), (1e300, float(10**300)), (-0.0, 0),
                                       (0.1, 0.1), (2000, 2000.0), (5e-324, 5e-324)):
        assert canonical_json(python_value) == canonical_json(as_read_back)
    assert canonical_json(2) != canonical_json(3) and canonical_json(0.1) != canonical_json(0.2)
    assert canonical_json("2") != canonical_json(2)


def test_row_from_event_masks_raw_keys_and_hashes_a_raw_api_key(caplog):
    raw = "sk-" + "A" * 30
    event = AuditEvent(action="updated", table_name=KEY_TABLE, object_id="a" * 64, changed_by=raw,
                       changed_by_api_key=raw, before_value={"metadata": {"k": raw, raw: [raw, "sk-...AAAA"]}},
                       updated_values={"n": 10**30, "inf": float("inf"), "nul": "a\x00b", "ok": "sk-short"})
    with caplog.at_level("WARNING", logger="gateway.audit"):
        row = row_from_event(event)
    text = json.dumps(row)
    assert raw not in text
    assert row["before_value"] == {"metadata": {"k": "sk-...AAAA", "sk-...AAAA": ["sk-...AAAA", "sk-...AAAA"]}}
    assert row["changed_by"] == "sk-...AAAA"
    assert row["changed_by_api_key"] == hashlib.sha256(raw.encode()).hexdigest()
    assert row["updated_values"] == {"n": 1e30, "inf": None, "nul": "a\ufffdb", "ok": "sk-short"}
    assert row["before_value"] is not event.before_value
    assert "raw-looking key" in caplog.text and "not a key hash" in caplog.text
    assert raw not in caplog.text


def test_row_hash_covers_every_field_and_the_link():
    row = {**row_from_event(AuditEvent("created", TEAM_TABLE, "t1", "me", None, None, {"a": 1})),
           "prev_hash": GENESIS}
    h = row_hash(row)
    for field, other in (("changed_by", "you"), ("object_id", "t2"), ("updated_values", {"a": 2}),
                         ("before_value", {}), ("prev_hash", "1" * 64), ("updated_at", "2020-01-01T00:00:00+00:00")):
        assert row_hash({**row, field: other}) != h, field


# -- one row per change ------------------------------------------------------------------------
@pytest.mark.db
def test_every_key_change_writes_one_row(gateway_server):
    server = gateway_server(ON)
    made = post(server, "/key/generate", {"key_alias": "a1", "models": ["fake-model"], "max_budget": 5})
    raw, token = made["key"], made["token"]
    post(server, "/key/update", {"key": raw, "max_budget": 7, "metadata": {"team": "x"}})
    post(server, "/key/block", {"key": raw})
    post(server, "/key/unblock", {"key": token})
    regen = post(server, "/key/regenerate", {"key": raw})
    post(server, "/key/delete", {"keys": [regen["key"]]})
    body = wait_rows(server, 6)
    rows = oldest_first(body)
    assert [r["action"] for r in rows] == ["created", "updated", "blocked", "unblocked", "regenerated", "deleted"]
    assert {r["table_name"] for r in rows} == {KEY_TABLE}
    assert [r["object_id"] for r in rows] == [token] * 5 + [regen["token"]]
    assert list(rows[0]) == ["id", "updated_at", "changed_by", "changed_by_api_key", "action", "table_name",
                             "object_id", "before_value", "updated_values", "prev_hash", "hash"]
    assert rows[0]["before_value"] is None and rows[0]["updated_values"]["max_budget"] == 5
    assert rows[1]["before_value"]["max_budget"] == 5
    assert rows[1]["updated_values"] == {"max_budget": 7, "metadata": {"team": "x"}}
    assert rows[2]["updated_values"] == {"blocked": True} and rows[3]["updated_values"] == {"blocked": False}
    assert rows[4]["updated_values"]["token"] == regen["token"]
    assert rows[5]["before_value"]["token"] == regen["token"] and rows[5]["updated_values"] is None
    for r in rows:
        assert r["changed_by"] == "default_user_id" and r["changed_by_api_key"] == MASTER_HASH
        when = datetime.fromisoformat(r["updated_at"])
        assert when.utcoffset() == timedelta(0) and abs(datetime.now(timezone.utc) - when) < timedelta(minutes=1)
    # chained, oldest first
    prev = GENESIS
    for r in rows:
        assert r["prev_hash"] == prev and r["hash"] == row_hash(r)
        prev = r["hash"]
    text = audit(server, page_size=1000).text
    assert raw not in text and regen["key"] not in text and MASTER_KEY + '"' not in text


@pytest.mark.db
def test_changed_by_comes_from_the_headers_or_default_user_id(gateway_server):
    server = gateway_server({**ON, "general_settings": {"default_user_id": "ops-default"}})
    post(server, "/key/generate", {"key_alias": "h1"}, {"gateway-changed-by": "alice"})
    post(server, "/key/generate", {"key_alias": "h2"}, {"litellm-changed-by": "bob"})
    post(server, "/key/generate", {"key_alias": "h3"})
    rows = oldest_first(wait_rows(server, 3))
    assert [r["changed_by"] for r in rows] == ["alice", "bob", "ops-default"]
    assert [r["updated_values"]["key_alias"] for r in rows] == ["h1", "h2", "h3"]


@pytest.mark.db
def test_the_seeds_team_example(gateway_server):
    server = gateway_server(ON)
    team = post(server, "/team/new", {"max_budget": 2}, {"litellm-changed-by": "109010464461339474872"})
    row = wait_rows(server, 1, table_name=TEAM_TABLE)["audit_logs"][0]
    team_id = team["team_id"]
    assert {k: row[k] for k in ("changed_by", "action", "table_name", "object_id", "before_value")} == {
        "changed_by": "109010464461339474872", "action": "created", "table_name": "LiteLLM_TeamTable",
        "object_id": team_id, "before_value": None}
    assert row["updated_values"] == {
        "team_id": team_id, "admins": [], "members": [],
        "members_with_roles": [{"role": "admin", "user_id": "109010464461339474872"}],
        "max_budget": 2.0, "models": [], "blocked": False}
    assert '"max_budget":2.0' in audit(server, table_name=TEAM_TABLE).text.replace(" ", "")
    assert len(row["id"]) == 36 and row["id"].count("-") == 4
    assert datetime.fromisoformat(row["updated_at"]).utcoffset() == timedelta(0)
    assert row["changed_by_api_key"] == MASTER_HASH


@pytest.mark.db
def test_raw_keys_inside_values_are_stored_as_key_names(gateway_server):
    server = gateway_server(ON)
    leaked = "sk-" + "Zq9" * 10
    post(server, "/key/generate", {"metadata": {"note": leaked, "nested": [{"k": leaked}]}, "key_alias": leaked})
    body = wait_rows(server, 1)
    assert leaked not in audit(server).text
    values = body["audit_logs"][0]["updated_values"]
    assert values["metadata"] == {"note": "sk-...9Zq9", "nested": [{"k": "sk-...9Zq9"}]}
    assert values["key_alias"] == "sk-...9Zq9"


# -- GET /audit --------------------------------------------------------------------------------
@pytest.mark.db
def test_filters_and_pagination(gateway_server):
    server = gateway_server(ON)
    keys = [post(server, "/key/generate", {"key_alias": f"f{i}"}, {"gateway-changed-by": f"u{i % 2}"})
            for i in range(5)]
    post(server, "/key/block", {"key": keys[0]["key"]})
    post(server, "/team/new", {"team_alias": "t"}, {"gateway-changed-by": "u0"})
    wait_rows(server, 7)

    def total(**params: Any) -> int:
        r = audit(server, **params)
        assert r.status_code == 200, r.text
        return r.json()["total"]

    assert total(object_id=keys[0]["token"]) == 2
    assert total(table_name=KEY_TABLE) == 6 and total(table_name=TEAM_TABLE) == 1
    assert total(action="created") == 6 and total(action="blocked") == 1
    assert total(changed_by="u0") == 4 and total(changed_by="u1") == 2 and total(changed_by="nobody") == 0
    assert total(changed_by="default_user_id") == 1
    assert total(changed_by="u0", table_name=KEY_TABLE, action="created") == 3
    today = datetime.now(timezone.utc).date()
    assert total(start_date=today.isoformat(), end_date=today.isoformat()) == 7
    assert total(end_date=(today - timedelta(days=1)).isoformat()) == 0
    assert total(start_date=(today + timedelta(days=1)).isoformat()) == 0
    newest = datetime.fromisoformat(audit(server).json()["audit_logs"][0]["updated_at"])
    assert total(start_date=newest.isoformat()) == 1
    assert total(end_date=(newest - timedelta(microseconds=1)).isoformat()) == 6
    assert total(start_date=(newest - timedelta(hours=1)).replace(tzinfo=None).isoformat()) == 7

    pages = [audit(server, page=p, page_size=3).json() for p in (1, 2, 3, 4)]
    assert [len(p["audit_logs"]) for p in pages] == [3, 3, 1, 0]
    assert all(p["total"] == 7 and p["page_size"] == 3 for p in pages) and pages[1]["page"] == 2
    ids = [r["id"] for p in pages for r in p["audit_logs"]]
    assert len(set(ids)) == 7
    assert ids == [r["id"] for r in audit(server).json()["audit_logs"]]  # newest first, stable
    default = audit(server).json()
    assert default["page"] == 1 and default["page_size"] == 50

    for params, param in (({"page": "0"}, "page"), ({"page": "x"}, "page"), ({"page_size": "1001"}, "page_size"),
                          ({"page_size": "0"}, "page_size"), ({"start_date": "yesterday"}, "start_date"),
                          ({"end_date": "2024-13-01"}, "end_date"), ({"action": "exploded"}, "action"),
                          ({"table_name": "keys"}, "table_name"),
                          ({"start_date": "2024-02-02", "end_date": "2024-02-01"}, "start_date")):
        r = audit(server, **params)
        assert r.status_code == 400, (params, r.text)
        assert r.json()["error"]["param"] == param and r.json()["error"]["type"] == "bad_request_error"
    assert audit(server, page_size="1000").status_code == 200


@pytest.mark.db
def test_only_the_proxy_admin_reads_the_audit_log(gateway_server):
    server = gateway_server(ON)
    user_key = post(server, "/key/generate", {})["key"]
    r = audit(server, headers={"Authorization": f"Bearer {user_key}"})
    assert r.status_code == 403
    assert r.json()["error"]["message"] == "Only proxy admin can access this route. Route=/audit"
    assert audit(server, headers={}).status_code == 401


@pytest.mark.db
def test_store_off_writes_nothing_and_the_env_switch_turns_it_on(gateway_server, monkeypatch):
    monkeypatch.delenv("GATEWAY_STORE_AUDIT_LOGS", raising=False)
    off = gateway_server({})
    assert "audit_store" not in off.gateway.host.slots
    made = post(off, "/key/generate", {})
    post(off, "/key/update", {"key": made["key"], "max_budget": 1})
    post(off, "/key/delete", {"keys": [made["key"]]})
    time.sleep(0.3)
    assert audit(off).json() == {"audit_logs": [], "total": 0, "page": 1, "page_size": 50}
    assert sql(db_url(), "SELECT COUNT(*) FROM audit_logs")[0][0] == 0
    off.stop()  # one server per process at a time (tortoise's global context)
    on = gateway_server({}, env={"GATEWAY_STORE_AUDIT_LOGS": "true"})
    post(on, "/key/generate", {})
    wait_rows(on, 1)


# -- the chain and `gateway audit verify` --------------------------------------------------------
@pytest.mark.db
def test_verify_names_the_edited_row_and_the_removed_row(gateway_server):
    server = gateway_server(ON)
    for i in range(5):
        post(server, "/key/generate", {"key_alias": f"v{i}", "max_budget": 1.5})
    wait_rows(server, 5)
    url = db_url()
    done = verify(url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "audit log intact: 5 rows"

    # edit row 3's values behind the gateway's back
    row3_id, original = row_at(url, 3)
    tampered = original.replace("1.5", "1000") if isinstance(original, str) else original
    sql(url, "UPDATE audit_logs SET updated_values = $1 WHERE seq = $2", tampered, 3)
    assert row_at(url, 3)[1] != original
    done = verify(url)
    assert done.returncode == 1
    assert f"row {row3_id} (seq 3) was edited: its hash does not match its contents" in done.stdout

    # ...and rehash it too: the next row's link breaks, naming it
    sql(url, "UPDATE audit_logs SET updated_values = $1 WHERE seq = $2", original, 3)
    assert verify(url).returncode == 0
    rows = {r["id"]: r for r in audit(server).json()["audit_logs"]}
    forged = {**rows[row3_id], "changed_by": "someone-else"}
    sql(url, "UPDATE audit_logs SET changed_by = $1, hash = $2 WHERE seq = $3", "someone-else", row_hash(forged), 3)
    done = verify(url)
    assert done.returncode == 1 and f"row {row3_id} (seq 3) was edited" in done.stdout
    assert "(seq 4) does not link to the row before it" in done.stdout

    # remove a middle row
    sql(url, "DELETE FROM audit_logs WHERE seq = $1", 3)
    row4_id = row_at(url, 4)[0]
    done = verify(url)
    assert done.returncode == 1
    assert f"a row before {row4_id} (seq 4) was removed" in done.stdout

    # remove the first row: the chain no longer starts at 1
    sql(url, "DELETE FROM audit_logs WHERE seq < $1", 3)
    done = verify(url)
    assert done.returncode == 1 and f"a row before {row4_id} (seq 4) was removed" in done.stdout


@pytest.mark.db
def test_values_the_database_respells_still_verify(gateway_server):
    """jsonb rewrites numbers (1e16 -> 10000000000000000); NUL cannot be stored: the chain still holds."""
    server = gateway_server(ON)
    post(server, "/key/generate", {"metadata": {"a": 1e16, "b": 2.0, "c": 1e300, "d": -0.0, "e": 0.1,
                                                "f": 12345678901234567890123, "g": 5e-324, "h": "é✓"}})
    event = AuditEvent("updated", KEY_TABLE, "x" * 64, "nul\x00user", None, {"s": "a\x00b"}, {"t": 9007199254740993})
    server._thread.loop.call_soon_threadsafe(server.gateway.audit, event)
    body = wait_rows(server, 2)
    assert body["audit_logs"][0]["changed_by"] == "nul\ufffduser"
    done = verify(db_url())
    assert done.returncode == 0, done.stdout + done.stderr
    assert "intact: 2 rows" in done.stdout


def test_verify_reports_a_missing_database_and_an_empty_log(tmp_path):
    done = verify(f"sqlite://{tmp_path / 'nothing.sqlite3'}")
    assert done.returncode == 2 and "no database" in done.stderr


@pytest.mark.db
def test_an_empty_audit_log_is_intact_and_the_config_names_the_database(gateway_server, tmp_path):
    server = gateway_server(ON)
    done = verify(db_url())
    assert done.returncode == 0 and done.stdout.strip() == "audit log intact: 0 rows"
    post(server, "/key/generate", {})
    wait_rows(server, 1)
    config = tmp_path / "verify.yaml"
    config.write_text(yaml.safe_dump({"general_settings": {"database_url": db_url()}}))
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "GATEWAY_CONFIG")}
    done = subprocess.run([GATEWAY_BIN, "audit", "verify", "--config", str(config)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "audit log intact: 1 rows", done.stderr


# -- durability --------------------------------------------------------------------------------
@pytest.mark.db
def test_graceful_shutdown_loses_no_row(gateway_server):
    server = gateway_server(ON)
    url = db_url()
    raw = post(server, "/key/generate", {})["key"]

    async def burst() -> None:
        async with httpx.AsyncClient(base_url=server.url, headers=ADMIN, timeout=60) as client:
            sem = asyncio.Semaphore(32)

            async def one(i: int) -> None:
                async with sem:
                    r = await client.post("/key/update", json={"key": raw, "max_budget": i})
                    assert r.status_code == 200, r.text

            await asyncio.gather(*(one(i) for i in range(200)))

    asyncio.run(burst())
    server.stop()  # graceful: the store drains its queue before the database closes
    again = gateway_server(ON, env={"DATABASE_URL": url})
    body = wait_rows(again, 201, timeout=2)
    assert sorted(r["updated_values"]["max_budget"] for r in body["audit_logs"][:200]) == list(range(200))
    done = verify(url)
    assert done.returncode == 0 and "intact: 201 rows" in done.stdout, done.stdout + done.stderr


@pytest.mark.db
def test_a_failing_database_is_retried_and_shutdown_still_drains(gateway_server, caplog):
    server = gateway_server(ON)
    url = db_url()
    raw = post(server, "/key/generate", {})["key"]
    wait_rows(server, 1)
    with caplog.at_level("INFO", logger="gateway.audit"):
        sql(url, "ALTER TABLE audit_logs RENAME TO audit_logs_away")  # the writer now fails
        try:
            for i in range(50):
                post(server, "/key/update", {"key": raw, "max_budget": i})  # management calls go on
            deadline = time.monotonic() + 10
            while "attempt 2" not in caplog.text and time.monotonic() < deadline:
                time.sleep(0.05)
            assert re.search(r"audit writer: writing \d+ row\(s\) failed \(attempt 2, ", caplog.text)
            stopper = threading.Thread(target=server.stop)
            stopper.start()  # shutdown waits for the writer...
            time.sleep(1)
            assert stopper.is_alive()
        finally:
            sql(url, "ALTER TABLE audit_logs_away RENAME TO audit_logs")  # ...which gets through
        stopper.join(60)
    assert "audit store stopping: 50 event(s) still to write" in caplog.text
    assert "audit store stopped: 51 row(s) written, 0 event(s) lost" in caplog.text
    assert "AUDIT EVENTS LOST" not in caplog.text
    again = gateway_server(ON, env={"DATABASE_URL": url})
    wait_rows(again, 51, timeout=2)
    assert verify(url).stdout.strip() == "audit log intact: 51 rows"


@pytest.mark.db
def test_a_row_the_database_refuses_is_dropped_loudly_and_the_rest_go_on(gateway_server, caplog):
    server = gateway_server(ON)
    url = db_url()
    if url.startswith("sqlite"):
        sql(url, "CREATE TRIGGER no_evil BEFORE INSERT ON audit_logs WHEN NEW.object_id = 'evil' "
                 "BEGIN SELECT RAISE(ABORT, 'evil row'); END")
    else:
        sql(url, "CREATE FUNCTION no_evil() RETURNS trigger AS $$ BEGIN IF NEW.object_id = 'evil' THEN "
                 "RAISE EXCEPTION 'evil row'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql")
        sql(url, "CREATE TRIGGER no_evil BEFORE INSERT ON audit_logs FOR EACH ROW EXECUTE FUNCTION no_evil()")
    with caplog.at_level("INFO", logger="gateway.audit"):
        event = AuditEvent("updated", TEAM_TABLE, "evil", "me", None, None, {"x": 1})
        server._thread.loop.call_soon_threadsafe(server.gateway.audit, event)
        for i in range(3):
            post(server, "/key/generate", {"key_alias": f"good{i}"})
        body = wait_rows(server, 3, timeout=15)
        assert {r["updated_values"]["key_alias"] for r in body["audit_logs"]} == {"good0", "good1", "good2"}
        deadline = time.monotonic() + 5
        while "AUDIT EVENTS LOST" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
    assert "AUDIT EVENTS LOST: 1 event(s) dropped because the database refuses row" in caplog.text
    assert re.search(r"\(LiteLLM_TeamTable updated evil\): \w+: evil row", caplog.text)
    assert verify(url).stdout.strip() == "audit log intact: 3 rows"
    letters = httpx.get(server.url + "/dead_letters", params={"source": "audit"}, headers=ADMIN,
                        timeout=30).json()["dead_letters"]
    assert [(d["outcome"], "evil row" in d["reason"]) for d in letters] == [("dropped", True)]
    assert letters[0]["ref"].endswith("(LiteLLM_TeamTable updated evil)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.db
def test_two_instances_on_one_database_extend_one_chain(tmp_path, database_url):
    """Two gateway processes append concurrently; the chain does not fork."""
    url = database_url()
    config = tmp_path / "two.yaml"
    config.write_text(yaml.safe_dump({"litellm_settings": {"store_audit_logs": True},
                                      "general_settings": {"master_key": MASTER_KEY}}))
    env = {**os.environ, "DATABASE_URL": url}
    ports = [_free_port(), _free_port()]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for port in ports:  # one after the other: the first migrates the new SQLite file
            proc = subprocess.Popen([GATEWAY_BIN, "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
                                    env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            procs.append(proc)
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health/liveliness", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    pytest.fail(f"gateway did not start: {proc.communicate()[1].decode()[-2000:]}")
                time.sleep(0.1)

        async def burst() -> None:
            async with httpx.AsyncClient(headers=ADMIN, timeout=60) as client:
                async def one(i: int) -> None:
                    r = await client.post(f"http://127.0.0.1:{ports[i % 2]}/key/generate", json={"key_alias": f"k{i}"})
                    assert r.status_code == 200, r.text

                await asyncio.gather(*(one(i) for i in range(120)))

        asyncio.run(burst())
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        errors = [proc.communicate(timeout=40)[1].decode() for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), errors
    assert not any("AUDIT EVENTS LOST" in e for e in errors), errors
    done = verify(url)
    assert done.returncode == 0 and done.stdout.strip() == "audit log intact: 120 rows", done.stdout + done.stderr


# -- the raw key is nowhere on disk ----------------------------------------------------------------
def test_the_raw_key_never_reaches_the_sqlite_file(gateway_server):
    server = gateway_server(ON)
    url = db_url()
    if not url.startswith("sqlite"):
        pytest.skip("reads the SQLite file")
    made = post(server, "/key/generate", {"models": ["fake-model"], "metadata": {"tags": ["t"]}})
    raw = made["key"]
    with server.client(api_key=raw) as client:
        reply = client.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content
    post(server, "/key/update", {"key": raw, "max_budget": 3})
    post(server, "/key/block", {"key": raw})
    post(server, "/key/unblock", {"key": raw})
    post(server, "/key/delete", {"keys": [raw]})
    wait_rows(server, 5)
    server.stop()
    path = Path(url.split("://", 1)[1])
    files = [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")) if p.exists()]
    assert path in files
    needles = (raw.encode(), raw[3:].encode(), raw.encode("utf-16-le"))
    for p in files:
        data = p.read_bytes()
        for needle in needles:
            assert needle not in data, f"the raw key is in {p.name}"
