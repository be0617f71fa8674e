"""The one place every role makes its Redis client: a bounded pool that waits for a
connection instead of failing at once, on a single Redis or a Redis Cluster.

redis-py's default pool (100 connections) raises ``MaxConnectionsError`` (``Too many
connections``) the moment a burst needs one more. Here a call past ``redis_max_connections``
waits up to ``redis_pool_wait_s`` for a connection to come back, and only a pool still dry
after that raises ``MaxConnectionsError``: callers tell "we are out of connections" (the
process is overloaded) from "Redis is unreachable" (any other ``ConnectionError`` or
``TimeoutError``).

The wait is ours rather than redis-py's ``BlockingConnectionPool``, which takes a lock and
arms a timeout on every call: ``bench/redis_pool.py`` measured it at 0.81-0.84x the plain
pool's PINGs/s, this one at 0.92-1.05x (noise). Here a call that finds a connection pays
next to nothing, and only a dry pool waits. It relies on redis-py's plain pool raising
``MaxConnectionsError`` when dry (documented) and taking every connection back through
``release`` (``tests/test_redis_client.py`` fails if a release stops waking a waiter).

A cluster (``FILMSTRIP_REDIS_CLUSTER``: ``auto`` asks the server with ``INFO cluster`` at
start) gets redis-py's :class:`~redis.asyncio.cluster.RedisCluster`, which keeps a pool
per node that never waits. :class:`WaitingRedisCluster` puts the wait in front of it:
each command or pipeline takes one of ``redis_max_connections`` turns, waiting up to
``redis_pool_wait_s`` only when none is free. So the calls in flight per process are
bounded as on one Redis, but connections are kept per node: a process may hold up to that
many on each master. A cluster pipeline's redirected commands run through the client's
``execute_command`` inside the pipeline's turn (``tests/test_redis_client.py`` fails if
the turns stop bounding redis-py 8.2's cluster client).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeAlias

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.exceptions import (
    ConnectionError,
    MaxConnectionsError,
    RedisClusterUnreachableError,
    RedisError,
    SlotNotCoveredError,
)

from filmstrip.settings import Settings

log = logging.getLogger("filmstrip.redis")

#: What every role talks to Redis through: one server or a cluster.
RedisClient: TypeAlias = aioredis.Redis | RedisCluster

# A refused or lost connection is noticed this fast; a dead idle one before reuse.
_CONNECT_TIMEOUT_S = 2.0
_HEALTH_CHECK_INTERVAL_S = 15
# A waiter looks again this often even if no release woke it (one that was woken but
# cancelled before it took the connection passes nothing on).
_RECHECK_S = 0.1


class WaitingConnectionPool(ConnectionPool):
    """A pool of ``max_connections`` whose callers wait up to ``timeout`` seconds for a
    free connection, in turn, then get :class:`MaxConnectionsError`."""

    def __init__(self, *, timeout: float = 2.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.timeout = timeout
        self._waiters: deque[asyncio.Future[None]] = deque()
        # Waiters woken by a release that have not yet taken its connection: a newcomer
        # must not take it from under them (a task that releases and asks again at once
        # starved a waiter until its timeout).
        self._woken = 0

    async def get_connection(self, *args: Any, **kwargs: Any) -> AbstractConnection:
        while self._waiters and self._waiters[0].done():
            self._waiters.popleft()
        if not self._waiters and not self._woken:
            try:
                return await self._take()
            except MaxConnectionsError:
                pass
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        try:
            while True:
                left = deadline - loop.time()
                if left <= 0:
                    raise MaxConnectionsError(
                        f"all {self.max_connections} Redis connections stayed busy for"
                        f" {self.timeout} s"
                    )
                try:
                    await asyncio.wait((waiter,), timeout=min(left, _RECHECK_S))
                except BaseException:
                    if waiter.done() and not waiter.cancelled():
                        self._woken -= 1
                        self._wake_next()  # the connection released for it is the next's
                    raise
                if waiter.done():
                    self._woken -= 1
                try:
                    return await self._take()
                except MaxConnectionsError:
                    if waiter.done():  # woken, but the connection went elsewhere: stay first
                        waiter = loop.create_future()
                        self._waiters.appendleft(waiter)
        finally:
            waiter.cancel()  # a release skips it

    async def _take(self) -> AbstractConnection:
        connection: AbstractConnection = await super().get_connection()  # type: ignore[no-untyped-call]
        return connection

    async def release(self, connection: AbstractConnection) -> None:
        try:
            await super().release(connection)
        finally:
            self._wake_next()

    def _wake_next(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                self._woken += 1
                return


# Set while a task holds a turn, so what it runs inside (a pipeline's redirected commands,
# the tasks a multi-node command starts) does not wait for a second one.
_holding_turn: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "filmstrip_redis_turn", default=False
)


@contextmanager
def unreachable_as_connection_error() -> Iterator[None]:
    """Raise a cluster that no node (or none for the slot) answers for as a
    ``ConnectionError``: redis-py's own errors for it are no ``RedisError``, so every
    caller that rides out "Redis is down" would miss them."""
    try:
        yield
    except (RedisClusterUnreachableError, SlotNotCoveredError) as exc:
        raise ConnectionError(f"redis cluster unreachable: {exc}") from exc


class WaitingRedisCluster(RedisCluster):
    """A :class:`RedisCluster` whose commands and pipelines each wait up to
    ``pool_wait_s`` for one of ``max_connections`` turns, then raise
    :class:`MaxConnectionsError`; a cluster it cannot reach fails as a
    ``ConnectionError``, as one Redis does."""

    def __init__(self, *args: Any, pool_wait_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_turns: int = kwargs.get("max_connections", 100)
        self.pool_wait_s = pool_wait_s
        self._turns = asyncio.Semaphore(self.max_turns)

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Hold one of the process's turns for the block."""
        if _holding_turn.get():
            yield
            return
        if self._turns.locked():
            try:
                async with asyncio.timeout(self.pool_wait_s):
                    await self._turns.acquire()
            except TimeoutError:
                raise MaxConnectionsError(
                    f"all {self.max_turns} Redis turns stayed busy for {self.pool_wait_s} s"
                ) from None
        else:
            await self._turns.acquire()  # a free turn: taken at once, no timer armed
        token = _holding_turn.set(True)
        try:
            yield
        finally:
            _holding_turn.reset(token)
            self._turns.release()

    async def initialize(self, *args: Any, **kwargs: Any) -> RedisCluster:
        with unreachable_as_connection_error():
            return await super().initialize(*args, **kwargs)

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with self.turn():
            with unreachable_as_connection_error():
                return await super().execute_command(*args, **kwargs)

    def pipeline(
        self, transaction: Any | None = None, shard_hint: Any | None = None
    ) -> ClusterPipeline:
        if shard_hint:
            return super().pipeline(transaction, shard_hint)  # raises, as redis-py does
        return _WaitingClusterPipeline(self, transaction)  # type: ignore[abstract]


