"""How the api's HTTP server is configured against slow and hostile clients."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from filmstrip.compat.aiohttp import JsonErrorRunner
from filmstrip.settings import Settings


def server_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``web.AppRunner`` that every api process must use."""
    return {
        # aiohttp closes a connection still waiting for a request's headers when its
        # keep-alive timer fires, from connect or from the last response: our header
        # deadline against slowloris (idle keep-alive connections go at the same time).
        "keepalive_timeout": settings.api.header_timeout_s,
        # Request bodies stay as sent: inflating gzip before the size checks would let a
        # small body expand without bound, and a corrupt stream would be answered with
        # a plain-text 400 from under our handlers. Uploads refuse a Content-Encoding.
        "auto_decompress": False,
    }


def api_runner(app: web.Application, settings: Settings, **kwargs: Any) -> web.AppRunner:
    """The runner every api process serves ``app`` with: :func:`server_options`, and
    aiohttp's own refusals (malformed requests) answered in our JSON error shape."""
    return JsonErrorRunner(app, **server_options(settings), **kwargs)
