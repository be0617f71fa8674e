"""The bus survives losing its Redis subscription and fills the gap from the streams."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from bench.redis_server import RedisServer
from filmstrip.events import EventPublisher
from filmstrip.protocols import events as ev
from filmstrip.services.bus import hub as hub_module
from filmstrip.services.bus.app import HANDLER, HUB, SUBSCRIBER
from filmstrip.services.bus.subscriber import EventSubscriber
from filmstrip.tasks import cancel_and_wait
from tests.bus.support import Account, BusClient, RunningBus, kill_pubsub_clients

pytestmark = pytest.mark.both_redis

Connect = Callable[..., Awaitable[BusClient]]
MakeAccount = Callable[..., Awaitable[Account]]


async def _listening(
    start_bus: Callable[..., Awaitable[RunningBus]], make_account: MakeAccount, connect: Connect
) -> tuple[RunningBus, Account, BusClient]:
    """A bus, an account, and a socket identified on it and in step."""
    bus = await start_bus()
    acc = await make_account()
    c = await connect(bus.url)
    await c.identify(acc.token)
    await c.barrier()
    return bus, acc, c


async def test_events_published_while_unsubscribed_are_caught_up(
    start_bus: Callable[..., Awaitable[RunningBus]],
    connect: Connect,
    make_account: MakeAccount,
    publisher: EventPublisher,
    redis: aioredis.Redis,
) -> None:
    bus, acc, c = await _listening(start_bus, make_account, connect)
    ids = [
        await publisher.publish(
            ev.PHOTO_UPLOADED, photo_id=acc.photos[0], client_id=acc.client_id,
            trace_id="0" * 32, data={"n": 0},
        )
    ]  # fmt: skip
    assert [m["id"] for m in await c.events(1)] == ids

    # Cut the bus's subscription (as Redis does to a slow subscriber) and publish into
    # the gap before it can resubscribe.
    assert await kill_pubsub_clients(redis) >= 1
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


async def _publish(publisher: EventPublisher, acc: Account, **data: Any) -> str:
    return await publisher.publish(
        ev.PHOTO_UPLOADED, photo_id=acc.photos[0], client_id=acc.client_id,
        trace_id="0" * 32, data=data,
    )  # fmt: skip


async def _gap_after_a_lost_subscription(
    bus: RunningBus, acc: Account, publisher: EventPublisher, redis: aioredis.Redis
) -> str:
    """Cut the bus's subscription, publish one event into the gap; its id."""
    assert await kill_pubsub_clients(redis) >= 1
    return await _publish(publisher, acc, gap=True)


