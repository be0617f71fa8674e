"""``EventStream``: a client's events as an async iterator that identifies, follows photos,
and after its bus dies reconnects and resumes from the last event it yielded: nothing
missed, nothing twice, in order."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from filmstrip.client import EventStream, EventStreamError
from filmstrip.events import EventPublisher
from filmstrip.protocols import events as ev
from filmstrip.protocols.ws import EventMessage
from tests.bus.support import Account, BusProcess

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
