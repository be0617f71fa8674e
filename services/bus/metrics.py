"""The bus's ``GET /metrics``: its hub's figures plus the process's default registry."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from filmstrip.metrics.bus import BusCollector, BusFigures
from filmstrip.metrics.exposition import metrics_response, render
from filmstrip.services.bus.hub import Hub


def figures_of(hub: Hub) -> BusFigures:
    """A snapshot of the hub's counters."""
    return BusFigures(
        connections=len(hub.connections),
        identified=hub.identified_count,
        rooms=len(hub.rooms),
        delivered=hub.delivered,
        dropped=hub.dropped,
    )


def bus_metrics(
    hub_of: Callable[[], Hub | None],
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The handler of ``GET /metrics`` on a bus app whose hub (once started) ``hub_of`` gives."""

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await render()
        hub = hub_of()
        if hub is not None:
            # A per-scrape registry reads this app's hub, so nothing global points at it.
            local = CollectorRegistry(auto_describe=False)
            local.register(BusCollector(lambda: figures_of(hub)))
            body += generate_latest(local)
        return metrics_response(body)

    return handle
