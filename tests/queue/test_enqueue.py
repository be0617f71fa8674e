"""Enqueue: one Lua call, payload stored once, dedupe by id."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis.asyncio as aioredis

from filmstrip import keys
from filmstrip.queue import JobQueue, JobState
from tests.queue.conftest import Recorder, running, wait_for

pytestmark = pytest.mark.both_redis


async def test_payload_is_stored_once_and_the_entry_carries_the_id(
    redis: aioredis.Redis, make_queue: Callable[..., JobQueue]
) -> None:
    queue = make_queue()
    res = await queue.add("photo:1", b'{"x": 1}')
    assert res.created and res.state is JobState.WAITING
    entries = await redis.xrange(keys.queue_stream(queue.options.name, 5))
    assert [fields for _, fields in entries] == [{b"i": b"photo:1"}]
    assert await redis.hget(keys.queue_job(queue.options.name, "photo:1"), "data") == b'{"x": 1}'


async def test_adding_an_existing_id_is_a_no_op(
    redis: aioredis.Redis, make_queue: Callable[..., JobQueue]
) -> None:
    queue = make_queue()
    assert (await queue.add("photo:1", b"first")).created
    again = await queue.add("photo:1", b"second", priority=1)
    assert not again.created and again.state is JobState.WAITING
    job = await queue.get_job("photo:1")
    assert job is not None and job.payload == b"first" and job.priority == 5
    assert (await queue.counts())["waiting"] == 1


async def test_dedupe_holds_while_the_job_is_active_and_after_it_completed(
    make_queue: Callable[..., JobQueue],
) -> None:
    queue = make_queue()
    await queue.add("photo:1", b"x")
    seen: list[bool] = []

    async def handler(job: object) -> None:
        seen.append((await queue.add("photo:1", b"y")).created)

    rec = Recorder(handler)  # type: ignore[arg-type]
    async with running(rec.consumer(queue)):
        await wait_for(lambda: _eq(queue, "completed", 1))
    assert seen == [False]
    again = await queue.add("photo:1", b"z")
    assert not again.created and again.state is JobState.COMPLETED


async def _eq(queue: JobQueue, state: str, n: int) -> bool:
    return (await queue.counts())[state] == n
