"""Stand-ins for api endpoints other branches own, so the gallery and dashboard work now.

Replace with the real ones when they land (the lead reconciles): photo listing, delete
and retry, upload sessions, and the queue admin routes. The shapes follow the plan those
branches work to; only what the web pages need is here.
"""

from __future__ import annotations

import base64
import re
import uuid
from typing import Any

import msgspec
import orjson
from aiohttp import web

from filmstrip.catalog import PhotoStatus
from filmstrip.queue import JobInfo, JobState
from protocols.http import Photo
from protocols.jobs import PhotoProcessingJob
from services.api.errors import ApiError
from services.api.json import json_response
from services.api.middleware import client_of
from services.api.photos import photo_body
from services.api.state import state_of

_PHOTO_ID = re.compile(r"^[0-9a-f-]{36}$")
_MAX_LIMIT = 100


class PhotoPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Photo]
    next_cursor: str | None


class SessionCreated(msgspec.Struct, frozen=True, kw_only=True):
    session_id: str


class QueueJob(msgspec.Struct, frozen=True, kw_only=True):
    """A job as the dashboard lists it: the queue's view plus the photo and trace it serves."""

    id: str
    state: str
    attempts: int
    attempts_made: int
    progress: int
    created_at_ms: int
    finished_at_ms: int | None
    error_code: str | None
    error_category: str | None
    error_message: str | None
    photo_id: str | None
    trace_id: str | None


class JobPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[QueueJob]


_job_decoder = msgspec.json.Decoder(PhotoProcessingJob)


def _encode_cursor(key: str, photo_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([key, photo_id])).decode().rstrip("=")


def _decode_cursor(raw: str) -> tuple[str, str]:
    try:
        key, photo_id = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (ValueError, TypeError):
        raise ApiError(400, "bad_cursor", "the cursor is not one this api issued") from None
    if not isinstance(key, str) or not isinstance(photo_id, str):
        raise ApiError(400, "bad_cursor", "the cursor is not one this api issued")
    return key, photo_id


async def list_photos(request: web.Request) -> web.StreamResponse:
    """``GET /v1/photos?cursor=&limit=&status=&session_id=``: newest first, keyset paged."""
    state = state_of(request)
    query = request.query
    try:
        limit = max(1, min(int(query.get("limit", "30")), _MAX_LIMIT))
    except ValueError:
        raise ApiError(400, "bad_limit", "limit must be an integer") from None
    status = query.get("status") or None
    if status is not None and status not in PhotoStatus.ALL:
        raise ApiError(400, "bad_status", f"status must be one of {', '.join(PhotoStatus.ALL)}")
    after = _decode_cursor(query["cursor"]) if query.get("cursor") else None
    rows = await state.catalog.list_photos(
        client_of(request).id,
        limit=limit + 1,
        status=status,
        session_id=query.get("session_id") or None,
        after=after,
    )
    page, more = rows[:limit], len(rows) > limit
    cursor = _encode_cursor(page[-1].uploaded_at, page[-1].id) if more and page else None
    return json_response(PhotoPage(items=[photo_body(state, p) for p in page], next_cursor=cursor))


async def delete_photo(request: web.Request) -> web.StreamResponse:
    """``DELETE /v1/photos/{id}``: the row, its job, its original and its derivatives."""
    state = state_of(request)
    photo_id = request.match_info["photo_id"]
    if not _PHOTO_ID.match(photo_id):
        raise ApiError(404, "photo_not_found", f"no photo {photo_id!r}")
    removed = await state.catalog.delete_photo(photo_id, client_of(request).id)
    if removed is None:
        raise ApiError(404, "photo_not_found", f"no photo {photo_id!r}")
    await state.queue.cancel(removed.job_id)
    await state.queue.remove_failed(removed.job_id)
    await state.blobs.delete(removed.blob_key)
    await state.blobs.delete_prefix(f"derivatives/{photo_id}/")
    return web.Response(status=204)


async def retry_photo(request: web.Request) -> web.StreamResponse:
    """``POST /v1/photos/{id}/retry``: send a failed photo's dead-lettered job round again."""
    state = state_of(request)
    photo_id = request.match_info["photo_id"]
    photo = (
        await state.catalog.get_photo(photo_id, client_of(request).id)
        if _PHOTO_ID.match(photo_id)
        else None
    )
    if photo is None:
        raise ApiError(404, "photo_not_found", f"no photo {photo_id!r}")
    if photo.status != PhotoStatus.FAILED:
        raise ApiError(409, "not_failed", f"the photo is {photo.status}, not failed")
    if not await state.queue.retry_failed(photo.job_id):
        raise ApiError(409, "job_gone", "the failed job is no longer held; upload again")
    await state.catalog.requeue_photo(photo_id)
    return json_response({"photo_id": photo_id, "job_id": photo.job_id, "status": "queued"})


