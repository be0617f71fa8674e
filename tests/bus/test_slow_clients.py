"""A client that does not read is cut off with 1013; the others keep getting events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import WSMsgType

from filmstrip.events import EventPublisher
from filmstrip.protocols import events as ev
from filmstrip.services.bus.app import HUB
from filmstrip.services.bus.streamid import StreamId
from tests.bus.support import Account, BusClient, RunningBus

Connect = Callable[..., Awaitable[BusClient]]
MakeAccount = Callable[..., Awaitable[Account]]


async def test_slow_client_is_closed_with_1013_and_others_keep_up(
    start_bus: Callable[..., Awaitable[RunningBus]],
    connect: Connect,
    make_account: MakeAccount,
    publisher: EventPublisher,
) -> None:
    bus = await start_bus(bus_send_queue=16, bus_close_timeout_s=15.0)
    slow_acc, fast_acc = await make_account(), await make_account()
    slow = await connect(bus.url)
    await slow.identify(slow_acc.token)
    await slow.subscribe(slow_acc.photos[0])
    fast = await connect(bus.url)
    await fast.identify(fast_acc.token)
    await fast.subscribe(fast_acc.photos[0])
    await fast.barrier()
    [slow_conn] = [c for c in bus.app[HUB].connections if c.client_id == slow_acc.client_id]

    blob = "x" * 64 * 1024
    fast_ids: list[str] = []
    # Fill the slow socket's kernel buffers, then its queue; stop once the bus cuts it.
    for _ in range(1000):
        if not slow_conn.lifecycle.open:
            break
        for _ in range(8):
            await publisher.publish(
                ev.STAGE_COMPLETED, photo_id=slow_acc.photos[0], client_id=slow_acc.client_id,
                trace_id="s" * 32, data={"blob": blob},
            )  # fmt: skip
        fast_ids.append(
            await publisher.publish(
                ev.STAGE_COMPLETED,
                photo_id=fast_acc.photos[0],
                client_id=fast_acc.client_id,
                trace_id="f" * 32,
                data={"n": len(fast_ids)},
            )
        )
        # The fast client reads each of its events as it comes.
        [msg] = await fast.events(1)
        assert msg["id"] == fast_ids[-1]
    assert not slow_conn.lifecycle.open, "the slow client was never cut off"
    assert bus.app[HUB].dropped > 0  # what it never got is counted (metrics: dropped)

    # After the cut the fast client still gets its events at once.
    more = await publisher.publish(
        ev.PHOTO_COMPLETED, photo_id=fast_acc.photos[0], client_id=fast_acc.client_id,
        trace_id="f" * 32,
    )  # fmt: skip
    assert (await fast.events(1))[0]["id"] == more

    # The slow client, reading at last, finds the events it had buffered, then 1013.
    received = 0
    while True:
        msg = await slow.ws.receive(timeout=10)
        if msg.type is not WSMsgType.TEXT:
            break
        received += 1
    assert received > 0
    assert msg.type is WSMsgType.CLOSE
    assert (msg.data, msg.extra) == (1013, "send queue full: the client reads too slowly")


async def test_too_many_live_events_during_a_replay_close_the_socket_with_1013(
    start_bus: Callable[..., Awaitable[RunningBus]],
    connect: Connect,
    make_account: MakeAccount,
    publisher: EventPublisher,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Live events held back while a replay runs are capped at the send queue's size; the
    one past it closes the socket with 1013 (its client resumes), never vanishes while the
    socket carries on with a hole in its events."""
    bus = await start_bus(bus_send_queue=4)
    acc = await make_account()
    reader = bus.app[HUB]._replay
    entries_after = reader.entries_after
    read, go = asyncio.Event(), asyncio.Event()

    async def slow_replay(client_id: str, after: StreamId) -> AsyncIterator[tuple[str, bytes]]:
        entries = [entry async for entry in entries_after(client_id, after)]
        read.set()  # what the replay sends is read: later events come live only
        await go.wait()
        for entry in entries:
            yield entry

    monkeypatch.setattr(reader, "entries_after", slow_replay)
    c = await connect(bus.url)
    identified = await c.identify(acc.token)
    [conn] = [x for x in bus.app[HUB].connections if x.client_id == acc.client_id]
    await c.send({"type": "resume", "last_event_id": identified["last_event_id"]})
    await asyncio.wait_for(read.wait(), 10)
    for n in range(5):  # one more than the queue
        await publisher.publish(
            ev.PHOTO_UPLOADED, photo_id=acc.photos[0], client_id=acc.client_id,
            trace_id="t" * 32, data={"n": n},
        )  # fmt: skip
    try:
        async with asyncio.timeout(5):
            while True:
                if not conn.lifecycle.open:
                    break
                await asyncio.sleep(0.01)
    finally:
        go.set()
    assert await c.closed() == 1013
