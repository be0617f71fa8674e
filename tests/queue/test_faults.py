"""Faults that must lose nothing: SIGKILL of a worker, a Redis restart, a Redis outage."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bench.redis_server import RedisServer
from filmstrip.queue import JobQueue, QueueOptions
from filmstrip.queue import consumer as consumer_module
from tests.queue.conftest import FAST, Recorder, add_many, running, wait_for

ROOT = Path(__file__).resolve().parents[2]


def _spawn(
    url: str, queue: str, name: str, concurrency: int, vis_ms: int, job_ms: int
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.queue.worker_proc", url, queue, name,
         str(concurrency), str(vis_ms), str(job_ms)],
        cwd=ROOT, env=env,
    )  # fmt: skip


async def test_sigkill_mid_batch_loses_nothing_and_completes_each_job_once(
    redis: aioredis.Redis, redis_server: RedisServer
) -> None:
    name = "fault-kill"
    queue = JobQueue(redis, QueueOptions(name=name))
    await add_many(queue, (f"photo:{i}" for i in range(200)), b"{}")
    a = _spawn(redis_server.url, name, "a", 5, 500, 30)
    b = _spawn(redis_server.url, name, "b", 5, 500, 30)
    try:
        # Kill a only once it is well into its share of the batch.
        await wait_for(lambda: _done_by(redis, name, b"a", 20), limit_s=30)
        a.send_signal(signal.SIGKILL)
        a.wait()
        await wait_for(lambda: _at_least(redis.hlen(f"{name}:done"), 200), limit_s=30)
        await wait_for(lambda: _quiet(queue))
    finally:
        for proc in (a, b):
            if proc.poll() is None:
                proc.terminate()
            proc.wait()
    done = await redis.hgetall(f"{name}:done")
    assert len(done) == 200
    assert b"a" in done.values() and b"b" in done.values()  # killed mid-batch, not before
    counts = await queue.counts()
    assert counts["completed"] == 200 and counts["failed"] == 0
    runs = [int(v) for v in (await redis.hgetall(f"{name}:runs")).values()]
    # Only the jobs in flight on the killed worker may have run twice.
    assert sum(runs) - 200 <= 5


@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    """A private appendonly redis-server this test may stop and restart."""
    with RedisServer(appendonly=True) as server:
        yield server


@pytest.fixture
async def own_redis(own_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(own_server.url)
    yield client
    await client.aclose()


async def test_waiting_and_delayed_jobs_survive_a_redis_restart(
    own_server: RedisServer, own_redis: aioredis.Redis
) -> None:
    queue = JobQueue(own_redis, QueueOptions(name="restart", **FAST))  # type: ignore[arg-type]
    await add_many(queue, (f"w{i}" for i in range(20)))
    await add_many(queue, (f"d{i}" for i in range(10)), delay_ms=200)
    assert (await queue.counts())["delayed"] == 10
    own_server.restart()  # SIGTERM: redis fsyncs the AOF on shutdown
    rec = Recorder()
    async with running(rec.consumer(queue)):
        await wait_for(lambda: _true(len(rec.completed) == 30))
    assert sorted(j for j, _ in rec.calls) == sorted(
        [f"w{i}" for i in range(20)] + [f"d{i}" for i in range(10)]
    )


async def test_consumers_ride_out_a_redis_outage(
    own_server: RedisServer, own_redis: aioredis.Redis
) -> None:
    queue = JobQueue(own_redis, QueueOptions(name="outage", **FAST))  # type: ignore[arg-type]
    rec = Recorder()
    consumer = rec.consumer(queue)
    task = asyncio.create_task(consumer.run())
    try:
        await add_many(queue, (f"before{i}" for i in range(5)))
        await wait_for(lambda: _true(len(rec.completed) == 5))
        own_server.stop(kill=True)
        await asyncio.sleep(1.5)  # the consumer keeps failing to reach Redis meanwhile
        assert not task.done()
        own_server.start()
        await add_many(queue, (f"after{i}" for i in range(5)))
        await wait_for(lambda: _true(len(rec.completed) == 10), limit_s=20)
    finally:
        await consumer.stop()
        await task


async def test_a_consumer_recreates_the_groups_a_redis_restarted_without_data_lost(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A Redis without persistence comes back empty: the consumer groups are gone and the
    worker's blocking reads are refused with NOGROUP. Enqueueing makes its own band's group
    again, so jobs still run; but the worker must recreate every band's group, or each idle
    read fails, logs an ERROR and sleeps a second instead of blocking, for ever."""
    with RedisServer(appendonly=False) as server:
        client = aioredis.Redis.from_url(server.url)
        queue = JobQueue(client, QueueOptions(name="amnesia", **FAST))  # type: ignore[arg-type]
        rec = Recorder()
        try:
            with caplog.at_level(logging.WARNING, "filmstrip"):
                async with running(rec.consumer(queue)):
                    await queue.add("before", b"")
                    await wait_for(lambda: _true(rec.completed == ["before"]))
                    server.restart()  # no AOF, no RDB: nothing comes back
                    assert await client.dbsize() == 0
                    await queue.add("after", b"")  # a stream again, but no group on it
                    await wait_for(lambda: _true(rec.completed == ["before", "after"]), 5)
                    await wait_for(lambda: _groups_on_every_band(client, queue), 5)
            assert any("groups missing" in r.getMessage() for r in caplog.records)
        finally:
            await client.aclose()


