"""What a plain client meets: events at once without any ``resume``, reconnecting in one
``identify``, and a photo followed after its upload's ``201`` missing nothing (#20)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from filmstrip import keys
from filmstrip.events import EventPublisher
from filmstrip.protocols import events as ev
from filmstrip.services.bus.app import HUB
from tests.bus.support import Account, BusClient, RunningBus

pytestmark = pytest.mark.both_redis

Connect = Callable[..., Awaitable[BusClient]]
MakeAccount = Callable[..., Awaitable[Account]]


async def _publish(pub: EventPublisher, acc: Account, type_: str, photo: int = 0) -> str:
    return await pub.publish(
        type_, photo_id=acc.photos[photo], client_id=acc.client_id, trace_id="t" * 32,
        data={"photo": photo},
    )  # fmt: skip


async def _until_resumed(c: BusClient) -> list[dict[str, Any]]:
    events = []
    while (msg := await c.recv())["type"] != "resumed":
        assert msg["type"].endswith(".event"), msg
        events.append(msg)
    return events


async def test_a_socket_that_never_resumes_gets_each_event_at_once(
    start_bus: Callable[..., Awaitable[RunningBus]],
    connect: Connect,
    make_account: MakeAccount,
    publisher: EventPublisher,
    redis: Any,
) -> None:
    bus = await start_bus()
    acc = await make_account()
    c = await connect(bus.url)
    await c.identify(acc.token)
    await c.subscribe(acc.photos[0])
    uploaded = await _publish(publisher, acc, ev.PHOTO_UPLOADED)
    # Hand the bus its copy now (the pub/sub one is deduplicated whenever it comes), so
    # the event is the bus's to send before it reads the next message.
    [(_id, fields)] = await redis.xrange(keys.client_events(acc.client_id))
    bus.app[HUB].publish(uploaded.encode() + b" " + fields[b"e"])
    await c.send({"type": "subscribe", "photo_id": acc.photos[1]})
    # Not held back waiting for a resume this socket will never send.
    assert (await c.recv())["id"] == uploaded
    await c.expect("subscribed")
    await c.barrier()


async def test_identify_with_last_event_id_replays_in_order_then_live(
    bus: str, connect: Connect, make_account: MakeAccount, publisher: EventPublisher
) -> None:
    acc = await make_account()
    seen = await _publish(publisher, acc, ev.PHOTO_UPLOADED)
    missed = [
        await _publish(publisher, acc, ev.PHOTO_PROCESSING_STARTED),  # the photo's room only
        await _publish(publisher, acc, ev.PHOTO_UPLOADED, photo=1),
        await _publish(publisher, acc, ev.PHOTO_COMPLETED),
    ]
    await _publish(publisher, acc, ev.PHOTO_PROCESSING_STARTED, photo=1)  # not followed
    c = await connect(bus)
    identified = await c.identify(
        acc.token, last_event_id=seen, photo_ids=[acc.photos[0], "p_not-theirs"]
    )
    assert identified["photo_ids"] == [acc.photos[0]]
    assert [m["id"] for m in await _until_resumed(c)] == missed
    live = await _publish(publisher, acc, ev.PHOTO_PROCESSING_STARTED)
    assert [m["id"] for m in await c.events(1)] == [live]
    await c.send({"type": "resume", "last_event_id": seen})  # it has resumed already
    assert (await c.expect("error"))["code"] == "bad_message"
    await c.barrier()  # and nothing twice


async def test_subscribing_after_the_events_brings_those_of_the_photo_it_missed(
    bus: str, connect: Connect, make_account: MakeAccount, publisher: EventPublisher
) -> None:
    """A client learns its photo's id from the 201 and only then subscribes."""
    acc = await make_account()
    c = await connect(bus)
    await c.identify(acc.token)
    uploaded = await _publish(publisher, acc, ev.PHOTO_UPLOADED)
    started = await _publish(publisher, acc, ev.PHOTO_PROCESSING_STARTED)
    await _publish(publisher, acc, ev.PHOTO_PROCESSING_STARTED, photo=1)  # another photo
    stage = await _publish(publisher, acc, ev.STAGE_COMPLETED)
    # The client's room brought this at once.
    assert [m["id"] for m in await c.events(1)] == [uploaded]
    await c.subscribe(acc.photos[0])
    # What only the photo's room got, in order; not what the socket already has.
    assert [m["id"] for m in await c.events(2)] == [started, stage]
    completed = await _publish(publisher, acc, ev.PHOTO_COMPLETED)
    live = await _publish(publisher, acc, ev.PHOTO_DEFERRED_COMPLETED)
    assert [m["id"] for m in await c.events(2)] == [completed, live]
    await c.subscribe(acc.photos[0])  # already followed: nothing again
    await c.barrier()


