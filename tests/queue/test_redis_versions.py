"""The queue on both Redis lines it supports, where they differ (the suite's other queue
tests run on whichever redis-server is first on PATH)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis.asyncio as aioredis

from filmstrip.queue import JobQueue, JobState
from tests.queue.conftest import Recorder, running, wait_for
from tests.support.redis_versions import versioned_redis, versioned_server

__all__ = ["versioned_redis", "versioned_server"]  # the fixtures this module runs on

VIS = 200  # ms


@pytest.fixture
def redis(versioned_redis: aioredis.Redis) -> aioredis.Redis:
    return versioned_redis


async def test_a_pending_entry_deleted_from_its_stream_does_not_stop_the_reclaim(
    make_queue: Callable[..., JobQueue],
) -> None:
    """An entry deleted from its stream while a dead worker held it (an operator's clean-up:
    the queue itself acknowledges before it deletes) is dropped from the pending list,
    and the reclaim goes on to the other stalled jobs. Redis 6.2 hands such an entry to
    XAUTOCLAIM as nil, and keeps it pending."""
    queue = make_queue(visibility_timeout_ms=VIS)
    for job_id in ("photo:1", "photo:2"):
        await queue.add(job_id, b"")
    assert len((await queue.step("killed-worker", 2, [])).jobs) == 2
    gone, band = await queue.redis.hmget(queue.keys.job_prefix + "photo:1", "eid", "prio")
    stream = queue.keys.streams[int(band) - 1]
    assert gone is not None and await queue.redis.xdel(stream, gone) == 1
    for _ in range(2):  # again: the deleted entry must not come back to fail a later round
        await wait_for(lambda: _idle_for(queue, stream, VIS))
        await queue.reclaim("reaper", None, 0)
    assert await _state(queue, "photo:2") == JobState.WAITING
    assert (await queue.redis.xpending(stream, "workers"))["pending"] == 0
    rec = Recorder()
    async with running(rec.consumer(queue)):
        await wait_for(lambda: _is(queue, "photo:2", JobState.COMPLETED))
    assert rec.calls == [("photo:2", 1)]


async def _idle_for(queue: JobQueue, stream: str, ms: int) -> bool:
    rows = await queue.redis.xpending_range(stream, "workers", "-", "+", 10)
    return all(row["time_since_delivered"] >= ms for row in rows)


async def _state(queue: JobQueue, job_id: str) -> JobState | None:
    job = await queue.get_job(job_id)
    return None if job is None else job.state


async def _is(queue: JobQueue, job_id: str, state: JobState) -> bool:
    return await _state(queue, job_id) == state
