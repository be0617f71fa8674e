"""The consumer's lean script caller: same replies as redis-py, survives flushes and cancels."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import redis.asyncio as aioredis

from filmstrip.queue import JobQueue
from filmstrip.queue.wire import ScriptWire
from tests.queue.conftest import Recorder, running, wait_for


async def test_wire_reloads_a_script_redis_forgot(
    redis: aioredis.Redis, make_queue: Callable[..., JobQueue]
) -> None:
    queue = make_queue()
    await queue.ensure_groups()
    await queue.add("photo:a", b"{}")
    await redis.script_flush()
    rec = Recorder()
    async with running(rec.consumer(queue, concurrency=1)):
        await wait_for(lambda: _done(queue, 1))
    assert rec.calls == [("photo:a", 1)]
    assert rec.completed == ["photo:a"]


async def test_a_cancelled_call_does_not_leave_a_reply_for_the_next(
    redis: aioredis.Redis,
) -> None:
    script = redis.register_script("redis.call('SET', KEYS[1], ARGV[1]) return ARGV[2]")
    await script(keys=["k"], args=["v", "warm"])  # loads it
    wire = ScriptWire(redis, script, [b"k"], [b"v"])
    assert await wire([b"first"]) == b"first"
    call = asyncio.create_task(wire([b"cancelled"]))
    await asyncio.sleep(0)  # sent, reply not read yet
    call.cancel()
    await asyncio.gather(call, return_exceptions=True)
    # A kept connection with an unread reply would answer "cancelled" here.
    assert await wire([b"second"]) == b"second"
    assert await wire([7]) == b"7"
    await wire.aclose()


async def _done(queue: JobQueue, n: int) -> bool:
    counts = await queue.counts()
    return counts["completed"] == n
