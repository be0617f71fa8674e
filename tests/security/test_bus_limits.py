"""The bus refuses sockets over the per-client limit, and closes sockets that never
identify, stop answering pings, send oversized frames; floods and nested frames are
answered without harming the socket."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import WSMsgType

from filmstrip.protocols import ws
from filmstrip.settings import Settings
from tests.bus.support import Account, BusClient, BusProcess, Closed, RunningBus
from tests.support.settings import replace_settings

Connect = Callable[..., Awaitable[BusClient]]
MakeAccount = Callable[..., Awaitable[Account]]


@pytest.fixture
def bus_settings(bus_settings: Settings) -> Settings:
    """The bus suite's settings with tight limits, so each is reached in a few messages."""
    return replace_settings(
        bus_settings,
        bus_identify_timeout_s=0.5,
        bus_heartbeat_s=0.5,
        bus_close_timeout_s=1.0,
        bus_max_sockets_per_client=2,
        bus_rate_per_s=1.0,
        bus_rate_burst=5,
    )


async def test_unidentified_socket_is_closed_with_1008(bus: str, connect: Connect) -> None:
    c = await connect(bus)
    assert await c.closed() == ws.CLOSE_POLICY


async def test_socket_that_stops_answering_pings_is_closed(
    bus: str, connect: Connect, make_account: MakeAccount
) -> None:
    acc = await make_account()
    c = await connect(bus, autoping=False)
    await c.identify(acc.token)
    pings = 0
    async with asyncio.timeout(10):
        while True:
            msg = await c.ws.receive()
            if msg.type is WSMsgType.PING:
                pings += 1  # ... and never answered
            elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING):
                break
    assert pings >= 1
    assert c.ws.closed


async def test_more_sockets_than_the_limit_are_refused(
    start_bus: Callable[..., Awaitable[RunningBus]], connect: Connect, make_account: MakeAccount
) -> None:
    # A socket counts until three presence rounds pass without its bus refreshing it: with
    # rounds a minute apart, the slot freed below is the close's doing, not an expiry.
    bus = (await start_bus(bus_presence_interval_s=60)).url
    alice, bob = await make_account(), await make_account()
    first, second = await connect(bus), await connect(bus)
    await first.identify(alice.token)
    await second.identify(alice.token)
    third = await connect(bus)
    await third.send({"type": "identify", "token": alice.token})
    error = await third.expect("error")
    assert error["code"] == ws.TOO_MANY_SOCKETS
    assert await third.closed() == ws.CLOSE_POLICY
    # Another client is not affected, and the first two still work.
    await (await connect(bus)).identify(bob.token)
    await second.barrier()
    # A closed socket frees its slot.
    await first.ws.close()
    async with asyncio.timeout(5):
        while True:
            again = await connect(bus)
            await again.send({"type": "identify", "token": alice.token})
            if (await again.recv())["type"] == "identified":
                break
            await again.ws.close()
            await asyncio.sleep(0.05)


async def test_the_limit_holds_across_bus_processes(
    bus_process: Callable[..., BusProcess], connect: Connect, make_account: MakeAccount
) -> None:
    """Each client's sockets are counted in Redis by every bus: a client cannot pass the
    limit by spreading its sockets over several buses. A bus that dies stops counting
    its sockets within three presence rounds (0.2 s each here)."""
    alice = await make_account()
    one, two = bus_process(), bus_process()
    held = [await connect(one.url), await connect(two.url)]
    for socket in held:
        await socket.identify(alice.token)
    for url in (one.url, two.url):
        extra = await connect(url)
        await extra.send({"type": "identify", "token": alice.token})
        assert (await extra.expect("error"))["code"] == ws.TOO_MANY_SOCKETS
    one.stop()  # SIGKILL: its socket is never uncounted, it expires
    killed = time.monotonic()
    async with asyncio.timeout(10):
        while True:
            again = await connect(two.url)
            await again.send({"type": "identify", "token": alice.token})
            if (await again.recv())["type"] == "identified":
                break
            await again.ws.close()
            await asyncio.sleep(0.05)
    assert time.monotonic() - killed < 3.0
    # Then the limit holds again, on the survivor alone.
    extra = await connect(two.url)
    await extra.send({"type": "identify", "token": alice.token})
    assert (await extra.expect("error"))["code"] == ws.TOO_MANY_SOCKETS


async def test_a_live_bus_keeps_its_sockets_counted(
    start_bus: Callable[..., Awaitable[RunningBus]],
    connect: Connect,
    make_account: MakeAccount,
) -> None:
    """A socket counts for as long as it is open, not only for the count's lifetime."""
    alice = await make_account()
    # Pings every 20 s: these clients read nothing, so they would miss tighter ones.
    one, two = await start_bus(bus_heartbeat_s=20.0), await start_bus(bus_heartbeat_s=20.0)
    held = [await connect(one.url), await connect(one.url)]
    for socket in held:
        await socket.identify(alice.token)
    await asyncio.sleep(1.5)  # more than twice the count's lifetime (3 x 0.2 s)
    extra = await connect(two.url)
    await extra.send({"type": "identify", "token": alice.token})
    assert (await extra.expect("error"))["code"] == ws.TOO_MANY_SOCKETS


async def test_oversized_frame_closes_with_1009(
    bus: str, connect: Connect, make_account: MakeAccount, bus_settings: Settings
) -> None:
    acc = await make_account()
    c = await connect(bus)
    await c.identify(acc.token)
    over = bus_settings.bus.max_message_bytes
    await c.ws.send_str('{"type": "ping", "pad": "' + "x" * over + '"}')
    assert await c.closed() == ws.CLOSE_TOO_BIG


async def test_message_flood_is_dropped_not_served(
    bus: str, connect: Connect, make_account: MakeAccount
) -> None:
    acc = await make_account()
    c = await connect(bus)
    await c.identify(acc.token)  # one of the five
    for _ in range(10):
        await c.send({"type": "ping"})
    replies = [(await c.recv())["type"] for _ in range(10)]
    assert replies.count("pong") == 4
    assert replies.count("error") == 6


async def test_deeply_nested_frame_is_a_bad_message(
    bus: str, connect: Connect, make_account: MakeAccount
) -> None:
    acc = await make_account()
    c = await connect(bus)
    await c.identify(acc.token)
    await c.ws.send_str("[" * 2000 + "]" * 2000)
    error = await c.expect("error")
    assert error["code"] == ws.BAD_MESSAGE
    await c.barrier()  # the socket (and its reader) survived


async def test_wrong_token_closes_the_socket(bus: str, connect: Connect) -> None:
    c = await connect(bus)
    await c.send({"type": "identify", "token": "fst_guessed"})
    assert (await c.expect("error"))["code"] == ws.UNAUTHORIZED
    with pytest.raises(Closed) as closed:
        await c.recv()
    assert closed.value.code == ws.CLOSE_POLICY