async def test_a_job_finished_during_shutdown_is_settled_once_when_redis_returns(
    own_server: RedisServer, own_redis: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """The worker is told to stop, Redis goes away, and only then does its running job
    finish: the outcome cannot be stored. Shutdown must keep it and try again, so when
    Redis comes back within the retries the job is settled: announced exactly once, not
    left pending for another worker to run again, and the consumer leaves its group."""
    queue = JobQueue(own_redis, QueueOptions(name="settle", **FAST))  # type: ignore[arg-type]
    release = asyncio.Event()

    async def hold(job: object) -> None:
        await release.wait()

    rec = Recorder(hold)
    consumer = rec.consumer(queue)
    task = asyncio.create_task(consumer.run())
    try:
        await queue.add("j", b"")
        await wait_for(lambda: _true(len(rec.calls) == 1))
        own_server.stop()
        consumer.request_stop()
        with caplog.at_level(logging.WARNING, "filmstrip.queue"):
            release.set()  # finishes inside the shutdown grace period, Redis down
            await wait_for(lambda: _true(any("could not settle" in r.getMessage()
                                             for r in caplog.records)))  # fmt: skip
            own_server.start()
            await asyncio.wait_for(task, 10)
    finally:
        if own_server.proc is None:
            own_server.start()
        if not task.done():
            await consumer.stop()
            await task
    assert rec.completed == ["j"]  # announced once, by the worker that ran it
    counts = await queue.counts()
    assert (counts["completed"], counts["active"], counts["waiting"]) == (1, 0, 0)
    for stream in queue.keys.streams:
        if await own_redis.exists(stream):
            for group in await own_redis.xinfo_groups(stream):
                names = [c["name"] for c in await own_redis.xinfo_consumers(stream, group["name"])]
                assert consumer.name.encode() not in names


class _Hurried:
    """The asyncio module with sleeps twenty times shorter, so shutdown's settle retries
    (about 13 s in all) take well under a second; ``then`` runs at the end of the last
    retry's wait (the fifth 2 s one), after which shutdown gives up on its settlements."""

    def __init__(self, then: Callable[[], None]) -> None:
        self.then = then
        self.longest = 0

    def __getattr__(self, name: str) -> object:
        return getattr(asyncio, name)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds / 20)
        if seconds == 2.0:
            self.longest += 1
            if self.longest == 5:
                self.then()


async def test_a_job_whose_settlement_shutdown_gives_up_on_is_redelivered(
    own_server: RedisServer, own_redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis stays down through every settle retry and is back just as the worker gives
    up. The worker must exit without leaving its group, since leaving drops the pending
    entry of the job it could not settle, and the job would be lost. Instead another worker
    runs it again, and its completion is announced once, by that worker."""
    queue = JobQueue(own_redis, QueueOptions(name="resettle", **FAST))  # type: ignore[arg-type]
    release = asyncio.Event()

    async def hold(job: object) -> None:
        await release.wait()

    first, second = Recorder(hold), Recorder()
    monkeypatch.setattr(consumer_module, "asyncio", _Hurried(own_server.start))
    consumer = first.consumer(queue)
    task = asyncio.create_task(consumer.run())
    try:
        await queue.add("j", b"")
        await wait_for(lambda: _true(len(first.calls) == 1))
        own_server.stop()
        consumer.request_stop()
        release.set()
        await asyncio.wait_for(task, 5)  # gives up on the settlement, does not hang
    finally:
        if own_server.proc is None:
            own_server.start()
        if not task.done():
            await consumer.stop()
            await task
    monkeypatch.undo()
    assert first.completed == []
    async with running(second.consumer(queue)):
        await wait_for(lambda: _true(second.completed == ["j"]), 5)
    assert [c[0] for c in first.calls + second.calls] == ["j", "j"]
    assert (await queue.counts())["completed"] == 1


async def _groups_on_every_band(client: aioredis.Redis, queue: JobQueue) -> bool:
    for stream in queue.keys.streams:
        if not await client.exists(stream) or not await client.xinfo_groups(stream):
            return False
    return True


async def _at_least(value: object, n: int) -> bool:
    return int(await value) >= n  # type: ignore[misc]


async def _done_by(redis: aioredis.Redis, name: str, worker: bytes, n: int) -> bool:
    done = await redis.hvals(f"{name}:done")
    return done.count(worker) >= n


async def _quiet(queue: JobQueue) -> bool:
    counts = await queue.counts()
    return counts["waiting"] + counts["active"] + counts["delayed"] == 0


async def _true(value: bool) -> bool:
    return value
