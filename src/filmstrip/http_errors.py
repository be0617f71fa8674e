"""The error answer every HTTP role (the api and the bus) gives: its status and
``{"error": {"code", "message"}}`` (``protocols/http.py``'s ``ErrorBody``), never text.

aiohttp's own answers (no route: 404; a route without that method: 405 with ``Allow``; a
refused WebSocket handshake: 400) arrive as ``web.HTTPException``s with a plain-text body;
:func:`from_http_exception` gives them the same shape, with a code per status and the
headers that tell a client what to do (``Allow``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec
from aiohttp import web

from filmstrip.protocols.http import ErrorBody, ErrorDetail

#: The code of each status aiohttp itself answers with; ``http_error`` for any other.
HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
}
#: Headers of aiohttp's own answers that a client needs (405's list of methods).
_KEPT_HEADERS = ("Allow",)

_encoder = msgspec.json.Encoder()


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    """The JSON error body every non-2xx answer carries."""
    # A message quoting the client's input may hold lone surrogates (bytes that were not
    # UTF-8), which JSON cannot carry: escape them rather than fail the answer.
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    body = ErrorBody(error=ErrorDetail(code=code, message=message))
    return web.Response(
        body=_encoder.encode(body), status=status, content_type="application/json", headers=headers
    )


def from_http_exception(exc: web.HTTPException) -> web.Response:
    """aiohttp's own refusal in the JSON shape, keeping ``Allow``; its message is the first
    line of its text (aiohttp's WebSocket refusals explain themselves there), else the
    status's reason."""
    code = HTTP_CODES.get(exc.status, "http_error")
    text = (exc.text or "").split("\n", 1)[0].strip()
    if not text or text == f"{exc.status}: {exc.reason}":
        text = exc.reason or code
    headers = {name: exc.headers[name] for name in _KEPT_HEADERS if name in exc.headers}
    return error_response(exc.status, code, text, headers)


@web.middleware
async def json_errors_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """aiohttp's own refusals (404, 405, a refused handshake) answered in the JSON shape; for
    a role whose handlers raise nothing else (the bus; the api's error middleware does
    more)."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return from_http_exception(exc)
