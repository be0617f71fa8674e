"""``/docs``: Swagger UI over the served OpenAPI document (``/v1/openapi.json``).

Its scripts and styles come from the ``swagger-ui-py`` wheel (Swagger UI 5, which reads
OpenAPI 3.1) and are served from here: no CDN, so the page works on a machine without
internet and sends nothing elsewhere. Our page and its start-up script are in ``static/``.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

from aiohttp import web

from filmstrip.services.api.errors import ApiError
from filmstrip.services.api.web import STATIC

# Only what the page loads; the wheel also holds Swagger Editor and source maps.
ASSETS = frozenset({"swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png"})

# As the other pages', plus inline styles: Swagger UI's React components set some. No
# scripts but ours and the wheel's, no connections but to this origin.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@cache
def assets_dir() -> Path:
    """The Swagger UI files inside the installed ``swagger_ui`` package (found without
    importing it: its ``__init__`` loads framework adapters we do not use)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the swagger-ui-py package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


async def docs_page(request: web.Request) -> web.StreamResponse:
    """``GET /docs``: the interactive API documentation."""
    return web.FileResponse(STATIC / "docs.html", headers=_PAGE_HEADERS)


async def docs_asset(request: web.Request) -> web.StreamResponse:
    """``GET /docs/assets/{name}``: one of Swagger UI's own files."""
    name = request.match_info["name"]
    if name not in ASSETS:
        raise ApiError(404, "not_found", f"no docs asset {name!r}")
    # The wheel's files change only with its version; revalidating costs a 304.
    return web.FileResponse(assets_dir() / name, headers={"Cache-Control": "no-cache"})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/docs", docs_page)
    app.router.add_get("/docs/assets/{name}", docs_asset)