async def create_session(request: web.Request) -> web.StreamResponse:
    """``POST /v1/sessions``: a fresh upload session id for grouping a batch."""
    session_id = uuid.uuid4().hex
    await state_of(request).catalog.create_session(session_id, client_of(request).id)
    return json_response(SessionCreated(session_id=session_id), status=201)


def _require_admin(request: web.Request) -> None:
    if not client_of(request).is_admin:
        raise ApiError(403, "forbidden", "this needs an admin token")


def queue_job(info: JobInfo) -> QueueJob:
    """The dashboard's view of a job (the payload's photo id and trace id decoded)."""
    photo_id = trace_id = None
    if info.payload:
        try:
            spec = _job_decoder.decode(info.payload)
            photo_id, trace_id = spec.photo_id, spec.context.trace_id
        except msgspec.DecodeError:
            pass
    err = info.error
    return QueueJob(
        id=info.id,
        state=str(info.state),
        attempts=info.attempts,
        attempts_made=info.attempts_made,
        progress=info.progress,
        created_at_ms=info.created_at_ms,
        finished_at_ms=info.finished_at_ms,
        error_code=err.code if err else None,
        error_category=err.category if err else None,
        error_message=err.message if err else None,
        photo_id=photo_id,
        trace_id=trace_id,
    )


async def queue_overview(request: web.Request) -> web.StreamResponse:
    """``GET /v1/queues/photo-processing``: counts by state and windowed stats."""
    _require_admin(request)
    queue = state_of(request).queue
    body: dict[str, Any] = {
        "name": queue.options.name,
        "counts": await queue.counts(),
        "stats": await queue.stats(),
    }
    return json_response(body)


async def queue_jobs(request: web.Request) -> web.StreamResponse:
    """``GET /v1/queues/photo-processing/jobs?state=failed&offset=&limit=``."""
    _require_admin(request)
    try:
        state = JobState(request.query.get("state", "failed"))
        offset = int(request.query.get("offset", "0"))
        limit = max(1, min(int(request.query.get("limit", "50")), 200))
    except ValueError:
        raise ApiError(400, "bad_query", "state, offset or limit is not valid") from None
    infos = await state_of(request).queue.list_jobs(state, offset, limit)
    return json_response(JobPage(items=[queue_job(i) for i in infos]))


async def retry_job(request: web.Request) -> web.StreamResponse:
    """``POST /v1/queues/photo-processing/jobs/{job_id}/retry``: a dead letter back to waiting."""
    _require_admin(request)
    state = state_of(request)
    job_id = request.match_info["job_id"]
    info = await state.queue.get_job(job_id)
    if not await state.queue.retry_failed(job_id):
        raise ApiError(404, "job_not_found", f"no failed job {job_id!r}")
    photo_id = queue_job(info).photo_id if info else None
    if photo_id:
        await state.catalog.requeue_photo(photo_id)
    return json_response({"job_id": job_id, "state": "waiting"})


async def remove_job(request: web.Request) -> web.StreamResponse:
    """``DELETE /v1/queues/photo-processing/jobs/{job_id}``: drop a dead letter."""
    _require_admin(request)
    job_id = request.match_info["job_id"]
    if not await state_of(request).queue.remove_failed(job_id):
        raise ApiError(404, "job_not_found", f"no failed job {job_id!r}")
    return web.Response(status=204)


async def pause_queue(request: web.Request) -> web.StreamResponse:
    """``POST /v1/queues/photo-processing/pause``."""
    _require_admin(request)
    await state_of(request).queue.pause()
    return json_response({"paused": True})


async def resume_queue(request: web.Request) -> web.StreamResponse:
    """``POST /v1/queues/photo-processing/resume``."""
    _require_admin(request)
    await state_of(request).queue.resume()
    return json_response({"paused": False})


def add_routes(app: web.Application) -> None:
    """Register the stand-in routes (skipping any that the app already has)."""
    have = {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource}
    base = "/v1/queues/photo-processing"
    table = [
        ("GET", "/v1/photos", list_photos),
        ("DELETE", "/v1/photos/{photo_id}", delete_photo),
        ("POST", "/v1/photos/{photo_id}/retry", retry_photo),
        ("POST", "/v1/sessions", create_session),
        ("GET", base, queue_overview),
        ("GET", f"{base}/jobs", queue_jobs),
        ("POST", f"{base}/jobs/{{job_id}}/retry", retry_job),
        ("DELETE", f"{base}/jobs/{{job_id}}", remove_job),
        ("POST", f"{base}/pause", pause_queue),
        ("POST", f"{base}/resume", resume_queue),
    ]
    for method, path, handler in table:
        if (method, path) not in have:
            app.router.add_route(method, path, handler)
