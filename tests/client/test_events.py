"""``EventStream``: a client's events as an async iterator that identifies, follows photos,
and after its bus dies reconnects and resumes from the last event it yielded: nothing
missed, nothing twice, in order."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from filmstrip import keys
from filmstrip.client import EventStream, EventStreamError
from filmstrip.client.events import Gap
from filmstrip.events import EventPublisher
from filmstrip.protocols import events as ev
from filmstrip.protocols import ws
from filmstrip.protocols.ws import EventMessage
from filmstrip.redis_client import RedisClient
from tests.bus.support import Account, BusProcess, RunningBus

MakeAccount = Callable[..., Awaitable[Account]]


async def _publish(pub: EventPublisher, acc: Account, kind: str, n: int) -> str:
    return await pub.publish(
        kind, photo_id=acc.photos[0], client_id=acc.client_id, trace_id=f"{n:032x}",
        data={"n": n},
    )  # fmt: skip


async def _next(events: EventStream) -> EventMessage:
    item = await asyncio.wait_for(anext(events), timeout=20)
    assert isinstance(item, EventMessage), item
    return item


async def test_the_stream_follows_photos_and_resumes_by_itself_after_its_bus_dies(
    bus_process: Callable[..., BusProcess], make_account: MakeAccount, publisher: EventPublisher
) -> None:
    acc = await make_account()
    running = bus_process()
    async with EventStream(running.url, acc.token, max_backoff_s=0.5) as events:
        await events.follow(acc.photos[0])  # its processing events come too
        await events.connect()  # identify, subscribe, resume: from now on
        e1 = await _publish(publisher, acc, ev.PHOTO_UPLOADED, 1)
        assert (await _next(events)).id == e1
        e2 = await _publish(publisher, acc, ev.STAGE_COMPLETED, 2)  # photo room only
        assert (await _next(events)).id == e2

        running.stop()  # SIGKILL: no goodbye; the stream finds out when it reads
        missed = [
            await _publish(publisher, acc, ev.PHOTO_UPLOADED, 3),
            await _publish(publisher, acc, ev.STAGE_COMPLETED, 4),
        ]
        again = BusProcess(running.settings, running.port)
        again.start()
        try:
            got = [(await _next(events)).id for _ in missed]
            e5 = await _publish(publisher, acc, ev.PHOTO_COMPLETED, 5)
            got.append((await _next(events)).id)
        finally:
            again.stop()
        assert got == [*missed, e5]  # replayed in order, then live, once each
        assert events.reconnects >= 1 and events.last_event_id == e5


async def test_a_refused_token_ends_the_stream(bus: str) -> None:
    async with EventStream(bus, "fst_not-a-token") as events:
        with pytest.raises(EventStreamError):
            await asyncio.wait_for(anext(events), timeout=20)


async def test_following_a_photo_late_still_brings_its_earlier_events_once(
    bus: str, make_account: MakeAccount, publisher: EventPublisher
) -> None:
    acc = await make_account(photos=2)
    async with EventStream(bus, acc.token, max_backoff_s=0.5) as events:
        await events.connect()
        uploaded = await _publish(publisher, acc, ev.PHOTO_UPLOADED, 1)
        assert (await _next(events)).id == uploaded
        # Its first stage is published before anyone follows the photo (its room only).
        stage = await _publish(publisher, acc, ev.STAGE_COMPLETED, 2)
        done = await _publish(publisher, acc, ev.PHOTO_COMPLETED, 3)  # client room too
        await events.follow(acc.photos[0])
        got = [(await _next(events)).id, (await _next(events)).id]
        assert got == [stage, done]
        live = await _publish(publisher, acc, ev.STAGE_COMPLETED, 4)
        assert (await _next(events)).id == live


async def test_a_drop_before_the_first_event_still_resumes_from_the_first_connection(
    bus: str, make_account: MakeAccount, publisher: EventPublisher
) -> None:
    acc = await make_account()
    async with EventStream(bus, acc.token, max_backoff_s=0.5) as events:
        await events.connect()  # from now on
        await events.follow(acc.photos[0])  # the socket goes before any event came
        uploaded = await _publish(publisher, acc, ev.PHOTO_UPLOADED, 1)
        assert (await _next(events)).id == uploaded


async def test_events_queued_but_not_yet_yielded_come_in_order_after_a_follow(
    bus: str, make_account: MakeAccount, publisher: EventPublisher
) -> None:
    acc = await make_account(photos=2)
    async with EventStream(bus, acc.token, max_backoff_s=0.5) as events:
        await events.connect()
        first = await _publish(publisher, acc, ev.PHOTO_UPLOADED, 1)
        assert (await _next(events)).id == first
        await events.follow(acc.photos[0])
        two = await _publish(publisher, acc, ev.PHOTO_UPLOADED, 2)
        # A stage of the second photo (its room only), not followed yet.
        stage = await publisher.publish(
            ev.STAGE_COMPLETED, photo_id=acc.photos[1], client_id=acc.client_id,
            trace_id=f"{3:032x}", data={"n": 3},
        )  # fmt: skip
        rest = [await _publish(publisher, acc, ev.PHOTO_UPLOADED, n) for n in (4, 5)]
        # The resume replays 2, 4 and 5 at once: 2 is yielded, 4 and 5 wait in the queue.
        assert (await _next(events)).id == two
        # Following the second photo brings its stage, before the two that waited.
        await events.follow(acc.photos[1])
        live = await _publish(publisher, acc, ev.PHOTO_UPLOADED, 6)
        got = [(await _next(events)).id for _ in range(4)]
        assert got == [stage, *rest, live]


async def test_events_trimmed_before_the_stream_resumed_come_as_a_gap(
    start_bus: Callable[..., Awaitable[RunningBus]],
    make_account: MakeAccount,
    publisher: EventPublisher,
    redis: RedisClient,
) -> None:
    acc = await make_account()
    bus = await start_bus(bus_replay_maxlen=3)
    async with EventStream(bus.url, acc.token, max_backoff_s=0.5) as events:
        await events.connect()
        first = await _publish(publisher, acc, ev.PHOTO_UPLOADED, 1)
        assert (await _next(events)).id == first
        await events.follow(acc.photos[0])  # the next read resumes after the first
        later = [await _publish(publisher, acc, ev.PHOTO_UPLOADED, n) for n in range(2, 7)]
        # Trimmed to the bus's cap, as a publisher does: the second and third are gone.
        await redis.xtrim(keys.client_events(acc.client_id), maxlen=3, approximate=False)
        items = [await asyncio.wait_for(anext(events), timeout=20) for _ in range(4)]
    assert [i for i in items if isinstance(i, Gap)] == [Gap(last_event_id=first)]
    assert [i.id for i in items if isinstance(i, EventMessage)] == later[2:]


async def test_a_stream_follows_at_most_as_many_photos_as_the_bus_takes() -> None:
    events = EventStream("ws://127.0.0.1:9/ws", "t")
    for n in range(ws.MAX_IDENTIFY_PHOTOS):
        await events.follow(f"p{n}")
    await events.follow("p0")  # already followed: no change
    with pytest.raises(ValueError, match=str(ws.MAX_IDENTIFY_PHOTOS)):
        await events.follow("one-more")
    await events.close()
