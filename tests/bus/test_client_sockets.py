"""The per-client socket count in Redis, shared by every bus process."""

from __future__ import annotations

import asyncio

from filmstrip.redis_client import RedisClient
from filmstrip.services.bus.client_sockets import ClientSockets


async def test_a_dead_bus_sockets_stop_counting_while_a_live_bus_renews_its_own(
    redis: RedisClient,
) -> None:
    """A bus that died renews nothing: its sockets stop counting once their count lapses,
    even though another bus keeps the client's set alive by renewing its own sockets.
    Otherwise the client would stay locked out after every crash."""
    dead = ClientSockets(redis, cap=2, ttl_s=0.2)
    live = ClientSockets(redis, cap=2, ttl_s=30)
    assert await dead.admit("c1", "dead-socket")
    assert await live.admit("c1", "live-socket")
    assert not await live.admit("c1", "third")  # at the cap while both count
    await asyncio.sleep(0.4)
    await live.refresh()
    assert await live.admit("c1", "third")
