"""Recording an accepted file as a photo: shared by ``POST /v1/photos`` and tus uploads.

The caller has already written the original to the blob store. From here: dedupe by
SHA-256, then the photo's lifecycle records it (``PhotoLifecycle.accept``: the row and its
outbox entry in one transaction, the ``photo.uploaded`` event, an enqueue attempt).
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from aiohttp import web
from redis.exceptions import MaxConnectionsError, RedisError

from filmstrip.catalog import (
    ClientRecord,
    DuplicatePhoto,
    PhotoRecord,
    PhotoStatus,
    QuotaExceeded,
    utcnow,
)
from filmstrip.errors import FilmstripError
from filmstrip.protocols.http import UploadAccepted
from filmstrip.protocols.jobs import job_id_for
from filmstrip.services.api.backlog import TOTAL_LIMIT_FACTOR
from filmstrip.services.api.choices import UploadChoices
from filmstrip.services.api.errors import ApiError
from filmstrip.services.api.ids import SESSION_ID
from filmstrip.services.api.json import json_response
from filmstrip.services.api.quota import quota_exceeded
from filmstrip.services.api.state import ApiState

log = logging.getLogger("filmstrip.api.uploads")


def new_photo_id() -> str:
    """A fresh photo id."""
    return str(uuid.uuid4())


def original_key(photo_id: str) -> str:
    """The blob key of a photo's original."""
    return f"originals/{photo_id}"


def unsupported_type() -> ApiError:
    """The 415 for bytes that are not a photo we take."""
    return ApiError(
        415,
        "unsupported_type",
        "the file is not a supported photo (JPEG, PNG, WebP, GIF, TIFF, HEIC/HEIF or AVIF);"
        " the type is read from the file's bytes, not its name",
    )


async def check_session(state: ApiState, client: ClientRecord, session_id: str | None) -> None:
    """Raise unless ``session_id`` is absent or an upload session of this client."""
    if session_id is None:
        return
    if not SESSION_ID.match(session_id):
        raise ApiError(400, "bad_session_id", "session_id must be 1-64 of [A-Za-z0-9_-]")
    if await state.catalog.get_session(session_id, client.id) is None:
        raise ApiError(404, "session_not_found", f"no upload session {session_id!r}")


async def check_capacity(state: ApiState) -> None:
    """Refuse before reading a body when the queue is unreachable or too deep (503)."""
    settings = state.settings
    # Only the bands new uploads wait in count against the limit (TOTAL_LIMIT_FACTOR).
    limit, bands = settings.queue.max_waiting, 10
    jobs = settings.jobs
    if jobs.defer_optimization and settings.queue.priority < jobs.deferred_priority:
        bands = jobs.deferred_priority - 1
    try:
        ahead, total = await state.backlog.read(state.queue, bands, limit)
    except MaxConnectionsError:
        raise  # the process is busy, the queue may be fine: 503 server_busy
    except (FilmstripError, RedisError) as exc:
        raise ApiError(
            503,
            "queue_unavailable",
            "the job queue is unreachable; try again shortly",
            headers={"Retry-After": "5"},
        ) from exc
    if ahead >= limit or total >= TOTAL_LIMIT_FACTOR * limit:
        raise ApiError(
            503,
            "queue_full",
            f"{ahead} photos are waiting to be processed; try again shortly",
            headers={"Retry-After": "30"},
        )


async def accept_photo(
    state: ApiState,
    *,
    client: ClientRecord,
    trace_id: str,
    photo_id: str,
    blob_key: str,
    content_type: str,
    size: int,
    sha256: str,
    session_id: str | None,
    filename: str | None = None,
    choices: UploadChoices | None = None,
) -> UploadAccepted:
    """Record the stored original ``blob_key`` as a photo (or answer the duplicate).

    On a duplicate the new blob is deleted and ``duplicate`` is set (the photo keeps the
    name it was first sent with); the caller deletes the blob if this raises.
    """
    settings = state.settings
    await check_session(state, client, session_id)

    record = PhotoRecord(
        id=photo_id,
        client_id=client.id,
        session_id=session_id,
        blob_key=blob_key,
        content_type=content_type,
        bytes=size,
        sha256=sha256,
        status=PhotoStatus.QUEUED,
        job_id=job_id_for(photo_id),
        trace_id=trace_id,
        uploaded_at=utcnow(),
        filename=filename,
        pipeline=choices.pipeline if choices else None,
        priority=choices.priority if choices else None,
    )
    try:
        job_id, queued = await state.photos.accept(
            record, quota_bytes=settings.api.client_quota_bytes
        )
    except QuotaExceeded as exc:  # the final check, as the photo is recorded
        raise quota_exceeded(exc.quota, exc.stored) from None
    except DuplicatePhoto as exc:
        # The catalog keeps one photo per client and bytes (recorded before, or by an
        # upload racing this one on any api host).
        first = await state.catalog.get_photo(exc.photo_id, client.id)
        if first is None:  # deleted meanwhile: sent again, this upload is recorded
            raise ApiError(
                409, "upload_conflict", "a photo of these bytes was deleted meanwhile; send again"
            ) from None
        await delete_quietly(state, blob_key)
        return duplicate_of(first)
    if not queued:
        # Redis failed: the next upload asks it again, and is refused while it is down.
        state.backlog.forget()
    log.info("photo accepted", extra={"photo_id": photo_id, "bytes": size})
    return UploadAccepted(photo_id=photo_id, job_id=job_id, status=PhotoStatus.QUEUED)


def duplicate_of(photo: PhotoRecord) -> UploadAccepted:
    """The answer to an upload of bytes the client already has as ``photo``."""
    return UploadAccepted(
        photo_id=photo.id, job_id=photo.job_id, status=photo.status, duplicate=True
    )


def accepted_response(body: UploadAccepted) -> web.Response:
    """201 for a new photo, 200 for a duplicate, with the photo's URL in ``Location``."""
    return json_response(
        body,
        status=200 if body.duplicate else 201,
        headers={"Location": f"/v1/photos/{body.photo_id}"},
    )


async def discard_unrecorded(state: ApiState, photo_id: str, blob_key: str) -> None:
    """After an upload failed or was cancelled: delete its original unless its photo row
    was committed, which a cancellation (the server stopping) can follow. When that
    cannot be checked, the blob stays for the orphan sweep: a photo must never lose it."""
    try:
        recorded = await state.catalog.get_photo(photo_id) is not None
    except (FilmstripError, asyncio.CancelledError):
        log.warning("kept blob %s: could not check for its photo", blob_key)
        return
    if not recorded:
        await delete_quietly(state, blob_key)


async def delete_quietly(state: ApiState, key: str) -> None:
    """Delete a blob; on failure log it (the reconciler sweeps blobs without a row)."""
    try:
        await state.blobs.delete(key)
    except FilmstripError as exc:
        log.warning("could not delete blob %s: %s", key, exc)
