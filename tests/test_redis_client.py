"""The roles' Redis client, on one Redis and on a cluster: a burst waits for a connection
(a turn, on a cluster) instead of failing, a pool still dry after the wait is told apart
from Redis being down, and a cluster is recognised from its URL alone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as ClusterClient
from redis.exceptions import ConnectionError, MaxConnectionsError

from bench.redis_cluster import RedisCluster
from bench.redis_server import RedisServer
from filmstrip import redis_client
from filmstrip.embedded.redis_server import free_port
from filmstrip.redis_client import RedisClient, WaitingRedisCluster, open_redis
from filmstrip.settings import SettingsError, load_settings
from tests.conftest import redis_env

pytestmark = pytest.mark.both_redis

OpenRedis = Callable[..., Awaitable[RedisClient]]


@pytest.fixture
async def make_redis(redis_url: str, redis_kind: str) -> AsyncIterator[OpenRedis]:
    """Factory: ``open_redis`` on the test's Redis, with ``FILMSTRIP_*`` values given as
    ``name=value``."""
    clients: list[RedisClient] = []

    async def make(**env: str) -> RedisClient:
        environ = redis_env(redis_url, redis_kind)
        environ.update({f"FILMSTRIP_{k.upper()}": v for k, v in env.items()})
        client = await open_redis(load_settings(environ))
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


async def test_a_burst_waits_for_a_free_connection(make_redis: OpenRedis) -> None:
    redis = await make_redis(redis_max_connections="2", redis_pool_wait_s="5")
    # 50 calls at once on 2 connections: redis-py's default pool fails 48 of them at once
    # (on a cluster: its per-node pool of 2 does).
    replies = await asyncio.gather(*(redis.incr("burst") for _ in range(50)))
    assert sorted(replies) == list(range(1, 51))
    async with redis.pipeline(transaction=False) as pipe:
        for n in range(3):
            pipe.incr(f"burst:{n}")
        assert await pipe.execute() == [1, 1, 1]


async def test_a_pool_dry_past_the_wait_is_out_of_connections(make_redis: OpenRedis) -> None:
    redis = await make_redis(redis_max_connections="1", redis_pool_wait_s="0.3")
    # The one connection, held until the test lets it go (not for a fixed time, which a
    # loaded machine could use up before both calls below had waited theirs out).
    holder = asyncio.create_task(redis.blpop(["let-go"], timeout=60))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    with pytest.raises(MaxConnectionsError):
        await redis.ping()
    assert 0.25 <= time.monotonic() - started < 1.5  # it waited its 0.3 s, not another
    with pytest.raises(MaxConnectionsError):
        async with redis.pipeline(transaction=False) as pipe:
            await pipe.get("x").execute()
    assert not holder.done()
    await (await make_redis()).rpush("let-go", "now")
    assert await asyncio.wait_for(holder, 10) in ([b"let-go", b"now"], (b"let-go", b"now"))
    assert await redis.ping()  # and the returned connection serves again


async def test_redis_down_is_not_out_of_connections(make_redis: OpenRedis) -> None:
    redis = await make_redis(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    # Not redis-py's RedisClusterException on a cluster: callers ride out ConnectionError.
    with pytest.raises(ConnectionError) as caught:
        await redis.ping()
    assert not isinstance(caught.value, MaxConnectionsError)


async def test_a_returned_connection_wakes_a_waiter_even_past_a_cancelled_one(
    make_redis: OpenRedis, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Waiters are woken by the release itself (not by their periodic recheck, pushed out
    of reach here), and a waiter cancelled while queued does not swallow the wake-up.
    (The single server's pool: asking for ``redis_server`` keeps it off the cluster.)"""
    monkeypatch.setattr(redis_client, "_RECHECK_S", 60.0)
    redis = await make_redis(redis_max_connections="1", redis_pool_wait_s="30")
    assert isinstance(redis, aioredis.Redis)
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


async def test_a_waiter_is_served_before_a_task_that_releases_and_asks_again(
    make_redis: OpenRedis, redis_server: RedisServer
) -> None:
    """A connection released while someone waits goes to the waiter, not to the next
    caller to ask (a task that gives its connection back and takes one again at once held
    the pool's only connection until the waiter timed out)."""
    redis = await make_redis(redis_max_connections="1", redis_pool_wait_s="1")
    assert isinstance(redis, aioredis.Redis)
    pool = redis.connection_pool
    stop = asyncio.Event()

    async def hog() -> None:
        while not stop.is_set():
            held = await pool.get_connection()
            await asyncio.sleep(0.005)  # using it
            await pool.release(held)

    hogging = asyncio.create_task(hog())
    await asyncio.sleep(0.05)
    try:
        served = await pool.get_connection()
        await pool.release(served)
    finally:
        stop.set()
        await hogging


