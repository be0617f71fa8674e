"""A failed photo's error as clients see it: code, category, message and whether a retry
may help, from the failure the worker or reconciler reported or from the catalog's row."""

from __future__ import annotations

from filmstrip.catalog import PhotoRecord, PhotoStatus
from filmstrip.errors import Category, public_message
from filmstrip.protocols.events import PhotoError

# A row failed before the catalog kept codes (schema 7) has none.
UNKNOWN_CODE = "processing_failed"


def photo_error(*, code: str, category: str, message: str) -> PhotoError:
    """The error of a failure as its client reads it: a server-side failure's ``message`` (hosts,
    keys, driver text) is replaced by one by code; ``retryable`` unless the input is at fault."""
    try:
        kind = Category(category)
    except ValueError:
        kind = Category.LOGIC  # not one of ours: a bug, which a fixed release may pass
    public = public_message(kind, code, message)
    return PhotoError(code=code, category=kind, message=public, retryable=kind.retry_may_help)


def error_of(photo: PhotoRecord) -> PhotoError | None:
    """The error of a failed photo, None for any other."""
    if photo.status != PhotoStatus.FAILED:
        return None
    return photo_error(
        code=photo.error_code or UNKNOWN_CODE,
        # Rows that failed before categories were kept were all processing failures that
        # the retry then treated as temporary.
        category=photo.error_category or Category.TEMPORARY,
        message=photo.processing_error or "processing failed",
    )
