"""Events reach the rooms the seed routes them to, once per socket."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec
import pytest

from filmstrip.events import EventPublisher
from filmstrip.protocols import events as ev
from filmstrip.protocols.ws import EventMessage
from tests.bus.support import Account, BusClient

pytestmark = pytest.mark.both_redis

Connect = Callable[..., Awaitable[BusClient]]
MakeAccount = Callable[..., Awaitable[Account]]


async def _publish(
    pub: EventPublisher,
    acc: Account,
    type_: str,
    *,
    photo: int = 0,
    session: bool = True,
    data: dict[str, object] | None = None,
) -> str:
    return await pub.publish(
        type_, photo_id=acc.photos[photo], client_id=acc.client_id, trace_id="t" * 32,
        session_id=acc.sessions[0] if session else None, data=data,
    )  # fmt: skip


async def test_identified_names_the_tokens_client(
    bus: str, connect: Connect, make_account: MakeAccount
) -> None:
    acc = await make_account()
    c = await connect(bus)
    msg = await c.identify(acc.token)
    assert msg["client_id"] == acc.client_id
    assert len(msg["socket_id"]) == 32


async def test_upload_event_reaches_client_room_and_session_room(
    bus: str, connect: Connect, make_account: MakeAccount, publisher: EventPublisher
) -> None:
    acc = await make_account()
    by_client = await connect(bus)
    await by_client.identify(acc.token)
    by_session = await connect(bus)
    await by_session.identify(acc.token, session_id=acc.sessions[0])
    eid = await _publish(publisher, acc, ev.PHOTO_UPLOADED, data={"bytes": 12})
    for c in (by_client, by_session):
        [msg] = await c.events(1)
        decoded = msgspec.convert(msg, EventMessage)
        assert decoded.type == "upload.event"
        assert decoded.id == eid
        assert decoded.event == ev.PHOTO_UPLOADED
        assert decoded.channel == ev.CHANNEL_UPLOAD
        assert decoded.photo_id == acc.photos[0]
        assert decoded.data == {"photo_id": acc.photos[0], "bytes": 12}
        assert decoded.metadata["session_id"] == acc.sessions[0]
        assert decoded.metadata["trace_id"] == "t" * 32
        # The session socket got it once although it is in both rooms.
        await c.barrier()


async def test_processing_event_reaches_only_the_photo_room(
    bus: str, connect: Connect, make_account: MakeAccount, publisher: EventPublisher
) -> None:
    acc = await make_account(photos=2)
    watcher = await connect(bus)
    await watcher.identify(acc.token)
    await watcher.subscribe(acc.photos[0])
    other = await connect(bus)
    await other.identify(acc.token)  # client room only: no processing events
    await _publish(publisher, acc, ev.STAGE_COMPLETED, photo=1, data={"progress": 10})
    eid = await _publish(publisher, acc, ev.STAGE_COMPLETED, photo=0, data={"progress": 50})
    [msg] = await watcher.events(1)
    assert (msg["type"], msg["id"], msg["data"]["progress"]) == ("processing.event", eid, 50)
    await watcher.barrier()
    await other.barrier()  # pong first: nothing was queued for it before


async def test_completion_event_reaches_photo_and_client_rooms_once(
    bus: str, connect: Connect, make_account: MakeAccount, publisher: EventPublisher
) -> None:
    acc = await make_account()
    both = await connect(bus)
    await both.identify(acc.token)
    await both.subscribe(acc.photos[0])
    eid = await _publish(publisher, acc, ev.PHOTO_COMPLETED)
    [msg] = await both.events(1)
    assert (msg["type"], msg["id"], msg["event"]) == ("completion.event", eid, ev.PHOTO_COMPLETED)
    await both.barrier()


async def test_unsubscribe_stops_photo_events(
    bus: str, connect: Connect, make_account: MakeAccount, publisher: EventPublisher
) -> None:
    acc = await make_account()
    c = await connect(bus)
    await c.identify(acc.token)
    await c.subscribe(acc.photos[0])
    await c.send({"type": "unsubscribe", "photo_id": acc.photos[0]})
    assert (await c.expect("unsubscribed"))["room"] == f"photo:{acc.photos[0]}"
    await _publish(publisher, acc, ev.STAGE_COMPLETED)
    last = await _publish(publisher, acc, ev.PHOTO_UPLOADED)
    [msg] = await c.events(1)
    assert msg["id"] == last
