"""The one place every role makes its Redis client: a bounded pool that waits for a
connection instead of failing at once.

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
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.exceptions import MaxConnectionsError

from filmstrip.settings import Settings

# A refused or lost connection is noticed this fast; a dead idle one before reuse.
_CONNECT_TIMEOUT_S = 2.0
_HEALTH_CHECK_INTERVAL_S = 15
# A waiter looks again this often even if no release woke it (one that was woken but
# cancelled before it took the connection passes nothing on).
_RECHECK_S = 0.1


class WaitingConnectionPool(ConnectionPool):
    """A pool of ``max_connections`` whose callers wait up to ``timeout`` seconds for a
    free connection, then get :class:`MaxConnectionsError`."""

    def __init__(self, *, timeout: float = 2.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.timeout = timeout
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def get_connection(self, *args: Any, **kwargs: Any) -> AbstractConnection:
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
                await asyncio.wait((waiter,), timeout=min(left, _RECHECK_S))
                try:
                    return await self._take()
                except MaxConnectionsError:
                    if waiter.done():  # woken, but another caller took it first
                        waiter = loop.create_future()
                        self._waiters.append(waiter)
        finally:
            waiter.cancel()  # a release skips it

    async def _take(self) -> AbstractConnection:
        connection: AbstractConnection = await super().get_connection()  # type: ignore[no-untyped-call]
        return connection

    async def release(self, connection: AbstractConnection) -> None:
        try:
            await super().release(connection)
        finally:
            while self._waiters:
                waiter = self._waiters.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    break


def open_redis(settings: Settings, *, command_timeout_s: float | None = None) -> aioredis.Redis:
    """A client on ``settings.redis_url`` over a :class:`WaitingConnectionPool`.

    ``command_timeout_s`` bounds each reply; leave it ``None`` where blocking reads
    (``XREADGROUP … BLOCK``) wait longer on purpose.
    """
    pool = WaitingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_pool_wait_s,
        socket_connect_timeout=_CONNECT_TIMEOUT_S,
        socket_timeout=command_timeout_s,
        health_check_interval=_HEALTH_CHECK_INTERVAL_S,
    )
    return aioredis.Redis.from_pool(pool)
