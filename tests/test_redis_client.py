"""The roles' Redis client: a burst waits for a pooled connection instead of failing, and
a pool still dry after the wait is told apart from Redis being down."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError, MaxConnectionsError

from filmstrip import redis_client
from filmstrip.redis_client import open_redis
from filmstrip.settings import load_settings
from tests.support.redis_server import RedisServer, free_port

OpenRedis = Callable[..., aioredis.Redis]


@pytest.fixture
async def make_redis(redis_server: RedisServer) -> AsyncIterator[OpenRedis]:
    """Factory: ``open_redis`` with ``FILMSTRIP_*`` values given as ``name=value``."""
    clients: list[aioredis.Redis] = []

    def make(**env: str) -> aioredis.Redis:
        environ = {"FILMSTRIP_REDIS_URL": redis_server.url}
        environ.update({f"FILMSTRIP_{k.upper()}": v for k, v in env.items()})
        client = open_redis(load_settings(environ))
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


async def test_a_burst_waits_for_a_free_connection(make_redis: OpenRedis) -> None:
    redis = make_redis(redis_max_connections="2", redis_pool_wait_s="5")
    # 50 calls at once on 2 connections: redis-py's default pool fails 48 of them at once.
    replies = await asyncio.gather(*(redis.incr("burst") for _ in range(50)))
    assert sorted(replies) == list(range(1, 51))


async def test_a_pool_dry_past_the_wait_is_out_of_connections(make_redis: OpenRedis) -> None:
    redis = make_redis(redis_max_connections="1", redis_pool_wait_s="0.3")
    pool = redis.connection_pool
    held = await pool.get_connection()
    try:
        started = time.monotonic()
        with pytest.raises(MaxConnectionsError):
            await redis.ping()
        assert time.monotonic() - started >= 0.25  # it waited before giving up
    finally:
        await pool.release(held)
    assert await redis.ping()  # and the returned connection serves again


async def test_redis_down_is_not_out_of_connections(make_redis: OpenRedis) -> None:
    redis = make_redis(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(ConnectionError) as caught:
        await redis.ping()
    assert not isinstance(caught.value, MaxConnectionsError)


async def test_a_returned_connection_wakes_a_waiter_even_past_a_cancelled_one(
    make_redis: OpenRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Waiters are woken by the release itself (not by their periodic recheck, pushed out
    of reach here), and a waiter cancelled while queued does not swallow the wake-up."""
    monkeypatch.setattr(redis_client, "_RECHECK_S", 60.0)
    redis = make_redis(redis_max_connections="1", redis_pool_wait_s="30")
    pool = redis.connection_pool
    held = await pool.get_connection()
    gone = asyncio.create_task(redis.ping())
    waiting = asyncio.create_task(redis.ping())
    await asyncio.sleep(0.05)
    assert not gone.done() and not waiting.done()
    gone.cancel()
    await asyncio.gather(gone, return_exceptions=True)
    await pool.release(held)
    assert await asyncio.wait_for(waiting, 5)
