"""A plain loopback HTTP server that answers every request (with 200, unless told
otherwise) and records what the client sent: how tests see the S3 client's requests on
the wire, and give it the answers a real store gives rarely."""

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
    body: Callable[[Recorded], bytes] = lambda _: b"",
) -> AsyncIterator[RecordingEndpoint]:
    """Serve on a free loopback port until the block ends, answering ``status(request)``
    with ``body(request)`` (an error's XML, say)."""
    endpoint = RecordingEndpoint(url="")

    async def any_request(request: web.Request) -> web.Response:
        sent = await request.read()
        recorded = Recorded(
            request.method, request.path, CIMultiDictProxy(CIMultiDict(request.headers)), sent
        )
        endpoint.requests.append(recorded)
        return web.Response(status=status(recorded), body=body(recorded), headers={"ETag": '"0"'})

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
