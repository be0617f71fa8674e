"""What the roles' waiting Redis pool costs a call that finds a free connection.

PINGs from concurrent tasks through three pools on a private Redis, rounds interleaved:
redis-py's plain ``ConnectionPool`` (fails at once when dry: the anchor), its
``BlockingConnectionPool`` (waits, but takes a lock and arms a timeout on every call) and
ours (``filmstrip.redis_client.WaitingConnectionPool``, which waits only when dry). Prints
the median PINGs/s of each and the ratio to the anchor.
Usage: ``python -m bench.redis_pool [-n 20000] [--tasks 8] [--rounds 8]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import BlockingConnectionPool, ConnectionPool

from bench.redis_server import RedisServer
from filmstrip.redis_client import WaitingConnectionPool

POOLS: dict[str, tuple[type[ConnectionPool], dict[str, Any]]] = {
    "plain ConnectionPool (anchor)": (ConnectionPool, {}),
    "BlockingConnectionPool": (BlockingConnectionPool, {"timeout": 2}),
    "ours (WaitingConnectionPool)": (WaitingConnectionPool, {"timeout": 2}),
}


async def _pings_per_s(url: str, pool: tuple[type[ConnectionPool], dict[str, Any]], n: int,
                       tasks: int) -> float:  # fmt: skip
    cls, extra = pool
    redis = aioredis.Redis.from_pool(cls.from_url(url, max_connections=50, **extra))
    await redis.ping()

    async def pinger(count: int) -> None:
        for _ in range(count):
            await redis.ping()

    started = time.perf_counter()
    await asyncio.gather(*(pinger(n // tasks) for _ in range(tasks)))
    elapsed = time.perf_counter() - started
    await redis.aclose()
    return n // tasks * tasks / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=20_000, help="PINGs per run")
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    rates: dict[str, list[float]] = {name: [] for name in POOLS}
    with RedisServer(appendonly=False) as server:
        await _pings_per_s(server.url, POOLS["plain ConnectionPool (anchor)"], 2000, 4)
        for _ in range(args.rounds):
            for name, pool in POOLS.items():
                rates[name].append(await _pings_per_s(server.url, pool, args.n, args.tasks))
    anchor = statistics.median(rates["plain ConnectionPool (anchor)"])
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"{name:<32}{median:>10.0f} PINGs/s{median / anchor:>8.2f}x")


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        asyncio.run(main())
    else:
        uvloop.run(main())
