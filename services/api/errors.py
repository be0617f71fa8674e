"""HTTP errors as values: a status, a machine-readable code and a human message."""

from __future__ import annotations

from aiohttp import web

from filmstrip.errors import Category, FilmstripError, public_message
from filmstrip.protocols.http import ErrorBody, ErrorDetail
from filmstrip.services.api.json import json_response


class ApiError(Exception):
    """Raised by handlers; the error middleware turns it into ``{"error": {...}}``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    """The JSON error body every non-2xx answer carries."""
    # A message quoting the client's input may hold lone surrogates (bytes that were not
    # UTF-8), which JSON cannot carry: escape them rather than fail the answer.
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    body = ErrorBody(error=ErrorDetail(code=code, message=message))
    return json_response(body, status=status, headers=headers)


def from_filmstrip_error(exc: FilmstripError) -> ApiError:
    """Map a core error to HTTP by its category (TEMPORARY/RESOURCE are the server's problem);
    a server-side failure's details stay in the log."""
    message = public_message(exc.category, exc.code, exc.message)
    if exc.category in (Category.TEMPORARY, Category.RESOURCE):
        return ApiError(503, exc.code, message, headers={"Retry-After": "5"})
    if exc.category is Category.DATA:
        return ApiError(422, exc.code, message)
    return ApiError(500, exc.code, message)
