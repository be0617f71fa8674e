"""Malformed, oversized and flooding client messages."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import WSMsgType

from tests.bus.support import Account, BusClient, RunningBus

Connect = Callable[..., Awaitable[BusClient]]
MakeAccount = Callable[..., Awaitable[Account]]


async def test_malformed_json_gets_bad_message_and_socket_stays_usable(
    bus: str, connect: Connect, make_account: MakeAccount
) -> None:
    acc = await make_account()
    c = await connect(bus)
    await c.identify(acc.token)
    for junk in ("{not json", "[]", '{"type": "explode"}', '{"type": "subscribe"}',
                 '{"type": "resume", "last_event_id": "yesterday"}',
                 # Deeper than Python's recursion limit, well under the 4 KB frame cap.
                 '{"x":' + "[" * 1500 + "]" * 1500 + ', "type": "ping"}'):  # fmt: skip
        await c.ws.send_str(junk)
        err = await c.expect("error")
        assert err["code"] == "bad_message", (junk, err)
        assert err["message"]
    await c.subscribe(acc.photos[0])  # still usable


async def test_oversized_message_closes_with_1009(bus: str, connect: Connect) -> None:
    c = await connect(bus)
    await c.ws.send_str('{"type": "identify", "token": "' + "x" * 5000 + '"}')
    assert await c.closed() == 1009


async def test_message_flood_is_rate_limited(
    bus: str, connect: Connect, make_account: MakeAccount
) -> None:
    acc = await make_account()
    c = await connect(bus)
    await c.identify(acc.token)
    for _ in range(100):  # burst is 40, refill 20/s
        await c.send({"type": "ping"})
    replies = [await c.recv() for _ in range(100)]
    limited = sum(1 for r in replies if r["type"] == "error" and r["code"] == "rate_limited")
    pongs = sum(1 for r in replies if r["type"] == "pong")
    assert pongs + limited == 100
    # The burst (40, one spent on identify) always passes; the rest depends on refill.
    assert pongs >= 39 and limited >= 1


async def test_a_rate_limited_client_is_served_again_after_a_pause(
    start_bus: Callable[..., Awaitable[RunningBus]], connect: Connect, make_account: MakeAccount
) -> None:
    """The bucket refills with time: a limit is a pause, not the end of the socket."""
    bus = await start_bus(bus_rate_burst=3, bus_rate_per_s=20.0)
    acc = await make_account()
    c = await connect(bus.url)
    await c.identify(acc.token)  # one of the three
    for _ in range(5):
        await c.send({"type": "ping"})
    replies = [(await c.recv())["type"] for _ in range(5)]
    assert "error" in replies
    await asyncio.sleep(0.3)  # six tokens' worth, capped at three
    await c.barrier()


async def test_a_client_that_stops_answering_pings_is_dropped(
    start_bus: Callable[..., Awaitable[RunningBus]], connect: Connect, make_account: MakeAccount
) -> None:
    bus = await start_bus(bus_heartbeat_s=0.3)
    acc = await make_account()
    silent = await connect(bus.url, autoping=False)
    await silent.identify(acc.token)
    pings = 0
    while True:
        msg = await silent.ws.receive(timeout=5)
        if msg.type is WSMsgType.PING:
            pings += 1
            continue
        break
    assert pings >= 1
    assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING, WSMsgType.ERROR)
