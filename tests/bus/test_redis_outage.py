"""The bus survives losing its Redis subscription and fills the gap from the streams."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from filmstrip.events import EventPublisher
from protocols import events as ev
from services.bus.app import SUBSCRIBER
from tests.bus.support import Account, BusClient, RunningBus

Connect = Callable[..., Awaitable[BusClient]]
MakeAccount = Callable[..., Awaitable[Account]]


async def test_events_published_while_unsubscribed_are_caught_up(
    start_bus: Callable[..., Awaitable[RunningBus]],
    connect: Connect,
    make_account: MakeAccount,
    publisher: EventPublisher,
    redis: aioredis.Redis,
) -> None:
    bus = await start_bus()
    acc = await make_account()
    c = await connect(bus.url)
    await c.identify(acc.token)
    await c.barrier()
    ids = [
        await publisher.publish(
            ev.PHOTO_UPLOADED, photo_id=acc.photos[0], client_id=acc.client_id,
            trace_id="0" * 32, data={"n": 0},
        )
    ]  # fmt: skip
    assert [m["id"] for m in await c.events(1)] == ids

    # Cut the bus's subscription (as Redis does to a slow subscriber) and publish into
    # the gap before it can resubscribe.
    killed = await redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    assert killed >= 1
    for n in range(1, 6):
        ids.append(
            await publisher.publish(
                ev.PHOTO_UPLOADED,
                photo_id=acc.photos[0],
                client_id=acc.client_id,
                trace_id="0" * 32,
                data={"n": n},
            )
        )
    subscriber = bus.app[SUBSCRIBER]
    await asyncio.wait_for(subscriber.ready.wait(), 10)
    ids.append(
        await publisher.publish(
            ev.PHOTO_UPLOADED,
            photo_id=acc.photos[0],
            client_id=acc.client_id,
            trace_id="0" * 32,
            data={"n": 6},
        )
    )
    got = [m["id"] for m in await c.events(6)]
    assert got == ids[1:]
    await c.barrier()
