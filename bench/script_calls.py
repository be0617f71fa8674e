"""What the hand-written script caller saves over redis-py's, per call, per job and per photo.

The queue's STEP and ACTIVATE and the event publisher's script go through
``filmstrip.script_wire.ScriptWire``, which sends EVALSHA with its constant part encoded
once, straight on a pooled connection; the anchor is redis-py's own ``register_script``
object called with the same keys and arguments (``script(keys=…, args=…)``), on the same
client. Two scripts: one shaped as the queue's STEP (its 14 keys and 5 base arguments plus
a job's worth of arguments, a small array back) and the publisher's own script, with the
arguments an event has. Both run on a private redis-server, one call at a time (the queue
at concurrency 1) and from 10 tasks at once, rounds alternating. Prints the client CPU and
the wall time per call of each, and the ratio; the CPU per photo follows from how many
calls a photo makes (printed with it).

Usage: ``python -m bench.script_calls [-n 20000] [--rounds 4]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench.redis_server import RedisServer
from filmstrip.events.publisher import PUBLISH_SCRIPT
from filmstrip.redis_client import RedisClient, open_redis
from filmstrip.script_wire import ScriptWire
from filmstrip.settings import load_settings

# Shaped as the queue's STEP: its 14 keys and 5 base arguments, a consumer's arguments with
# one settled job packed, and a reply as STEP's, with one new job (its 300-byte payload).
STEP_LIKE = (
    "return {{1}, {'photo:0123', '1700000000000-0', '0', string.rep('x', 300),"
    " '1700000000000', '1', '0', '5000'}, 0, 0, 0}"
)
STEP_KEYS = [f"{{bench}}:key:{i}".encode() for i in range(14)]
STEP_BASE = [b"{bench}:job:", b"{bench}:stats:", b"workers", b"86400:1000", b"604800:5000"]
STEP_ARGS: list[Any] = ["worker-host-1234-abcdef", 1, 0, 0, b"\x91\x95" + b"p" * 60]
# The publisher's script, as EventPublisher.publish calls it.
EVENT = b'{"id":"","type":"photo.processing.stage","channel":"photo:processing",' + b"x" * 300
PUBLISH_KEYS = ["{client:bench}:events", "{client:bench}:once:photo.completed:0123"]
PUBLISH_ARGS = ["photo:processing", EVENT, "1000", "0", "86400000", "86400"]

# How many calls a photo makes of each (at concurrency 1): STEP settles each job and
# ACTIVATE starts it, for the upload's job and the follow-up job; the publisher sends
# photo.uploaded, three stage events, completed, the follow-up's stage event and its
# completion.
STEP_CALLS_PER_PHOTO = 4
PUBLISH_CALLS_PER_PHOTO = 7

Call = Callable[[], Awaitable[Any]]


def _callers(redis: RedisClient) -> dict[str, dict[str, Call]]:
    step = redis.register_script(STEP_LIKE)
    publish = redis.register_script(PUBLISH_SCRIPT)
    step_wire = ScriptWire(redis, step, STEP_KEYS, STEP_BASE)
    publish_wire = ScriptWire(redis, publish, reconnect=True)
    return {
        "STEP-shaped": {
            "ScriptWire": lambda: step_wire(STEP_ARGS),
            "redis-py Script": lambda: step(keys=STEP_KEYS, args=[*STEP_BASE, *STEP_ARGS]),
        },
        "publish": {
            "ScriptWire": lambda: publish_wire.call(PUBLISH_KEYS, PUBLISH_ARGS),
            "redis-py Script": lambda: publish(keys=PUBLISH_KEYS, args=PUBLISH_ARGS),
        },
    }


async def _timed(call: Call, n: int, tasks: int) -> tuple[float, float]:
    """(CPU µs, wall µs) per call, ``n`` calls from ``tasks`` tasks."""

    async def one_task(count: int) -> None:
        for _ in range(count):
            await call()

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one_task(n // tasks) for _ in range(tasks)))
    done = n // tasks * tasks
    return (
        (time.process_time() - cpu) / done * 1e6,
        (time.perf_counter() - wall) / done * 1e6,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20_000, help="calls per run")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    with RedisServer(appendonly=False) as server:
        redis = await open_redis(load_settings({"FILMSTRIP_REDIS_URL": server.url}))
        callers = _callers(redis)
        results: dict[tuple[str, str, int], list[tuple[float, float]]] = {}
        for script, ways in callers.items():
            for way in ways.values():
                await _timed(way, 2000, 1)  # warm up: scripts loaded, connections open
            for tasks in (1, 10):
                for i in range(args.rounds):
                    order = list(ways.items())
                    for name, way in order if i % 2 == 0 else reversed(order):
                        results.setdefault((script, name, tasks), []).append(
                            await _timed(way, args.n, tasks)
                        )
        await redis.aclose()
    print(f"{'script':12} {'tasks':>5} {'caller':16} {'CPU µs/call':>12} {'wall µs/call':>13}")
    saved: dict[tuple[str, int], float] = {}
    for (script, name, tasks), runs in results.items():
        cpu = statistics.median(r[0] for r in runs)
        wall = statistics.median(r[1] for r in runs)
        print(f"{script:12} {tasks:>5} {name:16} {cpu:>12.1f} {wall:>13.1f}")
        if name == "redis-py Script":
            ours = statistics.median(r[0] for r in results[(script, "ScriptWire", tasks)])
            saved[(script, tasks)] = cpu - ours
            print(f"{'':12} {'':>5} {'ours / anchor':16} {ours / cpu:>12.2f}x")
    per_photo = (
        saved[("STEP-shaped", 1)] * STEP_CALLS_PER_PHOTO
        + saved[("publish", 1)] * PUBLISH_CALLS_PER_PHOTO
    )
    print(
        f"client CPU saved per photo ({STEP_CALLS_PER_PHOTO} STEP/ACTIVATE calls,"
        f" {PUBLISH_CALLS_PER_PHOTO} events): {per_photo:.0f} µs"
    )


if __name__ == "__main__":
    asyncio.run(main())
