"""``POST /v1/photos``: stream a multipart upload to the blob store, record it, queue it.

Order matters for "nothing lost, nothing half-written": the blob is written first (atomic,
removed again on any later failure), then the photo row and its outbox entry in one
transaction, then the job is enqueued (the outbox relay retries if Redis fails here).
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from filmstrip.blobs import BlobTooLarge
from filmstrip.compat.aiohttp import default_expect_handler, refusal_reason
from filmstrip.errors import LogicError
from filmstrip.protocols.formats import CONTENT_TYPES, SNIFF_BYTES, sniff_format
from filmstrip.services.api import quota
from filmstrip.services.api.accept import (
    accept_photo,
    accepted_response,
    check_capacity,
    discard_unrecorded,
    duplicate_of,
    new_photo_id,
    original_key,
    unsupported_type,
)
from filmstrip.services.api.choices import FIELDS as CHOICE_FIELDS
from filmstrip.services.api.choices import upload_choices
from filmstrip.services.api.errors import ApiError
from filmstrip.services.api.filenames import multipart_filename
from filmstrip.services.api.middleware import client_of, trace_id_of
from filmstrip.services.api.pacing import BodyPace
from filmstrip.services.api.state import state_of

log = logging.getLogger("filmstrip.api.uploads")

_CHUNK = 256 * 1024
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_FIELD_MAX = 1024
_IGNORED_FIELD_MAX = 64 * 1024
_MAX_FIELDS = 16
# What a multipart body may hold beside its file (boundaries, part headers, small fields).
_MULTIPART_SLACK = 64 * 1024
_FORM_FIELDS = ("session_id", *CHOICE_FIELDS)

T = TypeVar("T")


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
            return accepted_response(duplicate_of(existing))

    if request.content_length is not None and request.content_length > (
        settings.api.max_upload_bytes + _MULTIPART_SLACK
    ):
        raise ApiError(413, "too_large", _too_large_message(settings.api.max_upload_bytes))
    # The raw header, not request.content_type: aiohttp parses that with the email package,
    # a tenth of the handler's own CPU for an upload.
    media_type = request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    if media_type != "multipart/form-data":
        raise ApiError(
            400, "not_multipart", "send the photo as multipart/form-data with a 'file' field"
        )

    if request.headers.get("Content-Encoding", "identity").strip().lower() not in ("", "identity"):
        # aiohttp would inflate it before the size checks see it (a decompression bomb),
        # and a bad stream surfaces as a plain-text 400 from under the handler.
        raise ApiError(415, "unsupported_encoding", "send the upload without a Content-Encoding")

    # Before the body: a client at its quota is refused at once; otherwise the file may be
    # no larger than its room (the final check is where the photo is recorded).
    room = await quota.room(state, client)
    cap = settings.api.max_upload_bytes
    limit = cap if room is None else min(room, cap)
    pace = BodyPace.from_settings(settings)
    try:
        reader = await request.multipart()
    except ValueError as exc:
        raise _malformed(exc) from None
    part, fields = await _fields_until_file(reader, pace)
    if part is None:
        raise ApiError(400, "missing_file", "the multipart body has no field named 'file'")
    if part.name != "file":
        # Refused before its bytes are read, whatever their size: the mistake is the
        # field's name, and reading the file only to drop it would hide that.
        raise ApiError(
            400,
            "missing_file",
            f"the file came in a field named {part.name!r}; send it in a field named 'file'",
        )
    session_id = fields.get("session_id") or request.query.get("session_id") or None
    # Choices sent ahead of the file are refused before any of its bytes are stored.
    upload_choices(settings, client, fields)

    first = await _parse(pace, part.read_chunk(_CHUNK))
    while len(first) < SNIFF_BYTES:
        more = await _parse(pace, part.read_chunk(_CHUNK))
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

    async def chunks() -> AsyncIterator[bytes]:
        chunk = first
        while chunk:
            # Every byte counts towards the average, those read to sniff the type too.
            pace.received(len(chunk))
            yield chunk
            chunk = await _parse(pace, part.read_chunk(_CHUNK))

    try:
        # The store hashes what it writes: hashing here too cost a 3 MB upload ~2 ms more.
        stored = await state.blobs.put_stream(
            blob_key, chunks(), content_type=content_type, max_bytes=limit
        )
    except BlobTooLarge:
        if limit < settings.api.max_upload_bytes:
            raise quota.quota_exceeded(
                settings.api.client_quota_bytes, settings.api.client_quota_bytes - limit
            ) from None
        raise ApiError(413, "too_large", _too_large_message(cap)) from None

    # Anything after the file part (e.g. session_id) is read now; the blob must not outlive
    # a failure from here on.
    try:
        trailing = await _trailing_fields(reader, pace)
        session_id = trailing.get("session_id") or session_id
        choices = upload_choices(settings, client, {**fields, **trailing})
        sha256 = stored.sha256
        if sha256 is None:
            raise LogicError("the blob store did not hash the upload", code="unhashed_upload")
        if declared and declared != sha256:
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
            size=stored.size,
            sha256=sha256,
            session_id=session_id,
            filename=multipart_filename(part.filename),
            choices=choices,
        )
    except BaseException:
        await discard_unrecorded(state, photo_id, blob_key)
        raise
    return accepted_response(accepted)


async def _fields_until_file(
    reader: MultipartReader, pace: BodyPace
) -> tuple[BodyPartReader | None, dict[str, str]]:
    """Small fields up to the first file part (the ``file`` field, or a file under another
    name), and that part (None once the body ends)."""
    fields: dict[str, str] = {}
    # Bounded, like every field: a chunked body has no length for the size check to see.
    for _ in range(_MAX_FIELDS):
        part = await _parse(pace, reader.next())
        if part is None:
            return None, fields
        if not isinstance(part, BodyPartReader):
            raise ApiError(400, "bad_multipart", "nested multipart bodies are not supported")
        if part.name in _FORM_FIELDS:
            fields[part.name] = await _small_field(part, pace)
        elif part.name == "file" or _is_file_part(part):
            return part, fields
        else:
            await _field_bytes(part, pace, _IGNORED_FIELD_MAX)  # read, bounded, dropped
    raise ApiError(400, "too_many_fields", f"send at most {_MAX_FIELDS} fields besides 'file'")


def _is_file_part(part: BodyPartReader) -> bool:
    """Whether a part carries a file (a ``filename``, or a media type other than text's) rather
    than a form value."""
    if part.filename is not None:
        return True
    media_type = part.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    return media_type not in ("", "text/plain")


async def _trailing_fields(reader: MultipartReader, pace: BodyPace) -> dict[str, str]:
    part, fields = await _fields_until_file(reader, pace)
    if part is not None:
        raise ApiError(400, "too_many_files", "send one 'file' per request")
    return fields


async def _small_field(part: BodyPartReader, pace: BodyPace) -> str:
    data = await _field_bytes(part, pace, _FIELD_MAX)
    try:
        return data.decode().strip()
    except UnicodeDecodeError:
        raise ApiError(400, "bad_field", f"field {part.name!r} is not UTF-8") from None


async def _field_bytes(part: BodyPartReader, pace: BodyPace, limit: int) -> bytes:
    # Whole chunks only: aiohttp asserts a chunk is at least the boundary's length.
    data = bytearray()
    while chunk := await _parse(pace, part.read_chunk(_FIELD_MAX)):
        data += chunk
        if len(data) > limit:
            raise ApiError(400, "field_too_large", f"field {part.name!r} is too large")
    return bytes(data)


async def _parse(pace: BodyPace, step: Awaitable[T]) -> T:
    """One read of the multipart body, paced; a malformed body is the client's 400."""
    try:
        return await pace.read(step)
    except (ValueError, RuntimeError, HttpProcessingError) as exc:
        # aiohttp's multipart reader reports bad boundaries, part headers and lengths
        # this way, and a _charset_ field too long to name a charset as a RuntimeError
        # (aiohttp 3.14); left alone they would be 500s.
        raise _malformed(exc) from None


def _malformed(exc: Exception) -> ApiError:
    # aiohttp's parser errors print as "400, message:\n Invalid HTTP header: b'...'": keep
    # the sentence, without the status and the bytes it quotes.
    reason = refusal_reason(exc.message if isinstance(exc, HttpProcessingError) else str(exc))
    return ApiError(400, "bad_multipart", f"the multipart body is malformed: {reason}")


async def expect_upload(request: web.Request) -> None:
    """``Expect: 100-continue`` on ``POST /v1/photos``: no ``100 Continue`` for a body the
    handler refuses by its ``Content-Length`` alone (it answers 413 at once, unread), so the
    client never starts sending it. Anything else is aiohttp's default answer."""
    limit = state_of(request).settings.api.max_upload_bytes
    if request.content_length is not None and request.content_length > limit + _MULTIPART_SLACK:
        return None
    return await default_expect_handler(request)


def _too_large_message(limit: int) -> str:
    return f"the file is larger than the limit of {limit} bytes"