async def test_a_catch_up_that_fails_at_first_is_tried_again(
    start_bus: Callable[..., Awaitable[RunningBus]],
    connect: Connect,
    make_account: MakeAccount,
    publisher: EventPublisher,
    redis: aioredis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Right after a Redis restart the bus's pooled connections are dead: the first
    replays fail, and the gap must still be filled."""
    bus, acc, c = await _listening(start_bus, make_account, connect)
    hub = bus.app[HUB]
    replay = hub.replay
    failures = [2]

    async def flaky(*args: Any, **kwargs: Any) -> int:
        if failures[0]:
            failures[0] -= 1
            raise RedisConnectionError("Connection closed by server.")
        return await replay(*args, **kwargs)

    monkeypatch.setattr(hub, "replay", flaky)
    gap = await _gap_after_a_lost_subscription(bus, acc, publisher, redis)
    assert [m["id"] for m in await c.events(1)] == [gap]
    assert failures == [0]


async def test_a_socket_whose_gap_cannot_be_replayed_is_closed_to_resume(
    start_bus: Callable[..., Awaitable[RunningBus]],
    connect: Connect,
    make_account: MakeAccount,
    publisher: EventPublisher,
    redis: aioredis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bus, acc, c = await _listening(start_bus, make_account, connect)
    hub = bus.app[HUB]

    async def broken(*args: Any, **kwargs: Any) -> int:
        raise RedisConnectionError("Connection closed by server.")

    monkeypatch.setattr(hub_module, "CATCH_UP_FIRST_DELAY_S", 0.01)
    monkeypatch.setattr(hub, "replay", broken)
    await _gap_after_a_lost_subscription(bus, acc, publisher, redis)
    # Not left open and silently behind: the client reconnects and resumes.
    assert await c.closed(within=10) == 1012


async def test_a_catch_up_still_running_stops_with_the_subscriber(
    redis_server: RedisServer, redis: aioredis.Redis
) -> None:
    started, stopped = asyncio.Event(), asyncio.Event()

    async def slow_catch_up() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    subscriber = EventSubscriber(redis_server.url, lambda _: None, slow_catch_up)
    running = asyncio.create_task(subscriber.run())
    await asyncio.wait_for(subscriber.ready.wait(), 5)
    assert await kill_pubsub_clients(redis) >= 1
    await asyncio.wait_for(started.wait(), 5)
    await cancel_and_wait(running)
    assert stopped.is_set()


async def test_a_live_event_never_overtakes_the_gap_it_follows(
    start_bus: Callable[..., Awaitable[RunningBus]],
    connect: Connect,
    make_account: MakeAccount,
    publisher: EventPublisher,
    redis: aioredis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An event published after the bus resubscribed, but before the catch-up got to the
    socket (its first replay failed, as after a Redis restart), must not raise the
    socket's cursor past the gap: the gap is sent, then the live event."""
    bus, acc, c = await _listening(start_bus, make_account, connect)
    hub = bus.app[HUB]
    replay = hub.replay
    tried = asyncio.Event()

    async def flaky(*args: Any, **kwargs: Any) -> int:
        if not tried.is_set():
            tried.set()
            raise RedisConnectionError("Connection closed by server.")
        return await replay(*args, **kwargs)

    monkeypatch.setattr(hub, "replay", flaky)
    gap = await _gap_after_a_lost_subscription(bus, acc, publisher, redis)
    await asyncio.wait_for(tried.wait(), 10)  # resubscribed; the catch-up retries in 0.2 s
    live = await _publish(publisher, acc, live=True)
    assert [m["id"] for m in await c.events(2)] == [gap, live]
    await c.barrier()


async def test_a_socket_identifying_across_a_resubscription_gets_the_gap(
    start_bus: Callable[..., Awaitable[RunningBus]],
    connect: Connect,
    make_account: MakeAccount,
    publisher: EventPublisher,
    redis: aioredis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A socket whose identify read its stream's head before the subscription came back,
    and finished after the catch-up had taken its list, still gets what was published in
    the gap."""
    bus = await start_bus()
    acc = await make_account()
    reader = bus.app[HANDLER]._replay
    head = reader.head
    read, go = asyncio.Event(), asyncio.Event()

    async def slow_head(client_id: str) -> Any:
        floor = await head(client_id)
        read.set()
        await go.wait()
        return floor

    monkeypatch.setattr(reader, "head", slow_head)
    c = await connect(bus.url)
    await c.send({"type": "identify", "token": acc.token})
    await asyncio.wait_for(read.wait(), 10)
    subscriber = bus.app[SUBSCRIBER]
    subscriber.ready.clear()  # set again by the resubscription
    gap = await _gap_after_a_lost_subscription(bus, acc, publisher, redis)
    await asyncio.wait_for(subscriber.ready.wait(), 10)
    go.set()
    await c.expect("identified")
    assert [m["id"] for m in await c.events(1)] == [gap]
    await c.barrier()


async def test_a_subscribe_that_redis_refused_brings_the_photos_past_when_retried(
    start_bus: Callable[..., Awaitable[RunningBus]],
    connect: Connect,
    make_account: MakeAccount,
    publisher: EventPublisher,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A subscribe whose backfill Redis refused leaves the socket out of the photo's
    room: the retry is a whole subscribe, past events included, not a bare 'subscribed'."""
    bus, acc, c = await _listening(start_bus, make_account, connect)
    started = await publisher.publish(
        ev.PHOTO_PROCESSING_STARTED, photo_id=acc.photos[0], client_id=acc.client_id,
        trace_id="0" * 32,
    )  # fmt: skip
    reader = bus.app[HUB]._replay
    newest_first = reader.entries_newest_first
    failures = [1]

    def flaky(client_id: str, after: Any) -> Any:
        if failures[0]:
            failures[0] -= 1
            raise RedisConnectionError("redis went away")
        return newest_first(client_id, after)

    monkeypatch.setattr(reader, "entries_newest_first", flaky)
    await c.send({"type": "subscribe", "photo_id": acc.photos[0]})
    assert (await c.expect("error"))["code"] == "unavailable"
    await c.subscribe(acc.photos[0])
    assert [m["id"] for m in await c.events(1)] == [started]
    await c.barrier()
