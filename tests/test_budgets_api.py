"""Budgets as objects (`/budget/*`) against a real server: every route and its errors, the audit
rows they write, linking end users (`/customer/*`), and what a linked budget does to LLM calls
with `user` set (refusal, invalidation on update, period reset, soft budget alert). Marked `db`:
the suite runs again on PostgreSQL with GATEWAY_TEST_DATABASE_URL set; so does the migration test."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import openai
import pytest

pytestmark = pytest.mark.db

ADMIN = {"Authorization": "Bearer sk-1234"}
HI = [{"role": "user", "content": "hi"}]
PRICED = {"model": "fake/m", "input_cost_per_token": 0.001, "output_cost_per_token": 0.001}
CONFIG = {
    "model_list": [{"model_name": "m", "litellm_params": PRICED}],
    "litellm_settings": {"store_audit_logs": True, "callbacks": ["probe_recorder"]},
    "general_settings": {"spend_flush_interval_s": 0.1},
}
BUDGET_FIELDS = ["budget_id", "max_budget", "soft_budget", "max_parallel_requests", "tpm_limit", "rpm_limit",
                 "model_max_budget", "budget_duration", "budget_reset_at", "created_at", "created_by",
                 "updated_at", "updated_by"]


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


def audit_rows(gw: Any, count: int, **match: Any) -> list[dict[str, Any]]:
    """Stored audit rows (oldest first) matching `match`; the store writes them off the call's path."""
    deadline = time.monotonic() + 5
    while True:
        rows = ok(get(gw, "/audit", page_size=1000, **match))["audit_logs"][::-1]
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def chat(gw: Any, key: str = "sk-1234", user: str | None = None) -> Any:
    extra = {"user": user} if user else {}
    return gw.client(api_key=key).chat.completions.create(model="m", messages=HI, **extra)


def when(value: str) -> datetime:
    return datetime.fromisoformat(value)


def until(check: Any, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)
    return result


@pytest.fixture
def gw(gateway_server):
    return gateway_server(CONFIG)


# -- the routes ------------------------------------------------------------------------------------


def test_budget_new_info_list_update_delete_with_audit_rows(gw):
    made = ok(post(gw, "/budget/new", {"budget_id": "free_tier", "max_budget": 5, "soft_budget": 4,
                                       "rpm_limit": 10, "tpm_limit": 1000, "max_parallel_requests": 2,
                                       "budget_duration": "30d",
                                       "model_max_budget": {"gpt-4o": {"max_budget": 1, "budget_duration": "1d"}}},
                       headers={**ADMIN, "litellm-changed-by": "ops"}))
    assert list(made) == BUDGET_FIELDS
    assert made["budget_id"] == "free_tier" and made["max_budget"] == 5.0 and made["soft_budget"] == 4.0
    assert (made["rpm_limit"], made["tpm_limit"], made["max_parallel_requests"]) == (10, 1000, 2)
    assert made["model_max_budget"] == {"gpt-4o": {"max_budget": 1.0, "budget_duration": "1d"}}
    assert made["created_by"] == made["updated_by"] == "ops"
    period = when(made["budget_reset_at"]) - datetime.now(timezone.utc)
    assert timedelta(days=29, hours=23) < period <= timedelta(days=30)
    generated = ok(post(gw, "/budget/new", {"max_budget": 1}))
    assert str(uuid.UUID(generated["budget_id"])) == generated["budget_id"]
    assert generated["budget_duration"] is None and generated["budget_reset_at"] is None

    assert ok(get(gw, "/budget/info", budget_id="free_tier")) == made
    both = ok(post(gw, "/budget/info", {"budgets": [generated["budget_id"], "free_tier"]}))
    assert [b["budget_id"] for b in both] == [generated["budget_id"], "free_tier"]
    assert [b["budget_id"] for b in ok(get(gw, "/budget/list"))] == ["free_tier", generated["budget_id"]]

    updated = ok(post(gw, "/budget/update", {"budget_id": "free_tier", "max_budget": 7, "soft_budget": None}))
    assert updated["max_budget"] == 7.0 and updated["soft_budget"] is None and updated["rpm_limit"] == 10
    assert updated["budget_reset_at"] == made["budget_reset_at"]  # the period goes on
    shorter = ok(post(gw, "/budget/update", {"budget_id": "free_tier", "budget_duration": "1h"}))
    assert when(shorter["budget_reset_at"]) - datetime.now(timezone.utc) <= timedelta(hours=1)

    deleted = ok(post(gw, "/budget/delete", {"id": "free_tier"}))
    assert deleted["budget_id"] == "free_tier" and deleted["max_budget"] == 7.0  # the budget as it was
    error(get(gw, "/budget/info", budget_id="free_tier"), 404)
    assert [b["budget_id"] for b in ok(get(gw, "/budget/list"))] == [generated["budget_id"]]

    rows = audit_rows(gw, 4, object_id="free_tier")
    assert [r["action"] for r in rows] == ["created", "updated", "updated", "deleted"]
    assert {r["table_name"] for r in rows} == {"LiteLLM_BudgetTable"}
    assert rows[0]["changed_by"] == "ops" and rows[0]["before_value"] is None
    assert rows[0]["updated_values"]["max_budget"] == 5.0 and rows[0]["updated_values"]["rpm_limit"] == 10
    assert rows[1]["before_value"]["max_budget"] == 5.0
    assert rows[1]["updated_values"] == {"max_budget": 7.0, "soft_budget": None}
    assert set(rows[2]["updated_values"]) == {"budget_duration", "budget_reset_at"}
    assert rows[3]["before_value"]["budget_id"] == "free_tier" and rows[3]["updated_values"] is None
    assert "sk-1234" not in str(rows)


