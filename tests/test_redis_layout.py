"""Upgrading from a release before Redis Cluster support: what it left in Redis under its
key names keeps working (replay streams moved, once-keys honoured, queued jobs served)."""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis

from filmstrip import keys
from filmstrip.events import EventPublisher, forget_once
from filmstrip.queue import Consumer, Job, JobQueue, QueueOptions
from filmstrip.redis_layout import upgrade_layout
from filmstrip.services.bus.replay import ReplayReader
from filmstrip.services.bus.streamid import ZERO, format_id

LEGACY = keys.LEGACY_CLIENT_EVENTS_PREFIX


async def test_an_upgrade_moves_replay_streams_and_keeps_queued_jobs(
    redis: aioredis.Redis,
) -> None:
    # What an older release left: replay streams (with their TTL), a presence set...
    a = [await redis.xadd(LEGACY + "a", {"e": f'{{"n":{n}}}'}) for n in range(3)]
    await redis.pexpire(LEGACY + "a", 50_000)
    # Client b's are a second older than the new release's event below: ids made in one
    # millisecond on the two streams would be equal, and the merge keeps one entry per id.
    past_ms = int(time.time() * 1000) - 1000
    b_old = [
        await redis.xadd(LEGACY + "b", {"e": f'{{"n":{n}}}'}, id=f"{past_ms}-{n}") for n in range(2)
    ]
    await redis.zadd(keys.LEGACY_BUS_INSTANCES, {"bus-gone": 1})
    # ...and jobs waiting in the queue, whose names did not change.
    old_queue = JobQueue(redis, QueueOptions(name="photo-processing", block_ms=50))
    await old_queue.add("waiting", b"w")
    await old_queue.add("delayed", b"d", delay_ms=200)
    # A process of the new release published for client b before the upgrade ran.
    publisher = EventPublisher(redis)
    b_new = await publisher.publish("photo.uploaded", photo_id="p", client_id="b", trace_id="0")

    assert await upgrade_layout(redis)

    replay = ReplayReader(redis)
    assert [i async for i, _ in replay.entries_after("a", ZERO)] == [x.decode() for x in a]
    assert 40_000 < await redis.pttl(keys.client_events("a")) <= 50_000
    merged = [i async for i, _ in replay.entries_after("b", ZERO)]
    assert merged == [*(x.decode() for x in b_old), b_new]  # in id order, none lost
    assert await redis.pttl(keys.client_events("b")) > 0  # the longer TTL (the new one's)
    assert not await redis.exists(LEGACY + "a", LEGACY + "b", keys.LEGACY_BUS_INSTANCES)
    assert format_id(await replay.head("a")) == a[-1].decode()

    done: list[str] = []
    both = asyncio.Event()

    async def handle(job: Job) -> None:
        done.append(job.id)
        if len(done) == 2:
            both.set()

    consumer = Consumer(JobQueue(redis, old_queue.options), handle)
    running = asyncio.create_task(consumer.run())
    try:
        await asyncio.wait_for(both.wait(), 10)
        assert sorted(done) == ["delayed", "waiting"]
    finally:
        await consumer.stop()
        await running

    # Once: a second start finds the layout current and moves nothing.
    await redis.xadd(LEGACY + "late", {"e": "{}"})
    assert not await upgrade_layout(redis)
    assert await redis.exists(LEGACY + "late")


async def test_a_once_key_an_older_release_set_still_holds(redis: aioredis.Redis) -> None:
    """Its name has no client, so it stays where it is: publishing the same event again
    is still a no-op until it expires, and a retry's forget clears it."""
    # The name written out: the older release set it so, whatever keys.py says now.
    await redis.set("filmstrip:events:once:p:done", b"1700000000000-0", px=60_000)
    publisher = EventPublisher(redis)
    again = await publisher.publish(
        "photo.processing.completed", photo_id="p", client_id="c", trace_id="0",
        once_key="p:done",
    )  # fmt: skip
    assert again == "1700000000000-0"
    assert not await redis.exists(keys.client_events("c"))
    await forget_once(redis, "c", "p:done")
    fresh = await publisher.publish(
        "photo.processing.completed", photo_id="p", client_id="c", trace_id="0",
        once_key="p:done",
    )  # fmt: skip
    assert fresh != again and await redis.xlen(keys.client_events("c")) == 1


async def test_processes_starting_together_upgrade_once(redis: aioredis.Redis) -> None:
    await redis.xadd(LEGACY + "a", {"e": "{}"})
    results = await asyncio.gather(*(upgrade_layout(redis) for _ in range(5)))
    assert sorted(results) == [False, False, False, False, True]
    assert await redis.xlen(keys.client_events("a")) == 1
    assert int(await redis.get(keys.layout_version())) == keys.LAYOUT_VERSION
