"""tus 1.0 endpoints at ``/v1/uploads``; a finished upload becomes a photo via
:func:`filmstrip.services.api.accept.accept_photo`, exactly like ``POST /v1/photos``.

Extra headers on the PATCH that completes an upload (and on HEAD afterwards):
``Filmstrip-Photo-Id`` and ``Filmstrip-Duplicate`` (``true`` when the client already had
these bytes). ``GET /v1/uploads/{id}`` answers the same as JSON.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from filmstrip.blobs import BlobTooLarge
from filmstrip.clock import iso_utc
from filmstrip.compat.aiohttp import buffered_body
from filmstrip.protocols.formats import CONTENT_TYPES, SNIFF_BYTES, sniff_format
from filmstrip.protocols.http import TusUploadStatus
from filmstrip.services.api import quota
from filmstrip.services.api.accept import (
    accept_photo,
    check_capacity,
    check_session,
    discard_unrecorded,
    new_photo_id,
    original_key,
    unsupported_type,
)
from filmstrip.services.api.choices import upload_choices
from filmstrip.services.api.errors import ApiError
from filmstrip.services.api.filenames import clean_filename
from filmstrip.services.api.json import json_response
from filmstrip.services.api.middleware import client_of, trace_id_of
from filmstrip.services.api.state import STATE, ApiState, state_of
from filmstrip.services.api.tus.backends import open_tus_store
from filmstrip.services.api.tus.protocol import (
    CHECKSUM_MISMATCH,
    OFFSET_CONTENT_TYPE,
    TUS_VERSION,
    check_resumable,
    discovery_headers,
    encode_metadata,
    http_date,
    parse_checksum,
    parse_length,
    parse_metadata,
)
from filmstrip.services.api.tus.store import (
    ChecksumMismatch,
    TooMuchData,
    TusStore,
    TusUpload,
    UploadBroken,
    UploadGone,
)
from filmstrip.services.api.tus.sweeper import run_tus_sweeper
from filmstrip.tasks import cancel_and_wait

log = logging.getLogger("filmstrip.api.tus")

TUS_STORE: web.AppKey[TusStore] = web.AppKey("filmstrip_tus_store", TusStore)

PREFIX = "/v1/uploads"
# Bytes handed to the writer thread at a time: fewer, larger hops off the loop are
# markedly faster than many small ones (each hop is a GIL handoff).
_CHUNK = 1024 * 1024


def setup_tus(app: web.Application, *, background: bool = True) -> None:
    """Add the tus routes, their store and (with ``background``) the expiry sweeper; call
    after the app's resources context is registered (the store reads ``app[STATE]``)."""
    app.router.add_route("OPTIONS", PREFIX, options)
    app.router.add_post(PREFIX, create)
    app.router.add_route("HEAD", PREFIX + "/{upload_id}", head)
    app.router.add_get(PREFIX + "/{upload_id}", status, allow_head=False)
    app.router.add_patch(PREFIX + "/{upload_id}", patch)
    app.router.add_delete(PREFIX + "/{upload_id}", terminate)
    app.on_response_prepare.append(_add_tus_resumable)

    async def store_ctx(app: web.Application) -> AsyncIterator[None]:
        state = app[STATE]
        settings = state.settings
        store = open_tus_store(settings, state.catalog, state.blobs)
        await store.open()
        app[TUS_STORE] = store
        sweeper = (
            asyncio.create_task(run_tus_sweeper(store, settings.tus.sweep_interval_s))
            if background
            else None
        )
        yield
        if sweeper is not None:
            await cancel_and_wait(sweeper)
        await store.close()

    app.cleanup_ctx.append(store_ctx)


async def _add_tus_resumable(request: web.Request, response: web.StreamResponse) -> None:
    # Every answer on the tus paths carries it, errors included (the spec asks for it).
    if request.path == PREFIX or request.path.startswith(PREFIX + "/"):
        response.headers["Tus-Resumable"] = TUS_VERSION


async def options(request: web.Request) -> web.StreamResponse:
    """Discovery: version, extensions, size limit and checksum algorithms (no token)."""
    max_size = state_of(request).settings.api.max_upload_bytes
    return web.Response(status=204, headers=discovery_headers(max_size))