def test_budget_errors(gw):
    ok(post(gw, "/budget/new", {"budget_id": "b1"}))
    dup = error(post(gw, "/budget/new", {"budget_id": "b1", "max_budget": 1}), 400)
    assert dup["message"] == "Budget with id 'b1' already exists." and dup["param"] == "budget_id"
    for body, param in (
        ({"max_budget": -1}, "max_budget"),
        ({"soft_budget": -0.5}, "soft_budget"),
        ({"rpm_limit": -1}, "rpm_limit"),
        ({"tpm_limit": 1.5}, "tpm_limit"),
        ({"max_parallel_requests": "many"}, "max_parallel_requests"),
        ({"max_budgett": 1}, "max_budgett"),  # a misspelt field is refused, never ignored
        ({"budget_duration": "monthly"}, "budget_duration"),
        ({"budget_reset_at": "tomorrow"}, "budget_reset_at"),
        ({"model_max_budget": {"m": {"budget_duration": "soon"}}}, "model_max_budget.m.budget_duration"),
        ({"model_max_budget": {"m": {"max_budget": -1}}}, "model_max_budget.m.max_budget"),
        ({"budget_id": ""}, "budget_id"),
        ({"budget_id": "x" * 256}, "budget_id"),
    ):
        assert error(post(gw, "/budget/new", body), 400)["param"] == param, body
    bad = error(post(gw, "/budget/new", {"budget_duration": "monthly"}), 400)
    assert bad["message"] == "budget_duration must look like 30s, 30m, 30h, 30d, 2w or 1mo; got 'monthly'"
    assert error(post(gw, "/budget/update", {"max_budget": 1}), 400)["param"] == "budget_id"
    assert error(post(gw, "/budget/update", {"budget_id": "b1", "max_budget": -2}), 400)["param"] == "max_budget"
    missing = error(post(gw, "/budget/update", {"budget_id": "ghost", "max_budget": 1}), 404)
    assert missing["message"] == "Budget not found, passed budget_id=ghost" and missing["param"] == "budget_id"
    assert error(post(gw, "/budget/info", {"budgets": ["b1", "ghost"]}), 404)["param"] == "budgets"
    assert error(post(gw, "/budget/info", {"budgets": []}), 400)["param"] == "budgets"
    assert error(get(gw, "/budget/info", budget_id="ghost"), 404)["param"] == "budget_id"
    assert error(get(gw, "/budget/info"), 400)["param"] == "budget_id"
    assert error(post(gw, "/budget/delete", {"id": "ghost"}), 404)["param"] == "id"
    assert error(post(gw, "/budget/delete", {}), 400)["param"] == "id"
    raw = httpx.post(gw.url + "/budget/new", content=b"{not json", headers=ADMIN)
    assert error(raw, 400)["message"].startswith("Malformed JSON")

    key = ok(post(gw, "/key/generate", {}))["key"]
    user = {"Authorization": f"Bearer {key}"}
    for method, path, body in (("POST", "/budget/new", {}), ("POST", "/budget/update", {"budget_id": "b1"}),
                               ("POST", "/budget/info", {"budgets": ["b1"]}), ("GET", "/budget/info", None),
                               ("GET", "/budget/list", None), ("POST", "/budget/delete", {"id": "b1"})):
        resp = httpx.request(method, gw.url + path, json=body, headers=user,
                             params={"budget_id": "b1"} if method == "GET" else None, timeout=10)
        assert error(resp, 403)["message"] == f"Only proxy admin can access this route. Route={path}"
    assert ok(get(gw, "/budget/info", budget_id="b1"))["budget_id"] == "b1"  # nothing changed


