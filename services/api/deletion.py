"""``DELETE /v1/photos/{id}``: the row, the original, every derivative and a waiting job.

The row goes first, in one transaction with its outbox entry: once it is gone every other
party treats what remains as garbage (the worker discards a job for a missing photo and
removes derivatives it wrote meanwhile; the reconciler sweeps blobs without a row). So a
failure after that point still ends clean, and the caller gets 204. Right after the commit
``photo.deleted`` goes to the client's room (``PhotoLifecycle.deleted``), so its other
devices drop the photo.
"""

from __future__ import annotations

import logging

from aiohttp import web
from redis.exceptions import RedisError

from filmstrip.errors import FilmstripError
from filmstrip.services.api.errors import ApiError
from filmstrip.services.api.ids import PHOTO_ID
from filmstrip.services.api.middleware import client_of
from filmstrip.services.api.state import state_of

log = logging.getLogger("filmstrip.api.deletion")


async def delete_photo(request: web.Request) -> web.StreamResponse:
    """204 when deleted; 404 when there is no such photo for this client (a repeat call
    included: deletion is idempotent in effect, and the 404 tells the caller it is done)."""
    state = state_of(request)
    photo_id = request.match_info["photo_id"]
    removed = None
    if PHOTO_ID.match(photo_id):
        removed = await state.catalog.delete_photo(photo_id, client_of(request).id)
    if removed is None:
        raise ApiError(404, "photo_not_found", f"no photo {photo_id!r}")
    extra = {"photo_id": photo_id, "trace_id": removed.trace_id}
    await state.photos.deleted(removed)

    try:
        # Only a waiting or delayed job is removed; an active one finds no row and stops.
        await state.queue.cancel(removed.job_id)
    except (FilmstripError, RedisError) as exc:
        log.warning("job not cancelled; the worker will discard it: %s", exc, extra=extra)

    try:
        await state.blobs.delete(removed.blob_key)
        await state.blobs.delete_prefix(f"derivatives/{photo_id}/")
    except FilmstripError as exc:
        log.warning("blobs not deleted; the reconciler will sweep them: %s", exc, extra=extra)
    log.info("photo deleted", extra=extra)
    return web.Response(status=204)
