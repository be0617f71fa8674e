"""The api's Prometheus instrumentation: a request middleware and ``GET /metrics``."""

from __future__ import annotations

import time

from aiohttp import web
from prometheus_client import Counter, Histogram

from filmstrip.metrics import http as http_metrics
from filmstrip.metrics.exposition import metrics_response, render
from filmstrip.metrics.queue import refresh_depths
from filmstrip.services.api.edge import Handler, route_template
from filmstrip.services.api.state import state_of

_UPLOAD_ROUTE = "/v1/photos"


def route_of(request: web.Request) -> str:
    """The route template (``/v1/photos/{photo_id}``), so labels stay few; else ``unmatched``."""
    return route_template(request) or "unmatched"


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count requests by route and status, time them, and count upload body bytes; outside
    the error middleware, so errors count with the status the client sees."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        route = route_of(request)
        counter, histogram = _children(route, request.method, status)
        counter.inc()
        histogram.observe(time.perf_counter() - started)
        if route == _UPLOAD_ROUTE and request.method == "POST":
            http_metrics.UPLOAD_BYTES.inc(request.content.total_bytes)


# Labelled children per (route, method, status): ``labels()`` takes a lock and builds a
# key on every call, which is most of the middleware's cost. Route templates, methods and
# statuses are few, so this stays small.
_CHILDREN: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}


def _children(route: str, method: str, status: int) -> tuple[Counter, Histogram]:
    key = (route, method, status)
    found = _CHILDREN.get(key)
    if found is None:
        found = (
            http_metrics.REQUESTS.labels(route, method, str(status)),
            http_metrics.LATENCY.labels(route, method),
        )
        _CHILDREN[key] = found
    return found


async def metrics(request: web.Request) -> web.StreamResponse:
    """``GET /metrics``: Prometheus text, with queue depths read from Redis now."""
    queue = state_of(request).queue
    return metrics_response(await render(lambda: refresh_depths(queue)))
