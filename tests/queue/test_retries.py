"""Retries by error category, backoff, dead-letter stream and its retry/remove API."""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest
import redis.asyncio as aioredis

from filmstrip import keys
from filmstrip.errors import Category, DataError, LogicError, ResourceError, TemporaryError
from filmstrip.queue import Job, JobQueue, JobState, Outcome, QueueOptions, backoff_ms, decide
from tests.queue.conftest import Recorder, running, wait_for

pytestmark = pytest.mark.both_redis


async def _count(queue: JobQueue, state: str, n: int) -> bool:
    return (await queue.counts())[state] == n


def test_backoff_doubles_from_the_base_delay() -> None:
    assert [backoff_ms(5000, n, 0.0) for n in (1, 2, 3)] == [5000, 10000, 20000]
    jittered = [backoff_ms(1000, 2, 0.5) for _ in range(200)]
    assert all(1000 <= d <= 2000 for d in jittered) and len(set(jittered)) > 1


def test_the_retry_decision_doubles_the_delay_with_each_attempt() -> None:
    options = QueueOptions(resource_max_deferrals=2)
    temporary = functools.partial(
        decide, Category.TEMPORARY, attempts=4, deferrals=0, base_ms=1000, options=options
    )
    assert [temporary(attempt=n) for n in (1, 2, 3, 4)] == [
        (Outcome.RETRY, 1000), (Outcome.RETRY, 2000), (Outcome.RETRY, 4000), (Outcome.FAIL, 0),
    ]  # fmt: skip
    # RESOURCE waits on the same schedule by deferral, without spending the attempt, then
    # counts like TEMPORARY.
    resource = functools.partial(
        decide, Category.RESOURCE, attempt=2, attempts=4, base_ms=1000, options=options
    )
    assert [resource(deferrals=n) for n in (0, 1, 2)] == [
        (Outcome.DEFER, 1000), (Outcome.DEFER, 2000), (Outcome.RETRY, 2000),
    ]  # fmt: skip
    for category in (Category.DATA, Category.LOGIC):
        assert decide(
            category, attempt=1, attempts=4, deferrals=0, base_ms=1000, options=options
        ) == (Outcome.FAIL, 0)


async def test_the_consumer_backs_off_by_the_jobs_own_attempt(
    redis: aioredis.Redis, make_queue: Callable[..., JobQueue]
) -> None:
    """Each retry waits base·2^(attempt-1): 60 s, then 120 s. The delays are read from
    the delayed set, bounded by the server's clock when the handler raised and once the
    job was settled, and the test moves each job's due time to now instead of waiting."""
    queue = make_queue(attempts=3, backoff_ms=60_000)
    await queue.add("photo:t", b"")
    raised_at: list[float] = []

    async def flaky(job: Job) -> None:
        raised_at.append(await _server_ms(redis))
        raise TemporaryError("storage hiccup", code="s3_timeout")

    async def delayed_after(attempt: int) -> bool:
        info = await queue.get_job("photo:t")
        return info is not None and info.state is JobState.DELAYED and info.attempts_made == attempt

    rec = Recorder(flaky)
    async with running(rec.consumer(queue)):
        for attempt, want in ((1, 60_000), (2, 120_000)):
            await wait_for(lambda a=attempt: delayed_after(a))
            settled_by = await _server_ms(redis)
            info = await queue.get_job("photo:t")
            assert info is not None and info.delayed_until_ms is not None
            due = info.delayed_until_ms
            # The delay is due minus the script's clock, which read between the two.
            assert due - settled_by - 1 <= want <= due - raised_at[-1] + 1, (attempt, due)
            await redis.zadd(keys.queue_delayed(queue.options.name), {"photo:t": 0})
        await wait_for(lambda: _count(queue, "failed", 1))
    assert rec.calls == [("photo:t", 1), ("photo:t", 2), ("photo:t", 3)]


async def test_temporary_errors_retry_then_dead_letter(
    redis: aioredis.Redis, make_queue: Callable[..., JobQueue]
) -> None:
    queue = make_queue(attempts=3, backoff_ms=1)
    await queue.add("photo:t", b'{"k": 1}')

    async def flaky(job: Job) -> None:
        raise TemporaryError("storage hiccup", code="s3_timeout")

    rec = Recorder(flaky)
    async with running(rec.consumer(queue)):
        await wait_for(lambda: _count(queue, "failed", 1))
    assert rec.calls == [("photo:t", 1), ("photo:t", 2), ("photo:t", 3)]
    assert [(j, e.code) for j, e in rec.failed] == [("photo:t", "s3_timeout")]

    entries = await redis.xrange(queue.keys.dead_letter)
    assert len(entries) == 1
    fields = entries[0][1]
    assert fields[b"id"] == b"photo:t" and fields[b"job"] == b'{"k": 1}'
    assert fields[b"category"] == b"TEMPORARY" and fields[b"code"] == b"s3_timeout"
    assert fields[b"error"] == b"storage hiccup" and fields[b"attempts"] == b"3"
    assert int(fields[b"failed_at"]) > 0


