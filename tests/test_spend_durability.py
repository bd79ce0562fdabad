"""Spend rows survive what production does to a gateway: a SIGTERM under load, and a database that
goes away and comes back under load. Every 200 the clients got must have its spend row."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

pytestmark = pytest.mark.db

GATEWAY_BIN = str(Path(sys.executable).parent / "gateway")
ADMIN = {"Authorization": "Bearer sk-1234"}
BODY = {"model": "gpt-test", "messages": [{"role": "user", "content": "count me"}]}


# -- helpers ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def model_list(upstream: Any) -> list[dict[str, Any]]:
    return [{"model_name": "gpt-test",
             "litellm_params": {"model": "openai/upstream-model", "api_base": upstream.url, "api_key": "sk-upstream",
                                "input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}}]


class Load:
    """Threads posting chat calls in a loop until stopped (or until the server is gone)."""

    def __init__(self, url: str, threads: int = 4) -> None:
        self.url = url
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.statuses: Counter[Any] = Counter()
        self.ok_ids: list[str] = []
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, headers=ADMIN, timeout=30) as client:
            while not self.stop.is_set():
                try:
                    r = client.post("/v1/chat/completions", json=BODY)
                except httpx.HTTPError as exc:
                    with self.lock:
                        self.statuses[type(exc).__name__] += 1
                    if self.stop.is_set() or isinstance(exc, httpx.ConnectError):
                        time.sleep(0.05)
                    continue
                with self.lock:
                    self.statuses[r.status_code] += 1
                    if r.status_code == 200:
                        self.ok_ids.append(r.json()["id"])

    def start(self) -> "Load":
        for t in self.threads:
            t.start()
        return self

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(60)
        assert not any(t.is_alive() for t in self.threads)

    @property
    def ok(self) -> int:
        with self.lock:
            return self.statuses[200]


def success_rows(url: str) -> list[str]:
    """request_id of every spend row with status success, read straight from the database."""
    if url.startswith("sqlite://"):
        with sqlite3.connect(url.split("://", 1)[1]) as db:
            return [r[0] for r in db.execute("SELECT request_id FROM spend_logs WHERE status = 'success'")]

    async def read() -> list[str]:
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            rows = await conn.fetch("SELECT request_id FROM spend_logs WHERE status = 'success'")
            return [r["request_id"] for r in rows]
        finally:
            await conn.close()

    return asyncio.run(read())


def assert_every_success_logged(load: Load, url: str) -> None:
    rows = success_rows(url)
    assert len(rows) == load.ok, f"{load.ok} responses were 200 but {len(rows)} success rows exist ({load.statuses})"
    assert sorted(rows) == sorted(load.ok_ids)


# -- SIGTERM under load ----------------------------------------------------------------------------


def test_sigterm_under_load_loses_no_spend_row(tmp_path, fake_upstream, database_url):
    fake_upstream.delay = 0.01  # keep requests in flight when the signal lands
    url = database_url()
    config = {"model_list": model_list(fake_upstream),
              "general_settings": {"master_key": "sk-1234", "spend_flush_interval_s": 30,
                                   "spend_batch_size": 100_000}}  # every row still queued at SIGTERM
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    log = tmp_path / "gateway.log"
    env = {**os.environ, "DATABASE_URL": url}
    with log.open("wb") as out:
        proc = subprocess.Popen([GATEWAY_BIN, "--config", str(path), "--host", "127.0.0.1", "--port", str(port)],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    load = None
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, f"gateway exited early:\n{log.read_text()}"
            try:
                if httpx.get(base + "/health/liveliness", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "gateway did not start"
            time.sleep(0.05)
        load = Load(base).start()
        time.sleep(2)
        assert load.ok > 20, load.statuses
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
        load.finish()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if load is not None:
            load.finish()
    output = log.read_text()
    assert code == 0, output
    assert_every_success_logged(load, url)


# -- the database goes away and comes back --------------------------------------------------------


class CuttableProxy:
    """A TCP proxy on 127.0.0.1 in its own thread. `cut()` closes the listener and every open
    connection (the database is gone); `restore()` listens again on the same port.
    `drop_next_commit_reply()`: the next COMMIT reaches the server, and its connection dies before
    the reply gets back (the client cannot know that its transaction committed)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="db-proxy", daemon=True)
        self.thread.start()
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.port = 0
        self.connections = 0
        self.commit_armed = threading.Event()
        self.commits_dropped = 0

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    peer: asyncio.StreamWriter | None = None) -> None:
        try:
            while data := await reader.read(65536):
                # A simple-protocol Query message 'COMMIT;' on its way to the server (peer: the client).
                if peer is not None and b"Q\x00\x00\x00\x0cCOMMIT;\x00" in data and self.commit_armed.is_set():
                    self.commit_armed.clear()
                    peer.transport.abort()  # the client never hears back...
                    writer.write(data)  # ...but the server gets the COMMIT, and commits
                    await writer.drain()
                    await asyncio.sleep(0.2)
                    writer.transport.abort()
                    self.commits_dropped += 1
                    return
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.connections += 1
        self.writers |= {writer, up_writer}
        try:
            await asyncio.gather(self._pipe(reader, up_writer, peer=writer), self._pipe(up_reader, writer))
        finally:
            self.writers -= {writer, up_writer}

    async def _listen(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for w in list(self.writers):
            w.transport.abort()
        self.writers.clear()
        await self.server.wait_closed()
        self.server = None

    def start(self) -> "CuttableProxy":
        self._call(self._listen())
        return self

    def cut(self) -> None:
        self._call(self._cut())

    def restore(self) -> None:
        self._call(self._listen())

    def close(self) -> None:
        if self.server is not None:
            self.cut()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def test_database_outage_under_load_loses_no_spend_row(gateway_server, fake_upstream, database_url):
    url = database_url()
    if url.startswith("sqlite"):
        pytest.skip("needs PostgreSQL (a database reached over TCP that can be cut): set GATEWAY_TEST_DATABASE_URL")
    parts = urlsplit(url)
    proxy = CuttableProxy(parts.hostname or "127.0.0.1", parts.port or 5432).start()
    try:
        proxied = parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}").geturl()
        gw = gateway_server({"model_list": model_list(fake_upstream),
                             "general_settings": {"spend_flush_interval_s": 0.1, "spend_batch_size": 50}},
                            env={"DATABASE_URL": proxied})
        writer = gw.gateway.spend_writer
        load = Load(gw.url).start()
        time.sleep(1)
        before_cut = load.ok
        proxy.cut()
        time.sleep(3)
        during = load.ok - before_cut
        proxy.restore()
        time.sleep(1.5)
        load.finish()
        assert during > 20, f"requests must go on while the database is away: {load.statuses}"
        assert set(load.statuses) == {200}, load.statuses
        assert writer.failures > 0, "the outage was never felt by the spend writer"
        gw.stop()
        assert writer.lost == 0 and not writer.queue
        assert writer.written == load.ok
    finally:
        proxy.close()
    assert_every_success_logged(load, url)