async def create(request: web.Request) -> web.StreamResponse:
    """Creation (and creation-with-upload): a new upload of ``Upload-Length`` bytes."""
    check_resumable(request.headers)
    state = state_of(request)
    client = client_of(request)
    settings = state.settings
    if "Upload-Defer-Length" in request.headers:
        raise ApiError(400, "defer_length_unsupported", "send Upload-Length; it cannot be deferred")
    length = parse_length(request.headers.get("Upload-Length"), "Upload-Length")
    if length > settings.api.max_upload_bytes:
        raise ApiError(
            413, "too_large", f"Upload-Length is over the limit of {settings.api.max_upload_bytes}"
        )
    if length == 0:
        raise ApiError(400, "empty_file", "the upload is empty")
    metadata = parse_metadata(request.headers.get("Upload-Metadata"))
    await check_session(state, client, metadata.get("session_id") or None)
    upload_choices(settings, client, metadata)
    # Refuse work the queue cannot take now rather than after the bytes have arrived.
    await check_capacity(state)

    # Admitted beside the client's open uploads, which the store counts where no other
    # creation of this client can race it: their number, their bytes, and the quota.
    stored = await quota.stored(state, client)
    store = request.app[TUS_STORE]
    upload = await store.create(
        client_id=client.id,
        length=length,
        metadata=metadata,
        ttl_s=settings.tus.expiry_s,
        admit=quota.tus_admission(settings, length, stored),
    )
    log.info("tus upload created", extra={"upload_id": upload.id, "bytes": length})
    headers = {"Location": f"{PREFIX}/{upload.id}", "Upload-Expires": http_date(upload.expires_at)}
    if request.content_type == OFFSET_CONTENT_TYPE and request.can_read_body:
        try:
            checksum = parse_checksum(request.headers.get("Upload-Checksum"))
            async with store.locked(upload.id):
                headers.update(await _receive(request, state, store, upload, 0, checksum))
        except ApiError:
            # The client never learns the Location of a refused creation: don't keep it.
            await store.delete(upload.id)
            raise
    return web.Response(status=201, headers=headers)


async def head(request: web.Request) -> web.StreamResponse:
    """Where to resume: ``Upload-Offset`` (and the photo id once finished)."""
    check_resumable(request.headers)
    upload = await _owned(request)
    headers = {
        "Upload-Offset": str(upload.offset),
        "Upload-Length": str(upload.length),
        "Upload-Expires": http_date(upload.expires_at),
        "Cache-Control": "no-store",
        **_photo_headers(upload),
    }
    if upload.metadata:
        headers["Upload-Metadata"] = encode_metadata(upload.metadata)
    return web.Response(status=200, headers=headers)


async def status(request: web.Request) -> web.StreamResponse:
    """The upload's progress as JSON (not part of tus; for clients and people)."""
    upload = await _owned(request)
    state = "done" if upload.finished else "complete" if upload.complete else "receiving"
    body = TusUploadStatus(
        upload_id=upload.id,
        state=state,
        offset=upload.offset,
        length=upload.length,
        expires_at=iso_utc(upload.expires_at),
        metadata=upload.metadata,
        photo_id=upload.photo_id,
        duplicate=upload.duplicate,
    )
    return json_response(body, headers={"Cache-Control": "no-store"})


async def patch(request: web.Request) -> web.StreamResponse:
    """Append the body at ``Upload-Offset``; the PATCH that completes it makes the photo."""
    check_resumable(request.headers)
    if request.content_type != OFFSET_CONTENT_TYPE:
        raise ApiError(415, "bad_content_type", f"a PATCH body must be {OFFSET_CONTENT_TYPE}")
    offset = parse_length(request.headers.get("Upload-Offset"), "Upload-Offset")
    checksum = parse_checksum(request.headers.get("Upload-Checksum"))
    upload = await _owned(request)
    store = request.app[TUS_STORE]
    try:
        async with store.locked(upload.id):
            upload = await _owned(request)  # the state as the previous writer left it
            headers = await _receive(request, state_of(request), store, upload, offset, checksum)
    except UploadGone:
        raise _not_found(upload.id) from None
    return web.Response(status=204, headers=headers)


async def terminate(request: web.Request) -> web.StreamResponse:
    """Termination: forget the upload and its bytes (a photo it became stays)."""
    check_resumable(request.headers)
    upload = await _owned(request)
    store = request.app[TUS_STORE]
    try:
        async with store.locked(upload.id):
            await store.delete(upload.id)
    except UploadGone:
        raise _not_found(upload.id) from None
    log.info("tus upload terminated", extra={"upload_id": upload.id})
    return web.Response(status=204)


async def _owned(request: web.Request) -> TusUpload:
    """The client's upload, else 404 (another client's upload does not exist for it)."""
    upload_id = request.match_info["upload_id"]
    upload = await request.app[TUS_STORE].get(upload_id)
    if upload is None or upload.client_id != client_of(request).id:
        raise _not_found(upload_id)
    return upload


def _not_found(upload_id: str) -> ApiError:
    return ApiError(404, "upload_not_found", f"no upload {upload_id!r} (or it expired)")


async def _receive(
    request: web.Request,
    state: ApiState,
    store: TusStore,
    upload: TusUpload,
    offset: int,
    checksum: tuple[str, bytes] | None,
) -> dict[str, str]:
    """Append the body (lock held); sniff, finish when complete; the response headers."""
    if offset != upload.offset:
        raise ApiError(
            409,
            "offset_mismatch",
            f"Upload-Offset is {offset} but the upload is at {upload.offset}; HEAD to resume",
            headers={"Upload-Offset": str(upload.offset)},
        )
    if upload.finished:
        if request.content_length:
            raise ApiError(409, "upload_finished", "the upload is complete")
        return _progress_headers(upload)
    if request.content_length is not None and offset + request.content_length > upload.length:
        raise ApiError(413, "exceeds_length", f"the body runs past Upload-Length ({upload.length})")
    try:
        return await _take(request, state, store, upload, checksum)
    except UploadBroken as exc:
        # Every retry would meet the same loss: the upload goes, with what is left of its
        # bytes, and the client is told to start again (tus clients do not retry a 410).
        log.error(
            "tus upload's stored bytes were lost; dropped it",
            extra={"upload_id": upload.id, "code": exc.code, "reason": exc.message},
        )
        await store.delete(upload.id)
        raise ApiError(
            410, exc.code, "the server lost part of this upload's bytes; start it again"
        ) from None


