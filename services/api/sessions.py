"""Upload sessions: a client groups uploads (``session_id`` on each) and follows them."""

from __future__ import annotations

import uuid
from collections import Counter

from aiohttp import web

from filmstrip.catalog import PhotoStatus
from filmstrip.protocols.http import Session, SessionCounts, SessionCreated
from filmstrip.services.api.errors import ApiError
from filmstrip.services.api.ids import SESSION_ID
from filmstrip.services.api.json import json_response
from filmstrip.services.api.middleware import client_of
from filmstrip.services.api.state import state_of


async def create_session(request: web.Request) -> web.StreamResponse:
    """``POST /v1/sessions``: a new, empty session owned by the caller."""
    state = state_of(request)
    record = await state.catalog.create_session(str(uuid.uuid4()), client_of(request).id)
    body = SessionCreated(session_id=record.id, created_at=record.created_at)
    return json_response(body, status=201, headers={"Location": f"/v1/sessions/{record.id}"})


async def get_session(request: web.Request) -> web.StreamResponse:
    """``GET /v1/sessions/{id}``: photo counts by status and the photo ids, oldest first;
    another client's session is 404, exactly like a missing one."""
    state = state_of(request)
    session_id = request.match_info["session_id"]
    record = None
    if SESSION_ID.match(session_id):
        record = await state.catalog.get_session(session_id, client_of(request).id)
    if record is None:
        raise ApiError(404, "session_not_found", f"no upload session {session_id!r}")
    photos = await state.catalog.session_photos(record.id)
    by_status = Counter(status for _, status in photos)
    counts = SessionCounts(
        queued=by_status[PhotoStatus.QUEUED],
        processing=by_status[PhotoStatus.PROCESSING],
        completed=by_status[PhotoStatus.COMPLETED],
        failed=by_status[PhotoStatus.FAILED],
        total=len(photos),
    )
    body = Session(
        session_id=record.id,
        created_at=record.created_at,
        counts=counts,
        photo_ids=[photo_id for photo_id, _ in photos],
    )
    return json_response(body, headers={"Cache-Control": "no-store"})
