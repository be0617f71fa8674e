"""``POST /v1/photos/{id}/retry``: the owner sends a failed photo back to the queue."""

from __future__ import annotations

from aiohttp import web

from filmstrip.catalog import PhotoStatus
from filmstrip.photos.failures import error_of
from filmstrip.protocols.http import RetryAccepted
from filmstrip.services.api.errors import ApiError
from filmstrip.services.api.ids import PHOTO_ID
from filmstrip.services.api.json import json_response
from filmstrip.services.api.middleware import client_of
from filmstrip.services.api.state import state_of


async def retry_photo(request: web.Request) -> web.StreamResponse:
    """``POST /v1/photos/{id}/retry``: 202 when a failed photo is queued again; 409 when it
    has not failed or failed for a reason a retry cannot help (``not_retryable``: a
    DATA failure); 404 when the caller has no such photo."""
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
    error = error_of(photo)
    if error is not None and not error.retryable:
        raise ApiError(
            409,
            "not_retryable",
            f"the photo failed with {error.code} ({error.category}: the file itself is at "
            "fault); a retry would fail the same way",
        )
    await state.photos.retry(photo.job_id, photo)
    body = RetryAccepted(photo_id=photo.id, job_id=photo.job_id, status=PhotoStatus.QUEUED)
    return json_response(body, status=202, headers={"Location": f"/v1/photos/{photo.id}"})
