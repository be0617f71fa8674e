"""What the Redis rate limiter costs a request: the same api with and without it.

Serves the api twice on loopback over a private Redis and a temp catalog, then has a few
concurrent clients GET a missing photo (auth + catalog lookup + 404, no blob I/O) and prints
requests/s for each and their ratio; ``--upload photo.jpg`` POSTs that photo instead.
Usage: ``python -m bench.ratelimit_overhead [-n 3000] [--upload PATH]``.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from bench.redis_server import RedisServer
from filmstrip.embedded.redis_server import free_port
from filmstrip.services.api.app import create_app
from filmstrip.services.api.ratelimit import client_rate_middleware, ip_rate_middleware
from filmstrip.services.api.state import STATE
from filmstrip.services.cli.tokens import issue_token
from filmstrip.settings import load_settings

MISSING = "00000000-0000-0000-0000-000000000000"


async def _run(
    data_dir: Path, redis_url: str, limited: bool, n: int, clients: int, upload: bytes | None
) -> float:
    settings = load_settings(
        {
            "FILMSTRIP_DATA_DIR": str(data_dir),
            "FILMSTRIP_REDIS_URL": redis_url,
            "FILMSTRIP_LOG_LEVEL": "WARNING",
            "FILMSTRIP_API_RATE_PER_S": "1000000",
            "FILMSTRIP_API_RATE_BURST": "1000000",
            "FILMSTRIP_QUEUE_MAX_WAITING": "1000000",
        }
    )
    app = create_app(settings, background=False)
    if not limited:
        app.middlewares.remove(ip_rate_middleware)
        app.middlewares.remove(client_rate_middleware)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        _client, token = await issue_token(runner.app[STATE].catalog, "bench", admin=False)
        url = f"http://127.0.0.1:{port}/v1/photos/{MISSING}"
        headers = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(headers=headers) as http:
            sent = 0

            async def client(count: int) -> None:
                nonlocal sent
                for _ in range(count):
                    if upload is None:
                        async with http.get(url) as resp:
                            assert resp.status == 404, resp.status
                            await resp.read()
                        continue
                    sent += 1
                    form = aiohttp.FormData()
                    # Distinct bytes (after the JPEG's end) so none is a duplicate.
                    form.add_field("file", upload + sent.to_bytes(8, "big"), filename="p.jpg")
                    async with http.post(f"http://127.0.0.1:{port}/v1/photos", data=form) as resp:
                        assert resp.status == 201, resp.status
                        await resp.read()

            await client(50)  # warm up
            started = time.perf_counter()
            await asyncio.gather(*(client(n // clients) for _ in range(clients)))
            return (n // clients * clients) / (time.perf_counter() - started)
    finally:
        await runner.cleanup()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=3000, help="requests per run")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--upload", type=Path, help="POST this photo instead of a GET 404")
    args = parser.parse_args()
    upload = args.upload.read_bytes() if args.upload else None
    with RedisServer(appendonly=False) as redis, tempfile.TemporaryDirectory() as tmp:
        best = {True: 0.0, False: 0.0}
        for r in range(args.rounds):
            for limited in (False, True):
                rate = await _run(Path(tmp) / f"{r}-{limited}", redis.url, limited, args.n,
                                  args.clients, upload)  # fmt: skip
                best[limited] = max(best[limited], rate)
    print(f"{'api without limiter':<28}{best[False]:>10.0f} req/s")
    print(f"{'api with Redis limiter':<28}{best[True]:>10.0f} req/s")
    print(f"{'ratio (with / without)':<28}{best[True] / best[False]:>10.2f}")


if __name__ == "__main__":
    asyncio.run(main())