class _WaitingClusterPipeline(ClusterPipeline):
    """A cluster pipeline that holds one turn while it runs (one connection per node)."""

    def __init__(self, client: WaitingRedisCluster, transaction: Any | None) -> None:
        super().__init__(client, transaction)
        self._waiting_client = client

    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> Any:
        async with self._waiting_client.turn():
            with unreachable_as_connection_error():
                return await super().execute(raise_on_error, allow_redirections)


def is_cluster(redis: RedisClient) -> bool:
    """Whether ``redis`` talks to a Redis Cluster."""
    return isinstance(redis, RedisCluster)


def cluster_nodes(redis: RedisClient) -> Callable[[], list[tuple[str, int]]] | None:
    """On a cluster, what lists its nodes' ``(host, port)`` as the client last saw them
    (the client follows the topology as it changes); None for a single Redis."""
    if not isinstance(redis, RedisCluster):
        return None
    cluster = redis

    def nodes() -> list[tuple[str, int]]:
        return [(node.host, int(node.port)) for node in cluster.get_nodes()]

    return nodes


async def open_redis(settings: Settings, *, command_timeout_s: float | None = None) -> RedisClient:
    """A client on ``settings.redis.url``: over a :class:`WaitingConnectionPool`, or a
    :class:`WaitingRedisCluster` when the URL names a cluster.

    ``command_timeout_s`` bounds each reply; leave it ``None`` where blocking reads
    (``XREADGROUP … BLOCK``) wait longer on purpose. With ``redis_cluster`` ``auto`` this
    asks the server first; one that does not answer is taken for a single server.
    """
    cluster = settings.redis.cluster_mode
    if cluster is None:
        # Never waits for a Redis that is down: the role starts and says so (readyz, 503s).
        cluster = await detect_cluster(settings.redis.url)
    if cluster:
        return WaitingRedisCluster.from_url(
            settings.redis.url,
            # A master down without a replica leaves its slots unserved; the others serve.
            require_full_coverage=False,
            max_connections=settings.redis.max_connections,
            pool_wait_s=settings.redis.pool_wait_s,
            socket_connect_timeout=_CONNECT_TIMEOUT_S,
            socket_timeout=command_timeout_s,
            health_check_interval=_HEALTH_CHECK_INTERVAL_S,
        )
    pool = WaitingConnectionPool.from_url(
        settings.redis.url,
        max_connections=settings.redis.max_connections,
        timeout=settings.redis.pool_wait_s,
        socket_connect_timeout=_CONNECT_TIMEOUT_S,
        socket_timeout=command_timeout_s,
        health_check_interval=_HEALTH_CHECK_INTERVAL_S,
    )
    return aioredis.Redis.from_pool(pool)


async def detect_cluster(url: str) -> bool | None:
    """Whether the Redis at ``url`` runs in cluster mode (``INFO cluster``); None if it
    did not say (unreachable within the connect timeout, or refused the question)."""
    if url.startswith("unix://"):
        return False  # a cluster is only reachable over TCP
    probe = aioredis.Redis.from_url(
        url, socket_connect_timeout=_CONNECT_TIMEOUT_S, socket_timeout=_CONNECT_TIMEOUT_S
    )
    try:
        info = await probe.info("cluster")
    except (RedisError, OSError) as exc:
        log.warning(
            "redis did not say whether it is a cluster (%s): taking it for a single server;"
            " set FILMSTRIP_REDIS_CLUSTER=true if it is a cluster",
            exc,
        )
        return None
    finally:
        await probe.aclose()
    return bool(int(info.get("cluster_enabled", 0)))
