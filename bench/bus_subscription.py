"""What the bus's own pub/sub reader saves over redis-py's, in CPU per event.

The bus reads every event from one Redis subscription through ``EventSubscriber``, which
parses the RESP on its asyncio connection and dispatches every message a read delivers in
one synchronous pass. The anchor is redis-py's ``PubSub`` (with hiredis, as the roles have
it) on the same channels, read with ``async for message in pubsub.listen()``. Each round a
separate process publishes ``-n`` events of a real event's size on the event channels;
rounds alternate between the two readers, and each reports the CPU this process spent from
the first event to the last. Prints the median CPU per event of each and the ratio; the
CPU per photo follows from the events a photo sends (printed with it).

Usage: ``python -m bench.bus_subscription [-n 50000] [--rounds 4]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from bench.redis_server import RedisServer
from filmstrip.protocols.events import CHANNELS
from filmstrip.services.bus.subscriber import EventSubscriber

# photo.uploaded, three stage events, completed, the follow-up's stage event and its
# completion: what one photo sends through the bus.
EVENTS_PER_PHOTO = 7

PUBLISHER = """
import sys, redis
url, n, channels = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
r = redis.Redis.from_url(url)
event = b'1700000000000-0 {"id":"1700000000000-0","type":"photo.processing.stage",' + b"x" * 400
pipe = r.pipeline(transaction=False)
for i in range(n):
    pipe.publish(channels[i % len(channels)], event)
    if i % 200 == 199:
        pipe.execute()
pipe.execute()
"""

Reader = Callable[[str, int, Callable[[], None]], Awaitable[float]]


async def _ours(url: str, n: int, publish: Callable[[], None]) -> float:
    counted = 0
    first = 0.0
    done = asyncio.Event()

    def on_message(payload: bytes) -> None:
        nonlocal counted, first
        if counted == 0:
            first = time.process_time()
        counted += 1
        if counted == n:
            done.set()

    async def nothing() -> None:
        pass

    subscriber = EventSubscriber(url, on_message, nothing)
    task = asyncio.create_task(subscriber.run())
    await subscriber.ready.wait()
    publish()
    await done.wait()
    cpu = time.process_time() - first
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return cpu


async def _redis_py(url: str, n: int, publish: Callable[[], None]) -> float:
    client = aioredis.Redis.from_url(url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(*CHANNELS)
    publish()
    counted = 0
    first = 0.0
    async for message in pubsub.listen():
        if message["type"] != "message":
            continue
        if counted == 0:
            first = time.process_time()
        counted += 1
        if counted == n:
            break
    cpu = time.process_time() - first
    await pubsub.aclose()
    await client.aclose()
    return cpu


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=50_000, help="events per round")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    readers: dict[str, Reader] = {"ours (bus RESP reader)": _ours, "redis-py PubSub": _redis_py}
    cpu: dict[str, list[float]] = {name: [] for name in readers}
    with RedisServer(appendonly=False) as server:
        control = aioredis.Redis.from_url(server.url)
        # A reader that falls behind must not be cut off mid-round: this measures CPU.
        await control.config_set("client-output-buffer-limit", "pubsub 0 0 0")
        publishers: list[subprocess.Popen[bytes]] = []

        def publish() -> None:
            argv = [sys.executable, "-c", PUBLISHER, server.url, str(args.n), *CHANNELS]
            publishers.append(subprocess.Popen(argv))

        for i in range(args.rounds):
            order = list(readers.items())
            for name, reader in order if i % 2 == 0 else reversed(order):
                cpu[name].append(await reader(server.url, args.n, publish))
                await asyncio.to_thread(publishers.pop().wait)
        await control.aclose()
    print(f"{'reader':24} {'CPU µs/event':>13}")
    medians = {name: statistics.median(runs) / args.n * 1e6 for name, runs in cpu.items()}
    for name, value in medians.items():
        print(f"{name:24} {value:>13.2f}")
    ours, anchor = medians["ours (bus RESP reader)"], medians["redis-py PubSub"]
    print(f"ours / anchor: {ours / anchor:.2f}x")
    print(
        f"bus CPU saved per photo ({EVENTS_PER_PHOTO} events): "
        f"{(anchor - ours) * EVENTS_PER_PHOTO:.1f} µs"
    )


if __name__ == "__main__":
    asyncio.run(main())