def test_a_commit_whose_reply_is_lost_is_not_written_twice(gateway_server, fake_upstream, database_url):
    url = database_url()
    if url.startswith("sqlite"):
        pytest.skip("needs PostgreSQL (a database reached over TCP that can be cut): set GATEWAY_TEST_DATABASE_URL")
    parts = urlsplit(url)
    proxy = CuttableProxy(parts.hostname or "127.0.0.1", parts.port or 5432).start()
    try:
        proxied = parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}").geturl()
        gw = gateway_server({"model_list": model_list(fake_upstream),
                             "general_settings": {"spend_flush_interval_s": 0.1}}, env={"DATABASE_URL": proxied})
        key = httpx.post(gw.url + "/key/generate", json={}, headers=ADMIN).json()
        writer = gw.gateway.spend_writer
        proxy.commit_armed.set()
        client = gw.client(api_key=key["key"])
        replies = [client.chat.completions.create(model="gpt-test", messages=BODY["messages"]) for _ in range(5)]
        deadline = time.monotonic() + 15
        while writer.written < 5 or writer.queue or not proxy.commits_dropped:  # the proxy counts last
            assert time.monotonic() < deadline, (writer.written, len(writer.queue), writer.failures)
            time.sleep(0.02)
        assert proxy.commits_dropped == 1
        assert writer.written == 5 and writer.lost == 0
        spend = sum(r.usage.prompt_tokens * 1e-6 + r.usage.completion_tokens * 2e-6 for r in replies)
        info = httpx.get(gw.url + "/key/info", params={"key": key["key"]}, headers=ADMIN).json()["info"]
        assert info["spend"] == pytest.approx(spend, rel=1e-9)  # counted once
        gw.stop()
    finally:
        proxy.close()
    assert sorted(success_rows(url)) == sorted(r.id for r in replies)
