"""Rate limits: `rpm_limit`, `tpm_limit` and `max_parallel_requests` of keys, teams, users and end
users, enforced at admission with 429 `rate_limit_error` in the LiteLLM proxy's words.

Windows are 60 s (they start with the first request counted after the previous one ended); the
window-reset test shortens them through `GATEWAY_TEST_RATE_LIMIT_WINDOW_S`, which exists for tests.
The fake upstream reports `USAGE` (10 tokens a call) unless a test says otherwise.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

pytestmark = pytest.mark.db

ADMIN = {"Authorization": "Bearer sk-1234"}
HI = [{"role": "user", "content": "hi"}]
USAGE = {"prompt_tokens": 6, "completion_tokens": 4}  # 10 tokens a call
WINDOW_ENV = "GATEWAY_TEST_RATE_LIMIT_WINDOW_S"
GATEWAY_BIN = str(Path(sys.executable).parent / "gateway")
REFUSAL = re.compile(r"Rate limit exceeded for (\w+): (\S+)\. Limit type: (\w+)\. Current limit: (\d+), "
                     r"Remaining: (\d+)\. Limit resets at: (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC")
ENTITY = {"key": "api_key", "team": "team", "user": "user", "end_user": "end_user"}
KIND = {"rpm": "requests", "tpm": "tokens", "parallel": "max_parallel_requests"}
FIELD = {"rpm": "rpm_limit", "tpm": "tpm_limit", "parallel": "max_parallel_requests"}


def config(upstream: Any, **general: Any) -> dict[str, Any]:
    return {
        "model_list": [{"model_name": "m", "litellm_params": {
            "model": "openai/up", "api_base": upstream.url, "api_key": "sk-upstream"}}],
        "router_settings": {"num_retries": 0},
        "general_settings": {"master_key": "sk-1234", **general},
    }


def admin(url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = httpx.post(url + path, json=body, headers=ADMIN, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def chat(url: str, key: str, **body: Any) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                      json={"model": "m", "messages": HI, **body}, timeout=30)


def burst(calls: list[tuple[str, str, dict[str, Any]]]) -> list[httpx.Response]:
    """Send every (url, key, extra body) call at once; the responses, in order."""
    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=200)) as client:
            return await asyncio.gather(*(
                client.post(url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                            json={"model": "m", "messages": HI, **extra})
                for url, key, extra in calls))

    return asyncio.run(run())


def refusal(r: httpx.Response) -> tuple[str, ...]:
    """(entity, id, limit type, limit, remaining) of a 429, its envelope checked."""
    assert r.status_code == 429, r.text
    error = r.json()["error"]
    assert error["type"] == "rate_limit_error" and error["code"] == "429" and error["param"] is None, error
    found = REFUSAL.fullmatch(error["message"])
    assert found, error["message"]
    return found.groups()[:5]


def limits_header(r: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in r.headers.items() if k.startswith("x-ratelimit-")}


def entity_keys(url: str, level: str, kind: str, limit: int) -> tuple[list[str], str, dict[str, Any]]:
    """Two keys whose calls count towards one `kind` limit of `limit` on `level`; the entity's
    id as a refusal names it; the body fields the calls need."""
    field = {FIELD[kind]: limit}
    if level == "key":
        made = admin(url, "/key/generate", field)
        return [made["key"]], made["token"], {}
    if level == "team":
        team = admin(url, "/team/new", field)["team_id"]
        return [admin(url, "/key/generate", {"team_id": team})["key"] for _ in range(2)], team, {}
    if level == "user":
        admin(url, "/user/new", {"user_id": f"rl-user-{kind}", **field})
        return [admin(url, "/key/generate", {"user_id": f"rl-user-{kind}"})["key"] for _ in range(2)], \
            f"rl-user-{kind}", {}
    admin(url, "/customer/new", {"user_id": f"rl-customer-{kind}", **field})  # a budget holds the limit
    return [admin(url, "/key/generate", {})["key"] for _ in range(2)], f"rl-customer-{kind}", \
        {"user": f"rl-customer-{kind}"}


# -- every limit on every level ------------------------------------------------------------------


def test_a_key_over_its_rpm_gets_litellms_429_with_honest_retry_after(gateway_server, fake_upstream):
    server = gateway_server(config(fake_upstream))
    made = admin(server.url, "/key/generate", {"rpm_limit": 2, "key_alias": "rl-alias"})
    key, token = made["key"], made["token"]
    first, second = chat(server.url, key), chat(server.url, key)
    assert first.status_code == second.status_code == 200
    assert limits_header(first) == {"x-ratelimit-limit-requests": "2", "x-ratelimit-remaining-requests": "1"}
    assert limits_header(second) == {"x-ratelimit-limit-requests": "2", "x-ratelimit-remaining-requests": "0"}
    third = chat(server.url, key)
    now = datetime.now(timezone.utc)
    assert refusal(third) == ("api_key", token, "requests", "2", "0")
    assert key not in third.text and key not in str(third.headers)
    retry = int(third.headers["retry-after"])
    assert 55 <= retry <= 60  # the window started with the first call, a moment ago
    resets = datetime.strptime(REFUSAL.fullmatch(third.json()["error"]["message"]).group(6),
                               "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
    assert abs((resets - now).total_seconds() - retry) <= 2
    assert limits_header(third) == {"x-ratelimit-limit-requests": "2", "x-ratelimit-remaining-requests": "0"}
    assert "x-request-id" in third.headers
    assert len(fake_upstream.requests) == 2


@pytest.mark.parametrize("level", ["key", "team", "user", "end_user"])
def test_rpm_on_every_level(gateway_server, fake_upstream, level):
    server = gateway_server(config(fake_upstream))
    keys, ident, extra = entity_keys(server.url, level, "rpm", 2)
    answers = [chat(server.url, keys[i % len(keys)], **extra) for i in range(4)]
    assert [r.status_code for r in answers] == [200, 200, 429, 429]
    assert refusal(answers[2]) == (ENTITY[level], ident, "requests", "2", "0")
    assert len(fake_upstream.requests) == 2


@pytest.mark.parametrize("level", ["key", "team", "user", "end_user"])
def test_tpm_on_every_level_counts_the_real_usage_of_finished_calls(gateway_server, fake_upstream, level):
    fake_upstream.usage = USAGE
    server = gateway_server(config(fake_upstream))
    keys, ident, extra = entity_keys(server.url, level, "tpm", 15)
    first = chat(server.url, keys[0], **extra)
    assert first.status_code == 200
    assert limits_header(first) == {"x-ratelimit-limit-tokens": "15", "x-ratelimit-remaining-tokens": "15"}
    time.sleep(0.3)  # the tokens are counted once the call has ended, off the request path
    second = chat(server.url, keys[-1], **extra)  # 10 of 15 used: still admitted
    assert second.status_code == 200
    assert limits_header(second) == {"x-ratelimit-limit-tokens": "15", "x-ratelimit-remaining-tokens": "5"}
    time.sleep(0.3)
    third = chat(server.url, keys[0], **extra)  # 20 of 15 used
    assert refusal(third) == (ENTITY[level], ident, "tokens", "15", "0")
    assert len(fake_upstream.requests) == 2


@pytest.mark.parametrize("level", ["key", "end_user"])  # teams and users have no max_parallel_requests
def test_max_parallel_requests_admits_that_many_concurrent_calls(gateway_server, fake_upstream, level):
    fake_upstream.delay = 1.0
    server = gateway_server(config(fake_upstream))
    keys, ident, extra = entity_keys(server.url, level, "parallel", 2)
    answers = burst([(server.url, keys[i % len(keys)], extra) for i in range(6)])
    assert sorted(r.status_code for r in answers) == [200, 200, 429, 429, 429, 429]
    refused = [r for r in answers if r.status_code == 429]
    assert {refusal(r) for r in refused} == {(ENTITY[level], ident, "max_parallel_requests", "2", "0")}
    assert {r.headers["retry-after"] for r in refused} == {"1"}
    assert len(fake_upstream.requests) == 2
    # Both calls ended: their slots are free again.
    again = burst([(server.url, keys[0], extra)] * 2)
    assert [r.status_code for r in again] == [200, 200]


def test_max_parallel_requests_zero_refuses_everything(gateway_server, fake_upstream):
    server = gateway_server(config(fake_upstream))
    made = admin(server.url, "/key/generate", {"max_parallel_requests": 0})
    r = chat(server.url, made["key"])
    assert refusal(r) == ("api_key", made["token"], "max_parallel_requests", "0", "0")
    assert fake_upstream.requests == []


def test_a_stream_holds_its_parallel_slot_until_it_ends(gateway_server, fake_upstream):
    fake_upstream.reply_chunks = ["one ", "two ", "three ", "four"]
    fake_upstream.chunk_interval = 0.3
    server = gateway_server(config(fake_upstream))
    key = admin(server.url, "/key/generate", {"max_parallel_requests": 1})["key"]
    with httpx.stream("POST", server.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                      json={"model": "m", "messages": HI, "stream": True}, timeout=30) as stream:
        assert stream.status_code == 200
        chunks = stream.iter_bytes()
        next(chunks)  # the stream is under way
        assert refusal(chat(server.url, key))[2] == "max_parallel_requests"
        assert b"[DONE]" in b"".join(chunks)
    deadline = time.monotonic() + 5
    while (r := chat(server.url, key)).status_code != 200:  # released when the stream ended
        assert refusal(r)[2] == "max_parallel_requests" and time.monotonic() < deadline
        time.sleep(0.05)


def test_a_refused_call_takes_nothing_from_the_other_limits(gateway_server, fake_upstream):
    """All or nothing: a call refused by its end user's rpm does not count towards its key's."""
    server = gateway_server(config(fake_upstream))
    admin(server.url, "/customer/new", {"user_id": "rl-one-call", "rpm_limit": 1})
    key = admin(server.url, "/key/generate", {"rpm_limit": 2})["key"]
    assert chat(server.url, key, user="rl-one-call").status_code == 200
    assert refusal(chat(server.url, key, user="rl-one-call"))[:3] == ("end_user", "rl-one-call", "requests")
    last = chat(server.url, key)
    assert last.status_code == 200
    assert limits_header(last) == {"x-ratelimit-limit-requests": "2", "x-ratelimit-remaining-requests": "0"}


def test_headers_name_the_tightest_limits_and_a_key_without_limits_gets_none(gateway_server, fake_upstream):
    server = gateway_server(config(fake_upstream))
    team = admin(server.url, "/team/new", {"rpm_limit": 3, "tpm_limit": 100000})["team_id"]
    admin(server.url, "/user/new", {"user_id": "rl-tight", "tpm_limit": 50})
    key = admin(server.url, "/key/generate", {"team_id": team, "user_id": "rl-tight", "rpm_limit": 10})["key"]
    r = chat(server.url, key)
    assert r.status_code == 200
    assert limits_header(r) == {"x-ratelimit-limit-requests": "3", "x-ratelimit-remaining-requests": "2",
                                "x-ratelimit-limit-tokens": "50", "x-ratelimit-remaining-tokens": "50"}
    free = admin(server.url, "/key/generate", {})["key"]
    r = chat(server.url, free)
    assert r.status_code == 200 and limits_header(r) == {}


def test_windows_reset(gateway_server, fake_upstream):
    fake_upstream.usage = USAGE
    server = gateway_server(config(fake_upstream), env={WINDOW_ENV: "1.5"})
    key = admin(server.url, "/key/generate", {"rpm_limit": 1})["key"]
    tokens = admin(server.url, "/key/generate", {"tpm_limit": 5})["key"]
    assert chat(server.url, key).status_code == 200
    assert chat(server.url, tokens).status_code == 200
    refused = chat(server.url, key)
    assert refusal(refused)[2] == "requests"
    assert refused.headers["retry-after"] in ("1", "2")
    time.sleep(0.3)
    assert refusal(chat(server.url, tokens))[2] == "tokens"
    time.sleep(1.5)
    assert chat(server.url, key).status_code == 200
    assert chat(server.url, tokens).status_code == 200


def test_a_bad_failure_setting_stops_start_up(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"general_settings": {"rate_limit_redis_failure": "maybe"}}))
    done = subprocess.run([GATEWAY_BIN, "--config", str(path)], capture_output=True, text=True, timeout=30,
                          env={**os.environ, "DATABASE_URL": f"sqlite://{tmp_path / 'db.sqlite3'}"})
    assert done.returncode == 2
    assert "general_settings.rate_limit_redis_failure: must be fail_open or fail_closed, got 'maybe'" in done.stderr


# -- Redis -----------------------------------------------------------------------------------------


def test_two_instances_sharing_redis_let_exactly_the_rpm_through(gateway_server, database_url, fake_upstream,
                                                                 redis_url):
    fake_upstream.delay = 0.2
    env = {"DATABASE_URL": database_url(), "REDIS_URL": redis_url}
    a = gateway_server(config(fake_upstream), env=env)
    b = gateway_server(config(fake_upstream), env=env)  # its own process
    key = admin(a.url, "/key/generate", {"rpm_limit": 20})["key"]
    answers = burst([(url, key, {}) for url in (a.url, b.url) for _ in range(50)])
    assert sorted(r.status_code for r in answers).count(200) == 20
    assert {refusal(r)[2:] for r in answers if r.status_code == 429} == {("requests", "20", "0")}
    assert len(fake_upstream.requests) == 20
    remaining = sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in answers if r.status_code == 200)
    assert remaining == list(range(20))  # each admitted call saw the shared count


def test_parallel_and_tpm_counted_in_redis_across_instances(gateway_server, database_url, fake_upstream, redis_url):
    fake_upstream.usage = USAGE
    env = {"DATABASE_URL": database_url(), "REDIS_URL": redis_url}
    a = gateway_server(config(fake_upstream), env=env)
    b = gateway_server(config(fake_upstream), env=env)
    parallel = admin(a.url, "/key/generate", {"max_parallel_requests": 3})["key"]
    tokens = admin(a.url, "/key/generate", {"tpm_limit": 15})["key"]
    fake_upstream.delay = 1.0
    answers = burst([(url, parallel, {}) for url in (a.url, b.url) for _ in range(10)])
    assert sorted(r.status_code for r in answers).count(200) == 3
    fake_upstream.delay = 0.0
    time.sleep(0.3)  # the releases leave the request path
    assert [r.status_code for r in burst([(a.url, parallel, {}), (b.url, parallel, {})])] == [200, 200]
    assert chat(a.url, tokens).status_code == 200
    time.sleep(0.3)
    second = chat(b.url, tokens)  # b sees a's 10 tokens
    assert limits_header(second)["x-ratelimit-remaining-tokens"] == "5"
    time.sleep(0.3)
    assert refusal(chat(a.url, tokens))[2] == "tokens"
    time.sleep(0.3)  # let the last token count reach Redis before the instances stop


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens on it once closed


def test_an_unreachable_redis_counts_in_the_process_with_one_warning(gateway_server, fake_upstream, caplog):
    env = {"REDIS_URL": f"redis://127.0.0.1:{_closed_port()}/0", "REDIS_SOCKET_TIMEOUT": "0.2"}
    with caplog.at_level("INFO"):
        server = gateway_server(config(fake_upstream), env=env)
        key = admin(server.url, "/key/generate", {"rpm_limit": 3})["key"]
        started = time.monotonic()
        answers = [chat(server.url, key) for _ in range(6)]
        assert time.monotonic() - started < 3
        assert [r.status_code for r in answers] == [200, 200, 200, 429, 429, 429]
        state = httpx.get(server.url + "/plugins", headers=ADMIN, timeout=10).json()["limits"]
        assert state["counted_in"] == "process (Redis unavailable)" and state["redis_fallbacks"] >= 6
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and r.name.startswith("gateway")]
    assert len([w for w in warnings if " is unavailable (" in w]) == 1, warnings


def test_fail_closed_refuses_rate_limited_calls_while_redis_is_unreachable(gateway_server, fake_upstream):
    env = {"REDIS_URL": f"redis://127.0.0.1:{_closed_port()}/0", "REDIS_SOCKET_TIMEOUT": "0.2"}
    server = gateway_server(config(fake_upstream, rate_limit_redis_failure="fail_closed"), env=env)
    limited = admin(server.url, "/key/generate", {"rpm_limit": 100})["key"]
    free = admin(server.url, "/key/generate", {})["key"]
    r = chat(server.url, limited)
    assert r.status_code == 503, r.text
    assert r.json()["error"]["type"] == "service_unavailable"
    assert "Redis is unavailable" in r.json()["error"]["message"]
    assert chat(server.url, free).status_code == 200  # no rate limit: no Redis needed
    assert state_refusals(server.url) >= 1


def state_refusals(url: str) -> int:
    return httpx.get(url + "/plugins", headers=ADMIN, timeout=10).json()["limits"]["redis_refusals"]


# -- the store's window API (for deployment-level rpm/tpm) --------------------------------------------


@pytest.mark.parametrize("where", ["process", "redis"])
async def test_try_window_counts_in_one_window_then_resets(where, request):
    from gateway.core.limits import Limits
    from gateway.core.redis_guard import RedisGuard

    guard = RedisGuard(request.getfixturevalue("redis_url")) if where == "redis" else None
    limits = Limits(guard)
    name = f"test:deployment:{time.monotonic_ns()}:rpm"  # a counter of this test only
    try:
        assert await limits.try_window(name, 1, 2, 0.5) == (True, 1.0, 0.5)
        ok, remaining, reset = await limits.try_window(name, 1, 2, 0.5)
        assert (ok, remaining) == (True, 0.0) and 0 < reset <= 0.5
        ok, remaining, reset = await limits.try_window(name, 1, 2, 0.5)
        assert (ok, remaining) == (False, 0.0) and 0 < reset <= 0.5
        limits.add(name + ":tpm", 7, 0.5)  # sent to Redis off the request path: seen a moment later
        deadline = time.monotonic() + 0.3
        while (seen := await limits.try_window(name + ":tpm", 0, 10, 0.5))[1] != 3.0 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert seen[:2] == (True, 3.0)
        await asyncio.sleep(0.55)
        assert (await limits.try_window(name, 1, 2, 0.5))[:2] == (True, 1.0)
        assert limits.counters()["counted_in"] == where
    finally:
        await limits.close()
        if guard is not None:
            await guard.close()