async def _take(
    request: web.Request,
    state: ApiState,
    store: TusStore,
    upload: TusUpload,
    checksum: tuple[str, bytes] | None,
) -> dict[str, str]:
    """Append the body, sniff the type, and finish once complete (lock held)."""
    try:
        upload, cut = await store.append(
            upload,
            _body(request, state.settings.tus.idle_timeout_s),
            ttl_s=state.settings.tus.expiry_s,
            checksum=checksum,
        )
    except ChecksumMismatch as exc:
        raise ApiError(CHECKSUM_MISMATCH, exc.code, exc.message) from None
    except TooMuchData as exc:
        raise ApiError(413, exc.code, exc.message) from None
    if cut is not None:
        log.info(
            "tus body cut short; kept what arrived",
            extra={"upload_id": upload.id, "offset": upload.offset, "reason": repr(cut)},
        )

    if upload.content_type is None and upload.offset >= min(SNIFF_BYTES, upload.length):
        fmt = sniff_format(await store.read_head(upload, SNIFF_BYTES))
        if fmt is None:
            await store.delete(upload.id)
            raise unsupported_type()
        upload.content_type = CONTENT_TYPES[fmt]
        await store.save(upload)

    if upload.complete:
        await _finish(request, state, store, upload)
    return _progress_headers(upload)


async def _finish(
    request: web.Request, state: ApiState, store: TusStore, upload: TusUpload
) -> None:
    """Copy the bytes to the blob store and record the photo (lock held); safe to repeat
    after a crash: the second run finds the first one's photo by SHA-256."""
    assert upload.content_type is not None  # sniffed before the last byte was committed
    # Before the copy: a client whose photos grew since the creation may no longer have
    # room. The upload stays complete: make room and send an empty PATCH, or DELETE it.
    await quota.room(state, client_of(request), at_least=upload.length)
    photo_id = new_photo_id()
    blob_key = original_key(photo_id)
    digest = hashlib.sha256()
    try:
        await state.blobs.put_stream(
            blob_key,
            store.iter_bytes(upload, digest),
            content_type=upload.content_type,
            max_bytes=state.settings.api.max_upload_bytes,
        )
    except BlobTooLarge:
        raise ApiError(413, "too_large", "the upload is larger than the limit") from None
    try:
        accepted = await accept_photo(
            state,
            client=client_of(request),
            trace_id=trace_id_of(request),
            photo_id=photo_id,
            blob_key=blob_key,
            content_type=upload.content_type,
            size=upload.length,
            sha256=digest.hexdigest(),
            session_id=upload.metadata.get("session_id") or None,
            filename=clean_filename(upload.metadata.get("filename")),
            choices=upload_choices(state.settings, client_of(request), upload.metadata),
        )
    except BaseException:
        await discard_unrecorded(state, photo_id, blob_key)
        raise
    upload.photo_id = accepted.photo_id
    upload.duplicate = accepted.duplicate
    await store.save(upload)
    await store.drop_data(upload)
    log.info(
        "tus upload finished",
        extra={"upload_id": upload.id, "photo_id": accepted.photo_id, "dup": accepted.duplicate},
    )


def _progress_headers(upload: TusUpload) -> dict[str, str]:
    return {
        "Upload-Offset": str(upload.offset),
        "Upload-Expires": http_date(upload.expires_at),
        **_photo_headers(upload),
    }


def _photo_headers(upload: TusUpload) -> dict[str, str]:
    if upload.photo_id is None:
        return {}
    return {
        "Filmstrip-Photo-Id": upload.photo_id,
        "Filmstrip-Duplicate": "true" if upload.duplicate else "false",
        "Link": f'</v1/photos/{upload.photo_id}>; rel="photo"',
    }


async def _body(request: web.Request, idle_s: float) -> AsyncIterator[bytes]:
    """The request body in chunks of about 1 MB; a stall of ``idle_s`` ends it. When the
    connection drops, what was buffered is still yielded, then the error is raised."""
    buffer = bytearray()
    try:
        while True:
            async with asyncio.timeout(idle_s):
                piece = await request.content.read(_CHUNK)
            if not piece:
                break
            buffer += piece
            if len(buffer) >= _CHUNK:
                yield bytes(buffer)
                buffer.clear()
    except Exception:
        buffer += buffered_body(request.content)
        if buffer:
            yield bytes(buffer)
        raise
    if buffer:
        yield bytes(buffer)
