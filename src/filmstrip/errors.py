"""Errors as values with a category that decides what the queue does with them."""

from __future__ import annotations

import enum


class Category(enum.StrEnum):
    """Why something failed; the queue's retry policy keys on this, never on messages."""

    DATA = "DATA"  # the input is bad: never retry
    TEMPORARY = "TEMPORARY"  # a dependency hiccuped: retry with backoff
    RESOURCE = "RESOURCE"  # out of time/memory/capacity: defer without spending an attempt
    LOGIC = "LOGIC"  # a bug or a misconfiguration: fail at once, loudly

    @property
    def retryable(self) -> bool:
        return self in (Category.TEMPORARY, Category.RESOURCE)

    @property
    def retry_may_help(self) -> bool:
        """Whether sending the work again by hand may succeed: for anything but bad input
        (a LOGIC failure may pass once its bug or setting is fixed)."""
        return self is not Category.DATA


# What a client reads of a failure on the server's side, by code: the error's own message
# names hosts, ports, keys and driver errors, which are for the operator (the log, the job's
# record in the queue), not for every caller.
PUBLIC_MESSAGES = {
    "catalog_unavailable": "the photo catalog is unreachable; try again shortly",
    "redis_unavailable": "the queue is unreachable; try again shortly",
    "catalog_conflict": "the photo catalog is busy; try again shortly",
    "blob_store_unavailable": "photo storage is unreachable; try again shortly",
    "event_unpublished": "the event stream is unreachable; try again shortly",
    "io_error": "a service the server depends on did not answer; try again shortly",
    "blob_store_full": "photo storage is full; try again later",
    "upload_locked": "another request is busy with this upload; try again shortly",
    # RESOURCE failures of one photo: what is true of it, without the decoder's text.
    "out_of_memory": "the server ran out of memory processing this photo; try again later",
    "stage_timeout": "processing this photo took longer than the server allows; try again later",
    "stalled": "processing this photo stopped more than once on the server; try again later",
}
_SERVER_SIDE = "the server could not finish this for now; try again shortly"
_INTERNAL = "internal server error"


def public_message(category: Category, code: str, message: str) -> str:
    """What a client may read of a failure: a DATA error's own ``message`` (its input is at
    fault), else a fixed sentence by ``code`` and ``category``."""
    if category is Category.DATA:
        return message
    if category is Category.LOGIC:
        return _INTERNAL
    return PUBLIC_MESSAGES.get(code, _SERVER_SIDE)


class FilmstripError(Exception):
    """An error with a category and a machine-readable code."""

    category: Category = Category.LOGIC

    def __init__(self, message: str, *, code: str = "error", category: Category | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        if category is not None:
            self.category = category

    def __str__(self) -> str:
        return self.message


class DataError(FilmstripError):
    """The input itself is unusable (corrupt, unsupported, over a limit)."""

    category = Category.DATA


class TemporaryError(FilmstripError):
    """A dependency failed in a way that a later retry may not."""

    category = Category.TEMPORARY


class ResourceError(FilmstripError):
    """Time, memory or capacity ran out; try again later without counting an attempt."""

    category = Category.RESOURCE


class LogicError(FilmstripError):
    """A programming or configuration error; retrying will not help."""

    category = Category.LOGIC


class StartupError(LogicError):
    """A process cannot start (a port in use, an address not here); ``fix`` says what to
    change."""

    def __init__(self, message: str, *, fix: str) -> None:
        super().__init__(message, code="cannot_start")
        self.fix = fix
