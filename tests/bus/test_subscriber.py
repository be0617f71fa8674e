"""The event subscription notices a Redis that has gone silent (a half-open connection)."""

from __future__ import annotations

import asyncio

import pytest

from filmstrip.protocols.events import CHANNELS
from filmstrip.services.bus import subscriber
from filmstrip.services.bus.subscriber import EventSubscriber
from filmstrip.tasks import cancel_and_wait


def _confirmations() -> bytes:
    out = b"+OK\r\n"  # CLIENT SETNAME
    for n, channel in enumerate(CHANNELS, 1):
        name = channel.encode()
        out += b"*3\r\n$9\r\nsubscribe\r\n$%d\r\n%s\r\n:%d\r\n" % (len(name), name, n)
    return out


async def test_a_subscription_that_goes_silent_is_replaced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Redis that confirms the subscription and then never answers a PING (a peer gone
    without a FIN) is given up on and subscribed to afresh, with its catch-up; else the
    bus would wait on it forever and deliver nothing."""
    monkeypatch.setattr(subscriber, "_PING_S", 0.05)
    monkeypatch.setattr(subscriber, "_DEAD_S", 0.3)
    connections: list[asyncio.StreamWriter] = []

    async def silent_redis(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        await reader.read(4096)  # SETNAME and SUBSCRIBE, in one write
        writer.write(_confirmations())
        await writer.drain()
        await reader.read(-1)  # the PINGs go unanswered until the bus hangs up

    server = await asyncio.start_server(silent_redis, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    catch_ups = 0

    async def on_subscribed() -> None:
        nonlocal catch_ups
        catch_ups += 1

    sub = EventSubscriber(f"redis://127.0.0.1:{port}", lambda _: None, on_subscribed)
    task = asyncio.create_task(sub.run())
    try:
        async with asyncio.timeout(5):
            while True:
                if catch_ups >= 2:
                    break
                await asyncio.sleep(0.02)
        assert len(connections) >= 2
    finally:
        await cancel_and_wait(task)
        server.close()
        for writer in connections:
            writer.close()
