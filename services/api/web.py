"""The pages people look at: the gallery (``/``), the queue dashboard (``/dashboard``), their
static files, the public ``/v1/config`` they start from, and ``/metrics``.

Everything is plain HTML, CSS and ES modules shipped inside the package: no build step,
no CDN (the machine serving it may have no internet).
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from filmstrip.protocols.web import ClientConfig
from filmstrip.services.api import dashboard, metrics
from filmstrip.services.api.edge import host_of
from filmstrip.services.api.errors import ApiError
from filmstrip.services.api.json import json_response
from filmstrip.services.api.state import state_of

STATIC = Path(__file__).resolve().parent / "static"

# Scripts and styles only from us; images also as data:/blob: URLs (thumbhash canvases,
# local previews); sockets to the bus, which may listen on another port or host.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; connect-src 'self' ws: wss:; "
        "style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Pages are small and change with each deploy; revalidate rather than go stale.
    "Cache-Control": "no-cache",
}


def _page(name: str) -> web.FileResponse:
    return web.FileResponse(STATIC / name, headers=_PAGE_HEADERS)


async def gallery(request: web.Request) -> web.StreamResponse:
    """``GET /``, and ``GET /photos/{photo_id}`` opening that photo (a link to share, a view that
    survives a reload; the page asks the api for the photo, so no token here): the gallery."""
    return _page("index.html")


async def dashboard_page(request: web.Request) -> web.StreamResponse:
    """``GET /dashboard``: the queue dashboard page (its data needs an admin token)."""
    return _page("dashboard.html")


def bus_url_for(request: web.Request) -> str:
    """The configured public bus URL, else the bus port on the host the browser used."""
    settings = state_of(request).settings
    if settings.api.public_bus_url:
        return settings.api.public_bus_url
    secure = request.secure or request.headers.get("X-Forwarded-Proto", "") == "https"
    host = host_of(request) or settings.bus.host
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    return f"{'wss' if secure else 'ws'}://{host}:{settings.bus.port}/ws"


async def client_config(request: web.Request) -> web.StreamResponse:
    """``GET /v1/config``: public, so the sign-in page can reach the bus."""
    body = ClientConfig(bus_url=bus_url_for(request), queue=state_of(request).settings.queue.name)
    return json_response(body, headers={"Cache-Control": "no-store"})


async def static_file(request: web.Request) -> web.StreamResponse:
    """``GET /static/{path}``: the pages' scripts and styles, never a file outside them."""
    relative = request.match_info["path"]
    try:
        candidate = (STATIC / relative).resolve()
        found = candidate.is_relative_to(STATIC) and candidate.is_file()
    except (OSError, ValueError):  # a name too long, a NUL the edge let through
        found = False
    if not found:
        raise ApiError(404, "not_found", f"no static file {relative!r}")
    return web.FileResponse(candidate, headers={"Cache-Control": "no-cache"})


def add_routes(app: web.Application) -> None:
    """Pages, static files, config, dashboard data and metrics."""
    app.router.add_get("/", gallery)
    app.router.add_get("/photos/{photo_id}", gallery)
    app.router.add_get("/dashboard", dashboard_page)
    app.router.add_get("/static/{path:.+}", static_file)
    app.router.add_get("/v1/config", client_config)
    app.router.add_get("/v1/dashboard", dashboard.dashboard)
    app.router.add_get("/metrics", metrics.metrics)
