"""The event subscription: it notices a Redis that has gone silent (a half-open connection),
authenticates to one that wants a password, and survives an event it cannot hand on."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio as aioredis

from bench.redis_server import RedisServer
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


@pytest.fixture
def locked_redis() -> Iterator[RedisServer]:
    """A private redis-server that wants a password (``s3cret``) and knows an ACL user
    ``bus`` whose password holds characters a URL must encode (``p@ss:w/rd``)."""
    with RedisServer(appendonly=False) as server:
        admin = redis.Redis(host=server.host, port=server.port)
        admin.execute_command("ACL", "SETUSER", "bus", "on", ">p@ss:w/rd", "~*", "&*", "+@all")
        admin.config_set("requirepass", "s3cret")
        admin.close()
        yield server


async def _first_event(url: str, publish_to: RedisServer) -> bytes:
    """Subscribe through ``url``, publish one event once subscribed; what arrived."""
    got: asyncio.Queue[bytes] = asyncio.Queue()

    async def on_subscribed() -> None:
        pass

    sub = EventSubscriber(url, got.put_nowait, on_subscribed)
    task = asyncio.create_task(sub.run())
    publisher = aioredis.Redis(host=publish_to.host, port=publish_to.port, password="s3cret")
    try:
        async with asyncio.timeout(5):
            await sub.ready.wait()
            await publisher.publish(CHANNELS[0], b'{"n": 1}')
            return await got.get()
    finally:
        await cancel_and_wait(task)
        await publisher.aclose()


@pytest.mark.parametrize("credentials", [":s3cret", "bus:p%40ss%3Aw%2Frd"])
async def test_a_redis_that_wants_a_password_is_subscribed_to(
    locked_redis: RedisServer, credentials: str
) -> None:
    """The bus speaks RESP itself, so it sends the URL's AUTH itself: the password alone
    (``requirepass``, a PaaS's REDIS_URL) or an ACL user's, percent-decoded. Without it
    every SUBSCRIBE is refused (NOAUTH) and no client ever gets an event."""
    url = f"redis://{credentials}@{locked_redis.host}:{locked_redis.port}/0"
    assert await _first_event(url, locked_redis) == b'{"n": 1}'


async def test_a_refused_password_is_retried_not_fatal(
    locked_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A wrong password is Redis's error reply: the subscription fails, is logged and
    tried again (the bus stays up and subscribes once the password is right), never
    taken for a subscription that holds."""
    sub = EventSubscriber(
        f"redis://:wrong@{locked_redis.host}:{locked_redis.port}/0", lambda _: None, _nothing
    )
    task = asyncio.create_task(sub.run())
    try:
        with caplog.at_level(logging.WARNING, "filmstrip"):
            async with asyncio.timeout(5):
                while True:
                    failed = [r for r in caplog.records if "could not subscribe" in r.getMessage()]
                    if len(failed) >= 2:
                        break
                    await asyncio.sleep(0.02)
        assert not sub.connected
        assert not task.done()
    finally:
        await cancel_and_wait(task)


async def _nothing() -> None:
    pass


async def test_an_event_whose_delivery_raises_does_not_end_the_subscription(
    redis_server: RedisServer, redis: aioredis.Redis
) -> None:
    """One event the hub cannot hand on (a bug, a payload it chokes on) is logged and
    skipped: the events after it, in the same read or later, still reach the clients."""
    got: list[bytes] = []

    def on_message(payload: bytes) -> None:
        if payload == b"poison":
            raise ValueError("cannot route this")
        got.append(payload)

    sub = EventSubscriber(redis_server.url, on_message, _nothing)
    task = asyncio.create_task(sub.run())
    try:
        async with asyncio.timeout(5):
            await sub.ready.wait()
            for payload in (b"before", b"poison", b"after"):
                await redis.publish(CHANNELS[0], payload)
            while True:
                if len(got) >= 2:
                    break
                await asyncio.sleep(0.01)
        assert got == [b"before", b"after"]
        assert sub.connected and not task.done()
    finally:
        await cancel_and_wait(task)
