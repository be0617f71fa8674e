"""A client that does not read is cut off with 1013; the others keep getting events."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import WSMsgType

from filmstrip.events import EventPublisher
from filmstrip.protocols import events as ev
from filmstrip.services.bus.app import HUB
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
