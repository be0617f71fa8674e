"""cancel_and_wait: background tasks stop even when a cancellation was swallowed."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest
import redis.asyncio as aioredis

from filmstrip.tasks import cancel_and_wait


async def _swallows_once(stopped: list[str]) -> None:
    # What asyncio.wait_for does on 3.11 when its awaitable finished meanwhile.
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(3600)
    try:
        await asyncio.sleep(3600)
    finally:
        stopped.append("second")


async def test_a_task_that_swallowed_its_cancellation_is_cancelled_again() -> None:
    stopped: list[str] = []
    task = asyncio.create_task(_swallows_once(stopped))
    await asyncio.sleep(0)
    async with asyncio.timeout(5):
        await cancel_and_wait(task, again_after_s=0.05)
    assert task.cancelled() and stopped == ["second"]


async def test_wait_for_on_a_finished_awaitable_does_not_keep_the_task_alive() -> None:
    # The mechanism itself, deterministic: the awaitable finishes and the cancellation
    # lands in the same turn of the loop. Python 3.11's wait_for returns its result.
    inner: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def loop_body() -> None:
        await asyncio.wait_for(inner, 5)
        await asyncio.sleep(3600)

    task = asyncio.create_task(loop_body())
    await asyncio.sleep(0)
    inner.set_result(None)
    async with asyncio.timeout(5):
        await cancel_and_wait(task, again_after_s=0.05)
    assert task.cancelled()


async def test_loops_on_redis_stop_wherever_the_cancellation_lands(
    redis: aioredis.Redis,
) -> None:
    # redis-py (socket_timeout 5 s by default) sends through wait_for: cancelling a loop
    # of pipelines at every point of a round trip once left a quarter of them running.
    await redis.set("k", "v")

    async def heartbeat() -> None:
        while True:
            async with redis.pipeline(transaction=False) as pipe:
                pipe.get("k")
                pipe.get("k")
                await pipe.execute()
            await asyncio.sleep(0)

    for turns in range(12):
        for _ in range(10):
            task = asyncio.create_task(heartbeat())
            for _ in range(turns):
                await asyncio.sleep(0)
            async with asyncio.timeout(5):
                await cancel_and_wait(task, again_after_s=0.02)
            assert task.done()
    await redis.delete("k")


async def test_a_failed_task_is_logged_and_the_others_still_stop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    failing = asyncio.create_task(fails(), name="failing")
    sleeping = asyncio.create_task(asyncio.sleep(3600))
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="filmstrip.tasks"):
        await cancel_and_wait(failing, sleeping)
    assert sleeping.cancelled()
    assert [r.getMessage() for r in caplog.records] == ["task failing failed before it was stopped"]
