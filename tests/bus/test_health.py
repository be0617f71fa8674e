"""Health endpoints and the per-process presence record the dashboard reads."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
import redis.asyncio as aioredis
from aiohttp import ClientSession

from filmstrip import keys
from filmstrip.services.bus import app as bus_app
from filmstrip.services.bus.app import HUB, PRESENCE
from tests.bus.support import Account, BusClient, RunningBus

pytestmark = pytest.mark.both_redis

Connect = Callable[..., Awaitable[BusClient]]
MakeAccount = Callable[..., Awaitable[Account]]


async def test_healthz_and_readyz(
    start_bus: Callable[..., Awaitable[RunningBus]], http: ClientSession
) -> None:
    bus = await start_bus()
    async with http.get(bus.http + "/healthz") as resp:
        assert resp.status == 200
    async with http.get(bus.http + "/readyz") as resp:
        body = await resp.json()
        assert resp.status == 200, body
        assert body["checks"] == {"redis": "ok", "catalog": "ok", "subscription": "ok"}


async def test_readyz_fails_when_redis_is_unreachable(
    start_bus: Callable[..., Awaitable[RunningBus]],
    http: ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bus_app, "_SUBSCRIBE_WAIT_S", 0.1)
    bus = await start_bus(redis_url="redis://127.0.0.1:1/0")
    async with http.get(bus.http + "/readyz") as resp:
        body = await resp.json()
        assert resp.status == 503
        assert body["checks"]["redis"] == "down"
        assert body["checks"]["catalog"] == "ok"


async def test_presence_counts_sockets_and_expires(
    start_bus: Callable[..., Awaitable[RunningBus]],
    connect: Connect,
    make_account: MakeAccount,
    redis: aioredis.Redis,
) -> None:
    bus = await start_bus()
    acc = await make_account()
    sockets = [await connect(bus.url) for _ in range(3)]
    await sockets[0].identify(acc.token)
    presence = bus.app[PRESENCE]
    await presence.report()
    assert await redis.zscore(keys.bus_instances(), presence.instance_id) is not None
    record = await redis.hgetall(keys.bus_instance(presence.instance_id))
    assert (record[b"sockets"], record[b"identified"], record[b"rooms"]) == (b"3", b"1", b"1")
    # A socket that closes leaves its rooms: the room of its client goes with its last member.
    await sockets[0].ws.close()
    async with asyncio.timeout(2):
        while True:
            if not bus.app[HUB].identified_count:
                break
            await asyncio.sleep(0.01)
    await presence.report()
    record = await redis.hgetall(keys.bus_instance(presence.instance_id))
    assert (record[b"sockets"], record[b"identified"], record[b"rooms"]) == (b"2", b"0", b"0")
    assert 0 < await redis.pttl(keys.bus_instance(presence.instance_id)) <= 600
    await presence.withdraw()
    assert not await redis.exists(keys.bus_instance(presence.instance_id))
    await asyncio.sleep(0)
