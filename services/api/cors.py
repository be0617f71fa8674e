"""CORS for ``/v1``: web apps on the origins ``FILMSTRIP_CORS_ORIGINS`` names may call the
api from a browser, tus uploads included.

A preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``) is answered
here, before rate limits and tokens: the browser sends it without the token. From an
origin not allowed it is ``403 cors_origin_not_allowed`` (the browser then refuses the
call). Every other ``/v1`` answer to an allowed origin, errors and streamed files included,
names the origin and exposes the headers a client reads (tus's among them).
"""

from __future__ import annotations

from aiohttp import web

from filmstrip.services.api.edge import Handler
from filmstrip.services.api.errors import error_response
from filmstrip.services.api.state import STATE
from filmstrip.settings import Settings

PREFIX = "/v1/"

_METHODS = "GET, HEAD, POST, PATCH, DELETE, OPTIONS"
_TUS_HEADERS = (
    "Tus-Resumable",
    "Tus-Version",
    "Tus-Extension",
    "Tus-Max-Size",
    "Tus-Checksum-Algorithm",
    "Upload-Offset",
    "Upload-Length",
    "Upload-Metadata",
    "Upload-Expires",
)
_ALLOWED_HEADERS = ", ".join(
    (
        "Authorization",
        "Content-Type",
        "X-Content-SHA256",
        "X-Trace-Id",
        "traceparent",
        "Range",
        "If-Range",
        "Upload-Checksum",
        "Upload-Defer-Length",
        "X-HTTP-Method-Override",
        *_TUS_HEADERS,
    )
)
_EXPOSED_HEADERS = ", ".join(
    (
        "Location",
        "Link",
        "ETag",
        "Content-Disposition",
        "Content-Range",
        "Accept-Ranges",
        "Retry-After",
        "WWW-Authenticate",
        "X-Trace-Id",
        "Filmstrip-Photo-Id",
        "Filmstrip-Duplicate",
        *_TUS_HEADERS,
    )
)
# How long a browser may keep a preflight's answer (Chromium keeps at most 2 hours).
_MAX_AGE_S = 600


def allowed_origin(settings: Settings, origin: str) -> str | None:
    """What ``Access-Control-Allow-Origin`` says to ``origin``: ``*`` when every origin may
    call, the origin itself when it is listed, None when it may not."""
    origins = settings.api.cors_origin_list
    if "*" in origins:
        return "*"
    return origin if origin in origins else None


def _is_preflight(request: web.Request) -> bool:
    return (
        request.method == "OPTIONS"
        and "Origin" in request.headers
        and "Access-Control-Request-Method" in request.headers
    )


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer a ``/v1`` preflight itself; leave every other request to the handlers."""
    if not (request.path.startswith(PREFIX) and _is_preflight(request)):
        return await handler(request)
    settings = request.app[STATE].settings
    origin = request.headers["Origin"]
    allowed = allowed_origin(settings, origin)
    if allowed is None:
        return error_response(
            403,
            "cors_origin_not_allowed",
            f"the origin {origin!r} may not call this api; list it in FILMSTRIP_CORS_ORIGINS",
            _vary(settings),
        )
    return web.Response(
        status=204,
        headers={
            "Access-Control-Allow-Origin": allowed,
            "Access-Control-Allow-Methods": _METHODS,
            "Access-Control-Allow-Headers": _ALLOWED_HEADERS,
            "Access-Control-Max-Age": str(_MAX_AGE_S),
            **_vary(settings),
        },
    )


async def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: name the allowed origin on every ``/v1`` answer, streamed
    ones and errors too (a middleware sees a streamed answer only after it was sent)."""
    if not request.path.startswith(PREFIX) or STATE not in request.app:
        return
    settings = request.app[STATE].settings
    if not settings.api.cors_origin_list or "Access-Control-Allow-Origin" in response.headers:
        return
    for name, value in _vary(settings).items():
        present = response.headers.get(name)
        response.headers[name] = f"{present}, {value}" if present else value
    origin = request.headers.get("Origin")
    allowed = allowed_origin(settings, origin) if origin else None
    if allowed is not None:
        response.headers["Access-Control-Allow-Origin"] = allowed
        response.headers["Access-Control-Expose-Headers"] = _EXPOSED_HEADERS


def _vary(settings: Settings) -> dict[str, str]:
    # Answers differ by Origin unless every origin gets "*": a browser cache must not hand
    # one origin's answer to another (or a same-origin one, without the header, to a page
    # on another origin).
    return {} if "*" in settings.api.cors_origin_list else {"Vary": "Origin"}