async def test_a_late_subscribe_sends_no_event_of_the_photo_older_than_one_it_has(
    bus: str, connect: Connect, make_account: MakeAccount, publisher: EventPublisher
) -> None:
    """The client's room brought the completion before the subscribe: the photo's started
    and stage events, older, must not follow it (a UI would go back to processing)."""
    acc = await make_account()
    c = await connect(bus)
    await c.identify(acc.token)
    uploaded = await _publish(publisher, acc, ev.PHOTO_UPLOADED)
    await _publish(publisher, acc, ev.PHOTO_PROCESSING_STARTED)
    await _publish(publisher, acc, ev.STAGE_COMPLETED)
    completed = await _publish(publisher, acc, ev.PHOTO_COMPLETED)
    deferred = await _publish(publisher, acc, ev.PHOTO_DEFERRED_COMPLETED)  # photo room only
    other = await _publish(publisher, acc, ev.PHOTO_PROCESSING_STARTED, photo=1)
    assert [m["id"] for m in await c.events(2)] == [uploaded, completed]
    await c.subscribe(acc.photos[0])
    # Only what is newer than the completion: nothing missed, nothing out of order.
    assert [m["id"] for m in await c.events(1)] == [deferred]
    await c.subscribe(acc.photos[1])  # nothing of it reached the socket: all of it comes
    assert [m["id"] for m in await c.events(1)] == [other]
    await c.barrier()


async def test_after_identify_with_last_event_id_a_subscribe_brings_what_came_after_it(
    bus: str, connect: Connect, make_account: MakeAccount, publisher: EventPublisher
) -> None:
    acc = await make_account()
    await _publish(publisher, acc, ev.PHOTO_PROCESSING_STARTED)  # before: had it already
    seen = await _publish(publisher, acc, ev.PHOTO_UPLOADED, photo=1)
    after = await _publish(publisher, acc, ev.STAGE_COMPLETED)
    c = await connect(bus)
    await c.identify(acc.token, last_event_id=seen)
    assert await _until_resumed(c) == []  # the client's room got nothing after ``seen``
    await c.subscribe(acc.photos[0])
    assert [m["id"] for m in await c.events(1)] == [after]
    await c.barrier()


async def test_subscribing_again_after_an_unsubscribe_sends_only_what_came_meanwhile(
    bus: str, connect: Connect, make_account: MakeAccount, publisher: EventPublisher
) -> None:
    """Resumed (so no set of ids sent dedupes), the socket leaves a photo and follows it
    again: what it had from the photo's room must not come twice."""
    acc = await make_account()
    seen = await _publish(publisher, acc, ev.PHOTO_UPLOADED, photo=1)
    c = await connect(bus)
    await c.identify(acc.token, last_event_id=seen)
    assert await _until_resumed(c) == []
    await c.subscribe(acc.photos[0])
    started = await _publish(publisher, acc, ev.PHOTO_PROCESSING_STARTED)
    assert [m["id"] for m in await c.events(1)] == [started]
    await c.send({"type": "unsubscribe", "photo_id": acc.photos[0]})
    await c.expect("unsubscribed")
    stage = await _publish(publisher, acc, ev.STAGE_COMPLETED)  # while it was away
    await c.barrier()
    await c.subscribe(acc.photos[0])
    assert [m["id"] for m in await c.events(1)] == [stage]
    await c.barrier()


async def test_another_photos_upload_does_not_end_the_backfill_of_a_subscribed_one(
    bus: str, connect: Connect, make_account: MakeAccount, publisher: EventPublisher
) -> None:
    """The backfill reads newest first and stops at the photo's own upload event: a newer
    upload of another photo is not where this photo's history begins."""
    acc = await make_account()
    c = await connect(bus)
    await c.identify(acc.token)
    uploaded = await _publish(publisher, acc, ev.PHOTO_UPLOADED)
    started = await _publish(publisher, acc, ev.PHOTO_PROCESSING_STARTED)
    other = await _publish(publisher, acc, ev.PHOTO_UPLOADED, photo=1)
    assert [m["id"] for m in await c.events(2)] == [uploaded, other]  # the client's room
    await c.subscribe(acc.photos[0])
    assert [m["id"] for m in await c.events(1)] == [started]
    await c.barrier()


async def test_after_a_resume_a_subscribe_sends_nothing_the_client_room_brought(
    bus: str, connect: Connect, make_account: MakeAccount, publisher: EventPublisher
) -> None:
    """Once a socket has resumed, only its rooms tell what it has: a completion it got
    through its client's room is not sent again by the photo's backfill."""
    acc = await make_account()
    seen = await _publish(publisher, acc, ev.PHOTO_UPLOADED)
    c = await connect(bus)
    await c.identify(acc.token, last_event_id=seen)
    assert await _until_resumed(c) == []
    completed = await _publish(publisher, acc, ev.PHOTO_COMPLETED)
    assert [m["id"] for m in await c.events(1)] == [completed]
    await c.subscribe(acc.photos[0])
    await c.barrier()  # the pong comes next: no second copy of the completion
