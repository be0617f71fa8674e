"""Bus processes side by side, restarted, and stopped with SIGTERM."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from filmstrip.events import EventPublisher
from filmstrip.protocols import events as ev
from tests.bus.support import Account, BusClient, BusProcess

pytestmark = pytest.mark.both_redis

Connect = Callable[..., Awaitable[BusClient]]
MakeAccount = Callable[..., Awaitable[Account]]


async def _upload(pub: EventPublisher, acc: Account, n: int) -> str:
    return await pub.publish(
        ev.PHOTO_UPLOADED, photo_id=acc.photos[0], client_id=acc.client_id,
        trace_id=f"{n:032x}", data={"n": n},
    )  # fmt: skip


async def test_two_bus_processes_deliver_each_event_exactly_once(
    bus_process: Callable[..., BusProcess],
    connect: Connect,
    make_account: MakeAccount,
    publisher: EventPublisher,
) -> None:
    one, two = bus_process(), bus_process()
    acc = await make_account()
    on_one, on_two = await connect(one.url), await connect(two.url)
    for c in (on_one, on_two):
        await c.identify(acc.token)
        await c.barrier()  # ends the hold: events go out live from here
    ids = [await _upload(publisher, acc, n) for n in range(20)]
    for c in (on_one, on_two):
        assert [m["id"] for m in await c.events(20)] == ids
        await c.barrier()  # and no second copy from the other process


async def _restart_and_resume(
    proc: BusProcess,
    c: BusClient,
    connect: Connect,
    acc: Account,
    publisher: EventPublisher,
    *,
    after: str,
    n: tuple[int, int],
) -> BusClient:
    """Stop the bus (``c`` is closed with 1001), publish events ``n`` while none runs,
    start it, resume from ``after`` on a new socket: it must replay exactly those."""
    proc.terminate()
    assert await c.closed() == 1001
    assert await proc.wait() == 0
    missed = [await _upload(publisher, acc, i) for i in range(*n)]
    proc.start()
    c = await connect(proc.url)
    await c.identify(acc.token)
    await c.send({"type": "resume", "last_event_id": after})
    replayed = []
    while (msg := await c.recv())["type"] != "resumed":
        replayed.append(msg["id"])
    assert replayed == missed
    return c


async def test_resume_across_a_bus_restart(
    bus_process: Callable[..., BusProcess],
    connect: Connect,
    make_account: MakeAccount,
    publisher: EventPublisher,
) -> None:
    proc = bus_process()
    acc = await make_account()
    c = await connect(proc.url)
    await c.identify(acc.token)
    await c.barrier()
    first = [await _upload(publisher, acc, n) for n in range(3)]
    got = [m["id"] for m in await c.events(3)]
    assert got == first

    c = await _restart_and_resume(proc, c, connect, acc, publisher, after=got[-1], n=(3, 8))
    live = await _upload(publisher, acc, 8)
    assert [m["id"] for m in await c.events(1)] == [live]
    await c.barrier()


async def test_a_socket_that_saw_no_event_resumes_from_where_it_joined(
    bus_process: Callable[..., BusProcess],
    connect: Connect,
    make_account: MakeAccount,
    publisher: EventPublisher,
) -> None:
    proc = bus_process()
    acc = await make_account()
    before = await _upload(publisher, acc, 0)  # an event from before this socket
    c = await connect(proc.url)
    hello = await c.identify(acc.token)
    assert hello["last_event_id"] == before
    await c.barrier()

    # The socket drops before any event reached it.
    after = hello["last_event_id"]
    c = await _restart_and_resume(proc, c, connect, acc, publisher, after=after, n=(1, 4))
    await c.barrier()


async def test_a_client_without_events_is_told_an_id_for_now(
    bus_process: Callable[..., BusProcess], connect: Connect, make_account: MakeAccount
) -> None:
    """Not ``0-0``: resuming from the beginning of time could not tell a trimmed stream from
    a whole one on Redis 6.2, so every first reconnect would report a gap."""
    proc = bus_process()
    acc = await make_account()
    c = await connect(proc.url)
    before_ms = time.time() * 1000
    ms, seq = (await c.identify(acc.token))["last_event_id"].split("-")
    assert before_ms - 5_000 < int(ms) < time.time() * 1000 + 5_000 and seq == "0"


async def test_sigterm_closes_sockets_with_1001(
    bus_process: Callable[..., BusProcess], connect: Connect, make_account: MakeAccount
) -> None:
    proc = bus_process()
    acc = await make_account()
    sockets = [await connect(proc.url) for _ in range(3)]
    for c in sockets[:2]:
        await c.identify(acc.token)
    proc.terminate()
    codes = await asyncio.gather(*(c.closed() for c in sockets))
    assert codes == [1001, 1001, 1001]
    assert await proc.wait() == 0
    with pytest.raises(aiohttp.ClientConnectorError):
        await connect(proc.url)
