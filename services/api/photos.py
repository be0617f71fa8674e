"""Reading photos: their record, the original and the derivatives (streamed, cacheable)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from aiohttp import web

from filmstrip.auth.signing import verify
from filmstrip.blobs import BlobInfo, BlobNotFound
from filmstrip.catalog import PhotoRecord
from filmstrip.photos import links, photo_pipeline, photo_priority
from filmstrip.photos.failures import error_of
from filmstrip.protocols.formats import CONTENT_TYPES, EXTENSIONS
from filmstrip.protocols.http import Photo, PhotoMetadata
from filmstrip.services.api.errors import ApiError
from filmstrip.services.api.filenames import content_disposition
from filmstrip.services.api.ids import PHOTO_ID
from filmstrip.services.api.json import json_response
from filmstrip.services.api.middleware import CLIENT
from filmstrip.services.api.ranges import ByteRange, bounds, requested_range
from filmstrip.services.api.state import ApiState, state_of

log = logging.getLogger("filmstrip.api.photos")

# Originals and derivatives never change under the same URL (a re-processed photo writes
# the same bytes), so browsers may keep them; "private" keeps them out of shared caches.
_CACHE = "private, max-age=86400, immutable"
# How a derivative is named in a sentence ("the optimized is damaged" is not English).
_READABLE = {"optimized": "optimized copy", "optimized_avif": "optimized AVIF copy"}
_EXTENSION_OF_TYPE = {CONTENT_TYPES[fmt]: EXTENSIONS[fmt] for fmt in CONTENT_TYPES}


def photo_body(state: ApiState, photo: PhotoRecord) -> Photo:
    """The public view of a photo, with signed URLs that work without headers."""
    secret = state.signing_secret
    ttl = state.settings.api.signed_url_ttl_s
    error = error_of(photo)
    return Photo(
        photo_id=photo.id,
        status=photo.status,
        client_id=photo.client_id,
        session_id=photo.session_id,
        content_type=photo.content_type,
        bytes=photo.bytes,
        sha256=photo.sha256,
        uploaded_at=photo.uploaded_at,
        processed_at=photo.processed_at,
        original_url=links.original_url(secret, photo.id, ttl),
        derivatives=links.derivatives(secret, photo.id, photo.derivatives, ttl),
        metadata=photo_metadata(photo.processing_metadata),
        error=error,
        error_category=error.category if error is not None else None,
        filename=photo.filename,
        pipeline=photo_pipeline(state.settings, photo),
        priority=photo_priority(state.settings, photo),
    )


def photo_metadata(stored: dict[str, Any] | None) -> PhotoMetadata | None:
    """The catalog's processing metadata as the api documents it (PhotoMetadata). The
    pipeline writes no key the Struct lacks (tests/worker checks), so nothing is dropped."""
    if stored is None:
        return None
    try:
        return msgspec.convert(stored, PhotoMetadata)
    except msgspec.ValidationError as exc:
        # A row another release (or a hand) wrote: answer what fits rather than fail the
        # photo, and with it every listing page it is on.
        kept = {k: v for k, v in stored.items() if _fits(k, v)}
        log.warning(
            "photo metadata does not fit its documented type (%s); answered without %s",
            exc,
            ", ".join(sorted(stored.keys() - kept.keys())),
        )
        return msgspec.convert(kept, PhotoMetadata)


def _fits(key: str, value: Any) -> bool:
    try:
        msgspec.convert({key: value}, PhotoMetadata)
    except msgspec.ValidationError:
        return False
    return True


def thumbnail_url(state: ApiState, photo: PhotoRecord) -> str | None:
    """The photo's thumbnail as a signed URL, or None before it has one."""
    if not any(d.name == "thumbnail" for d in photo.derivatives):
        return None
    ttl = state.settings.api.signed_url_ttl_s
    return links.derivative_url(state.signing_secret, photo.id, "thumbnail", ttl)


async def _owned_photo(request: web.Request) -> PhotoRecord:
    """The photo named in the path, if the caller may see it (token owner or valid signature);
    another client's is 404, exactly like a missing one: existence is not leaked."""
    state = state_of(request)
    photo_id = request.match_info["photo_id"]
    if not PHOTO_ID.match(photo_id):
        raise ApiError(404, "photo_not_found", f"no photo {photo_id!r}")
    client = request.get(CLIENT)
    if client is not None:
        photo = await state.catalog.get_photo(photo_id, client.id)
    else:
        if not verify(
            state.signing_secret,
            request.path,
            request.query.get("exp", ""),
            request.query.get("sig", ""),
        ):
            raise ApiError(403, "bad_signature", "the signed URL is invalid or has expired")
        photo = await state.catalog.get_photo(photo_id)
    if photo is None:
        raise ApiError(404, "photo_not_found", f"no photo {photo_id!r}")
    return photo


async def get_photo(request: web.Request) -> web.StreamResponse:
    """``GET /v1/photos/{id}``: status, metadata and derivative URLs."""
    photo = await _owned_photo(request)
    return json_response(photo_body(state_of(request), photo))


