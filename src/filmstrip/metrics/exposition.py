"""Serving the registry in Prometheus text format from aiohttp, in any role."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import CollectorRegistry

from filmstrip.supervised import mark

log = logging.getLogger("filmstrip.metrics")

#: Runs before each exposition to read figures that live elsewhere (queue depths in Redis).
Refresh = Callable[[], Awaitable[None]]


async def render(refresh: Refresh | None = None, registry: CollectorRegistry = REGISTRY) -> bytes:
    """The registry as Prometheus text; a failing ``refresh`` leaves the last values."""
    if refresh is not None:
        try:
            await refresh()
        except Exception as exc:
            # A scrape must still answer when Redis is down: stale depths beat no metrics.
            log.warning("metrics refresh failed: %s", exc)
    return generate_latest(registry)


def metrics_response(body: bytes) -> web.Response:
    """A response in Prometheus's text format, version 0.0.4."""
    resp = web.Response(body=body)
    # 0.0.4 rather than the client's 1.0.0 default: every Prometheus 2.x and 3.x scraper
    # reads it, and our metric names need none of 1.0.0's UTF-8 escaping.
    resp.headers["Content-Type"] = CONTENT_TYPE_PLAIN_0_0_4
    resp.headers["Cache-Control"] = "no-store"
    return resp


def metrics_handler(
    refresh: Refresh | None = None,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """An aiohttp handler for ``GET /metrics``."""

    async def handle(request: web.Request) -> web.StreamResponse:
        return metrics_response(await render(refresh))

    return handle


async def start_metrics_server(
    host: str, port: int, refresh: Refresh | None = None
) -> web.AppRunner | None:
    """Serve ``/metrics`` on ``host:port`` for roles without an HTTP server; the runner, or
    None when the port is 0 or taken (metrics must never stop a worker from working)."""
    if port == 0:
        return None
    app = web.Application()
    handle = metrics_handler(refresh)

    async def handle_marked(request: web.Request) -> web.StreamResponse:
        return mark(await handle(request))  # whose answer this is, for dev

    app.router.add_get("/metrics", handle_marked)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        log.warning("metrics server not started on %s:%s: %s", host, port, exc)
        await runner.cleanup()
        return None
    log.info("metrics listening", extra={"host": host, "port": port})
    return runner
