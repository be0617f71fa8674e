"""Each bus process reports its socket counts to Redis for the api's dashboard, and keeps
its sockets counted in each client's cross-process count (``client_sockets``).

``keys.bus_instance(id)`` is a hash (``sockets``, ``identified``, ``rooms``, ``delivered``,
``host``, ``port``, ``pid``, ``started_at``, ``updated_at``) that expires three intervals
after the last report, so a crashed process disappears by itself; ``keys.bus_instances()``
is a sorted set of instance ids scored by their last report (unix ms), for listing without
SCAN. Readers drop members whose hash has expired.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time

from redis.exceptions import RedisError

from filmstrip import keys
from filmstrip.instance import instance_name
from filmstrip.redis_client import RedisClient
from filmstrip.services.bus.client_sockets import ClientSockets
from filmstrip.services.bus.hub import Hub

log = logging.getLogger("filmstrip.bus.presence")


class Presence:
    """Writes this process's figures every ``interval_s`` until cancelled."""

    def __init__(
        self,
        redis: RedisClient,
        hub: Hub,
        *,
        port: int,
        interval_s: float,
        sockets: ClientSockets | None = None,
    ) -> None:
        self.instance_id = instance_name("bus")
        self._redis = redis
        self._hub = hub
        self._sockets = sockets
        self._port = port
        self._interval = interval_s
        self._started = time.time()

    async def report(self) -> None:
        """Write the current figures once."""
        now_ms = int(time.time() * 1000)
        ttl_ms = int(self._interval * 3000)
        key = keys.bus_instance(self.instance_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                key,
                mapping={
                    "sockets": len(self._hub.connections),
                    "identified": self._hub.identified_count,
                    "rooms": len(self._hub.rooms),
                    "delivered": self._hub.delivered,
                    "host": socket.gethostname(),
                    "port": self._port,
                    "pid": os.getpid(),
                    "started_at": int(self._started * 1000),
                    "updated_at": now_ms,
                },
            )
            pipe.pexpire(key, ttl_ms)
            pipe.zadd(keys.bus_instances(), {self.instance_id: now_ms})
            # Forget instances that stopped reporting long ago.
            pipe.zremrangebyscore(keys.bus_instances(), 0, now_ms - ttl_ms)
            await pipe.execute()
        if self._sockets is not None:
            await self._sockets.refresh()

    async def run(self) -> None:
        while True:
            try:
                await self.report()
            except (RedisError, OSError) as exc:
                log.warning("could not report presence", extra={"error": str(exc)})
            await asyncio.sleep(self._interval)

    async def withdraw(self) -> None:
        """Remove this process's record and uncount its sockets (clean shutdown)."""
        if self._sockets is not None:
            await self._sockets.release_all()
        try:
            await self._redis.delete(keys.bus_instance(self.instance_id))
            await self._redis.zrem(keys.bus_instances(), self.instance_id)
        except (RedisError, OSError) as exc:
            log.warning("could not withdraw presence", extra={"error": str(exc)})