async def get_original(request: web.Request) -> web.StreamResponse:
    """``GET /v1/photos/{id}/original``: the uploaded bytes."""
    photo = await _owned_photo(request)
    # A download saves under the name the file came with; without one, under its id and
    # the extension of its type.
    name = photo.filename or f"{photo.id}.{_EXTENSION_OF_TYPE.get(photo.content_type, 'bin')}"
    return await _stream_blob(
        request,
        photo.blob_key,
        photo.content_type,
        {"Content-Disposition": content_disposition(name)},
    )


async def get_derivative(request: web.Request) -> web.StreamResponse:
    """``GET /v1/photos/{id}/derivatives/{name}``: one rendition; 503 while one found short
    or missing is made again."""
    photo = await _owned_photo(request)
    name = request.match_info["name"]
    record = next((d for d in photo.derivatives if d.name == name), None)
    if record is None:
        raise ApiError(404, "derivative_not_found", f"photo has no derivative {name!r} (yet)")
    state = state_of(request)
    stored: int | None = None
    wanted, start = _range_to_open(request)
    try:
        info, body = await state.blobs.open_stream(record.key, start=start)
    except BlobNotFound:
        pass
    else:
        if info.size == record.bytes:
            return await _send_blob(
                request, info, body, record.content_type, wanted=wanted, opened_at=start
            )
        await _drain(body)
        stored = info.size
    # Derivatives are written without fsync (made again from the original if need be): a
    # power cut can leave one short or gone. Never served so, since browsers keep them.
    job = await state.photos.remake(photo, name)
    if job.created:
        log.warning(
            "derivative short or missing; queued to be made again",
            extra={"photo_id": photo.id, "derivative": name, "expected_bytes": record.bytes,
                   "stored_bytes": stored, "job_id": job.job_id},
        )  # fmt: skip
    raise ApiError(
        503,
        "derivative_remaking",
        f"the {_READABLE.get(name, name)} is damaged or missing and is being made again;"
        " retry shortly",
        headers={"Retry-After": "2"},
    )


async def _stream_blob(
    request: web.Request, key: str, content_type: str, extra: dict[str, str]
) -> web.StreamResponse:
    wanted, start = _range_to_open(request)
    try:
        info, body = await state_of(request).blobs.open_stream(key, start=start)
    except BlobNotFound:
        raise ApiError(404, "blob_not_found", "the file is gone") from None
    return await _send_blob(
        request, info, body, content_type, extra, wanted=wanted, opened_at=start
    )


def _range_to_open(request: web.Request) -> tuple[ByteRange | None, int]:
    """The range a GET asks for, and where to open the file: where the range starts, so a
    resumed download reads nothing twice, unless its end is what is known (a suffix) or
    ``If-Range`` may yet ask for all of it."""
    wanted = requested_range(request.headers.get("Range")) if request.method == "GET" else None
    if wanted is None or wanted.first is None or "If-Range" in request.headers:
        return wanted, 0
    return wanted, wanted.first


async def _send_blob(
    request: web.Request,
    info: BlobInfo,
    body: AsyncIterator[bytes],
    content_type: str,
    extra: dict[str, str] | None = None,
    *,
    wanted: ByteRange | None = None,
    opened_at: int = 0,
) -> web.StreamResponse:
    """``body`` (the blob read from ``opened_at``) as the answer: all of it, the range
    ``wanted``, or 304 for a copy the client has."""
    etag = f'"{info.etag}"'
    headers = {
        **(extra or {}),
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Cache-Control": _CACHE,
        "Content-Type": content_type,
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
    }
    if etag in (t.strip() for t in request.headers.get("If-None-Match", "").split(",")):
        await _drain(body)
        return web.Response(status=304, headers=headers)
    if wanted is not None and request.headers.get("If-Range", etag) != etag:
        wanted = None  # the file changed since the client's part of it: all of it
    chunks, status, length = body, 200, info.size
    if wanted is not None:
        span = bounds(wanted, info.size)
        if span is None:
            await _drain(body)
            raise ApiError(
                416,
                "range_not_satisfiable",
                f"the range asked for starts past the file's end ({info.size} bytes)",
                headers={"Content-Range": f"bytes */{info.size}"},
            )
        first, last = span
        status, length = 206, last - first + 1
        headers["Content-Range"] = f"bytes {first}-{last}/{info.size}"
        chunks = _part(body, first - opened_at, length)
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = length
    try:
        await response.prepare(request)
        if request.method != "HEAD":
            async for chunk in chunks:
                await response.write(chunk)
        await response.write_eof()
    except ConnectionResetError:
        # The client went away mid-answer (a browser dropping an image it no longer
        # shows): nothing failed here, and nothing is left to send. It got a 200.
        log.debug("client closed the connection mid-download", extra={"path": request.path})
    finally:
        await _drain(body)  # a stream left open holds a file or an S3 connection
    return response


async def _part(body: AsyncIterator[bytes], skip: int, length: int) -> AsyncIterator[bytes]:
    """``length`` bytes of ``body`` after its first ``skip``."""
    async for chunk in body:
        if skip >= len(chunk):
            skip -= len(chunk)
            continue
        chunk, skip = chunk[skip:], 0
        if len(chunk) >= length:
            yield chunk[:length]
            return
        length -= len(chunk)
        yield chunk


async def _drain(body: object) -> None:
    aclose = getattr(body, "aclose", None)
    if aclose is not None:
        await aclose()