@pytest.mark.parametrize("error", [DataError("corrupt"), LogicError("bug")])
async def test_data_and_logic_errors_fail_at_once(
    error: Exception, make_queue: Callable[..., JobQueue]
) -> None:
    queue = make_queue(attempts=5)
    await queue.add("photo:x", b"")

    async def broken(job: Job) -> None:
        raise error

    rec = Recorder(broken)
    async with running(rec.consumer(queue)):
        await wait_for(lambda: _count(queue, "failed", 1))
    assert rec.calls == [("photo:x", 1)]
    assert len(rec.failed) == 1
    info = await queue.get_job("photo:x")
    assert info is not None and info.state is JobState.FAILED and info.error is not None


async def test_resource_errors_defer_without_spending_attempts(
    make_queue: Callable[..., JobQueue],
) -> None:
    queue = make_queue(attempts=1, resource_max_deferrals=3, backoff_ms=5)
    await queue.add("photo:r", b"")

    async def busy(job: Job) -> None:
        if job.deferrals < 3:
            raise ResourceError("out of memory budget")

    rec = Recorder(busy)
    async with running(rec.consumer(queue)):
        await wait_for(lambda: _count(queue, "completed", 1))
    # Four deliveries, each still attempt 1 of 1.
    assert rec.calls == [("photo:r", 1)] * 4
    assert rec.failed == []


async def test_resource_deferrals_are_bounded(make_queue: Callable[..., JobQueue]) -> None:
    queue = make_queue(attempts=2, resource_max_deferrals=2, backoff_ms=2)
    await queue.add("photo:r", b"")

    async def busy(job: Job) -> None:
        raise ResourceError("still out of memory")

    rec = Recorder(busy)
    async with running(rec.consumer(queue)):
        await wait_for(lambda: _count(queue, "failed", 1))
    # 2 deferrals at attempt 1, then attempts are spent like TEMPORARY: 1 retry.
    assert [a for _, a in rec.calls] == [1, 1, 1, 2]
    assert rec.failed[0][1].category is Category.RESOURCE


async def test_unexpected_exceptions_count_as_temporary(
    make_queue: Callable[..., JobQueue],
) -> None:
    queue = make_queue(attempts=2, backoff_ms=1)
    await queue.add("photo:u", b"")

    async def buggy(job: Job) -> None:
        raise KeyError("oops")

    rec = Recorder(buggy)
    async with running(rec.consumer(queue)):
        await wait_for(lambda: _count(queue, "failed", 1))
    assert len(rec.calls) == 2
    assert rec.failed[0][1].category is Category.TEMPORARY


async def test_dead_letters_can_be_listed_retried_and_removed(
    redis: aioredis.Redis, make_queue: Callable[..., JobQueue]
) -> None:
    queue = make_queue(attempts=1)
    for i in range(3):
        await queue.add(f"photo:{i}", b"")
    fail = True

    async def handler(job: Job) -> None:
        if fail:
            raise DataError("bad", code="corrupt")

    rec = Recorder(handler)
    async with running(rec.consumer(queue)):
        await wait_for(lambda: _count(queue, "failed", 3))
        page = await queue.list_jobs("failed", offset=0, limit=2)
        rest = await queue.list_jobs("failed", offset=2, limit=2)
        assert len(page) == 2 and len(rest) == 1
        assert {j.id for j in page + rest} == {"photo:0", "photo:1", "photo:2"}
        assert all(j.error is not None and j.error.code == "corrupt" for j in page)

        fail = False
        assert await queue.retry_failed("photo:0")
        assert not await queue.retry_failed("photo:0")  # no longer failed
        await wait_for(lambda: _count(queue, "completed", 1))
        assert await queue.remove_failed("photo:1")
        assert await queue.get_job("photo:1") is None
    assert await redis.xlen(queue.keys.dead_letter) == 1
    assert (await queue.counts())["failed"] == 1


async def _server_ms(redis: aioredis.Redis) -> float:
    s, us = await redis.time()
    return s * 1000 + us / 1000
