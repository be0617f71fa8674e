"""Sending a failed photo back to the queue: by its owner, or by an admin by job id."""

from __future__ import annotations

from aiohttp import web
from redis.exceptions import RedisError

from filmstrip.catalog import PhotoRecord, PhotoStatus
from filmstrip.errors import Category, FilmstripError
from filmstrip.events import completion_once_key, forget_once
from protocols.http import RetryAccepted
from services.api.errors import ApiError
from services.api.ids import PHOTO_ID
from services.api.jobs import build_job, encode_job
from services.api.json import json_response
from services.api.middleware import client_of
from services.api.state import ApiState, state_of


async def retry_photo(request: web.Request) -> web.StreamResponse:
    """``POST /v1/photos/{id}/retry``: 202 when a failed photo is queued again; 409 when it
    has not failed; 404 when the caller has no such photo."""
    state = state_of(request)
    photo_id = request.match_info["photo_id"]
    photo = None
    if PHOTO_ID.match(photo_id):
        photo = await state.catalog.get_photo(photo_id, client_of(request).id)
    if photo is None:
        raise ApiError(404, "photo_not_found", f"no photo {photo_id!r}")
    if photo.status != PhotoStatus.FAILED:
        raise ApiError(
            409, "not_failed", f"the photo is {photo.status}; only a failed photo is retried"
        )
    await send_back(state, photo.job_id, photo)
    body = RetryAccepted(photo_id=photo.id, job_id=photo.job_id, status=PhotoStatus.QUEUED)
    return json_response(body, status=202, headers={"Location": f"/v1/photos/{photo.id}"})


async def send_back(state: ApiState, job_id: str, photo: PhotoRecord | None) -> None:
    """Mark the photo queued, then revive its dead-lettered job (or add a fresh one).

    The row changes first so a worker that takes the job at once finds it queued; if the
    queue then fails, the row is restored, because a ``queued`` photo whose job sits in
    the failed set is one the reconciler would never repair.
    """
    if photo is not None:
        await state.catalog.requeue_photo(photo.id)
    try:
        if photo is not None:
            # The failure was announced under the photo's once-key; the retry's outcome
            # must be announced too.
            await forget_once(state.redis, photo.client_id, completion_once_key(photo.id))
        revived = await state.queue.retry_failed(job_id)
        if not revived and photo is not None:
            # The dead letter is gone (removed by an admin, or trimmed): enqueue afresh.
            job = build_job(state.settings, photo)
            await state.queue.add(job.id, encode_job(job), priority=job.pipeline.priority)
    except (FilmstripError, RedisError):
        if photo is not None:
            await state.catalog.fail_photo(
                photo.id,
                error=photo.processing_error or "retry failed",
                category=photo.error_category or Category.TEMPORARY,
            )
        raise
