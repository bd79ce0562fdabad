"""Every wait is bounded: a database or a Redis that accepts connections and never answers costs a
request its timeout at most, answers with a 503 envelope (never a 500, a 401 or a hang), never
holds up spend writes, and is reported once per outage rather than once per call."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

ADMIN = {"Authorization": "Bearer sk-1234"}
CHAT = {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}
FAST_DB = {"database_query_timeout_s": 1, "database_connection_timeout": 1}


def model_list(upstream: Any) -> list[dict[str, Any]]:
    return [{"model_name": "gpt-test",
             "litellm_params": {"model": "openai/upstream-model", "api_base": upstream.url, "api_key": "sk-upstream",
                                "input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}}]


def timed(fn: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = fn()
    return response, time.monotonic() - started


def assert_unavailable(response: httpx.Response, elapsed: float, limit: float) -> None:
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["type"] == "service_unavailable" and error["code"] == "503"
    assert "database" in error["message"]
    assert response.headers.get("x-request-id")
    assert elapsed < limit, f"answered after {elapsed:.1f} s"


# -- the database ----------------------------------------------------------------------------------


@pytest.mark.db
def test_a_black_holed_database_gets_503s_within_the_timeout(proxy_to, gateway_server, fake_upstream, database_url,
                                                             caplog):
    url = database_url()
    if url.startswith("sqlite"):
        pytest.skip("needs PostgreSQL (a database reached over TCP that can stop answering): "
                    "set GATEWAY_TEST_DATABASE_URL")
    parts = urlsplit(url)
    proxy = proxy_to(parts.hostname or "127.0.0.1", parts.port or 5432)
    # A password in the URL (the local server trusts and ignores it) must show up nowhere.
    proxied = parts._replace(netloc=f"{parts.username}:pw-never-shown@127.0.0.1:{proxy.port}").geturl()
    gw = gateway_server({"model_list": model_list(fake_upstream), "general_settings": FAST_DB},
                        env={"DATABASE_URL": proxied})
    with httpx.Client(base_url=gw.url, headers=ADMIN, timeout=15) as client:
        keys = [client.post("/key/generate", json={}).json()["key"] for _ in range(2)]  # neither cached yet
        assert client.get("/health/readiness").status_code == 200
        proxy.stall()

        r, elapsed = timed(lambda: client.get("/health/readiness"))
        assert r.status_code == 503 and r.json()["checks"]["database"].startswith("unavailable")
        assert elapsed < 3, f"readiness answered after {elapsed:.1f} s"
        assert_unavailable(*timed(lambda: client.post("/key/generate", json={})), limit=3)
        assert_unavailable(*timed(lambda: client.get("/key/info", params={"key": keys[1]})), limit=3)
        # An uncached key: the gateway cannot tell whether it is valid, so neither 401 nor 500.
        call = lambda: client.post("/v1/chat/completions", json=CHAT,  # noqa: E731
                                   headers={"Authorization": f"Bearer {keys[0]}"})
        assert_unavailable(*timed(call), limit=3)

        proxy.resume()
        deadline = time.monotonic() + 10
        while client.get("/health/readiness").status_code != 200:
            assert time.monotonic() < deadline, "the gateway did not recover when the database answered again"
            time.sleep(0.1)
        assert call().status_code == 200
    assert "pw-never-shown" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("gateway")], \
        "a database outage is a WARNING, not a traceback per request"


@pytest.mark.db
def test_a_locked_sqlite_database_gets_a_503_not_a_500(gateway_server, fake_upstream, database_url):
    url = database_url()
    if not url.startswith("sqlite"):
        pytest.skip("SQLite's lock: another process holding the database file")
    gw = gateway_server({"model_list": model_list(fake_upstream), "general_settings": FAST_DB},
                        env={"DATABASE_URL": url})
    with httpx.Client(base_url=gw.url, headers=ADMIN, timeout=15) as client:
        assert client.post("/key/generate", json={}).status_code == 200
        other = sqlite3.connect(url.split("://", 1)[1], isolation_level=None)
        try:
            other.execute("BEGIN EXCLUSIVE")  # another process writing, for longer than the timeout
            assert_unavailable(*timed(lambda: client.post("/key/generate", json={})), limit=3)
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert client.post("/key/generate", json={}).status_code == 200


@pytest.mark.parametrize("key,value", [("database_query_timeout_s", -1), ("database_connection_timeout", "soon"),
                                       ("database_connection_pool_limit", 0)])
def test_database_timeouts_are_validated_at_start(tmp_path, key, value):
    import yaml

    from gateway.core.app import create_app, load

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"general_settings": {key: value}}))
    with pytest.raises(ValueError, match=f"general_settings.{key}: expected a number > 0"):
        create_app(load(str(path)))


# -- Redis -----------------------------------------------------------------------------------------


def warnings(caplog: Any) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("gateway") and r.levelno >= logging.WARNING]


class Subscriber:
    """A direct subscriber to the invalidation channel: another instance, as Redis sees it. Like an
    instance, it confirms the changes whose publisher waits for that, from a thread of its own."""

    def __init__(self) -> None:
        import redis

        self.client = redis.Redis(host="127.0.0.1", port=6379)
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe("gateway:invalidate")
        self.received: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="subscriber", daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            message = self.pubsub.get_message(timeout=0.1)
            if not message:
                continue
            data = message["data"]
            if data.startswith(b"!"):  # `!origin/n kind:ident`: confirm to its publisher
                token, _, data = data[1:].partition(b" ")
                self.client.publish(b"gateway:invalidate:confirm:" + token.rpartition(b"/")[0], token)
            self.received.append(data)

    def wait_for(self, data: bytes, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if data in self.received:
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.pubsub.close()
        self.client.close()


@pytest.mark.db
def test_a_black_holed_redis_holds_up_nothing_and_is_reported_once(proxy_to, gateway_server, fake_upstream, caplog,
                                                                   redis_url):
    proxy = proxy_to("127.0.0.1", 6379)
    gw = gateway_server({"model_list": model_list(fake_upstream), "general_settings": {"spend_flush_interval_s": 0.1}},
                        env={"REDIS_URL": f"redis://127.0.0.1:{proxy.port}/0", "REDIS_SOCKET_TIMEOUT": "0.5"})
    others = Subscriber()
    caplog.set_level(logging.INFO, logger="gateway")
    try:
        with httpx.Client(base_url=gw.url, headers=ADMIN, timeout=15) as admin:
            keys = [admin.post("/key/generate", json={}).json()["key"] for _ in range(3)]
            proxy.stall()
            stalled_at = time.monotonic()
            for round_ in range(1, 4):
                for key in keys:
                    r = admin.post("/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {key}"})
                    assert r.status_code == 200
                started = time.monotonic()
                # Each call's spend row is written promptly: the spend writer never waits on Redis.
                while [len(admin.get("/spend/logs", params={"api_key": k}).json()) for k in keys] != [round_] * 3:
                    # (the outage lasts until resume(): a bound of seconds shows nothing waits on it)
                    assert time.monotonic() - started < 5, f"round {round_}: spend rows still not written"
                    time.sleep(0.05)
            r, elapsed = timed(lambda: admin.post("/key/update", json={"key": keys[0], "max_budget": 5}))
            assert r.status_code == 200 and elapsed < 2.5, f"a management change waited {elapsed:.1f} s on Redis"
            deadline = time.monotonic() + 3
            while not warnings(caplog):
                assert time.monotonic() < deadline, "the outage was never reported"
                time.sleep(0.05)
            for key in keys:  # more work during the outage: skipped silently, no more log lines
                admin.post("/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {key}"})
                admin.post("/key/update", json={"key": key, "max_budget": 7})
            time.sleep(1)
            reported = warnings(caplog)
            assert len(reported) == 1 and "is unavailable" in reported[0], reported
            assert time.monotonic() - stalled_at < 30

            proxy.resume()
            # Redis answers again: the next probe finds it, says so once with what was skipped, and
            # asks every instance to drop its cache (evictions were lost meanwhile).
            deadline = time.monotonic() + 10
            while not (back := [m for m in warnings(caplog) if "is back" in m]):
                assert time.monotonic() < deadline, "Redis was never found back"
                time.sleep(0.05)
            assert len(back) == 1 and "cache invalidation x" in back[0], back
            assert others.wait_for(b"*:", timeout=2), "no 'drop everything' after the outage"
    finally:
        others.close()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "an outage is one WARNING, not ERRORs"


@pytest.mark.db
def test_changes_missed_during_a_redis_outage_are_not_served_from_cache(proxy_to, gateway_server, fake_upstream,
                                                                        database_url, redis_url):
    """Another instance blocks a key while this one cannot hear Redis: once Redis is back, this
    instance drops its cache, so the key is refused at once rather than after the cache TTL."""
    import redis

    url = database_url()
    proxy = proxy_to("127.0.0.1", 6379)
    free = [{"model_name": "gpt-test", "litellm_params": {"model": "openai/upstream-model", "api_base": fake_upstream.url,
                                                          "input_cost_per_token": 0, "output_cost_per_token": 0}}]
    # Calls that cost nothing: no spend counter changes, so nothing but Redis evicts the cached key.
    gw = gateway_server({"model_list": free, "general_settings": {"user_api_key_cache_ttl": 600}},
                        env={"DATABASE_URL": url, "REDIS_URL": f"redis://127.0.0.1:{proxy.port}/0",
                             "REDIS_SOCKET_TIMEOUT": "0.5"})
    with httpx.Client(base_url=gw.url, headers=ADMIN, timeout=15) as admin:
        key = admin.post("/key/generate", json={}).json()
        user = {"Authorization": f"Bearer {key['key']}"}
        time.sleep(0.5)  # the gateway's own invalidation comes back through Redis: let it land first
        assert admin.post("/v1/chat/completions", json=CHAT, headers=user).status_code == 200  # now cached
        proxy.cut()
        time.sleep(0.3)
        block_in_database(url, key["token"])  # what another instance's /key/block does...
        redis.Redis(host="127.0.0.1", port=6379).publish("gateway:invalidate", f"key:{key['token']}")  # ...and says
        r = admin.post("/v1/chat/completions", json=CHAT, headers=user)
        assert r.status_code == 200, r.text  # cached: unheard
        proxy.restore()
        deadline = time.monotonic() + 10
        while admin.post("/v1/chat/completions", json=CHAT, headers=user).status_code == 200:
            assert time.monotonic() < deadline, "a change made during the outage was never applied"
            time.sleep(0.2)
        r = admin.post("/v1/chat/completions", json=CHAT, headers=user)
        assert r.status_code == 401 and "blocked" in r.json()["error"]["message"]


def block_in_database(url: str, token: str) -> None:
    if url.startswith("sqlite"):
        with sqlite3.connect(url.split("://", 1)[1]) as db:
            db.execute("UPDATE keys SET blocked = 1 WHERE token = ?", (token,))
        return

    async def run() -> None:
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            await conn.execute("UPDATE keys SET blocked = true WHERE token = $1", token)
        finally:
            await conn.close()

    asyncio.run(run())
