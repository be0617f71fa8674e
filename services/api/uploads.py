"""``POST /v1/photos``: stream a multipart upload to the blob store, record it, queue it.

Order matters for "nothing lost, nothing half-written": the blob is written first (atomic,
removed again on any later failure), then the photo row and its outbox entry in one
transaction, then the job is enqueued (the outbox relay retries if Redis fails here).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import AsyncIterator

from aiohttp import BodyPartReader, MultipartReader, web

from filmstrip.blobs import BlobTooLarge
from filmstrip.pipeline import sniff_format
from protocols.http import UploadAccepted
from services.api.accept import (
    CONTENT_TYPES,
    SNIFF_BYTES,
    accept_photo,
    accepted_response,
    check_capacity,
    delete_quietly,
    new_photo_id,
    original_key,
    unsupported_type,
)
from services.api.errors import ApiError
from services.api.middleware import client_of, trace_id_of
from services.api.state import state_of

log = logging.getLogger("filmstrip.api.uploads")

_CHUNK = 256 * 1024
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


async def upload_photo(request: web.Request) -> web.StreamResponse:
    """Accept one photo; 201 with its id and job, or 200 if the client already has it."""
    state = state_of(request)
    client = client_of(request)
    settings = state.settings

    await check_capacity(state)

    declared = request.headers.get("X-Content-SHA256", "").strip().lower()
    if declared:
        if not _SHA256.match(declared):
            raise ApiError(400, "bad_checksum", "X-Content-SHA256 must be 64 hex digits")
        existing = await state.catalog.find_by_sha256(client.id, declared)
        if existing is not None:
            return accepted_response(
                UploadAccepted(
                    photo_id=existing.id,
                    job_id=existing.job_id,
                    status=existing.status,
                    duplicate=True,
                )
            )

    if request.content_length is not None and request.content_length > (
        settings.max_upload_bytes + 64 * 1024
    ):
        raise ApiError(413, "too_large", _too_large_message(settings.max_upload_bytes))
    if not request.content_type.startswith("multipart/form-data"):
        raise ApiError(
            400, "not_multipart", "send the photo as multipart/form-data with a 'file' field"
        )

    reader = await request.multipart()
    part, fields = await _fields_until_file(reader)
    if part is None:
        raise ApiError(400, "missing_file", "the multipart body has no 'file' field")
    session_id = fields.get("session_id") or request.query.get("session_id") or None

    first = await part.read_chunk(_CHUNK)
    while len(first) < SNIFF_BYTES:
        more = await part.read_chunk(_CHUNK)
        if not more:
            break
        first += more
    if not first:
        raise ApiError(400, "empty_file", "the uploaded file is empty")
    fmt = sniff_format(first[:SNIFF_BYTES])
    if fmt is None:
        raise unsupported_type()
    content_type = CONTENT_TYPES[fmt]

    photo_id = new_photo_id()
    blob_key = original_key(photo_id)
    digest = hashlib.sha256()
    size = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal size
        chunk = first
        while chunk:
            digest.update(chunk)
            size += len(chunk)
            yield chunk
            chunk = await part.read_chunk(_CHUNK)

    try:
        await state.blobs.put_stream(
            blob_key, chunks(), content_type=content_type, max_bytes=settings.max_upload_bytes
        )
    except BlobTooLarge:
        raise ApiError(413, "too_large", _too_large_message(settings.max_upload_bytes)) from None

    # Anything after the file part (e.g. session_id) is read now; the blob must not outlive
    # a failure from here on.
    try:
        trailing = await _trailing_fields(reader)
        session_id = trailing.get("session_id") or session_id
        if declared and declared != digest.hexdigest():
            # The client said what it sent; what arrived differs (a proxy or a bug mangled it).
            raise ApiError(
                400, "checksum_mismatch", "the file's SHA-256 differs from X-Content-SHA256"
            )
        accepted = await accept_photo(
            state,
            client=client,
            trace_id=trace_id_of(request),
            photo_id=photo_id,
            blob_key=blob_key,
            content_type=content_type,
            size=size,
            sha256=digest.hexdigest(),
            session_id=session_id,
        )
    except BaseException:
        await delete_quietly(state, blob_key)
        raise
    return accepted_response(accepted)


async def _fields_until_file(
    reader: MultipartReader,
) -> tuple[BodyPartReader | None, dict[str, str]]:
    """Small fields up to the ``file`` part, and that part (None once the body ends)."""
    fields: dict[str, str] = {}
    while True:
        part = await reader.next()
        if part is None:
            return None, fields
        if not isinstance(part, BodyPartReader):
            raise ApiError(400, "bad_multipart", "nested multipart bodies are not supported")
        if part.name == "file":
            return part, fields
        if part.name == "session_id":
            fields["session_id"] = await _small_field(part)
        else:
            await part.release()


async def _trailing_fields(reader: MultipartReader) -> dict[str, str]:
    part, fields = await _fields_until_file(reader)
    if part is not None:
        raise ApiError(400, "too_many_files", "send one 'file' per request")
    return fields


async def _small_field(part: BodyPartReader) -> str:
    data = await part.read_chunk(1024)
    if await part.read_chunk(1):
        raise ApiError(400, "field_too_large", f"field {part.name!r} is too large")
    try:
        return data.decode().strip()
    except UnicodeDecodeError:
        raise ApiError(400, "bad_field", f"field {part.name!r} is not UTF-8") from None


def _too_large_message(limit: int) -> str:
    return f"the file is larger than the limit of {limit} bytes"