# -- links to end users ----------------------------------------------------------------------------


def test_customers_link_to_budgets(gw):
    budget = ok(post(gw, "/budget/new", {"budget_id": "paid", "max_budget": 20, "rpm_limit": 60}))
    linked = ok(post(gw, "/customer/new", {"user_id": "acme", "budget_id": "paid"}))
    assert linked["budget_id"] == "paid" and linked["max_budget"] is None
    assert linked["litellm_budget_table"] == budget
    assert ok(get(gw, "/customer/info", end_user_id="acme")) == linked
    assert ok(post(gw, "/end_user/new", {"user_id": "globex", "budget_id": "paid"}))["budget_id"] == "paid"

    unknown = error(post(gw, "/customer/new", {"user_id": "x", "budget_id": "ghost"}), 400)
    assert unknown["param"] == "budget_id" and "budget_id=ghost" in unknown["message"]
    both = error(post(gw, "/customer/new", {"user_id": "x", "budget_id": "paid", "max_budget": 1}), 400)
    assert both["message"] == "Pass either budget_id or budget limits (max_budget), not both"
    error(get(gw, "/customer/info", end_user_id="x"), 404)  # nothing half-made

    # Limits only a budget holds create one for the customer, holding every limit sent (LiteLLM's way).
    own = ok(post(gw, "/customer/new", {"user_id": "initech", "max_budget": 3, "budget_duration": "1d",
                                        "tpm_limit": 500, "soft_budget": 2}))
    table = own["litellm_budget_table"]
    assert own["budget_id"] == table["budget_id"] and own["max_budget"] is None
    assert (table["max_budget"], table["budget_duration"], table["tpm_limit"], table["soft_budget"]) == \
        (3.0, "1d", 500, 2.0)
    assert own["budget_id"] in [b["budget_id"] for b in ok(get(gw, "/budget/list"))]
    # max_budget alone stays on the end user's own row, as before budgets existed.
    plain = ok(post(gw, "/customer/new", {"user_id": "hooli", "max_budget": 4}))
    assert plain["max_budget"] == 4.0 and plain["budget_id"] is None and plain["litellm_budget_table"] is None

    moved = ok(post(gw, "/customer/update", {"user_id": "hooli", "budget_id": "paid"}))
    assert moved["budget_id"] == "paid" and moved["litellm_budget_table"]["rpm_limit"] == 60
    assert moved["max_budget"] == 4.0  # its own max_budget stays (and wins over the budget's)
    assert error(post(gw, "/customer/update", {"user_id": "hooli", "budget_id": "ghost"}), 400)["param"] == "budget_id"
    refused = error(post(gw, "/customer/update", {"user_id": "hooli", "rpm_limit": 5}), 400)
    assert refused["param"] == "rpm_limit" and "/budget/update" in refused["message"]
    listed = {e["user_id"]: e for e in ok(get(gw, "/customer/list"))}
    assert listed["hooli"]["litellm_budget_table"]["budget_id"] == "paid"
    assert listed["initech"]["litellm_budget_table"]["tpm_limit"] == 500
    unlinked = ok(post(gw, "/customer/update", {"user_id": "hooli", "budget_id": None}))
    assert unlinked["budget_id"] is None and unlinked["litellm_budget_table"] is None

    # Deleting a budget unlinks its end users (LiteLLM's ON DELETE SET NULL), one audit row each.
    ok(post(gw, "/budget/delete", {"id": "paid"}))
    for user_id in ("acme", "globex"):
        info = ok(get(gw, "/customer/info", end_user_id=user_id))
        assert info["budget_id"] is None and info["litellm_budget_table"] is None
    rows = audit_rows(gw, 3, object_id="acme", table_name="LiteLLM_EndUserTable")
    assert [(r["action"], r["updated_values"].get("budget_id")) for r in rows] == \
        [("created", "paid"), ("updated", None)]
    assert rows[1]["before_value"] == {"budget_id": "paid"}
    assert [r["action"] for r in audit_rows(gw, 1, object_id=own["budget_id"])] == ["created"]


# -- what a linked budget does to LLM calls ---------------------------------------------------------


