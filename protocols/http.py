"""Bodies of the HTTP API."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

from filmstrip.protocols.events import Derivative, PhotoError


class ErrorDetail(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    message: str


class ErrorBody(msgspec.Struct, frozen=True, kw_only=True):
    """Every non-2xx answer: ``{"error": {"code": ..., "message": ...}}``."""

    error: ErrorDetail


class UploadAccepted(msgspec.Struct, frozen=True, kw_only=True):
    photo_id: str
    job_id: str
    status: str
    duplicate: bool = False


# --- A photo's metadata: what processing found (src/filmstrip/pipeline writes it) ----------
# Every field may be absent (UNSET): absent keys are left out of the JSON, never sent as
# null, except the ones typed ``| None``. Clients must ignore keys they do not know.


def _doc(description: str) -> msgspec.Meta:
    return msgspec.Meta(description=description)


class Gps(msgspec.Struct, frozen=True, kw_only=True):
    """Where the photo was taken, from its EXIF GPS tags (WGS 84)."""

    lat: Annotated[float, _doc("latitude in degrees, north positive, -90..90")]
    lon: Annotated[float, _doc("longitude in degrees, east positive, -180..180")]
    alt: Annotated[float, _doc("altitude in metres, negative below sea level")] | UnsetType = UNSET


class Exif(msgspec.Struct, frozen=True, kw_only=True):
    """Camera facts from the original's EXIF (TIFF: its own tags). A fact the file does not
    record, or records unreadably, is absent; a photo without EXIF has ``{}``."""

    make: Annotated[str, _doc("camera maker, at most 256 characters")] | UnsetType = UNSET
    model: Annotated[str, _doc("camera model, at most 256 characters")] | UnsetType = UNSET
    lens: Annotated[str, _doc("lens model, else lens maker")] | UnsetType = UNSET
    taken_at: (
        Annotated[
            str,
            _doc(
                "date taken (DateTimeOriginal, else DateTime): ISO 8601 local time as the"
                " camera wrote it, `YYYY-MM-DDTHH:MM:SS`, with `.` and up to 6 digits of"
                " fraction when it recorded sub-seconds and its `±HH:MM` offset when it"
                " recorded one (no offset: the time zone is unknown)"
            ),
        ]
        | UnsetType
    ) = UNSET
    exposure_time: Annotated[float, _doc("seconds, e.g. 0.004 for 1/250 s")] | UnsetType = UNSET
    f_number: Annotated[float, _doc("aperture, e.g. 2.8")] | UnsetType = UNSET
    iso: Annotated[int, _doc("ISO speed (a recorded 0 counts as absent)")] | UnsetType = UNSET
    focal_length: Annotated[float, _doc("millimetres (not 35 mm equivalent)")] | UnsetType = UNSET
    gps: Gps | UnsetType = UNSET


class Optimization(msgspec.Struct, frozen=True, kw_only=True):
    """The optimised full-size copy (the follow-up job's ``optimization`` stage). Either its
    outcome (``format`` … ``animated``, ``skipped`` when it was not attempted) or, when that
    job failed for good, ``failed: true`` with ``code``, ``category`` and ``message``."""

    format: Annotated[str, _doc("the copy's format: webp or avif")] | UnsetType = UNSET
    bytes: Annotated[int, _doc("the copy's size")] | UnsetType = UNSET
    original_bytes: Annotated[int, _doc("the original's size")] | UnsetType = UNSET
    bytes_saved: Annotated[int, _doc("original_bytes - bytes when kept, else 0")] | UnsetType = (
        UNSET
    )
    kept: (
        Annotated[
            bool,
            _doc("whether the copy was kept (it must save FILMSTRIP_OPTIMIZE_MIN_SAVING)"),
        ]
        | UnsetType
    ) = UNSET
    animated: Annotated[bool, _doc("the copy stays animated")] | UnsetType = UNSET
    skipped: Annotated[str, _doc("why no copy was tried: `animation_too_large`")] | UnsetType = (
        UNSET
    )
    failed: Annotated[bool, _doc("true: the follow-up job failed")] | UnsetType = UNSET
    code: Annotated[str, _doc("the failure's error code")] | UnsetType = UNSET
    category: Annotated[str, _doc("the failure's category")] | UnsetType = UNSET
    message: Annotated[str, _doc("the failure's message")] | UnsetType = UNSET


class PhotoMetadata(msgspec.Struct, frozen=True, kw_only=True):
    """What processing found out about a photo (null until it completed). Every processed
    photo has the header's facts (``width`` … ``orientation``), ``thumbhash`` and ``phash``;
    ``exif`` and ``sha256`` come from the ``metadata`` stage (``full_processing``, not
    ``quick_processing``); ``optimization`` once the follow-up job has run (absent before it,
    with ``quick_processing``, or while it has not been run)."""

    width: Annotated[int, _doc("pixels, upright (EXIF orientation applied)")] | UnsetType = UNSET
    height: Annotated[int, _doc("pixels, upright (EXIF orientation applied)")] | UnsetType = UNSET
    format: (
        Annotated[
            str,
            _doc("the original's format, from its bytes: jpeg, png, webp, gif, tiff, heif, avif"),
        ]
        | UnsetType
    ) = UNSET
    bytes: Annotated[int, _doc("the original's size")] | UnsetType = UNSET
    has_alpha: Annotated[bool, _doc("the original has an alpha channel")] | UnsetType = UNSET
    animated: Annotated[bool, _doc("a GIF or WebP of more than one frame")] | UnsetType = UNSET
    frames: Annotated[int, _doc("frames (pages) in the original; 1 for a still")] | UnsetType = (
        UNSET
    )
    color_space: (
        Annotated[str, _doc("libvips' interpretation: srgb, cmyk, b-w, rgb16, grey16, …")]
        | UnsetType
    ) = UNSET
    icc_profile: (
        Annotated[
            str | None,
            _doc(
                "the embedded ICC profile's description (at most 128 characters; `unknown`"
                " when it has none), null when there is no profile"
            ),
        ]
        | UnsetType
    ) = UNSET
    orientation: (
        Annotated[int, _doc("EXIF orientation 1-8, 1 when absent or out of range")] | UnsetType
    ) = UNSET
    exif: Exif | UnsetType = UNSET
    sha256: Annotated[str, _doc("SHA-256 of the original, 64 hex digits")] | UnsetType = UNSET
    thumbhash: (
        Annotated[str, _doc("ThumbHash placeholder, base64: a blurred image to show while loading")]
        | UnsetType
    ) = UNSET
    phash: (
        Annotated[str, _doc("64-bit perceptual difference hash (dHash), 16 hex digits")] | UnsetType
    ) = UNSET
    optimization: Optimization | UnsetType = UNSET


class Photo(msgspec.Struct, frozen=True, kw_only=True):
    photo_id: str
    status: str
    client_id: str
    session_id: str | None
    content_type: str
    bytes: int
    sha256: str | None
    uploaded_at: str
    processed_at: str | None
    original_url: str
    derivatives: list[Derivative]
    #: What processing found (null until it completed): see PhotoMetadata.
    metadata: PhotoMetadata | None
    #: Why a failed photo failed (null unless failed): ``retryable`` is false for a
    #: ``DATA`` failure, which ``POST /v1/photos/{id}/retry`` refuses.
    error: PhotoError | None
    #: ``error.category``, kept for clients written before ``error`` was an object.
    error_category: str | None = None
    #: The name the file was sent with (the multipart part's ``filename`` or tus
    #: ``filename`` metadata), cleaned: no path, no control characters, at most 255 bytes
    #: of UTF-8; null when it came without one.
    filename: str | None = None
    #: The pipeline its jobs run and the priority of its upload's job (1 first, 10 last):
    #: the upload's choice, else the server's defaults.
    pipeline: str | None = None
    priority: int | None = None


# --- Client features: sessions, listing, checks, retries, queue admin -------------------


class SessionCreated(msgspec.Struct, frozen=True, kw_only=True):
    session_id: str
    created_at: str


class SessionCounts(msgspec.Struct, frozen=True, kw_only=True):
    queued: int
    processing: int
    completed: int
    failed: int
    total: int


class Session(msgspec.Struct, frozen=True, kw_only=True):
    """An upload session: how far its photos are, and their ids (oldest first)."""

    session_id: str
    created_at: str
    counts: SessionCounts
    photo_ids: list[str]


#: Every listing's page size (``limit``): by default, and at most (over it: ``400 bad_limit``).
PAGE_SIZE_DEFAULT = 50
PAGE_SIZE_MAX = 200


class PhotoPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of ``GET /v1/photos``; pass ``next_cursor`` as ``cursor`` for the next."""

    items: list[Photo]
    next_cursor: str | None


Sha256Hex = Annotated[str, msgspec.Meta(pattern="^[0-9a-fA-F]{64}$")]


class HashCheck(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``POST /v1/photos/check``: which of these SHA-256 digests the client already has."""

    sha256: Annotated[list[Sha256Hex], msgspec.Meta(max_length=1000)]


class HashCheckResult(msgspec.Struct, frozen=True, kw_only=True):
    """Digest, as the client sent it (hex digits in any case) → the existing photo's id;
    absent digests are new."""

    existing: dict[str, str]


class RetryAccepted(msgspec.Struct, frozen=True, kw_only=True):
    """A failed job sent back to the queue; ``photo_id`` is null for a non-photo job."""

    photo_id: str | None
    job_id: str
    status: str


class QueueCounts(msgspec.Struct, frozen=True, kw_only=True):
    waiting: int
    active: int
    delayed: int
    completed: int
    failed: int


class QueueWindow(msgspec.Struct, frozen=True, kw_only=True):
    """Jobs finished (completed or dead-lettered) within one time window."""

    total: int
    completed: int
    failed: int
    success_rate: float
    avg_processing_ms: float
    throughput_per_min: float


class QueueWindows(msgspec.Struct, frozen=True, kw_only=True):
    last_1h: QueueWindow
    last_24h: QueueWindow
    last_7d: QueueWindow


class QueueOverview(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    paused: bool
    counts: QueueCounts
    stats: QueueWindows


class JobFailure(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    category: str
    message: str


class QueueJob(msgspec.Struct, frozen=True, kw_only=True):
    """One job as the admin API shows it (times are epoch milliseconds)."""

    job_id: str
    photo_id: str | None
    state: str
    priority: int
    trace_id: str | None = None
    attempts: int
    attempts_made: int
    progress: int
    created_at_ms: int
    processed_at_ms: int | None
    finished_at_ms: int | None
    delayed_until_ms: int | None
    error: JobFailure | None


class QueueJobPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[QueueJob]
    offset: int
    limit: int
    next_offset: int | None


class StageTiming(msgspec.Struct, frozen=True, kw_only=True):
    """One stage of one run: how long it took and when it ended (epoch ms)."""

    stage: str
    ms: float
    at_ms: int


class JobRun(msgspec.Struct, frozen=True, kw_only=True):
    """One run of a job, as its photo's events tell it.

    ``outcome``: ``running``, ``completed``, ``failed`` (with ``error`` when it is known:
    the queue keeps a job's last error only), or ``ended`` (it stopped without a result
    and ran again: failed with a reason no longer kept, or handed back by a stopping or
    stalled worker). ``attempt`` is the worker's attempt number, when it said.
    """

    attempt: int | None
    started_at_ms: int | None
    finished_at_ms: int | None
    outcome: Literal["running", "completed", "failed", "ended"]
    stages: list[StageTiming]
    error: JobFailure | None


class JobPhoto(msgspec.Struct, frozen=True, kw_only=True):
    """The photo a job works on, as the catalog has it (any client's: admins only)."""

    photo_id: str
    client_id: str
    status: str
    uploaded_at: str
    error: str | None
    error_category: str | None
    #: The name its file was sent with, when the api kept one.
    filename: str | None = None
    #: Its thumbnail as a signed URL (no token needed), once it has one.
    thumbnail_url: str | None = None


class QueueJobDetail(msgspec.Struct, frozen=True, kw_only=True):
    """``GET .../jobs/{job_id}``: the job, its payload (decoded JSON, or text), its runs
    and its photo. ``history_complete`` is false once the photo's first events have left
    the client's replay window (``FILMSTRIP_BUS_REPLAY_MAXLEN``, ``_AGE_S``): earlier runs
    are then missing."""

    job: QueueJob
    payload: Any
    runs: list[JobRun]
    history_complete: bool
    photo: JobPhoto | None
    #: The stages this job runs, in order: a ready job's payload lists its pipeline's every
    #: stage, but the deferred ones (optimization) run in its follow-up ``deferred:`` job.
    stages: list[str] = []


class QueueControl(msgspec.Struct, frozen=True, kw_only=True):
    paused: bool


class Health(msgspec.Struct, frozen=True, kw_only=True):
    status: str


class Readiness(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /readyz`` (public): each dependency by name, ``ok`` or ``down``; why one is
    down goes to the log, never to an unauthenticated caller."""

    status: Literal["ready", "unavailable"]
    checks: dict[str, Literal["ok", "down"]]


# --- Resumable uploads (tus, services/api/tus) ----------------------------------------


class TusUploadStatus(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /v1/uploads/{id}``: a tus upload's progress and, once finished, its photo."""

    upload_id: str
    #: ``receiving`` (bytes missing), ``complete`` (all bytes, not yet a photo) or ``done``.
    state: str
    offset: int
    length: int
    expires_at: str
    metadata: dict[str, str]
    photo_id: str | None = None
    duplicate: bool = False
