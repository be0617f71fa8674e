"""Priorities, concurrency, acknowledgement (XACK + XDEL), progress, cancel."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import redis.asyncio as aioredis

from filmstrip import keys
from filmstrip.errors import ResourceError, TemporaryError
from filmstrip.queue import Job, JobQueue, JobState, Outcome, Settlement
from tests.queue.conftest import Recorder, add_many, running, wait_for

pytestmark = pytest.mark.both_redis


async def _true(value: bool) -> bool:
    return value


async def _count(queue: JobQueue, state: str, n: int) -> bool:
    return (await queue.counts())[state] == n


async def test_priority_one_starts_before_a_thousand_waiting_priority_five(
    make_queue: Callable[..., JobQueue],
) -> None:
    queue = make_queue()
    await add_many(queue, (f"p5:{i}" for i in range(1000)))
    await queue.add("p1:urgent", b"", priority=1)
    await queue.add("p10:last", b"", priority=10)
    rec = Recorder()
    async with running(rec.consumer(queue, concurrency=1)):
        await wait_for(lambda: _true(len(rec.completed) == 1002), limit_s=30)
    order = [job_id for job_id, _ in rec.calls]
    assert order[0] == "p1:urgent"
    assert order[-1] == "p10:last"
    assert order[1:-1] == [f"p5:{i}" for i in range(1000)]  # FIFO within a band


async def test_jobs_that_come_back_come_back_in_their_own_band(
    make_queue: Callable[..., JobQueue],
) -> None:
    """A delayed job, a retried one and a deferred one each return to their priority's
    band, not the default band 5 (a job's band is the stream it is read from)."""
    queue = make_queue(attempts=2, backoff_ms=1)
    await queue.add("delayed", b"", priority=2, delay_ms=1)
    await queue.add("retried", b"", priority=9)
    await queue.add("deferred", b"", priority=3)
    bands: dict[str, list[int]] = {}

    async def once_then_ok(job: Job) -> None:
        bands.setdefault(job.id, []).append(job.priority)
        if len(bands[job.id]) == 1 and job.id == "retried":
            raise TemporaryError("storage hiccup")
        if len(bands[job.id]) == 1 and job.id == "deferred":
            raise ResourceError("out of memory budget")

    rec = Recorder(once_then_ok)
    async with running(rec.consumer(queue)):
        await wait_for(lambda: _count(queue, "completed", 3))
    assert bands == {"delayed": [2], "retried": [9, 9], "deferred": [3, 3]}


async def test_concurrency_bounds_parallel_handlers(make_queue: Callable[..., JobQueue]) -> None:
    queue = make_queue()
    await add_many(queue, (f"j{i}" for i in range(12)))
    running_now, peak = 0, 0
    gate = asyncio.Event()

    async def slow(job: Job) -> None:
        nonlocal running_now, peak
        running_now += 1
        peak = max(peak, running_now)
        if peak >= 3:
            gate.set()
        await gate.wait()
        await asyncio.sleep(0.005)
        running_now -= 1

    rec = Recorder(slow)
    async with running(rec.consumer(queue, concurrency=3)):
        await wait_for(lambda: _count(queue, "completed", 12))
    assert peak == 3
    assert sorted(j for j, _ in rec.calls) == sorted(f"j{i}" for i in range(12))


async def test_completion_acks_and_deletes_the_stream_entry(
    redis: aioredis.Redis, make_queue: Callable[..., JobQueue]
) -> None:
    queue = make_queue()
    await add_many(queue, (f"j{i}" for i in range(20)))
    rec = Recorder()
    async with running(rec.consumer(queue, concurrency=4)):
        await wait_for(lambda: _count(queue, "completed", 20))
    stream = keys.queue_stream(queue.options.name, 5)
    assert await redis.xlen(stream) == 0
    assert (await redis.xpending(stream, keys.QUEUE_GROUP))["pending"] == 0
    counts = await queue.counts()
    assert counts["waiting"] == counts["active"] == 0
    assert sorted(rec.completed) == sorted(f"j{i}" for i in range(20))


async def test_progress_is_stored_on_the_job(make_queue: Callable[..., JobQueue]) -> None:
    queue = make_queue()
    await queue.add("photo:1", b"")
    seen: list[int] = []

    async def report(job: Job) -> None:
        assert await job.update_progress(40)
        info = await queue.get_job(job.id)
        assert info is not None
        seen.append(info.progress)
        assert info.state is JobState.ACTIVE

    rec = Recorder(report)
    async with running(rec.consumer(queue)):
        await wait_for(lambda: _count(queue, "completed", 1))
    assert seen == [40]
    info = await queue.get_job("photo:1")
    assert info is not None and info.progress == 100
    # A delivery that no longer owns the job cannot write progress.
    assert not await queue.set_progress("photo:1", "0-1", 50)


async def test_cancel_removes_waiting_and_delayed_jobs_only(
    make_queue: Callable[..., JobQueue],
) -> None:
    queue = make_queue()
    await queue.add("w", b"")
    await queue.add("d", b"", delay_ms=60_000)
    assert await queue.cancel("w")
    assert await queue.cancel("d")
    assert not await queue.cancel("missing")
    assert await queue.counts() == {
        "waiting": 0, "active": 0, "delayed": 0, "completed": 0, "failed": 0, "paused": 0,
    }  # fmt: skip
    await queue.add("a", b"")
    started, release = asyncio.Event(), asyncio.Event()

    async def hold(job: Job) -> None:
        started.set()
        await release.wait()

    rec = Recorder(hold)
    async with running(rec.consumer(queue)):
        await started.wait()
        assert not await queue.cancel("a")
        release.set()
        await wait_for(lambda: _count(queue, "completed", 1))


async def test_delayed_job_runs_after_its_delay(make_queue: Callable[..., JobQueue]) -> None:
    queue = make_queue()
    await queue.add("later", b"", delay_ms=150)
    assert (await queue.counts())["delayed"] == 1
    rec = Recorder()
    async with running(rec.consumer(queue)):
        await wait_for(lambda: _count(queue, "completed", 1))
    info = await queue.get_job("later")
    assert info is not None and info.processed_at_ms is not None
    assert info.processed_at_ms - info.created_at_ms >= 150


async def test_a_completion_queues_the_jobs_its_delivery_adds_with_it(
    make_queue: Callable[..., JobQueue],
) -> None:
    queue = make_queue()
    await queue.add("photo:1", b"first")

    async def follow(job: Job) -> None:
        if job.id == "photo:1":
            job.then_add("deferred:1", b'{"later": 1}', priority=10)

    rec = Recorder(follow)
    async with running(rec.consumer(queue)):
        await wait_for(lambda: _true(rec.completed == ["photo:1", "deferred:1"]))
    follow_up = await queue.get_job("deferred:1")
    assert follow_up is not None
    assert (follow_up.priority, follow_up.payload) == (10, b'{"later": 1}')


async def test_a_delivery_that_does_not_complete_queues_nothing_of_its_own(
    make_queue: Callable[..., JobQueue],
) -> None:
    queue = make_queue(attempts=2)
    await queue.add("photo:1", b"")
    (taken,) = (await queue.step("w1", 1, [])).jobs
    taken.then_add("deferred:1", b"", priority=10)
    retry = Settlement(taken, Outcome.RETRY, 10_000, TemporaryError("blip", code="blip"))
    assert (await queue.step("w1", 0, [retry])).applied == [1]
    assert await queue.get_job("deferred:1") is None
    # A completion sent for a delivery that was taken back adds nothing either.
    late = Settlement(taken, Outcome.COMPLETE)
    assert (await queue.step("w1", 0, [late])).applied == [0]
    assert await queue.get_job("deferred:1") is None