def test_linked_max_budget_refuses_calls_and_update_applies_at_once(gw):
    ok(post(gw, "/budget/new", {"budget_id": "tiny", "max_budget": 1}))
    ok(post(gw, "/customer/new", {"user_id": "spender", "budget_id": "tiny"}))
    key = ok(post(gw, "/key/generate", {}))["key"]
    assert chat(gw, key, user="spender").choices
    until(lambda: ok(get(gw, "/customer/info", end_user_id="spender"))["spend"] > 0)  # its spend landed
    ok(post(gw, "/customer/update", {"user_id": "spender", "spend": 1.5}))
    with pytest.raises(openai.RateLimitError) as err:
        chat(gw, key, user="spender")
    assert err.value.status_code == 429
    assert err.value.body == {"message": "Budget has been exceeded! Current cost: 1.5, Max budget: 1.0",
                              "type": "budget_exceeded", "param": None, "code": "429"}
    assert chat(gw, key, user="someone-else").choices
    # The refused call cached the end user with the budget's limit; the update evicts it at once.
    ok(post(gw, "/budget/update", {"budget_id": "tiny", "max_budget": 10}))
    assert chat(gw, key, user="spender").choices
    ok(post(gw, "/budget/update", {"budget_id": "tiny", "max_budget": 1}))
    with pytest.raises(openai.RateLimitError):
        chat(gw, key, user="spender")
    # The end user's own max_budget wins over its budget's.
    ok(post(gw, "/customer/update", {"user_id": "spender", "max_budget": 100}))
    assert chat(gw, key, user="spender").choices
    # Deleting the budget leaves the own limit alone; unlinked without one, nothing limits the spend.
    ok(post(gw, "/customer/update", {"user_id": "spender", "max_budget": None}))
    with pytest.raises(openai.RateLimitError):
        chat(gw, key, user="spender")
    ok(post(gw, "/budget/delete", {"id": "tiny"}))
    assert chat(gw, key, user="spender").choices


def test_budget_limits_are_attributes_of_the_end_user_record(gw):
    """What the rate limiter reads (`getattr(record, "rpm_limit", None)` ...), from the directory."""
    ok(post(gw, "/budget/new", {"budget_id": "limits", "rpm_limit": 7, "tpm_limit": 700,
                                "max_parallel_requests": 3, "max_budget": 9, "budget_duration": "1d"}))
    ok(post(gw, "/customer/new", {"user_id": "limited", "budget_id": "limits"}))

    def record() -> Any:
        directory = gw.gateway.directory
        return asyncio.run_coroutine_threadsafe(directory.end_user("limited"), gw._thread.loop).result(10)

    ok(get(gw, "/budget/list"))  # any request applies the invalidations already written (ours included)
    r = record()
    assert (r.rpm_limit, r.tpm_limit, r.max_parallel_requests, r.max_budget) == (7, 700, 3, 9.0)
    assert record() is r  # cached
    assert r.budget_id == "limits" and r.budget_reset_at is not None
    ok(post(gw, "/budget/update", {"budget_id": "limits", "rpm_limit": 1}))
    assert record().rpm_limit == 1  # the cached record was evicted by the update


def test_a_budget_period_that_ended_resets_its_end_users_spend(gw):
    ok(post(gw, "/budget/new", {"budget_id": "monthly", "max_budget": 1, "budget_duration": "30d"}))
    ok(post(gw, "/customer/new", {"user_id": "renewing", "budget_id": "monthly"}))
    ok(post(gw, "/customer/update", {"user_id": "renewing", "spend": 5}))
    with pytest.raises(openai.RateLimitError):
        chat(gw, user="renewing")
    ok(post(gw, "/budget/update", {"budget_id": "monthly", "budget_reset_at": "2020-01-01T00:00:00Z"}))
    assert chat(gw, user="renewing").choices  # a new period: the old spend no longer counts
    budget = ok(get(gw, "/budget/info", budget_id="monthly"))
    period = when(budget["budget_reset_at"]) - datetime.now(timezone.utc)
    assert timedelta(days=29, hours=23) < period <= timedelta(days=30)
    spend = until(lambda: (s := ok(get(gw, "/customer/info", end_user_id="renewing"))["spend"]) and s)
    assert 0 < spend < 1  # the one call of the new period, not the 5 before it


