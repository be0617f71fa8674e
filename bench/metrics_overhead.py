"""What the api's metrics middleware and a /metrics scrape cost.

    python -m bench.metrics_overhead [--requests 4000] [--concurrency 16] [--rounds 3]

Anchor: the same aiohttp app and route without the metrics middleware. Both apps serve a
trivial JSON handler on a loopback port, so the ratio isolates the per-request cost of a
counter, a histogram and the route lookup. Rounds alternate the two apps, and the best
round of each is kept, because the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import aiohttp
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from filmstrip.embedded.redis_server import free_port
from filmstrip.metrics.exposition import render
from filmstrip.services.api.metrics import metrics_middleware


async def _item(request: web.Request) -> web.Response:
    return web.json_response({"id": request.match_info["item_id"]})


async def _serve(instrumented: bool) -> tuple[web.AppRunner, str]:
    app = web.Application(middlewares=[metrics_middleware] if instrumented else [])
    app.router.add_get("/v1/items/{item_id}", _item)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


async def _load(url: str, requests: int, concurrency: int) -> float:
    """Requests per second for ``requests`` GETs from ``concurrency`` workers."""
    left = requests
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                async with http.get(f"{url}/v1/items/{left}") as resp:
                    await resp.read()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return requests / (time.perf_counter() - started)


async def _per_call_us(instrumented: bool, calls: int = 50_000) -> float:
    """Microseconds per request through the middleware chain alone (no sockets)."""
    app = web.Application()
    app.router.add_get("/v1/items/{item_id}", _item)
    # Resolved first, as aiohttp does before running middlewares.
    match = await app.router.resolve(make_mocked_request("GET", "/v1/items/7", app=app))
    request = make_mocked_request("GET", "/v1/items/7", app=app, match_info=match)
    response = web.Response()

    async def handler(req: web.Request) -> web.StreamResponse:
        return response

    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        if instrumented:
            for _ in range(calls):
                await metrics_middleware(request, handler)
        else:
            for _ in range(calls):
                await handler(request)
        best = min(best, (time.perf_counter() - started) / calls * 1e6)
    return best


async def main(requests: int, concurrency: int, rounds: int) -> None:
    bare_us, metered_us = await _per_call_us(False), await _per_call_us(True)
    print(f"middleware alone {metered_us - bare_us:8.2f} us per request (best of 5 x 50k calls)")
    plain, plain_url = await _serve(False)
    metered, metered_url = await _serve(True)
    try:
        await _load(plain_url, 200, concurrency)  # warm both
        await _load(metered_url, 200, concurrency)
        base, inst = [], []
        for _ in range(rounds):
            base.append(await _load(plain_url, requests, concurrency))
            inst.append(await _load(metered_url, requests, concurrency))
        scrapes = []
        for _ in range(50):
            t0 = time.perf_counter()
            body = await render()
            scrapes.append((time.perf_counter() - t0) * 1000)
    finally:
        await plain.cleanup()
        await metered.cleanup()
    b, m = max(base), max(inst)
    print(f"without metrics  {b:8.0f} req/s (rounds: {', '.join(f'{x:.0f}' for x in base)})")
    print(f"with metrics     {m:8.0f} req/s (rounds: {', '.join(f'{x:.0f}' for x in inst)})")
    print(f"ratio            {m / b:8.2f}  ({(1 / m - 1 / b) * 1e6:+.1f} us per request)")
    lines = body.count(b"\n")
    median = statistics.median(scrapes)
    print(f"render /metrics  {median:8.2f} ms median ({len(body)} B, {lines} lines)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.concurrency, args.rounds))
