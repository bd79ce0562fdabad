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


class StallingProxy:
    """A TCP proxy on 127.0.0.1 in its own thread, in front of a real server.

    `stall()`: connections are still accepted, but nothing more is relayed either way (a server
    that hangs, or a network that black-holes); `resume()` relays again. `cut()`: every connection
    is reset and new ones are refused at once; `restore()` undoes it."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="stalling-proxy", daemon=True)
        self.thread.start()
        self.relaying = self._call(self._event())
        self.refusing = False
        self.writers: set[asyncio.StreamWriter] = set()
        self.server = self._call(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]

    @staticmethod
    async def _event() -> asyncio.Event:
        event = asyncio.Event()
        event.set()
        return event

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self.relaying.wait()
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.transport.abort()
            return
        self.writers.add(writer)
        await self.relaying.wait()
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.writers.add(up_writer)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    def stall(self) -> None:
        self.loop.call_soon_threadsafe(self.relaying.clear)

    def resume(self) -> None:
        self.loop.call_soon_threadsafe(self.relaying.set)

    def cut(self) -> None:
        async def cut() -> None:
            self.refusing = True
            for w in list(self.writers):
                w.transport.abort()
            self.writers.clear()

        self._call(cut())

    def restore(self) -> None:
        self.refusing = False

    def close(self) -> None:
        async def close() -> None:
            self.server.close()
            for w in list(self.writers):
                w.transport.abort()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self._call(close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def proxy_to():
    """Factory of `StallingProxy`s, closed at the end (ask for it before `gateway_server`, so that
    gateways stop while their database is still reachable)."""
    proxies: list[StallingProxy] = []

    def make(host: str, port: int) -> StallingProxy:
        proxies.append(StallingProxy(host, port))
        return proxies[-1]

    yield make
    for p in proxies:
        p.close()


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
    """A direct subscriber to the invalidation channel (another instance, as Redis sees it)."""

    def __init__(self) -> None:
        import redis

        self.pubsub = redis.Redis(host="127.0.0.1", port=6379).pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe("gateway:invalidate")

    def wait_for(self, data: bytes, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self.pubsub.get_message(timeout=0.2)
            if message and message["data"] == data:
                return True
        return False

    def close(self) -> None:
        self.pubsub.close()


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
