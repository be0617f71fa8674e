"""What a refused or failed call to the api becomes on the client side."""

from __future__ import annotations

from filmstrip.errors import Category, FilmstripError

# Answers worth the same request again later: the server or the path to it was busy.
_TEMPORARY = frozenset({408, 429, 500, 502, 503, 504})


class ApiFailure(FilmstripError):
    """The api answered ``status`` with ``{"error": {"code", "message"}}`` (or the request
    never got an answer: ``status`` 0). TEMPORARY when trying again later may succeed,
    DATA when the request itself was refused."""

    def __init__(self, status: int, code: str, message: str, *, request: str = "") -> None:
        category = Category.TEMPORARY if status == 0 or status in _TEMPORARY else Category.DATA
        super().__init__(message, code=code, category=category)
        self.status = status
        #: The request never answered (``status`` 0), e.g. ``POST http://host/v1/photos``.
        self.request = request

    def __str__(self) -> str:
        if self.status:
            return f"{self.message} ({self.status} {self.code})"
        return f"{self.request}: {self.message}" if self.request else self.message


class EventStreamError(FilmstripError):
    """The bus refused the stream for good (an unknown or revoked token)."""
