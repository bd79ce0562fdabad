"""Background writers are never stopped by their input.

A spend row or an audit row that the database (or the JSON encoder before it) will not take is
isolated: the rest of its batch and every later batch are written, and the row is stored repaired
or dropped, and recorded in the dead letters (`GET /dead_letters`) with the reason, never a raw
key. Client input that could not be stored is made storable at the edge, so it is billed.
Runs on SQLite, and on PostgreSQL when `GATEWAY_TEST_DATABASE_URL` is set.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest

from gateway.core.spend.record import SpendRow

pytestmark = pytest.mark.db

ADMIN = {"Authorization": "Bearer sk-1234"}
RAW_KEY = "sk-" + "Q" * 30  # a raw-looking key hidden in a poison row: never stored whole


def nested(depth: int, leaf: Any = "bottom") -> Any:
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def depth_of(value: Any) -> int:
    depth = 0
    while isinstance(value, dict):
        value, depth = value["a"], depth + 1
    return depth


def config(upstream: Any, **litellm: Any) -> dict[str, Any]:
    return {
        "model_list": [{"model_name": "gpt-test",
                        "litellm_params": {"model": "openai/upstream-model", "api_base": upstream.url,
                                           "api_key": "sk-upstream", "input_cost_per_token": 1e-6,
                                           "output_cost_per_token": 2e-6}}],
        "router_settings": {"num_retries": 0},
        "general_settings": {"spend_flush_interval_s": 0.05},
        "litellm_settings": litellm,
    }


def chat(gw: Any, client: httpx.Client, **extra: Any) -> str:
    r = client.post(gw.url + "/v1/chat/completions", headers=ADMIN,
                    json={"model": "gpt-test", "messages": [{"role": "user", "content": "bill me"}], **extra})
    assert r.status_code == 200, r.text
    return r.json()["id"]


def spend_row(gw: Any, request_id: str) -> list[dict[str, Any]]:
    r = httpx.get(gw.url + "/spend/logs", params={"request_id": request_id}, headers=ADMIN, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def dead_letters(gw: Any, **params: Any) -> dict[str, Any]:
    r = httpx.get(gw.url + "/dead_letters", params=params, headers=ADMIN, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def wait_for(check: Any, what: str, timeout: float = 8.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def on_server_loop(gw: Any, fn: Any, *args: Any) -> None:
    """Hand something to the server's own event loop (the writers are not thread-safe)."""
    gw._thread.loop.call_soon_threadsafe(fn, *args)


# -- at the edge: client input is made storable, and billed ---------------------------------------