def test_soft_budget_crossed_alerts_once_per_period(gw):
    ok(post(gw, "/budget/new", {"budget_id": "soft", "soft_budget": 0.000001, "max_budget": 100,
                                "budget_duration": "30d"}))
    ok(post(gw, "/customer/new", {"user_id": "watched", "budget_id": "soft"}))

    def alerts() -> list[str]:
        return ok(get(gw, "/probe/recorded"))["alerts"]

    def spend() -> float:
        return ok(get(gw, "/customer/info", end_user_id="watched"))["spend"]

    assert chat(gw, user="watched").choices  # spend 0 before it: no alert
    until(lambda: spend() > 0)
    assert alerts() == []
    for _ in range(3):  # past the soft budget: one alert, however many calls
        before = spend()
        assert chat(gw, user="watched").choices
        until(lambda: spend() > before)
    assert until(alerts) == ["soft_budget_crossed"]
    time.sleep(0.3)
    assert alerts() == ["soft_budget_crossed"]
    # A spend reset by hand starts over: crossing again alerts again.
    ok(post(gw, "/customer/update", {"user_id": "watched", "spend": 0}))
    assert chat(gw, user="watched").choices
    until(lambda: spend() > 0)
    assert chat(gw, user="watched").choices
    assert until(lambda: len(alerts()) == 2 and alerts()) == ["soft_budget_crossed"] * 2
    # So does a new soft budget (the spend is already past it: the next call alerts).
    ok(post(gw, "/budget/update", {"budget_id": "soft", "soft_budget": 0.000002}))
    assert chat(gw, user="watched").choices
    assert until(lambda: len(alerts()) == 3 and alerts()) == ["soft_budget_crossed"] * 3


# -- the migration ---------------------------------------------------------------------------------


def test_migration_0006_upgrades_a_database_with_end_users(tmp_path, postgres_databases):
    """A database at 0005 holding an end user migrates to 0006: the user is kept, unlinked, and can
    be linked to a new budget; the migration is recorded as applied (PostgreSQL when configured)."""
    from tortoise import connections
    from tortoise.migrations.executor import MigrationExecutor, MigrationTarget

    from gateway.core.db import Database

    url = postgres_databases.create() if postgres_databases is not None else f"sqlite://{tmp_path / 'old.sqlite3'}"

    async def run() -> None:
        db = Database(url)
        await db.connect()
        try:
            conn = connections.get("default")
            await MigrationExecutor(conn, db.apps).migrate([MigrationTarget("gateway", "0005_spend_prompts")])
            assert (await db.pending_migrations())[0] == "gateway.0006_budgets"
            now = datetime.now(timezone.utc)
            await conn.execute_query(
                "INSERT INTO end_users (user_id, spend, blocked, metadata, created_at, updated_at) "
                + ("VALUES ($1, 2.5, false, '{}', $2, $2)" if not db.is_sqlite else "VALUES (?, 2.5, 0, '{}', ?, ?)"),
                ["old-customer", now] if not db.is_sqlite else ["old-customer", now.isoformat(), now.isoformat()])
            assert (await db.migrate())[0] == "gateway.0006_budgets"  # and those after it
            assert await db.pending_migrations() == []
            from gateway.core.db.models import Budget, EndUser, Key

            old = await EndUser.get(user_id="old-customer")
            assert old.spend == 2.5 and old.budget_id is None and old.soft_budget_alerted_at is None
            await Budget.create(budget_id="b", max_budget=1.0, model_max_budget={"m": {"rpm_limit": 1}})
            old.budget_id = "b"
            await old.save()
            assert await EndUser.filter(budget_id="b").values_list("user_id", flat=True) == ["old-customer"]
            assert (await Budget.get(budget_id="b")).model_max_budget == {"m": {"rpm_limit": 1}}
            assert await Key.filter(budget_id="b").count() == 0
        finally:
            await db.close()

    asyncio.run(run())


def test_a_key_linked_to_a_budget_takes_its_limits(gateway_server):
    gw = gateway_server(CONFIG)
    ok(post(gw, "/budget/new", {"budget_id": "team-tier", "rpm_limit": 1}))
    error(post(gw, "/key/generate", {"budget_id": "nope"}), 400)
    key = ok(post(gw, "/key/generate", {"budget_id": "team-tier"}))
    assert key["budget_id"] == "team-tier"
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=key["key"], max_retries=0)
    client.chat.completions.create(model="m", messages=HI)
    with pytest.raises(openai.RateLimitError, match="Limit type: requests. Current limit: 1"):
        client.chat.completions.create(model="m", messages=HI)
    # Raised on the budget: the key's cached copy is dropped, the next call is let through.
    ok(post(gw, "/budget/update", {"budget_id": "team-tier", "rpm_limit": 5}))
    client.chat.completions.create(model="m", messages=HI)
    # The key's own limit wins over its budget's.
    own = ok(post(gw, "/key/generate", {"budget_id": "team-tier", "rpm_limit": 1}))
    mine = openai.OpenAI(base_url=gw.url + "/v1", api_key=own["key"], max_retries=0)
    mine.chat.completions.create(model="m", messages=HI)
    with pytest.raises(openai.RateLimitError):
        mine.chat.completions.create(model="m", messages=HI)
