"""The identity cache: concurrent misses share one database load, and an eviction still wins."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from gateway.core.identity import IdentityCache, Invalidator


class Loads:
    """A load that waits until released, counting how often it ran."""

    def __init__(self) -> None:
        self.count = 0
        self.release = asyncio.Event()

    async def __call__(self) -> dict[str, int]:
        self.count += 1
        n = self.count
        await self.release.wait()
        return {"version": n}


async def test_concurrent_misses_share_one_load():
    cache, load = IdentityCache(), Loads()
    callers = [asyncio.ensure_future(cache.get("key", "k", load)) for _ in range(32)]
    await asyncio.sleep(0.01)
    load.release.set()
    assert [r["version"] for r in await asyncio.gather(*callers)] == [1] * 32
    assert load.count == 1
    assert (await cache.get("key", "k", load))["version"] == 1  # kept


async def test_an_eviction_during_a_load_wins():
    cache, load = IdentityCache(), Loads()
    early = asyncio.ensure_future(cache.get("key", "k", load))
    await asyncio.sleep(0.01)
    cache.evict("key", "k")  # e.g. the key was blocked while its row was being read
    late = asyncio.ensure_future(cache.get("key", "k", load))
    await asyncio.sleep(0.01)
    load.release.set()
    assert (await early)["version"] == 1  # read before the change: returned, not kept
    assert (await late)["version"] == 2  # arrived after the change: read anew
    assert (await cache.get("key", "k", load))["version"] == 2
    assert load.count == 2


async def test_an_eviction_of_another_record_leaves_a_load_alone():
    cache, load = IdentityCache(), Loads()
    loading = asyncio.ensure_future(cache.get("key", "k", load))
    await asyncio.sleep(0.01)
    cache.evict("key", "other")  # e.g. another worker's spend on another key
    load.release.set()
    assert (await loading)["version"] == 1
    assert cache.peek("key", "k") == {"version": 1}  # kept: the next call reads no database
    cache.clear()  # everything goes, loads in flight included
    assert cache.peek("key", "k") is None


async def test_a_caller_that_leaves_does_not_cancel_the_others():
    cache, load = IdentityCache(), Loads()
    first = asyncio.ensure_future(cache.get("key", "k", load))
    second = asyncio.ensure_future(cache.get("key", "k", load))
    await asyncio.sleep(0.01)
    first.cancel()  # the client that caused the load went away
    load.release.set()
    assert (await second)["version"] == 1
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_a_failed_load_reaches_every_waiter_and_is_not_kept():
    cache, attempts = IdentityCache(), []

    async def broken() -> None:
        attempts.append(1)
        await asyncio.sleep(0.01)
        raise TimeoutError("database away")

    results = await asyncio.gather(*(cache.get("key", "k", broken) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, TimeoutError) for r in results) and len(attempts) == 1
    with pytest.raises(TimeoutError):
        await cache.get("key", "k", broken)
    assert len(attempts) == 2


async def cached(cache: IdentityCache, ident: str, value: str = "row") -> None:
    async def load() -> str:
        return value

    await cache.get("key", ident, load)


@contextlib.asynccontextmanager
async def two_workers(tmp_path: Path) -> AsyncIterator[tuple[list[IdentityCache], list[Invalidator]]]:
    """Two workers of one machine (one database file), each with keys `a` and `b` cached."""
    url = f"sqlite://{tmp_path / 'gw.db'}"
    caches = [IdentityCache(), IdentityCache()]
    workers = [Invalidator(cache, url, None) for cache in caches]
    for w in workers:
        await w.start()
    try:
        for cache in caches:
            await cached(cache, "a")
            await cached(cache, "b")
        yield caches, workers
    finally:
        for w in workers:
            await w.close()


async def test_workers_see_each_others_changes_through_the_file(tmp_path):
    async with two_workers(tmp_path) as (caches, workers):
        await workers[0].publish("key", "a")
        assert caches[0].peek("key", "a") is None  # at once where it was published
        assert caches[1].peek("key", "a") == "row"
        workers[1].poll()
        assert caches[1].peek("key", "a") is None and caches[1].peek("key", "b") == "row"
        workers[0].file.append(b"key:")  # a line still being written is not applied half
        workers[1].poll()
        workers[0].file.append(b"b\n")
        assert caches[1].peek("key", "b") == "row"
        workers[1].poll()
        assert caches[1].peek("key", "b") is None


async def test_a_worker_reads_the_file_only_when_another_wrote_to_it(tmp_path, monkeypatch):
    reads: list[int] = []
    real_pread = os.pread

    def counted(fd: int, size: int, offset: int) -> bytes:
        reads.append(offset)
        return real_pread(fd, size, offset)

    async with two_workers(tmp_path) as (caches, workers):
        workers[1].poll()  # the first look of the second
        monkeypatch.setattr(os, "pread", counted)
        for _ in range(100):
            workers[1].poll()
        assert reads == []  # nothing written: no read at all
        await workers[0].publish("key", "a")
        workers[1].poll()
        workers[1].poll()
        assert len(reads) == 1 and caches[1].peek("key", "a") is None


async def test_a_file_removed_by_hand_drops_the_cache_and_is_followed_again(tmp_path):
    url = f"sqlite://{tmp_path / 'gw.db'}"
    cache, other = IdentityCache(), IdentityCache()
    worker, writer = Invalidator(cache, url, None), Invalidator(other, url, None)
    await worker.start()
    try:
        await cached(cache, "a")
        worker.path.unlink()
        worker.file._checked = 0.0  # as if a second had passed since the last check
        worker.poll()
        assert cache.peek("key", "a") is None  # changes may have been missed: everything goes
        await cached(cache, "a")
        await writer.start()  # a worker started after the removal writes to the new file
        await writer.publish("key", "a")
        worker.poll()
        assert cache.peek("key", "a") is None
    finally:
        await worker.close()
        await writer.close()


async def test_spend_news_reaches_every_worker_but_its_writer(tmp_path):
    # The spend writer's worker already holds the amounts on its cached records; the others reload them.
    async with two_workers(tmp_path) as (caches, workers):
        workers[0].publish_elsewhere([("key", "a"), ("key", "b")])
        for w in workers:
            w.poll()
        assert caches[0].peek("key", "a") == "row" and caches[0].peek("key", "b") == "row"
        assert caches[1].peek("key", "a") is None and caches[1].peek("key", "b") is None
        workers[0].publish_elsewhere([])  # nothing changed: nothing written
        assert workers[0].path.read_text().count("\n") == 2


async def until(condition: Any, why: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, why
        await asyncio.sleep(0.02)


async def test_spend_news_reaches_other_instances_through_redis_but_not_its_writer(tmp_path, redis_url):
    from gateway.core.redis_guard import RedisGuard

    ident = f"k-{uuid.uuid4().hex}"  # the channel is shared by every test run on this Redis
    caches = [IdentityCache(), IdentityCache()]
    # Two databases' files: instances on two machines, which share only Redis.
    instances = [Invalidator(cache, f"sqlite://{tmp_path / f'gw{n}.db'}", RedisGuard(redis_url))
                 for n, cache in enumerate(caches)]
    for instance in instances:
        await instance.start()
    try:
        marker = ident + "-marker"
        for cache in caches:
            await cached(cache, ident)
        await cached(caches[0], marker)
        instances[0].publish_elsewhere([("key", ident)])
        await until(lambda: caches[1].peek("key", ident) is None, "the other instance never heard of the spend")
        # Sent after the spend news: once the writer has it, it has had its own message back too.
        await instances[1].publish("key", marker)
        await until(lambda: caches[0].peek("key", marker) is None, "the writer never heard of the marker")
        assert caches[0].peek("key", ident) == "row"
    finally:
        for instance in instances:
            await instance.close()
