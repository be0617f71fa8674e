"""Each client's identified sockets, counted in Redis across every bus process, so the
per-client cap holds whichever bus each socket reached.

``keys.bus_client_sockets(client)`` is a sorted set of socket ids scored by when each
stops counting (Redis's clock, in ms, so hosts whose clocks disagree still agree). A bus
adds a socket as it identifies, if the client is under the cap (one script: drop what
expired, count, add); it removes the socket as it closes; its presence loop pushes the
expiry of each of its sockets forward. A bus that dies stops doing so, and its sockets
stop counting within ``ttl_s``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from filmstrip import keys
from filmstrip.redis_client import RedisClient

log = logging.getLogger("filmstrip.bus.sockets")

# One key per call: a client's set, on one Cluster slot.
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""
# KEYS[1] the client's set; ARGV: socket id, cap, ttl ms. 1 if admitted, 0 at the cap.
_ADMIT = (
    _NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == false
    and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""
)
# KEYS[1] the client's set; ARGV: ttl ms, then this bus's sockets of the client.
_REFRESH = (
    _NOW
    + """
local ttl = tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], ttl)
return #ARGV - 1
"""
)


class ClientSockets:
    """This bus's share of the per-client socket counts."""

    def __init__(self, redis: RedisClient, *, cap: int, ttl_s: float) -> None:
        self.cap = cap
        self.ttl_ms = max(int(ttl_s * 1000), 1)
        self._redis = redis
        self._admit = redis.register_script(_ADMIT)
        self._refresh = redis.register_script(_REFRESH)
        # socket id → client id of the sockets this process counted.
        self._mine: dict[str, str] = {}

    async def admit(self, client_id: str, socket_id: str) -> bool:
        """Count the socket for its client unless the client is at the cap."""
        admitted = await self._admit(
            keys=[keys.bus_client_sockets(client_id)], args=[socket_id, self.cap, self.ttl_ms]
        )
        if admitted:
            self._mine[socket_id] = client_id
        return bool(admitted)

    async def release(self, socket_id: str) -> None:
        """The socket closed: it no longer counts (if Redis is down, it expires)."""
        client_id = self._mine.pop(socket_id, None)
        if client_id is None:
            return
        try:
            await self._redis.zrem(keys.bus_client_sockets(client_id), socket_id)
        except (RedisError, OSError) as exc:
            log.warning("could not uncount a closed socket (it expires): %s", exc)

    async def refresh(self) -> None:
        """Keep counting this process's sockets for another ``ttl_s``."""
        if not self._mine:
            return
        by_client: dict[str, list[str]] = defaultdict(list)
        for socket_id, client_id in self._mine.items():
            by_client[client_id].append(socket_id)
        if not isinstance(self._redis, aioredis.Redis):
            # A cluster pipeline does not load scripts (its EVALSHA fails NOSCRIPT on a
            # node that never ran it): one call per client, each to its client's slot.
            await asyncio.gather(*(
                self._refresh(keys=[keys.bus_client_sockets(client_id)],
                              args=[self.ttl_ms, *sockets])
                for client_id, sockets in by_client.items()
            ))  # fmt: skip
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for client_id, sockets in by_client.items():
                await self._refresh(
                    keys=[keys.bus_client_sockets(client_id)],
                    args=[self.ttl_ms, *sockets],
                    client=pipe,
                )
            await pipe.execute()

    async def release_all(self) -> None:
        """Uncount every socket of this process (it is stopping)."""
        for socket_id in list(self._mine):
            await self.release(socket_id)
