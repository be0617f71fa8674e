"""Pause/resume, the global rate limiter, retention, counts and stats."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import redis.asyncio as aioredis

from filmstrip import keys
from filmstrip.errors import DataError
from filmstrip.queue import Job, JobQueue, QueueOptions, Retention
from filmstrip.settings import load_settings
from tests.queue.conftest import Recorder, add_many, running, wait_for

pytestmark = pytest.mark.both_redis


async def _count(queue: JobQueue, state: str, n: int) -> bool:
    return (await queue.counts())[state] == n


async def test_paused_queue_finishes_running_jobs_and_takes_no_new_ones(
    make_queue: Callable[..., JobQueue],
) -> None:
    queue = make_queue()
    await queue.add("first", b"")
    started, release = asyncio.Event(), asyncio.Event()

    async def handler(job: Job) -> None:
        if job.id == "first":
            started.set()
            await release.wait()

    rec = Recorder(handler)
    async with running(rec.consumer(queue, concurrency=2)):
        await started.wait()
        await queue.pause()
        assert await queue.is_paused()
        await queue.add("second", b"")
        await queue.add("third", b"")
        release.set()
        await wait_for(lambda: _count(queue, "completed", 1))
        await asyncio.sleep(0.3)  # several poll rounds while paused
        assert [j for j, _ in rec.calls] == ["first"]
        assert await queue.counts() == {
            "waiting": 2, "active": 0, "delayed": 0, "completed": 1, "failed": 0, "paused": 1,
        }  # fmt: skip
        await queue.resume()
        await wait_for(lambda: _count(queue, "completed", 3))


async def test_rate_limiter_is_global_across_consumers(
    make_queue: Callable[..., JobQueue],
) -> None:
    window = 200
    queue = make_queue(limiter_max=3, limiter_duration_ms=window)
    await add_many(queue, (f"j{i}" for i in range(9)))
    a, b = Recorder(), Recorder()
    async with running(a.consumer(queue, name="a")), running(b.consumer(queue, name="b")):
        await wait_for(lambda: _count(queue, "completed", 9))
    starts = []
    for i in range(9):
        info = await queue.get_job(f"j{i}")
        assert info is not None and info.processed_at_ms is not None
        starts.append(info.processed_at_ms)
    starts.sort()
    # Each window opens at an activation and holds at most 3, so job 3k starts at least
    # k windows after the first (a couple of ms of slack for key-expiry granularity).
    assert starts[3] - starts[0] >= window - 2
    assert starts[6] - starts[0] >= 2 * window - 4


async def test_retention_keeps_the_newest_completed_jobs(
    redis: aioredis.Redis, make_queue: Callable[..., JobQueue]
) -> None:
    queue = make_queue(remove_on_complete=2)
    for i in range(5):
        await queue.add(f"j{i}", b"")
    await queue.add("gone", b"", remove_on_complete=True)
    rec = Recorder()
    async with running(rec.consumer(queue, concurrency=1)):
        await wait_for(lambda: _true(len(rec.completed) == 6))
        await wait_for(lambda: _count(queue, "completed", 2))
    assert await queue.get_job("gone") is None
    kept = [j.id for j in await queue.list_jobs("completed")]
    assert len(kept) == 2
    name = queue.options.name
    assert sum([await redis.exists(keys.queue_job(name, f"j{i}")) for i in range(5)]) == 2


async def test_failed_retention_bounds_jobs_and_dead_letters(
    redis: aioredis.Redis, make_queue: Callable[..., JobQueue]
) -> None:
    queue = make_queue(attempts=1, remove_on_fail=Retention(age_s=3600, count=2))
    for i in range(4):
        await queue.add(f"j{i}", b"")

    async def broken(job: Job) -> None:
        raise DataError("bad")

    rec = Recorder(broken)
    async with running(rec.consumer(queue, concurrency=1)):
        await wait_for(lambda: _true(len(rec.failed) == 4))
    assert (await queue.counts())["failed"] == 2
    assert await redis.xlen(queue.keys.dead_letter) == 2


async def test_stats_cover_completed_and_failed_jobs(make_queue: Callable[..., JobQueue]) -> None:
    queue = make_queue(attempts=1)
    for i in range(4):
        await queue.add(f"j{i}", b"")

    async def handler(job: Job) -> None:
        # Each job takes at least this long, so the average has something to show.
        await asyncio.sleep(0.05)
        if job.id == "j0":
            raise DataError("bad")

    rec = Recorder(handler)
    async with running(rec.consumer(queue)):
        await wait_for(lambda: _count(queue, "completed", 3))
        await wait_for(lambda: _count(queue, "failed", 1))
    stats = await queue.stats()
    for window in (stats.last_1h, stats.last_24h, stats.last_7d):
        assert (window.total, window.completed, window.failed) == (4, 3, 1)
        assert window.success_rate == 0.75
        assert 50 <= window.avg_processing_ms < 10_000, window
        assert window.throughput_per_min > 0


async def _true(value: bool) -> bool:
    return value


async def test_waiting_and_delayed_jobs_are_listed_in_the_order_they_will_run(
    make_queue: Callable[..., JobQueue],
) -> None:
    queue = make_queue()
    await add_many(queue, (f"p5:{i}" for i in range(600)))
    await queue.add("p1", b"", priority=1)
    await queue.add("later", b"", delay_ms=60_000)
    first = await queue.list_jobs("waiting", offset=0, limit=3)
    assert [j.id for j in first] == ["p1", "p5:0", "p5:1"]
    deep = await queue.list_jobs("waiting", offset=550, limit=100)
    assert [j.id for j in deep] == [f"p5:{i}" for i in range(549, 600)]
    delayed = await queue.list_jobs("delayed")
    assert [j.id for j in delayed] == ["later"] and delayed[0].delayed_until_ms is not None
    assert await queue.list_jobs("active") == []


async def test_retention_by_age_drops_old_completed_jobs(
    make_queue: Callable[..., JobQueue],
) -> None:
    queue = make_queue(remove_on_complete=Retention(age_s=1, count=0))
    await queue.add("old", b"")
    rec = Recorder()
    async with running(rec.consumer(queue)):
        await wait_for(lambda: _count(queue, "completed", 1))
        await asyncio.sleep(1.1)
        await queue.add("new", b"")
        await wait_for(lambda: _true(len(rec.completed) == 2))
    assert [j.id for j in await queue.list_jobs("completed")] == ["new"]
    assert await queue.get_job("old") is None


def test_options_follow_settings() -> None:
    settings = load_settings({"FILMSTRIP_WORKER_CONCURRENCY": "7", "FILMSTRIP_LIMITER_MAX": "10"})
    opts = QueueOptions.from_settings(settings)
    assert (opts.concurrency, opts.limiter_max, opts.attempts) == (7, 10, 3)
    assert opts.name == "photo-processing" and opts.prefetch == 0