def test_unstorable_request_metadata_is_billed_not_lost(gateway_server, fake_upstream):
    """The reported hole: one call with metadata nested 300 deep stopped every later spend row."""
    gw = gateway_server(config(fake_upstream))
    with httpx.Client(timeout=10) as client:
        deep = chat(gw, client, metadata={"spend_logs_metadata": {"deep": nested(300)}})
        nul = chat(gw, client, metadata={"tags": ["nul\x00tag"], "spend_logs_metadata": {"k\x00": "v\x00"}})
        r = client.post(gw.url + "/v1/chat/completions", headers=ADMIN, json={
            "model": "gpt-test", "messages": [{"role": "user", "content": "hi"}], "user": "walk\x00in"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "user", r.text
        ordinary = [chat(gw, client) for _ in range(100)]
    writer = gw.gateway.spend_writer
    wait_for(lambda: writer.written >= 102 and not writer.queue,
             f"spend rows: {writer.written} written, {len(writer.queue)} queued")
    assert writer.lost == 0
    for rid in ordinary:
        assert len(spend_row(gw, rid)) == 1
    (row,) = spend_row(gw, deep)
    stored = row["metadata"]["spend_logs_metadata"]["deep"]
    assert 20 < depth_of(stored) < 40
    assert row["spend"] > 0
    (row,) = spend_row(gw, nul)
    assert row["request_tags"] == ["nul\ufffdtag"]
    assert row["metadata"]["spend_logs_metadata"] == {"k\ufffd": "v\ufffd"}
    assert dead_letters(gw)["total"] == 0  # nothing needed the writer's own guard


# -- the spend writer guards itself ---------------------------------------------------------------


def poison_rows() -> dict[str, SpendRow]:
    now = datetime.now(timezone.utc)
    base = SpendRow(request_id="", call_type="acompletion", api_key=None, spend=0.5, prompt_tokens=1,
                    completion_tokens=1, total_tokens=2, start_time=now, end_time=now, model="upstream-model",
                    model_group="gpt-test", api_base=None, user=None, end_user=None, team_id=None,
                    request_tags=[], metadata={}, status="success", http_status=200)

    def make(name: str, **fields: Any) -> SpendRow:
        return dataclasses.replace(base, request_id=f"poison-{name}-{uuid.uuid4().hex[:8]}", **fields)

    return {
        # The JSON encoder refuses it on every database.
        "nesting": make("nesting", metadata={"spend_logs_metadata": nested(300), "leak": RAW_KEY}),
        # Neither SQLite's nor PostgreSQL's integer column takes it.
        "overflow": make("overflow", prompt_tokens=2**70, total_tokens=2**70),
        # PostgreSQL refuses NUL in text and jsonb; SQLite stores it.
        "nul": make("nul", request_tags=["a\x00b"], metadata={"x": "y\x00"}),
        # PostgreSQL refuses a value longer than its column; SQLite stores it.
        "too_long": make("too_long", call_type="c" * 300),
        # Nothing can make it storable: it has no start time.
        "hopeless": make("hopeless", start_time=None),
    }


def test_poison_spend_rows_never_stop_the_writer(gateway_server, fake_upstream):
    gw = gateway_server(config(fake_upstream))
    writer = gw.gateway.spend_writer
    poison = poison_rows()
    for row in poison.values():
        on_server_loop(gw, writer.submit, row)
    started = time.monotonic()
    with httpx.Client(timeout=10) as client:
        ordinary = [chat(gw, client) for _ in range(100)]
    wait_for(lambda: all(len(spend_row(gw, rid)) == 1 for rid in ordinary[-1:]) and not writer.queue,
             f"spend rows: {writer.written} written, {len(writer.queue)} queued", timeout=10)
    for rid in ordinary:
        assert len(spend_row(gw, rid)) == 1, rid
    elapsed = time.monotonic() - started
    assert elapsed < 15, elapsed

    letters = {d["ref"]: d for d in dead_letters(gw, source="spend")["dead_letters"]}
    # Every row that can be made storable is billed exactly once, repaired or as it was.
    for name in ("nesting", "overflow", "nul", "too_long"):
        rid = poison[name].request_id
        rows = spend_row(gw, rid)
        assert len(rows) == 1, (name, rows)
        if rid in letters:
            assert letters[rid]["outcome"] == "repaired"
    for name in ("nesting", "overflow"):  # refused on every database
        assert letters[poison[name].request_id]["outcome"] == "repaired"
    (stored,) = spend_row(gw, poison["overflow"].request_id)
    assert stored["prompt_tokens"] == 2**31 - 1
    hopeless = letters[poison["hopeless"].request_id]
    assert hopeless["outcome"] == "dropped" and spend_row(gw, poison["hopeless"].request_id) == []
    assert "AttributeError" in hopeless["reason"]
    nesting = letters[poison["nesting"].request_id]
    assert "TypeError" in nesting["reason"] or "Recursion" in nesting["reason"]
    for letter in letters.values():
        assert RAW_KEY not in letter["payload"] and RAW_KEY not in letter["reason"]
    assert "sk-...QQQQ" in nesting["payload"]
    summary = dead_letters(gw)["since_start"]["spend"]
    assert summary["dropped"] == 1 and summary["repaired"] == len(letters) - 1
    assert writer.lost == 1


def test_dead_letters_are_admin_only(gateway_server, fake_upstream):
    gw = gateway_server(config(fake_upstream))
    key = httpx.post(gw.url + "/key/generate", json={}, headers=ADMIN, timeout=10).json()["key"]
    r = httpx.get(gw.url + "/dead_letters", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert r.status_code == 403
    assert r.json()["error"]["message"] == "Only proxy admin can access this route. Route=/dead_letters"
    r = httpx.get(gw.url + "/dead_letters", params={"page": "x"}, headers=ADMIN, timeout=10)
    assert r.status_code == 400
    r = httpx.get(gw.url + "/dead_letters", params={"source": "spend\x00"}, headers=ADMIN, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["param"] == "source", r.text


# -- the audit writer guards itself ---------------------------------------------------------------


def audit_store(gw: Any) -> Any:
    return gw.gateway.host.slots["audit_store"].instance


def raw_audit_row(**fields: Any) -> dict[str, Any]:
    """A row as the audit hook queues it, but one that skipped its cleaning."""
    row = {"id": str(uuid.uuid4()), "updated_at": datetime.now(timezone.utc).isoformat(),
           "changed_by": "tester", "changed_by_api_key": None, "action": "created",
           "table_name": "LiteLLM_TeamTable", "object_id": f"poison-{uuid.uuid4().hex[:8]}",
           "before_value": None, "updated_values": {}}
    row.update(fields)
    return row


def test_poison_audit_rows_never_stop_the_audit_log(gateway_server, fake_upstream):
    gw = gateway_server(config(fake_upstream, store_audit_logs=True))
    store = audit_store(gw)
    poison = {
        "nesting": raw_audit_row(updated_values={"metadata": nested(300), "key": RAW_KEY}),
        "too_long": raw_audit_row(action="a" * 300),  # PostgreSQL refuses it; SQLite stores it
        "nul": raw_audit_row(object_id="nul\x00team"),  # PostgreSQL refuses it; SQLite stores it
    }
    for row in poison.values():
        on_server_loop(gw, store.queue.append, row)
    on_server_loop(gw, store._wake.set)
    teams = []
    with httpx.Client(timeout=10) as client:
        for i in range(100):
            r = client.post(gw.url + "/team/new", json={"team_alias": f"t{i}"}, headers=ADMIN)
            assert r.status_code == 200, r.text
            teams.append(r.json()["team_id"])

    def audited() -> set[str]:
        r = httpx.get(gw.url + "/audit", params={"page_size": 1000, "table_name": "LiteLLM_TeamTable"},
                      headers=ADMIN, timeout=10)
        return {row["object_id"] for row in r.json()["audit_logs"]}

    wait_for(lambda: set(teams) <= audited(), "every team change audited", timeout=10)
    letters = {d["ref"]: d for d in dead_letters(gw, source="audit")["dead_letters"]}
    nest = next(d for ref, d in letters.items() if poison["nesting"]["object_id"] in ref)
    assert nest["outcome"] == "repaired"
    assert RAW_KEY not in nest["payload"] and "sk-...QQQQ" in nest["payload"]
    assert poison["nesting"]["object_id"] in audited()  # stored, made storable
    assert store.lost == 0

    # The chain is whole: repaired rows joined it like any other.
    from gateway.core.audit_chain import verify_chain

    verdict = gw._thread.run(verify_chain())
    assert verdict.ok, verdict.message


# -- credentials in api_base ----------------------------------------------------------------------


def test_userinfo_in_api_base_is_sent_as_basic_auth_and_never_written(gateway_server, fake_upstream, caplog):
    fake_upstream.basic_auth = ("proxy-user", "p@ss:w0rd")
    base = fake_upstream.url.replace("http://", "http://proxy-user:p%40ss%3Aw0rd@")
    cfg = config(fake_upstream)
    cfg["model_list"][0]["litellm_params"]["api_base"] = base
    cfg["model_list"].append({"model_name": "wrong-pass", "litellm_params": {
        "model": "openai/upstream-model", "api_key": "sk-upstream",
        "api_base": fake_upstream.url.replace("http://", "http://proxy-user:n0pe-secret@")}})
    gw = gateway_server(cfg)
    reply = gw.client().chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "upstream says: hi"
    assert fake_upstream.requests[-1].headers["Authorization"].startswith("Basic ")

    r = httpx.post(gw.url + "/v1/chat/completions", headers=ADMIN, timeout=10,
                   json={"model": "wrong-pass", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 401  # the upstream's answer, passed on
    assert "n0pe-secret" not in r.text

    writer = gw.gateway.spend_writer
    wait_for(lambda: writer.written >= 2 and not writer.queue, "spend rows written")
    (row,) = spend_row(gw, reply.id)
    assert row["api_base"] == fake_upstream.url
    info = httpx.get(gw.url + "/spend/logs", headers=ADMIN, timeout=10).text
    logs = caplog.text
    for secret in ("p@ss", "p%40ss", "w0rd", "n0pe-secret"):
        assert secret not in info and secret not in logs and secret not in r.text
