"""aiohttp's own refusals in our JSON error shape. Fits aiohttp 3.14.

aiohttp answers a request its HTTP parser refuses (a URL past 8190 bytes, too many
headers, a duplicate or negative ``Content-Length``, ``Content-Length`` with chunked, …)
from ``RequestHandler.handle_error``, before any middleware runs: a plain-text ``400`` and
an ERROR log with a traceback. It has no public hook for that (aio-libs/aiohttp#3287), so
:class:`JsonErrorRunner` gives each connection a handler whose ``handle_error`` answers
``{"error": {"code", "message"}}`` and logs the refusal at INFO, without a traceback. It
relies on three internals: ``AppRunner._make_server`` builds the ``Server``,
``Server.__call__`` builds each connection's ``RequestHandler`` from ``Server._kwargs``, and
``handle_error(request, status, exc, message)`` answers both parser refusals (status 400)
and exceptions that escaped every middleware (500). A tus PATCH cut mid-body keeps every
byte that arrived, but once the peer is gone every public read of the body raises before
handing over what is buffered: :func:`buffered_body` takes it through the private
``StreamReader._read_nowait``. ``tests/compat/test_aiohttp.py`` fails loudly when any of
that changes.
"""

from __future__ import annotations

import logging

from aiohttp import StreamReader, web
from aiohttp.web_request import BaseRequest
from aiohttp.web_urldispatcher import _default_expect_handler

from filmstrip.http_errors import error_response

#: The aiohttp release these internals were read from.
AIOHTTP_VERSION = "3.14"

log = logging.getLogger("filmstrip.http")

#: What aiohttp answers ``Expect`` with when a route names no handler of its own (``100
#: Continue``, or 417): private, for an ``expect_handler`` that does it in the end.
default_expect_handler = _default_expect_handler

_REASON_CHARS = 120


class _JsonErrorHandler(web.RequestHandler):
    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:
            # Our bug, escaped past the error middleware: keep aiohttp's ERROR and traceback.
            self.log_exception("Error handling request from %s", request.remote, exc_info=exc)
            code, text = "internal", "internal server error"
        else:
            reason = refusal_reason(message or str(exc or ""))
            log.info(
                "refused a malformed request",
                extra={"status": status, "reason": reason, "remote": request.remote},
            )
            code, text = "bad_request", f"malformed request: {reason}"
        if request.writer.output_size > 0:
            # As aiohttp does: part of a response went out, no other can follow.
            raise ConnectionError("response already started; cannot send the error")
        response = error_response(status, code, text)
        response.force_close()
        return response


def refusal_reason(message: str) -> str:
    """The parser's message without the bytes it quotes: its first line, up to a colon."""
    first = message.split("\n", 1)[0].split(": ", 1)[0].rstrip(": ").strip()
    return first.encode("ascii", "backslashreplace").decode("ascii")[:_REASON_CHARS] or "?"


class _JsonErrorServer(web.Server):
    def __call__(self) -> web.RequestHandler:
        return _JsonErrorHandler(self, loop=self._loop, **self._kwargs)


class JsonErrorRunner(web.AppRunner):
    """An ``AppRunner`` whose connections answer aiohttp's own refusals in JSON."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # The Server's state is built; only the class that makes its handlers changes.
        server.__class__ = _JsonErrorServer
        return server


def buffered_body(body: StreamReader) -> bytes:
    """What ``body`` received but had not handed over when the connection dropped."""
    try:
        return body._read_nowait(-1)
    except Exception:
        return b""
