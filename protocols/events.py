"""Events published on Redis pub/sub by api and worker, read by the bus."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

# Redis pub/sub channels (the seed's names).
CHANNEL_UPLOAD = "photo:upload"
CHANNEL_PROCESSING = "photo:processing"
CHANNEL_COMPLETION = "photo:completion"
CHANNELS = (CHANNEL_UPLOAD, CHANNEL_PROCESSING, CHANNEL_COMPLETION)

# Event types.
PHOTO_UPLOADED = "photo.uploaded"
STAGE_COMPLETED = "photo.processing.stage.completed"
PHOTO_PROCESSING_STARTED = "photo.processing.started"
PHOTO_PROGRESS = "photo.processing.progress"
PHOTO_COMPLETED = "photo.processing.completed"
PHOTO_FAILED = "photo.processing.failed"
# After ``completed``: the follow-up job ran the deferred stages (optimization); ``data``
# lists the photo's derivatives now, so a client can offer the optimised copy.
PHOTO_DEFERRED_COMPLETED = "photo.processing.deferred.completed"

CHANNEL_OF_TYPE: dict[str, str] = {
    PHOTO_UPLOADED: CHANNEL_UPLOAD,
    PHOTO_PROCESSING_STARTED: CHANNEL_PROCESSING,
    STAGE_COMPLETED: CHANNEL_PROCESSING,
    PHOTO_PROGRESS: CHANNEL_PROCESSING,
    PHOTO_COMPLETED: CHANNEL_COMPLETION,
    PHOTO_FAILED: CHANNEL_COMPLETION,
    PHOTO_DEFERRED_COMPLETED: CHANNEL_PROCESSING,
}

Channel = Literal["photo:upload", "photo:processing", "photo:completion"]


class PhotoError(msgspec.Struct, frozen=True, kw_only=True):
    """Why a photo failed. ``code`` is machine-readable (``corrupt_image``, ...);
    ``category`` is ``DATA`` (the file is at fault: a retry fails the same way),
    ``TEMPORARY`` or ``RESOURCE`` (a retry may succeed) or ``LOGIC`` (a bug or a setting:
    a retry may pass once that is fixed); ``retryable`` says whether
    ``POST /v1/photos/{id}/retry`` may help (false exactly for ``DATA``)."""

    code: str
    category: str
    message: str
    retryable: bool


def failure_data(error: PhotoError) -> dict[str, Any]:
    """The ``data`` of a ``photo.processing.failed`` event."""
    return {"status": "failed", "error": msgspec.to_builtins(error)}


class EventMetadata(msgspec.Struct, frozen=True, kw_only=True):
    """Routing and tracing facts every event carries."""

    client_id: str
    trace_id: str
    session_id: str | None = None


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """One event. ``id`` is unique and sortable (time-ordered)."""

    id: str
    type: str
    channel: Channel
    photo_id: str
    data: dict[str, Any]
    metadata: EventMetadata
    timestamp: str
