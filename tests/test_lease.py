"""The Redis lease: only its owner renews or releases it, and work that outlives it stops."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from filmstrip.lease import Lease, LeaseLost


async def test_only_the_owner_renews_or_releases(redis: aioredis.Redis) -> None:
    # 0.5 s: the second acquire must come while the first lease holds, a Redis round trip
    # later, which a loaded machine can stretch past a tighter lease.
    first = Lease(redis, "test:lease", ttl_s=0.5)
    assert await first.acquire()
    assert not await Lease(redis, "test:lease", ttl_s=0.5).acquire()
    await asyncio.sleep(0.6)  # the first holder stalled past its lease
    second = Lease(redis, "test:lease", ttl_s=10)
    assert await second.acquire()
    # The late first holder can neither extend nor remove the second one's lease.
    assert not await first.renew()
    await first.release()
    assert await redis.get("test:lease") == second.token.encode()
    assert 9000 < await redis.pttl("test:lease") <= 10_000
    await second.release()
    assert not await redis.exists("test:lease")


async def test_work_that_outlives_its_lease_is_cancelled(redis: aioredis.Redis) -> None:
    lease = Lease(redis, "test:lease", ttl_s=0.3)
    cancelled = asyncio.Event()

    async def work() -> None:
        await asyncio.sleep(0.05)
        await redis.set("test:lease", "someone else")  # as if it had lapsed and been taken
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(LeaseLost):
        await lease.run(work)
    assert cancelled.is_set()
    assert await redis.get("test:lease") == b"someone else"  # not released: not ours


async def test_work_that_fails_raises_and_lets_go(redis: aioredis.Redis) -> None:
    """The work's own error reaches the caller (a failed round is not a done one), and the
    lease is released for the next holder."""
    lease = Lease(redis, "test:lease", ttl_s=10)

    async def work() -> None:
        raise ValueError("the round failed")

    with pytest.raises(ValueError, match="the round failed"):
        await lease.run(work)
    assert not await redis.exists("test:lease")


async def test_a_renew_that_fails_is_tried_again_while_the_lease_stands(
    redis: aioredis.Redis,
) -> None:
    """One failed renew does not end the work: the keeper tries again until the lease
    would lapse. The failure is a WRONGTYPE reply, the one Redis error a test can cause
    at a chosen moment without losing the key (redis-py rides out a short cut itself)."""
    lease = Lease(redis, "test:lease", ttl_s=0.9)  # renewed every 0.3 s

    async def work() -> None:
        await redis.delete("test:lease")
        await redis.hset("test:lease", "not", "a string")  # the 0.3 s renew fails
        await asyncio.sleep(0.45)
        await redis.delete("test:lease")
        # Put back to lapse at ~0.95 s unless the keeper's next try (~0.6 s) renews it.
        await redis.set("test:lease", lease.token, px=500)
        await asyncio.sleep(0.8)  # past that: only a renewal kept it
        assert await redis.get("test:lease") == lease.token.encode()

    assert await lease.run(work)
    assert not await redis.exists("test:lease")


async def test_a_renew_that_fails_after_many_renewals_is_tried_again(
    redis: aioredis.Redis,
) -> None:
    """The lease is counted from its last renewal, not from the start of the work: a
    Redis error long into a run does not end work whose lease still stands."""
    lease = Lease(redis, "test:lease", ttl_s=0.6)  # renewed every 0.2 s

    async def work() -> None:
        await asyncio.sleep(1.0)  # renewed several times, well past the first lease's end
        await redis.delete("test:lease")
        await redis.hset("test:lease", "not", "a string")  # the next renew fails
        await asyncio.sleep(0.3)
        await redis.delete("test:lease")
        await redis.set("test:lease", lease.token, px=600)
        await asyncio.sleep(0.3)
        assert await redis.get("test:lease") == lease.token.encode()

    assert await lease.run(work)
    assert not await redis.exists("test:lease")


async def test_the_lease_is_renewed_long_before_it_runs_out(redis: aioredis.Redis) -> None:
    """Renewed a third into its lifetime: a renewal left late would let the key lapse, for
    another process to take, on the first slow round trip."""
    lease = Lease(redis, "test:lease", ttl_s=1.5)  # renewed every 0.5 s
    left: list[int] = []

    async def work() -> None:
        for _ in range(40):
            left.append(await redis.pttl("test:lease"))
            await asyncio.sleep(0.05)

    assert await lease.run(work)
    assert min(left) > 500, left  # about 1000 ms at the lowest
