"""Spend tracking end to end: a real gateway, the official openai SDK, a fake upstream whose usage
is known, and the `/spend/*` routes read back. Runs on SQLite, and on PostgreSQL when
`GATEWAY_TEST_DATABASE_URL` is set (every test here touches the database)."""

from __future__ import annotations

import hashlib
import math
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from typing import Any

import httpx
import openai
import pytest

pytestmark = pytest.mark.db

ADMIN = {"Authorization": "Bearer sk-1234"}
MASTER_HASH = hashlib.sha256(b"sk-1234").hexdigest()
IN_PRICE, OUT_PRICE = 0.0015, 0.002  # per token, set on the deployment so costs are exact
EMBED_PRICE = 0.0001
HI = [{"role": "user", "content": "hello there spend"}]
TIGHT = 1e-9


# -- helpers ---------------------------------------------------------------------------------------


def config(upstream: Any, **general: Any) -> dict[str, Any]:
    def dep(name: str, model: str, **prices: Any) -> dict[str, Any]:
        return {"model_name": name, "litellm_params": {"model": model, "api_base": upstream.url,
                                                       "api_key": "sk-upstream", **prices}}

    return {
        "model_list": [
            dep("gpt-test", "openai/upstream-model", input_cost_per_token=IN_PRICE, output_cost_per_token=OUT_PRICE),
            dep("embed-test", "openai/text-embedding-3-small", input_cost_per_token=EMBED_PRICE),
            dep("pricey", "openai/upstream-model", input_cost_per_token=1.0, output_cost_per_token=1.0),
        ],
        "router_settings": {"num_retries": 0, "cooldown_time": 0},
        "general_settings": {"spend_flush_interval_s": 0.05, **general},
    }


def cost(usage: Any, inp: float = IN_PRICE, out: float = OUT_PRICE) -> float:
    return usage.prompt_tokens * inp + (getattr(usage, "completion_tokens", None) or 0) * out