async def test_after_a_wait_a_free_connection_is_taken_at_once(
    make_redis: OpenRedis, redis_server: RedisServer
) -> None:
    """Once the waiter a release woke has its connection, the next callers on a free pool
    go straight to it: none is left queued behind a wake-up that was already used."""
    redis = await make_redis(redis_max_connections="1", redis_pool_wait_s="5")
    assert isinstance(redis, aioredis.Redis)
    pool = redis.connection_pool
    held = await pool.get_connection()
    waiting = asyncio.create_task(redis.ping())
    await asyncio.sleep(0.05)
    await pool.release(held)
    assert await asyncio.wait_for(waiting, 5)
    started = time.monotonic()
    for _ in range(20):
        await redis.ping()
    # A call queued as a waiter looks again every 0.1 s: 20 of them would take 2 s.
    assert time.monotonic() - started < 1.0


async def test_a_woken_waiter_cancelled_before_it_takes_passes_the_connection_on(
    make_redis: OpenRedis, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection released for a waiter that is cancelled before it runs goes to the
    next waiter at once, not at its periodic recheck (pushed out of reach here)."""
    monkeypatch.setattr(redis_client, "_RECHECK_S", 60.0)
    redis = await make_redis(redis_max_connections="1", redis_pool_wait_s="30")
    assert isinstance(redis, aioredis.Redis)
    pool = redis.connection_pool
    held = await pool.get_connection()
    woken = asyncio.create_task(redis.ping())
    waiting = asyncio.create_task(redis.ping())
    await asyncio.sleep(0.05)
    await pool.release(held)  # wakes the first waiter ...
    woken.cancel()  # ... which is cancelled before it runs
    await asyncio.gather(woken, return_exceptions=True)
    assert await asyncio.wait_for(waiting, 5)


async def test_auto_recognises_a_cluster_from_its_url(redis_url: str, redis_kind: str) -> None:
    for value in ("auto", ""):
        client = await open_redis(
            load_settings({"FILMSTRIP_REDIS_URL": redis_url, "FILMSTRIP_REDIS_CLUSTER": value})
        )
        try:
            if redis_kind == "cluster":
                assert isinstance(client, WaitingRedisCluster)
                await client.set("k", "v")  # and it serves
            else:
                assert isinstance(client, aioredis.Redis)
        finally:
            await client.aclose()


async def test_auto_takes_a_redis_that_does_not_answer_for_a_single_one() -> None:
    """A role that starts while Redis is down still starts (and says Redis is down)."""
    settings = load_settings({"FILMSTRIP_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    client = await asyncio.wait_for(open_redis(settings), 5)
    try:
        assert isinstance(client, aioredis.Redis)
    finally:
        await client.aclose()


def test_the_cluster_setting_is_checked_at_start() -> None:
    with pytest.raises(SettingsError, match="FILMSTRIP_REDIS_CLUSTER"):
        load_settings({"FILMSTRIP_REDIS_CLUSTER": "sometimes"})
    with pytest.raises(SettingsError, match="a Redis Cluster is reached over"):
        load_settings({"FILMSTRIP_REDIS_URL": "unix:///tmp/r.sock", "FILMSTRIP_REDIS_CLUSTER": "1"})
    assert load_settings({"FILMSTRIP_REDIS_CLUSTER": "yes"}).redis.cluster_mode is True
    assert load_settings({}).redis.cluster_mode is None


async def test_a_cluster_client_reaches_every_node(redis_cluster: RedisCluster) -> None:
    """Keys spread over the slots (no hash tag) land on every master and read back."""
    redis = await open_redis(load_settings(redis_env(redis_cluster.url, "cluster")))
    assert isinstance(redis, ClusterClient)
    try:
        names = [f"spread:{n}" for n in range(60)]
        for name in names:
            await redis.set(name, name)
        nodes = {redis.get_node_from_key(name).name for name in names}
        assert len(nodes) == len(redis.get_primaries()) == 3
        assert [await redis.get(name) for name in names] == [n.encode() for n in names]
        await redis.delete(*names)
    finally:
        await redis.aclose()
