"""``GET /v1/photos``: the client's photos, newest first, in keyset (cursor) pages.

Keyset paging on ``(sort key, id)`` is stable under concurrent inserts: a new upload sorts
before every page already served, so no photo is skipped or served twice while paging.
"""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from filmstrip.catalog import PhotoRecord, PhotoStatus
from filmstrip.catalog.base import taken_sort_key
from filmstrip.protocols.http import PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX, PhotoPage
from filmstrip.services.api.accept import check_session
from filmstrip.services.api.cursors import BadCursor, decode_cursor, encode_cursor
from filmstrip.services.api.errors import ApiError
from filmstrip.services.api.ids import SESSION_ID
from filmstrip.services.api.json import json_response
from filmstrip.services.api.middleware import client_of
from filmstrip.services.api.photos import photo_body
from filmstrip.services.api.state import state_of

SORTS = ("uploaded", "taken")
# A file name is at most 255 bytes (services/api/filenames.py): a longer q matches nothing.
MAX_QUERY = 255


async def list_photos(request: web.Request) -> web.StreamResponse:
    """One page of the caller's photos, filtered and sorted by the query."""
    state = state_of(request)
    client = client_of(request)
    query = request.query
    limit = parse_limit(query.get("limit"), default=PAGE_SIZE_DEFAULT, maximum=PAGE_SIZE_MAX)
    sort = query.get("sort", "uploaded")
    if sort not in SORTS:
        raise ApiError(400, "bad_sort", "sort must be 'uploaded' or 'taken'")
    status = query.get("status") or None
    if status is not None and status not in PhotoStatus.ALL:
        raise ApiError(400, "bad_status", f"status must be one of {', '.join(PhotoStatus.ALL)}")
    session_id = query.get("session_id") or None
    if session_id is not None and not SESSION_ID.match(session_id):
        raise ApiError(400, "bad_session_id", "session_id must be 1-64 of [A-Za-z0-9_-]")
    q = query.get("q") or None
    if q is not None and len(q) > MAX_QUERY:
        raise ApiError(400, "bad_query", f"q must be at most {MAX_QUERY} characters")
    after = None
    if cursor := query.get("cursor"):
        try:
            after = decode_cursor(cursor, sort)
        except BadCursor as exc:
            raise ApiError(400, "bad_cursor", str(exc)) from None

    # One extra row tells whether another page exists without a second query.
    rows = await state.catalog.list_photos(
        client.id,
        limit=limit + 1,
        status=status,
        session_id=session_id,
        taken_after=_taken_bound(query.get("taken_after"), "taken_after"),
        taken_before=_taken_bound(query.get("taken_before"), "taken_before"),
        sort=sort,
        after=after,
        filename_contains=q,
    )
    if not rows and session_id is not None:
        # Another client's or an unknown session is 404, as on every route. A page with
        # rows proves the session is the client's (a photo only joins its client's own
        # sessions), so only an empty one costs the lookup.
        await check_session(state, client, session_id)
    page, more = rows[:limit], len(rows) > limit
    next_cursor = encode_cursor(sort, _sort_key(page[-1], sort), page[-1].id) if more else None
    body = PhotoPage(items=[photo_body(state, p) for p in page], next_cursor=next_cursor)
    return json_response(body, headers={"Cache-Control": "no-store"})


def parse_limit(raw: str | None, *, default: int, maximum: int) -> int:
    """A ``limit`` query value in 1..maximum; 400 ``bad_limit`` otherwise."""
    if raw is None or raw == "":
        return default
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= maximum:
        raise ApiError(400, "bad_limit", f"limit must be an integer from 1 to {maximum}")
    return limit


def _sort_key(photo: PhotoRecord, sort: str) -> str:
    return taken_sort_key(photo) if sort == "taken" else photo.uploaded_at


def _taken_bound(raw: str | None, name: str) -> str | None:
    """An ISO date or date-time as the catalog compares ``taken_at``, the camera's wall-clock
    time (EXIF rarely says which zone): by its wall-clock digits, any offset ignored."""
    if raw is None or raw == "":
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise ApiError(
            400, "bad_date", f"{name} must be an ISO 8601 date or date-time, e.g. 2024-05-31"
        ) from None
    return moment.replace(tzinfo=None).isoformat()
