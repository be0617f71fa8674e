"""The lean script caller: same replies as redis-py, survives flushes, cancels and (when
asked to) a Redis restart; on a cluster it goes to each call's slot through redis-py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.cluster import RedisCluster as ClusterClient

from bench.redis_cluster import RedisCluster
from bench.redis_server import RedisServer
from filmstrip.redis_client import open_redis
from filmstrip.script_wire import KEEP_IDLE, ScriptWire
from filmstrip.settings import load_settings
from tests.conftest import redis_env

pytestmark = pytest.mark.both_redis

_ECHO_KEY = "redis.call('SET', KEYS[1], ARGV[1]) return redis.call('GET', KEYS[1])"

SmallPool = Callable[[int, float], Awaitable[aioredis.Redis]]


@pytest.fixture
async def small_pool(redis_server: RedisServer) -> AsyncIterator[SmallPool]:
    """Factory: a client of the single server whose pool holds ``connections`` and waits
    ``wait_s`` when dry; closed after the test."""
    clients: list[aioredis.Redis] = []

    async def make(connections: int, wait_s: float) -> aioredis.Redis:
        settings = load_settings(
            {"FILMSTRIP_REDIS_URL": redis_server.url,
             "FILMSTRIP_REDIS_MAX_CONNECTIONS": str(connections),
             "FILMSTRIP_REDIS_POOL_WAIT_S": str(wait_s), "FILMSTRIP_REDIS_CLUSTER": "false"}
        )  # fmt: skip
        client = await open_redis(settings)
        assert isinstance(client, aioredis.Redis)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


async def test_wire_reloads_a_script_redis_forgot(redis: aioredis.Redis) -> None:
    wire = ScriptWire(redis, redis.register_script(_ECHO_KEY), [b"wire:k"])
    assert await wire([b"one"]) == b"one"
    await redis.script_flush()
    assert await wire([b"two"]) == b"two"
    await wire.aclose()


async def test_keys_can_be_given_per_call(redis: aioredis.Redis) -> None:
    wire = ScriptWire(redis, redis.register_script(_ECHO_KEY))
    assert await wire.call(["wire:a"], ["x"]) == b"x"
    assert await wire.call([b"wire:b"], [3]) == b"3"
    # On a cluster these keys live on three different nodes.
    names = ["wire:a", "wire:b", *(f"wire:{n}" for n in range(20))]
    for name in names[2:]:
        assert await wire.call([name], [name]) == name.encode()
    assert [await redis.get(name) for name in names[:2]] == [b"x", b"3"]
    await wire.aclose()


async def test_on_a_cluster_only_a_reconnecting_wire_sends_a_call_again(
    redis_cluster: RedisCluster,
) -> None:
    """A script whose reply was lost may have run: a plain wire (the queue's STEP and
    ACTIVATE) must not send it again, as redis-py's own retries would."""
    settings = load_settings(redis_env(redis_cluster.url, "cluster"))
    client, control = await open_redis(settings), await open_redis(settings)
    script = client.register_script("return redis.call('INCR', KEYS[1])")
    plain = ScriptWire(client, script, [b"{w}runs"])
    reconnecting = ScriptWire(client, script, [b"{w}runs"], reconnect=True)
    kill = ("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    try:
        assert await plain([]) == 1
        # Cut every connection the wires' client keeps (not the control client's own).
        await control.execute_command(*kill, target_nodes=ClusterClient.ALL_NODES)
        with pytest.raises(redis.exceptions.ConnectionError):
            await plain([])
        await control.execute_command(*kill, target_nodes=ClusterClient.ALL_NODES)
        assert await reconnecting([]) == 2
        await control.delete("{w}runs")
    finally:
        await client.aclose()
        await control.aclose()


@pytest.fixture
async def restartable() -> AsyncIterator[tuple[RedisServer, aioredis.Redis]]:
    with RedisServer() as server:
        client = aioredis.Redis.from_url(server.url)
        yield server, client
        await client.aclose()


async def test_a_reconnecting_wire_rides_out_a_redis_restart(
    restartable: tuple[RedisServer, aioredis.Redis],
) -> None:
    server, client = restartable
    plain = ScriptWire(client, client.register_script(_ECHO_KEY))
    reconnecting = ScriptWire(client, client.register_script(_ECHO_KEY), reconnect=True)
    assert await plain.call(["k"], ["1"]) == b"1"
    assert await reconnecting.call(["k"], ["1"]) == b"1"
    server.restart()  # each wire's kept connection is dead now
    with pytest.raises(redis.exceptions.ConnectionError):
        await plain.call(["k"], ["2"])
    assert await reconnecting.call(["k"], ["3"]) == b"3"  # and the script reloaded
    await plain.aclose()
    await reconnecting.aclose()


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


async def test_a_burst_of_calls_gives_its_connections_back(small_pool: SmallPool) -> None:
    """Calls overlapping on a small pool each get a connection, and afterwards the wire
    keeps at most ``KEEP_IDLE`` of them: other callers are not starved."""
    client = await small_pool(4, 1)
    wire = ScriptWire(client, client.register_script(_ECHO_KEY))
    try:
        replies = await asyncio.gather(*(wire.call(["wire:burst"], [i]) for i in range(50)))
        assert sorted(int(r) for r in replies) == list(range(50))
        pool = client.connection_pool
        others = [await pool.get_connection() for _ in range(4 - KEEP_IDLE)]
        for conn in others:
            await pool.release(conn)
    finally:
        await wire.aclose()


async def test_a_cancelled_call_gives_its_connection_back(small_pool: SmallPool) -> None:
    """On a pool of one, the connection a cancelled call dropped goes back to the pool
    (closed), so the next call gets it rather than waiting out the pool."""
    client = await small_pool(1, 0.5)
    script = client.register_script(_ECHO_KEY)
    await script(keys=["wire:one"], args=["warm"])  # loaded: the wire keeps its connection
    wire = ScriptWire(client, script)
    try:
        assert await wire.call(["wire:one"], ["warm"]) == b"warm"
        call = asyncio.create_task(wire.call(["wire:one"], ["cancelled"]))
        await asyncio.sleep(0)  # sent, reply not read yet
        call.cancel()
        await asyncio.gather(call, return_exceptions=True)
        assert await wire.call(["wire:one"], ["next"]) == b"next"
    finally:
        await wire.aclose()


async def test_a_dry_pool_is_waited_out_once_even_by_a_reconnecting_wire(
    small_pool: SmallPool,
) -> None:
    """Out of connections is not a dead connection: a reconnecting wire does not ask the
    pool again (and wait a second time) before saying so."""
    client = await small_pool(1, 0.6)
    script = client.register_script(_ECHO_KEY)
    await script(keys=["wire:dry"], args=["warm"])
    wire = ScriptWire(client, script, reconnect=True)
    held = await client.connection_pool.get_connection()
    try:
        started = asyncio.get_running_loop().time()
        with pytest.raises(redis.exceptions.MaxConnectionsError):
            await wire.call(["wire:dry"], ["x"])
        assert asyncio.get_running_loop().time() - started < 1.1  # one 0.6 s wait, not two
    finally:
        await client.connection_pool.release(held)
        await wire.aclose()


async def test_a_wire_reloads_its_script_on_a_pool_of_one(small_pool: SmallPool) -> None:
    """The NOSCRIPT reply leaves the wire holding the connection it came on: the load,
    which goes through the pool, must not wait for it (it waited the pool out and failed
    with MaxConnectionsError)."""
    client = await small_pool(1, 0.5)
    await client.script_flush()
    wire = ScriptWire(client, client.register_script(_ECHO_KEY))
    try:
        assert await wire.call(["wire:small"], ["loaded"]) == b"loaded"
    finally:
        await wire.aclose()