def sha(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def get(gw: Any, path: str, headers: dict[str, str] = ADMIN, **params: Any) -> Any:
    r = httpx.get(gw.url + path, params=params, headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def post(gw: Any, path: str, body: dict[str, Any], headers: dict[str, str] = ADMIN) -> Any:
    r = httpx.post(gw.url + path, json=body, headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def bearer(raw: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw}"}


def chat(gw: Any, key: str | None = None, model: str = "gpt-test", messages: Any = HI, **kw: Any) -> Any:
    return gw.client(api_key=key).chat.completions.create(model=model, messages=messages, **kw)


def settle(gw: Any, rows: int, timeout: float = 15.0) -> None:
    """Wait until the spend writer has written `rows` rows in all and holds none."""
    writer = gw.gateway.spend_writer
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if writer.written >= rows and not writer.queue:
            assert writer.written == rows, f"{writer.written} spend rows written, expected {rows}"
            return
        time.sleep(0.02)
    raise AssertionError(f"spend writer: {writer.written} of {rows} rows written, {len(writer.queue)} queued, "
                         f"{writer.lost} lost")


def row_for(gw: Any, request_id: str) -> dict[str, Any]:
    rows = get(gw, "/spend/logs", request_id=request_id)
    assert len(rows) == 1, rows
    return rows[0]


def today() -> date:
    return datetime.now(timezone.utc).date()


@pytest.fixture
def gw(gateway_server, fake_upstream):
    return gateway_server(config(fake_upstream))


# -- tags ------------------------------------------------------------------------------------------


def test_seed_tag_example_spend_per_tag(gw):
    raw = post(gw, "/key/generate", {"metadata": {"tags": ["tag1", "tag2", "tag3"]}})["key"]
    first = chat(gw, raw)
    second = chat(gw, raw, messages=[{"role": "user", "content": "a somewhat longer prompt than the first one"}])
    # Another key's call, tagged by the request, costs more than both: its tag comes first.
    other = post(gw, "/key/generate", {})["key"]
    big = chat(gw, other, messages=[{"role": "user", "content": " ".join(["word"] * 40)}],
               extra_body={"metadata": {"tags": ["big"]}})
    settle(gw, 3)
    spent = cost(first.usage) + cost(second.usage)
    assert 0 < spent < cost(big.usage)
    tags = get(gw, "/spend/tags")
    assert [t["individual_request_tag"] for t in tags] == ["big", "tag1", "tag2", "tag3"]  # ties: by name
    assert tags[0] == {"individual_request_tag": "big", "log_count": 1,
                       "total_spend": pytest.approx(cost(big.usage), rel=TIGHT)}
    for t in tags[1:]:
        assert t["log_count"] == 2
        assert t["total_spend"] == pytest.approx(spent, rel=TIGHT)
    assert row_for(gw, first.id)["request_tags"] == ["tag1", "tag2", "tag3"]
    assert row_for(gw, big.id)["request_tags"] == ["big"]


def test_request_key_and_team_tags_merge_in_order(gw):
    team = post(gw, "/team/new", {"team_alias": "tagged", "metadata": {"tags": ["team-tag", "tag1"]}})
    key = post(gw, "/key/generate", {"team_id": team["team_id"], "metadata": {"tags": ["tag1", "tag2"]},
                                     "tags": ["key-top", "tag2"]})["key"]
    reply = chat(gw, key, extra_body={"metadata": {"tags": ["req1", "tag2"]}, "tags": ["req-top", "req1"]})
    settle(gw, 1)
    row = row_for(gw, reply.id)
    assert row["request_tags"] == ["req1", "tag2", "req-top", "tag1", "key-top", "team-tag"]
    assert row["team_id"] == team["team_id"]
    by_tag = {t["individual_request_tag"]: t for t in get(gw, "/spend/tags")}
    assert set(by_tag) == set(row["request_tags"])
    assert all(t["log_count"] == 1 for t in by_tag.values())  # a duplicated tag is counted once


def test_tags_date_range_is_honoured(gw):
    raw = post(gw, "/key/generate", {"metadata": {"tags": ["dated"]}})["key"]
    reply = chat(gw, raw)
    settle(gw, 1)
    day = datetime.fromisoformat(row_for(gw, reply.id)["startTime"]).date()
    inside = get(gw, "/spend/tags", start_date=day.isoformat(), end_date=day.isoformat())
    assert [t["individual_request_tag"] for t in inside] == ["dated"]
    assert inside[0]["total_spend"] == pytest.approx(cost(reply.usage), rel=TIGHT)
    before = (day - timedelta(days=30)).isoformat(), (day - timedelta(days=1)).isoformat()
    assert get(gw, "/spend/tags", start_date=before[0], end_date=before[1]) == []
    assert get(gw, "/spend/tags", start_date=(day + timedelta(days=1)).isoformat()) == []
    assert len(get(gw, "/spend/tags", end_date=day.isoformat())) == 1


# -- custom metadata -------------------------------------------------------------------------------


def test_seed_custom_metadata_example(gw):
    user = post(gw, "/user/new", {"user_id": f"u-{uuid.uuid4().hex[:6]}"})["user_id"]
    team = post(gw, "/team/new", {"team_alias": "meta-team"})["team_id"]
    out = post(gw, "/key/generate", {"key_alias": "meta-key", "user_id": user, "team_id": team,
                                     "metadata": {"spend_logs_metadata": {"hello": "world"}}})
    raw = out["key"]
    reply = chat(gw, raw)
    settle(gw, 1)
    row = row_for(gw, reply.id)
    meta = row["metadata"]
    assert meta["user_api_key"] == sha(raw) == out["token"]
    assert meta["user_api_key_alias"] == "meta-key"
    assert meta["user_api_key_team_id"] == team
    assert meta["user_api_key_user_id"] == user
    assert meta["user_api_key_team_alias"] == "meta-team"
    assert meta["spend_logs_metadata"] == {"hello": "world"}
    text = httpx.get(gw.url + "/spend/logs", params={"request_id": reply.id}, headers=ADMIN).text
    assert raw not in text  # the raw key never appears


def test_spend_logs_metadata_overlays_team_key_request(gw):
    team = post(gw, "/team/new", {"metadata": {"spend_logs_metadata": {"a": "team", "b": "team"}}})["team_id"]
    raw = post(gw, "/key/generate", {"team_id": team,
                                     "metadata": {"spend_logs_metadata": {"b": "key", "c": "key"}}})["key"]
    reply = chat(gw, raw, extra_body={"metadata": {"spend_logs_metadata": {"c": "request", "d": 1}}})
    settle(gw, 1)
    assert row_for(gw, reply.id)["metadata"]["spend_logs_metadata"] == {"a": "team", "b": "key", "c": "request", "d": 1}


# -- row fields ------------------------------------------------------------------------------------


def test_row_fields_for_each_call_type(gw, fake_upstream):
    user = post(gw, "/user/new", {"user_id": "row-user"})["user_id"]
    team = post(gw, "/team/new", {"team_id": "row-team"})["team_id"]
    raw = post(gw, "/key/generate", {"user_id": user, "team_id": team, "metadata": {"tags": ["k"]}})["key"]
    client = gw.client(api_key=raw)
    before = datetime.now(timezone.utc)
    completion = client.chat.completions.create(model="gpt-test", messages=HI, user="end-1")
    text = client.completions.create(model="gpt-test", prompt="say this is a test", user="end-2")
    embedding = client.embeddings.create(model="embed-test", input=["one two three", "four five"])
    after = datetime.now(timezone.utc)
    settle(gw, 3)
    assert completion.id.startswith("chatcmpl-") and text.id.startswith("cmpl-")
    rows = {r["call_type"]: r for r in get(gw, "/spend/logs")}
    assert set(rows) == {"acompletion", "atext_completion", "aembedding"}
    for call_type, reply in (("acompletion", completion), ("atext_completion", text)):
        r = rows[call_type]
        assert r["request_id"] == reply.id
        assert (r["prompt_tokens"], r["completion_tokens"], r["total_tokens"]) == (
            reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens)
        assert r["spend"] == pytest.approx(cost(reply.usage), rel=TIGHT)
    e = rows["aembedding"]
    assert e["request_id"] != rows["acompletion"]["request_id"]
    assert e["prompt_tokens"] == embedding.usage.prompt_tokens == 5 and e["completion_tokens"] == 0
    assert e["spend"] == pytest.approx(5 * EMBED_PRICE, rel=TIGHT)  # embeddings: input tokens only
    assert e["model"] == "text-embedding-3-small" and e["model_group"] == "embed-test"
    for r in rows.values():
        start, end = datetime.fromisoformat(r["startTime"]), datetime.fromisoformat(r["endTime"])
        assert before - timedelta(seconds=1) <= start <= end <= after + timedelta(seconds=1)
        assert r["api_key"] == sha(raw) and r["user"] == user and r["team_id"] == team
        assert r["api_base"] == fake_upstream.url and "sk-upstream" not in str(r)
        assert r["request_tags"] == ["k"] and r["status"] == "success"
    assert rows["acompletion"]["model"] == "upstream-model" and rows["acompletion"]["model_group"] == "gpt-test"
    assert rows["acompletion"]["end_user"] == "end-1" and rows["atext_completion"]["end_user"] == "end-2"
    assert rows["aembedding"]["end_user"] is None


def test_master_key_calls_are_logged_under_its_hash(gw):
    reply = chat(gw)
    settle(gw, 1)
    row = row_for(gw, reply.id)
    assert row["api_key"] == MASTER_HASH and row["metadata"]["user_api_key"] == MASTER_HASH
    assert row["user"] is None and row["team_id"] is None


# -- failures, blocks, streams ----------------------------------------------------------------------


def test_upstream_failure_writes_a_failure_row_with_no_spend(gw, fake_upstream):
    fake_upstream.fail_next(500, message="upstream exploded")
    rid = f"req-{uuid.uuid4().hex}"
    with pytest.raises(openai.InternalServerError):
        chat(gw, extra_headers={"x-request-id": rid})
    settle(gw, 1)
    row = row_for(gw, rid)
    assert row["status"] == "failure" and row["spend"] == 0
    assert row["call_type"] == "acompletion" and row["model_group"] == "gpt-test"
    assert "upstream exploded" in row["metadata"]["error"]["message"]
    assert get(gw, "/spend/tags") == []


def test_blocked_call_writes_a_blocked_row_naming_the_plugin(gateway_server, fake_upstream):
    cfg = config(fake_upstream)
    cfg["litellm_settings"] = {"callbacks": ["probe_block"]}
    gw = gateway_server(cfg)
    raw = post(gw, "/key/generate", {"metadata": {"tags": ["blk"]}})["key"]
    rid = f"req-{uuid.uuid4().hex}"
    with pytest.raises(openai.BadRequestError):
        chat(gw, raw, messages=[{"role": "user", "content": "this is forbidden"}], extra_headers={"x-request-id": rid})
    settle(gw, 1)
    row = row_for(gw, rid)
    assert row["status"] == "blocked" and row["spend"] == 0
    assert row["metadata"]["blocked_by"] == "probe_block"
    assert row["request_tags"] == ["blk"] and row["api_key"] == sha(raw)
    assert fake_upstream.requests == []  # never reached the upstream
    assert get(gw, "/key/info", key=raw)["info"]["spend"] == 0


def test_streamed_call_uses_the_final_chunk_usage(gw):
    raw = post(gw, "/key/generate", {})["key"]
    client = gw.client(api_key=raw)
    chunks = list(client.chat.completions.create(model="gpt-test", messages=HI, stream=True,
                                                 stream_options={"include_usage": True}))
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens > 0
    # The client did not ask for usage: it does not get it, the spend log still has it.
    quiet = list(client.chat.completions.create(model="gpt-test", messages=HI, stream=True))
    assert all(c.usage is None for c in quiet)
    settle(gw, 2)
    for stream in (chunks, quiet):
        row = row_for(gw, stream[0].id)
        assert row["status"] == "success"
        assert (row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]) == (
            usage.prompt_tokens, usage.completion_tokens, usage.total_tokens)
        assert row["spend"] == pytest.approx(cost(usage), rel=TIGHT)
        assert "usage_estimated" not in row["metadata"]
    assert get(gw, "/key/info", key=raw)["info"]["spend"] == pytest.approx(2 * cost(usage), rel=TIGHT)


def test_stream_without_usage_is_estimated_and_says_so(gw, fake_upstream):
    fake_upstream.stream_usage = False
    fake_upstream.reply = "a reply of exactly forty characters long"
    chunks = list(gw.client().chat.completions.create(model="gpt-test", messages=HI, stream=True))
    settle(gw, 1)
    row = row_for(gw, chunks[0].id)
    prompt = math.ceil(len(HI[0]["content"]) / 4)
    completion = math.ceil(len(fake_upstream.reply) / 4)
    assert row["metadata"]["usage_estimated"] is True
    assert (row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]) == (
        prompt, completion, prompt + completion)
    assert row["spend"] == pytest.approx(prompt * IN_PRICE + completion * OUT_PRICE, rel=TIGHT)


def test_stream_cut_by_the_upstream_is_a_failure(gw, fake_upstream):
    fake_upstream.break_stream_after = 1
    fake_upstream.reply = "one two three four"
    with pytest.raises(openai.APIError):
        list(gw.client().chat.completions.create(model="gpt-test", messages=HI, stream=True))
    settle(gw, 1)
    [row] = get(gw, "/spend/logs")
    # Billed for what was sent and relayed, estimated (tests/test_stream_billing.py has the detail).
    assert row["status"] == "failure" and row["spend"] > 0 and row["metadata"]["usage_estimated"] is True


# -- counters and budgets ---------------------------------------------------------------------------


def test_key_team_user_and_end_user_spend_grow_by_the_cost(gw):
    user = post(gw, "/user/new", {"user_id": "spender"})["user_id"]
    team = post(gw, "/team/new", {"team_id": "spenders"})["team_id"]
    post(gw, "/customer/new", {"user_id": "customer-1"})
    raw = post(gw, "/key/generate", {"user_id": user, "team_id": team})["key"]

    def spends() -> tuple[float, float, float, float]:
        return (get(gw, "/key/info", key=raw)["info"]["spend"],
                get(gw, "/team/info", team_id=team)["team_info"]["spend"],
                get(gw, "/user/info", user_id=user)["user_info"]["spend"],
                get(gw, "/customer/info", end_user_id="customer-1")["spend"])

    assert spends() == (0, 0, 0, 0)
    first = chat(gw, raw, user="customer-1")
    settle(gw, 1)
    assert spends() == pytest.approx((cost(first.usage),) * 4, rel=TIGHT)
    second = chat(gw, raw, messages=[{"role": "user", "content": "more words this time around"}], user="customer-1")
    settle(gw, 2)
    total = cost(first.usage) + cost(second.usage)
    assert spends() == pytest.approx((total,) * 4, rel=TIGHT)
    assert {k["token"]: k["spend"] for k in get(gw, "/spend/keys")}[sha(raw)] == pytest.approx(total, rel=TIGHT)
    assert get(gw, "/spend/users", user_id=user) == [
        {"user_id": user, "spend": pytest.approx(total, rel=TIGHT), "max_budget": None}]


def test_the_writer_keeps_the_cached_records_it_charged_and_they_match_the_database(gw):
    # The worker that wrote the spend already holds it on its cached records: no reload per flush.
    user = post(gw, "/user/new", {"user_id": "kept"})["user_id"]
    raw = post(gw, "/key/generate", {"user_id": user, "max_budget": 100})["key"]
    first = chat(gw, raw)
    cache = gw.gateway.directory.cache
    key, owner = cache.peek("key", sha(raw)), cache.peek("user", user)
    assert key is not None and owner is not None
    settle(gw, 1)
    chat(gw, raw)
    settle(gw, 2)
    assert cache.peek("key", sha(raw)) is key and cache.peek("user", user) is owner
    info = get(gw, "/key/info", key=raw)["info"]
    assert info["spend"] > cost(first.usage)
    assert key.spend == pytest.approx(info["spend"], rel=TIGHT)
    assert owner.spend == pytest.approx(get(gw, "/user/info", user_id=user)["user_info"]["spend"], rel=TIGHT)


def test_budget_crossed_by_real_spend_refuses_the_next_call(gw):
    raw = post(gw, "/key/generate", {"max_budget": 0.5})["key"]
    first = chat(gw, raw, model="pricey")  # a handful of tokens at $1 each
    spent = cost(first.usage, 1.0, 1.0)
    assert spent > 0.5
    settle(gw, 1)
    with pytest.raises(openai.RateLimitError) as err:
        chat(gw, raw, model="gpt-test")
    assert err.value.status_code == 429
    assert err.value.body["type"] == "budget_exceeded"
    assert err.value.body["message"] == f"Budget has been exceeded! Current cost: {spent}, Max budget: 0.5"
    settle(gw, 2)  # the refused call is logged too, at no cost
    assert get(gw, "/key/info", key=raw)["info"]["spend"] == pytest.approx(spent, rel=TIGHT)


def test_budget_bites_on_the_very_next_call_without_waiting_for_the_writer(gateway_server, fake_upstream):
    gw = gateway_server(config(fake_upstream, spend_flush_interval_s=30))  # rows stay queued
    raw = post(gw, "/key/generate", {"max_budget": 0.5})["key"]
    chat(gw, raw, model="pricey")
    time.sleep(0.2)  # request_finished runs after the reply
    assert gw.gateway.spend_writer.written == 0
    with pytest.raises(openai.RateLimitError):
        chat(gw, raw)


def test_disable_spend_logs_writes_no_rows_but_still_counts_spend(gateway_server, fake_upstream):
    gw = gateway_server(config(fake_upstream, disable_spend_logs=True))
    raw = post(gw, "/key/generate", {"metadata": {"tags": ["quiet"]}})["key"]
    reply = chat(gw, raw)
    settle(gw, 1)
    assert get(gw, "/key/info", key=raw)["info"]["spend"] == pytest.approx(cost(reply.usage), rel=TIGHT)
    assert get(gw, "/spend/logs") == []
    assert get(gw, "/spend/tags") == []


# -- reading spend -----------------------------------------------------------------------------------


def test_non_admin_key_sees_only_its_own_rows(gw):
    a = post(gw, "/key/generate", {"user_id": "ua", "tags": ["ta"]})["key"]
    b = post(gw, "/key/generate", {"user_id": "ub", "tags": ["tb"]})["key"]
    ra, rb = chat(gw, a), chat(gw, b)
    chat(gw)  # the master key's own call
    settle(gw, 3)
    assert len(get(gw, "/spend/logs")) == 3
    own = get(gw, "/spend/logs", headers=bearer(a))
    assert [r["request_id"] for r in own] == [ra.id]
    for params in ({"api_key": b}, {"api_key": sha(b)}, {"request_id": rb.id}, {"user_id": "ub"}):
        rows = get(gw, "/spend/logs", headers=bearer(a), **params)
        assert all(r["api_key"] == sha(a) for r in rows), params
    assert [k["token"] for k in get(gw, "/spend/keys", headers=bearer(a))] == [sha(a)]
    assert {k["token"] for k in get(gw, "/spend/keys")} == {sha(a), sha(b)}
    assert get(gw, "/spend/logs", api_key=b)[0]["request_id"] == rb.id  # the admin may filter by key
    assert get(gw, "/spend/tags", headers=bearer(a)) == [
        {"individual_request_tag": "ta", "log_count": 1, "total_spend": pytest.approx(cost(ra.usage), rel=TIGHT)}]
    assert {t["individual_request_tag"] for t in get(gw, "/spend/tags")} == {"ta", "tb"}  # the admin: all
    day = datetime.fromisoformat(own[0]["startTime"]).astimezone(timezone.utc).date()
    assert [t["individual_request_tag"] for t in get(gw, "/spend/tags", headers=bearer(a), start_date=day.isoformat(),
                                                     end_date=day.isoformat())] == ["ta"]
    assert get(gw, "/spend/tags", headers=bearer(a), start_date=(day + timedelta(days=1)).isoformat()) == []
    assert get(gw, "/spend/tags", headers=bearer(a), end_date=(day - timedelta(days=1)).isoformat()) == []


def test_spend_logs_daily_aggregates_with_both_dates(gw):
    raw = post(gw, "/key/generate", {"user_id": "daily-user"})["key"]
    replies = [chat(gw, raw), chat(gw, raw), chat(gw)]
    settle(gw, 3)
    day = datetime.fromisoformat(row_for(gw, replies[0].id)["startTime"]).date().isoformat()
    [agg] = get(gw, "/spend/logs", start_date=day, end_date=day)
    total = sum(cost(r.usage) for r in replies)
    assert agg["startTime"] == day and agg["log_count"] == 3
    assert agg["spend"] == pytest.approx(total, rel=TIGHT)
    assert agg["models"] == {"upstream-model": pytest.approx(total, rel=TIGHT)}
    assert agg["users"] == {"daily-user": pytest.approx(cost(replies[0].usage) + cost(replies[1].usage), rel=TIGHT)}
    yesterday = (date.fromisoformat(day) - timedelta(days=1)).isoformat()
    assert get(gw, "/spend/logs", start_date=yesterday, end_date=yesterday) == []


def test_spend_calculate(gw):
    messages = [{"role": "user", "content": "Hey, how's it going?"}]
    got = post(gw, "/spend/calculate", {"model": "gpt-4", "messages": messages})
    assert got == {"cost": pytest.approx(math.ceil(len(messages[0]["content"]) / 4) * 3e-05, rel=TIGHT)}
    response = {"id": "chatcmpl-x", "object": "chat.completion", "model": "gpt-4",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}}
    got = post(gw, "/spend/calculate", {"completion_response": response})
    assert got == {"cost": pytest.approx(10 * 3e-05 + 20 * 6e-05, rel=TIGHT)}
    # A model group of this gateway is priced as its deployment is.
    got = post(gw, "/spend/calculate", {"completion_response": {**response, "model": "gpt-test"}})
    assert got == {"cost": pytest.approx(10 * IN_PRICE + 20 * OUT_PRICE, rel=TIGHT)}
    r = httpx.post(gw.url + "/spend/calculate", json={"model": "no-such-model", "messages": messages}, headers=ADMIN)
    assert r.status_code == 400 and r.json()["error"]["param"] == "model"


