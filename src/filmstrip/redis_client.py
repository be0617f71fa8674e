"""The one place every role makes its Redis client: a bounded pool that waits for a
connection instead of failing at once.

redis-py's default pool (100 connections) raises ``Too many connections`` the moment a
burst needs one more, which callers cannot tell from Redis being down. Here a burst waits
up to ``redis_pool_wait_s`` for a connection to come back, and only a pool still dry after
that raises: as redis-py's :class:`~redis.exceptions.MaxConnectionsError`, so callers tell
"we are out of connections" (the process is overloaded) from "Redis is unreachable"
(any other ``ConnectionError`` or ``TimeoutError``).

Fits redis-py 8.2 (``tests/test_redis_client.py`` fails loudly if that changes): its
``BlockingConnectionPool`` raises a plain ``ConnectionError`` caused by the wait's
``asyncio.TimeoutError`` when no connection came back in time.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection, BlockingConnectionPool
from redis.exceptions import ConnectionError, MaxConnectionsError

from filmstrip.settings import Settings

# A refused or lost connection is noticed this fast; a dead idle one before reuse.
_CONNECT_TIMEOUT_S = 2.0
_HEALTH_CHECK_INTERVAL_S = 15


class WaitingConnectionPool(BlockingConnectionPool):
    """A pool of ``max_connections`` that waits ``timeout`` seconds for a free connection,
    then raises :class:`MaxConnectionsError` (never a plain ``ConnectionError``)."""

    async def get_connection(self, *args: Any, **kwargs: Any) -> AbstractConnection:
        try:
            connection: AbstractConnection = await super().get_connection()  # type: ignore[no-untyped-call]
        except MaxConnectionsError:
            raise
        except ConnectionError as exc:
            # Only the wait for a free connection fails with a timeout as its cause; a
            # connection that cannot reach Redis fails with the OSError it met.
            if isinstance(exc.__cause__, asyncio.TimeoutError):
                raise MaxConnectionsError(
                    f"all {self.max_connections} Redis connections stayed busy for {self.timeout} s"
                ) from exc
            raise
        return connection


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
