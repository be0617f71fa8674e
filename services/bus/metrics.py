"""The bus's ``GET /metrics``: its hub's figures plus the process's default registry."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from filmstrip.metrics.bus import BusCollector, BusFigures
from filmstrip.metrics.exposition import metrics_response, render
from services.bus.hub import Hub


def figures_of(hub: Hub) -> BusFigures:
    """A snapshot of the hub's counters."""
    return BusFigures(
        connections=len(hub.connections),
        identified=hub.identified_count,
        rooms=len(hub.rooms),
        delivered=hub.delivered,
        dropped=hub.dropped,
    )


async def bus_metrics(request: web.Request) -> web.StreamResponse:
    """``GET /metrics`` on the bus app (the route is added in ``services.bus.app``)."""
    # Imported here because services.bus.app imports this module.
    from services.bus.app import HUB

    body = await render()
    hub = request.app.get(HUB)
    if hub is not None:
        # A per-scrape registry reads this app's hub, so nothing global points at it.
        local = CollectorRegistry(auto_describe=False)
        local.register(BusCollector(lambda: figures_of(hub)))
        body += generate_latest(local)
    return metrics_response(body)