def test_spend_calculate_body_errors_are_400s_naming_the_problem(gw):
    def error(content: bytes) -> dict[str, Any]:
        r = httpx.post(gw.url + "/spend/calculate", content=content, headers=ADMIN)
        assert r.status_code == 400, r.text
        return r.json()["error"]

    assert error(b"{not json")["message"].startswith("Malformed JSON in request body: ")
    assert error(b" ")["message"].startswith("Malformed JSON in request body: ")
    assert error(b"[1]")["message"] == "Request body must be a JSON object"
    assert error(b"")["param"] == "model"  # an empty body is `{}`: it names no model


def test_spend_calculate_prices_cached_tokens_as_the_spend_row_does(gw):
    """A model known only to the price table is priced by the same formula as a call's row:
    cached prompt tokens at the model's cache-read price (gpt-5: 1.25e-06 in, 1.25e-07 cached,
    1e-05 out)."""
    usage = {"prompt_tokens": 1000, "completion_tokens": 10, "prompt_tokens_details": {"cached_tokens": 800}}
    response = {"id": "chatcmpl-x", "object": "chat.completion", "model": "gpt-5", "choices": [], "usage": usage}
    got = post(gw, "/spend/calculate", {"completion_response": response})
    assert got == {"cost": pytest.approx(200 * 1.25e-06 + 800 * 1.25e-07 + 10 * 1e-05, rel=TIGHT)}


