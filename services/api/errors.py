"""HTTP errors as values: a status, a machine-readable code and a human message."""

from __future__ import annotations

from filmstrip.errors import Category, FilmstripError, public_message
from filmstrip.http_errors import error_response

__all__ = ["ApiError", "error_response", "from_filmstrip_error"]


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


def from_filmstrip_error(exc: FilmstripError) -> ApiError:
    """Map a core error to HTTP by its category (TEMPORARY/RESOURCE are the server's problem);
    a server-side failure's details stay in the log."""
    message = public_message(exc.category, exc.code, exc.message)
    if exc.category in (Category.TEMPORARY, Category.RESOURCE):
        return ApiError(503, exc.code, message, headers={"Retry-After": "5"})
    if exc.category is Category.DATA:
        return ApiError(422, exc.code, message)
    return ApiError(500, exc.code, message)
