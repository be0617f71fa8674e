"""A plain loopback HTTP server that answers every request with 200 and records what the
client sent: how tests see the S3 client's requests on the wire."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy


@dataclass
class Recorded:
    method: str
    path: str
    headers: CIMultiDictProxy[str]
    body: bytes


@dataclass
class RecordingEndpoint:
    url: str
    requests: list[Recorded] = field(default_factory=list)


@asynccontextmanager
async def recording_endpoint(
    status: Callable[[Recorded], int] = lambda _: 200,
) -> AsyncIterator[RecordingEndpoint]:
    """Serve on a free loopback port until the block ends, answering ``status(request)``."""
    endpoint = RecordingEndpoint(url="")

    async def any_request(request: web.Request) -> web.Response:
        body = await request.read()
        recorded = Recorded(
            request.method, request.path, CIMultiDictProxy(CIMultiDict(request.headers)), body
        )
        endpoint.requests.append(recorded)
        return web.Response(status=status(recorded), headers={"ETag": '"0"'})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", any_request)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    endpoint.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield endpoint
    finally:
        await runner.cleanup()