@pytest.mark.parametrize("path,param", [("/spend/logs", "start_date"), ("/spend/logs", "end_date"),
                                        ("/spend/tags", "start_date"), ("/spend/tags", "end_date")])
def test_bad_dates_are_400_naming_the_param(gw, path, param):
    r = httpx.get(gw.url + path, params={param: "last tuesday"}, headers=ADMIN)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["param"] == param and param in err["message"] and err["type"] == "bad_request_error"
    assert err["code"] == "400"


def test_start_after_end_is_400(gw):
    r = httpx.get(gw.url + "/spend/tags", params={"start_date": "2024-06-02", "end_date": "2024-06-01"}, headers=ADMIN)
    assert r.status_code == 400 and r.json()["error"]["param"] == "start_date"


def test_over_long_tags_are_cut_to_fit_and_an_over_long_user_is_refused(gw):
    long_user, long_tag = "u" * 300, "t" * 300
    tagged = chat(gw, extra_body={"metadata": {"tags": [long_tag, "short"]}})
    with pytest.raises(openai.BadRequestError) as err:  # end users are tracked by this id
        chat(gw, user=long_user)
    assert err.value.body["param"] == "user"
    normal = chat(gw)
    settle(gw, 2)
    assert row_for(gw, tagged.id)["request_tags"] == [long_tag[:255], "short"]
    assert {t["individual_request_tag"] for t in get(gw, "/spend/tags")} == {long_tag[:255], "short"}
    assert row_for(gw, normal.id)["status"] == "success"


