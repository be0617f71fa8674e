"""Events published on Redis pub/sub by api and worker, read by the bus."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

# Redis pub/sub channels (the seed's names).
CHANNEL_UPLOAD = "photo:upload"
CHANNEL_PROCESSING = "photo:processing"
CHANNEL_COMPLETION = "photo:completion"
CHANNEL_DELETION = "photo:deletion"
CHANNELS = (CHANNEL_UPLOAD, CHANNEL_PROCESSING, CHANNEL_COMPLETION, CHANNEL_DELETION)

# Event types.
PHOTO_UPLOADED = "photo.uploaded"
STAGE_COMPLETED = "photo.processing.stage.completed"
PHOTO_PROCESSING_STARTED = "photo.processing.started"
PHOTO_COMPLETED = "photo.processing.completed"
PHOTO_FAILED = "photo.processing.failed"
# After ``completed``: the follow-up job ran the deferred stages (optimization); ``data``
# lists the photo's derivatives now, so a client can offer the optimised copy.
PHOTO_DEFERRED_COMPLETED = "photo.processing.deferred.completed"
# The photo was deleted (``DELETE /v1/photos/{id}``): its client's other devices drop it,
# and a replay that brings its earlier events ends with this one.
PHOTO_DELETED = "photo.deleted"

CHANNEL_OF_TYPE: dict[str, str] = {
    PHOTO_UPLOADED: CHANNEL_UPLOAD,
    PHOTO_PROCESSING_STARTED: CHANNEL_PROCESSING,
    STAGE_COMPLETED: CHANNEL_PROCESSING,
    PHOTO_COMPLETED: CHANNEL_COMPLETION,
    PHOTO_FAILED: CHANNEL_COMPLETION,
    PHOTO_DEFERRED_COMPLETED: CHANNEL_PROCESSING,
    PHOTO_DELETED: CHANNEL_DELETION,
}

Channel = Literal["photo:upload", "photo:processing", "photo:completion", "photo:deletion"]


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


class Derivative(msgspec.Struct, frozen=True, kw_only=True):
    """One rendition of a photo: ``url`` is signed (it works without a token) and relative
    to the api; it expires ``FILMSTRIP_SIGNED_URL_TTL_S`` after it was made, rounded up to
    the next whole minute (its ``exp``, so up to 59 s later), after which
    ``GET /v1/photos/{id}`` hands out fresh ones."""

    name: str
    url: str
    content_type: str
    width: int
    height: int
    bytes: int


class EventData(msgspec.Struct, frozen=True, kw_only=True):
    """What every event's ``data`` carries: ``photo_id``, the event's own, repeated."""

    photo_id: str


class UploadedData(EventData, frozen=True, kw_only=True):
    """The ``data`` of ``photo.uploaded``: the original is stored and job ``job_id`` queued;
    ``bytes`` and ``content_type`` are the original's (the type as sniffed from the bytes)."""

    job_id: str
    bytes: int
    content_type: str


class StartedData(EventData, frozen=True, kw_only=True):
    """The ``data`` of ``photo.processing.started``: delivery ``attempt`` of the job began
    (1 first; more after a retry, a ``RESOURCE`` deferral or a lost worker)."""

    attempt: int


class StageCompletedData(EventData, frozen=True, kw_only=True):
    """The ``data`` of ``photo.processing.stage.completed``: ``stage`` took ``ms``;
    ``progress`` is the job's percentage done after it (the first job's stages share 90,
    the follow-up's end at 100); ``result`` is the stage's summary (``validation``:
    ``format``, ``width``, ``height``, ``frames``; ``metadata``: ``width``, ``height``,
    ``format``, ``camera``, ``gps``; ``thumbnails``: each rendition's ``width``, ``height``,
    ``bytes``; ``optimization``: whether a copy was ``kept`` and what it saved)."""

    stage: str
    progress: int
    ms: float
    result: dict[str, Any]


class CompletedData(EventData, frozen=True, kw_only=True):
    """The ``data`` of ``photo.processing.completed``: enough to show the photo without
    asking the api. ``width``/``height`` are the photo's, upright; ``taken_at`` is the
    EXIF date taken (null if none); ``thumbhash`` is a base64 ThumbHash placeholder;
    ``ms`` is how long processing took (0 when a redelivered job found it done)."""

    status: Literal["completed"] = "completed"
    derivatives: list[Derivative]
    width: int | None
    height: int | None
    taken_at: str | None
    thumbhash: str | None
    ms: float


class DeferredCompletedData(EventData, frozen=True, kw_only=True):
    """The ``data`` of ``photo.processing.deferred.completed``: the follow-up job's
    ``stages`` and their ``results``, and every derivative the photo has now (the
    optimised copy among them when it was kept)."""

    stages: list[str]
    derivatives: list[Derivative]
    results: dict[str, Any]


class FailedData(EventData, frozen=True, kw_only=True):
    """The ``data`` of ``photo.processing.failed``."""

    status: Literal["failed"] = "failed"
    error: PhotoError


class DeletedData(EventData, frozen=True, kw_only=True):
    """The ``data`` of ``photo.deleted``: the photo, its original and every derivative are
    gone (their URLs answer 404); nothing of it published after this counts."""

    status: Literal["deleted"] = "deleted"


#: The ``data`` of every event type.
DATA_OF_TYPE: dict[str, type[EventData]] = {
    PHOTO_UPLOADED: UploadedData,
    PHOTO_PROCESSING_STARTED: StartedData,
    STAGE_COMPLETED: StageCompletedData,
    PHOTO_COMPLETED: CompletedData,
    PHOTO_DEFERRED_COMPLETED: DeferredCompletedData,
    PHOTO_FAILED: FailedData,
    PHOTO_DELETED: DeletedData,
}


def failure_data(photo_id: str, error: PhotoError) -> dict[str, Any]:
    """The ``data`` of a ``photo.processing.failed`` event."""
    return msgspec.to_builtins(FailedData(photo_id=photo_id, error=error))  # type: ignore[no-any-return]


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
