"""Malformed, oversized and flooding client messages."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable

import msgspec
from aiohttp import WSMsgType

from filmstrip.protocols import ws
from filmstrip.protocols.ws import MAX_IDENTIFY_PHOTOS
from filmstrip.settings import Settings
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
                 # Deeper than Python's recursion limit, well under the frame cap.
                 '{"x":' + "[" * 1500 + "]" * 1500 + ', "type": "ping"}'):  # fmt: skip
        await c.ws.send_str(junk)
        err = await c.expect("error")
        assert err["code"] == "bad_message", (junk, err)
        assert err["message"]
    await c.subscribe(acc.photos[0])  # still usable


async def test_oversized_message_closes_with_1009(bus: str, connect: Connect) -> None:
    c = await connect(bus)
    over = Settings().bus.max_message_bytes
    await c.ws.send_str('{"type": "identify", "token": "' + "x" * over + '"}')
    assert await c.closed() == 1009


async def test_the_largest_documented_identify_with_spaces_is_identified(
    bus: str, connect: Connect, make_account: MakeAccount
) -> None:
    """The reconnect recipe at its documented maximum (100 photo_ids, a session, a
    last_event_id) as json.dumps writes it by default (", " and ": "), the way the README's
    aiohttp example sends: identified with every photo, then resumed, not closed 1009."""
    acc = await make_account(photos=MAX_IDENTIFY_PHOTOS, uuids=True)
    message = {
        "type": "identify",
        "token": acc.token,
        "session_id": acc.sessions[0],
        "last_event_id": f"{time.time_ns() // 1_000_000}-0",
        "photo_ids": acc.photos,
    }
    frame = json.dumps(message)
    assert len(frame) > 4096  # the old limit closed this very frame with 1009
    c = await connect(bus)
    await c.ws.send_str(frame)
    identified = await c.expect("identified")
    assert sorted(identified["photo_ids"]) == sorted(acc.photos)
    await c.expect("resumed")


def test_the_frame_limit_fits_every_client_message_at_its_schemas_limits() -> None:
    """Each client message with every field at the longest its Struct admits, pretty-printed
    (indent=2), takes less than half of the default frame limit: a hand-written client
    cannot reach it with a message the protocol accepts."""
    longest_id = "1" * 19 + "-" + "1" * 19
    messages = [
        {"type": "identify", "token": "t" * 512, "session_id": "s" * 128,
         "last_event_id": longest_id, "photo_ids": ["p" * 128] * MAX_IDENTIFY_PHOTOS},
        {"type": "subscribe", "photo_id": "p" * 128},
        {"type": "unsubscribe", "photo_id": "p" * 128},
        {"type": "resume", "last_event_id": longest_id},
        {"type": "ping"},
    ]  # fmt: skip
    limit = Settings().bus.max_message_bytes
    for message in messages:
        msgspec.json.decode(json.dumps(message), type=ws.ClientMessage)  # within the schema
        assert 2 * len(json.dumps(message, indent=2).encode()) <= limit, message["type"]


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