def test_text_the_database_cannot_hold_is_made_storable_and_billed(gw):
    """PostgreSQL refuses NUL characters in text; the row is stored with U+FFFD instead, on both."""
    odd = chat(gw, extra_body={"metadata": {"tags": ["nul\x00tag"]}})
    normal = chat(gw)
    settle(gw, 2)
    assert row_for(gw, normal.id)["status"] == "success"
    assert row_for(gw, odd.id)["request_tags"] == ["nul\ufffdtag"]
    assert gw.gateway.spend_writer.lost == 0


def test_end_user_seen_first_in_a_call_gets_its_spend_tracked(gw):
    reply = chat(gw, user="walk-in")
    settle(gw, 1)
    assert get(gw, "/customer/info", end_user_id="walk-in")["spend"] == pytest.approx(cost(reply.usage), rel=TIGHT)
    again = chat(gw, user="walk-in")
    settle(gw, 2)
    assert get(gw, "/customer/info", end_user_id="walk-in")["spend"] == pytest.approx(
        cost(reply.usage) + cost(again.usage), rel=TIGHT)


def test_daily_aggregates_are_utc_days_whatever_the_server_time_zone(gateway_server, fake_upstream, database_url):
    url = database_url()
    if url.startswith("sqlite"):
        pytest.skip("PostgreSQL only: SQLite has no session time zone")
    import asyncio

    import asyncpg

    # A zone whose date differs from UTC's right now: UTC+14 late in the UTC day, UTC-12 early in it.
    zone = "Pacific/Kiritimati" if datetime.now(timezone.utc).hour >= 10 else "Etc/GMT+12"

    async def set_zone() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f"ALTER DATABASE \"{url.rsplit('/', 1)[1]}\" SET timezone TO '{zone}'")
        finally:
            await conn.close()

    asyncio.run(set_zone())
    gw = gateway_server(config(fake_upstream), env={"DATABASE_URL": url})
    reply = chat(gw)
    settle(gw, 1)
    day = datetime.fromisoformat(row_for(gw, reply.id)["startTime"]).astimezone(timezone.utc).date().isoformat()
    [agg] = get(gw, "/spend/logs", start_date=day, end_date=day)
    assert agg["startTime"] == day and agg["log_count"] == 1
