"""Queue administration (``/v1/queues/photo-processing``): counts, stats, jobs by state,
one job's detail, retry, removal, pause and resume. Admin tokens only; everyone else gets
403."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from filmstrip.catalog import PhotoStatus
from filmstrip.errors import LogicError
from filmstrip.photos import decode_job
from filmstrip.photos.jobs import split_stages
from filmstrip.protocols.http import (
    PAGE_SIZE_DEFAULT,
    PAGE_SIZE_MAX,
    JobFailure,
    JobPhoto,
    QueueControl,
    QueueCounts,
    QueueJob,
    QueueJobDetail,
    QueueJobPage,
    QueueOverview,
    QueueWindows,
    RetryAccepted,
)
from filmstrip.protocols.jobs import PhotoProcessingJob
from filmstrip.queue import JobInfo, JobState
from filmstrip.services.api.errors import ApiError
from filmstrip.services.api.ids import photo_of_job
from filmstrip.services.api.job_history import history_complete, job_runs, photo_events
from filmstrip.services.api.json import json_response
from filmstrip.services.api.listing import parse_limit
from filmstrip.services.api.middleware import client_of
from filmstrip.services.api.photos import thumbnail_url
from filmstrip.services.api.state import ApiState, state_of

QUEUE_PATH = "/v1/queues/photo-processing"
# ``retrying``: jobs whose last run failed and that will run again (running again now, or
# waiting out their backoff); ``failed`` ones are dead-lettered, failed for good.
RETRYING = "retrying"
_STATES = (*(s.value for s in JobState), RETRYING)
_NO_STORE = {"Cache-Control": "no-store"}
# Redis ranges are 64-bit; far below that, and far beyond any real backlog.
MAX_OFFSET = 1_000_000_000
# Jobs read per call while looking for retrying ones.
_SCAN = 200


def _admin_state(request: web.Request) -> ApiState:
    if not client_of(request).is_admin:
        raise ApiError(403, "forbidden", "queue administration needs an admin token")
    return state_of(request)


async def queue_overview(request: web.Request) -> web.StreamResponse:
    """``GET``: jobs per state, paused or not, and throughput over 1 h, 24 h and 7 d."""
    state = _admin_state(request)
    counts = await state.queue.counts()
    stats = await state.queue.stats()
    body = QueueOverview(
        name=state.settings.queue.name,
        paused=bool(counts["paused"]),
        # The queue's own figures, field for field.
        counts=msgspec.convert(counts, QueueCounts),
        stats=msgspec.convert(stats, QueueWindows, from_attributes=True),
    )
    return json_response(body, headers=_NO_STORE)


async def list_jobs(request: web.Request) -> web.StreamResponse:
    """``GET .../jobs?state=failed&offset=0&limit=50``: one page of jobs in a state."""
    state = _admin_state(request)
    job_state = request.query.get("state", JobState.FAILED.value)
    if job_state not in _STATES:
        raise ApiError(400, "bad_state", f"state must be one of {', '.join(_STATES)}")
    limit = parse_limit(
        request.query.get("limit"), default=PAGE_SIZE_DEFAULT, maximum=PAGE_SIZE_MAX
    )
    try:
        offset = int(request.query.get("offset") or 0)
    except ValueError:
        offset = -1
    if not 0 <= offset <= MAX_OFFSET:
        raise ApiError(400, "bad_offset", f"offset must be an integer from 0 to {MAX_OFFSET}")
    if job_state == RETRYING:
        infos = await _retrying(state, offset, limit + 1)
    else:
        infos = await state.queue.list_jobs(JobState(job_state), offset, limit + 1)
    more = len(infos) > limit
    body = QueueJobPage(
        items=[_job_view(i) for i in infos[:limit]],
        offset=offset,
        limit=limit,
        next_offset=offset + limit if more else None,
    )
    return json_response(body, headers=_NO_STORE)


async def _retrying(state: ApiState, offset: int, limit: int) -> list[JobInfo]:
    """Running and delayed jobs carrying an error (a failed run before), running first,
    then by when they run again."""
    found: list[JobInfo] = []
    for job_state in (JobState.ACTIVE, JobState.DELAYED):
        start = 0
        while len(found) < offset + limit:
            chunk = await state.queue.list_jobs(job_state, start, _SCAN)
            found += [i for i in chunk if i.error is not None]
            if len(chunk) < _SCAN:
                break
            start += _SCAN
    return found[offset : offset + limit]


async def get_job(request: web.Request) -> web.StreamResponse:
    """``GET .../jobs/{job_id}``: the job, its payload, its runs and its photo."""
    state = _admin_state(request)
    job_id = request.match_info["job_id"]
    info = await state.queue.get_job(job_id)
    if info is None:
        raise ApiError(404, "job_not_found", f"no job {job_id!r}")
    spec = _spec_of(info.payload)
    runs, complete, photo, stages = [], False, None, []
    if spec is not None:
        events = await photo_events(state.redis, spec.context.client_id, spec.photo_id)
        # A ready job's deferred stages are its follow-up job's runs, not its own.
        own = split_stages(state.settings, spec)[0] if spec.pipeline.phase == "ready" else None
        stages = own if own is not None else list(spec.pipeline.stages)
        runs = job_runs(info, spec, events, stages)
        complete = history_complete(events)
        record = await state.catalog.get_photo(spec.photo_id)
        if record is not None:
            photo = JobPhoto(
                photo_id=record.id,
                client_id=record.client_id,
                status=record.status,
                uploaded_at=record.uploaded_at,
                error=record.processing_error,
                error_category=record.error_category,
                filename=record.filename,
                thumbnail_url=thumbnail_url(state, record),
            )
    body = QueueJobDetail(
        job=_job_view(info),
        payload=_payload_of(info.payload),
        runs=runs,
        history_complete=complete,
        photo=photo,
        stages=stages,
    )
    return json_response(body, headers=_NO_STORE)


async def retry_job(request: web.Request) -> web.StreamResponse:
    """``POST .../jobs/{job_id}/retry``: a failed job back to waiting, its photo to queued."""
    state = _admin_state(request)
    job_id = request.match_info["job_id"]
    info = await state.queue.get_job(job_id)
    if info is None or info.state is not JobState.FAILED:
        raise ApiError(404, "job_not_found", f"no failed job {job_id!r}")
    photo_id = photo_of_job(job_id)
    photo = await state.catalog.get_photo(photo_id) if photo_id else None
    await state.photos.retry(job_id, photo)
    body = RetryAccepted(photo_id=photo_id, job_id=job_id, status=PhotoStatus.QUEUED)
    return json_response(body, status=202)


async def remove_job(request: web.Request) -> web.StreamResponse:
    """``DELETE .../jobs/{job_id}``: forget a failed job (its photo stays failed)."""
    state = _admin_state(request)
    job_id = request.match_info["job_id"]
    if not await state.queue.remove_failed(job_id):
        raise ApiError(404, "job_not_found", f"no failed job {job_id!r}")
    return web.Response(status=204)


async def pause(request: web.Request) -> web.StreamResponse:
    """``POST .../pause``: workers take no new jobs; running ones finish."""
    state = _admin_state(request)
    await state.queue.pause()
    return json_response(QueueControl(paused=True))


async def resume(request: web.Request) -> web.StreamResponse:
    """``POST .../resume``: workers take jobs again."""
    state = _admin_state(request)
    await state.queue.resume()
    return json_response(QueueControl(paused=False))


class _TraceOnly(msgspec.Struct):
    photo_id: str | None = None
    context: dict[str, object] = msgspec.field(default_factory=dict)


_decode_trace = msgspec.json.Decoder(_TraceOnly).decode


def _spec_of(payload: bytes) -> PhotoProcessingJob | None:
    """The photo job a payload holds (None for anything else)."""
    try:
        return decode_job(payload)
    except LogicError:
        return None


def _payload_of(payload: bytes) -> Any:
    """A payload as JSON, or as text when it is not JSON."""
    try:
        return msgspec.json.decode(payload)
    except msgspec.DecodeError:
        return payload.decode("utf-8", "replace")


def _job_view(info: JobInfo) -> QueueJob:
    # The photo and trace a job carries; a payload that is not a photo job has neither.
    try:
        head = _decode_trace(info.payload)
    except (msgspec.DecodeError, msgspec.ValidationError):
        head = _TraceOnly()
    trace = head.context.get("trace_id")
    return QueueJob(
        job_id=info.id,
        photo_id=head.photo_id or photo_of_job(info.id),
        trace_id=trace if isinstance(trace, str) else None,
        state=info.state.value,
        priority=info.priority,
        attempts=info.attempts,
        attempts_made=info.attempts_made,
        progress=info.progress,
        created_at_ms=info.created_at_ms,
        processed_at_ms=info.processed_at_ms,
        finished_at_ms=info.finished_at_ms,
        delayed_until_ms=info.delayed_until_ms,
        error=msgspec.convert(info.error, JobFailure, from_attributes=True) if info.error else None,
    )
