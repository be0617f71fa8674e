"""Resumable uploads over tus 1.0 (``/v1/uploads``): create, then PATCH the file in chunks,
each with its SHA-256 (``Upload-Checksum``) so the server keeps only whole, verified
chunks. The upload's URL is kept in a :class:`ResumeStore` before the first byte is sent,
so a later run asks the server where it stopped (``HEAD``) and sends only the rest."""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
from collections.abc import AsyncIterator, Callable, Mapping

import msgspec

from filmstrip.client.errors import ApiFailure
from filmstrip.client.files import LocalFile, read_range
from filmstrip.client.http import Answer, ApiClient, failure
from filmstrip.client.resume import ResumeStore
from filmstrip.errors import Category

TUS_VERSION = "1.0.0"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
PREFIX = "/v1/uploads"
#: Bytes per PATCH: a cut costs at most this much again.
CHUNK_BYTES = 8 * 1024 * 1024
# Pieces of a chunk handed to the connection, each reported as progress.
_PIECE = 256 * 1024
# PATCHes in a row that may fail (cut, busy, checksum) with no progress before the upload
# gives up.
_MAX_FAILURES = 8

#: Called with how many bytes of the file the server has (or is being sent), as they go.
Progress = Callable[[int], None]


class Uploaded(msgspec.Struct, frozen=True, kw_only=True):
    """``duplicate``: the client already had these bytes (``photo_id`` is that photo);
    ``resumed_at``: bytes an earlier, cut run had already sent."""

    photo_id: str
    duplicate: bool
    resumed_at: int = 0


def _headers(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    return {"Tus-Resumable": TUS_VERSION, **(extra or {})}


def _metadata(pairs: Mapping[str, str]) -> str:
    return ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in pairs.items()
    )


def _finished(answer: Answer) -> tuple[str, bool] | None:
    photo_id = answer.headers.get("Filmstrip-Photo-Id")
    if not photo_id:
        return None
    return photo_id, answer.headers.get("Filmstrip-Duplicate") == "true"


async def upload_tus(
    api: ApiClient,
    file: LocalFile,
    *,
    session_id: str | None = None,
    resume: ResumeStore | None = None,
    progress: Progress | None = None,
    chunk_bytes: int = CHUNK_BYTES,
    fields: Mapping[str, str] | None = None,
) -> Uploaded:
    """Upload ``file`` (already inspected: a photo with its SHA-256) through tus, resuming
    the upload ``resume`` kept for it if the server still has it."""
    assert file.sha256 is not None, "inspect the file first"
    report = progress or (lambda _done: None)
    url, offset = await _resume_point(api, file, resume)
    resumed_at = offset
    if url is None:
        url = await _create(api, file, session_id, fields or {})
        if resume is not None:
            await resume.put(api.url, file.sha256, url)
        offset = 0
    report(offset)
    failures = 0
    while True:
        length = min(chunk_bytes, file.size - offset)
        chunk, digest = await asyncio.to_thread(_read_chunk, file, offset, length)
        body = functools.partial(_pieces, chunk, offset, report)
        try:
            answer = await api.send(
                "PATCH",
                url,
                body=body,
                headers=_headers(
                    {
                        "Upload-Offset": str(offset),
                        "Content-Length": str(len(chunk)),
                        "Content-Type": OFFSET_CONTENT_TYPE,
                        "Upload-Checksum": f"sha256 {digest}",
                    }
                ),
                retry=False,
            )
        except ApiFailure:
            answer = None  # cut: ask the server where it stands
        if answer is not None and answer.status == 204:
            failures = 0
            offset = int(answer.headers.get("Upload-Offset", offset + length))
            done = _finished(answer)
            if done is not None:
                report(file.size)
                if resume is not None:
                    await resume.drop(api.url, file.sha256)
                return Uploaded(photo_id=done[0], duplicate=done[1], resumed_at=resumed_at)
            continue
        if answer is not None and _is_final(answer):
            if resume is not None and answer.status in (404, 410, 415):
                await resume.drop(api.url, file.sha256)  # gone or refused: never resumable
            raise failure(answer)
        failures += 1
        if failures >= _MAX_FAILURES:
            raise (
                failure(answer)
                if answer is not None
                else ApiFailure(0, "unreachable", f"{url}: {failures} PATCHes in a row failed")
            )
        await asyncio.sleep(min(0.25 * 2**failures, 10.0))
        head = await _head(api, url)
        if head is None:
            continue
        if (done := _finished(head)) is not None:
            report(file.size)
            if resume is not None:
                await resume.drop(api.url, file.sha256)
            return Uploaded(photo_id=done[0], duplicate=done[1], resumed_at=resumed_at)
        at = int(head.headers.get("Upload-Offset", offset))
        if at > offset:
            failures = 0  # the bytes got there, only the answer was lost: not stuck
        offset = at
        report(offset)


def _read_chunk(file: LocalFile, offset: int, length: int) -> tuple[bytes, str]:
    """The chunk and its ``Upload-Checksum`` digest (blocking: in a thread)."""
    chunk = read_range(file.path, offset, length)
    return chunk, base64.b64encode(hashlib.sha256(chunk).digest()).decode()


def _is_final(answer: Answer) -> bool:
    # 409 (offset moved: HEAD tells where), 460 (checksum: send the chunk again) and the
    # temporary statuses are worth another try; any other refusal is final.
    if answer.status in (409, 460):
        return False
    return failure(answer).category is Category.DATA


async def _pieces(chunk: bytes, at: int, report: Progress) -> AsyncIterator[bytes]:
    view = memoryview(chunk)
    for start in range(0, len(chunk), _PIECE):
        yield bytes(view[start : start + _PIECE])
        report(at + min(start + _PIECE, len(chunk)))


async def _resume_point(
    api: ApiClient, file: LocalFile, resume: ResumeStore | None
) -> tuple[str | None, int]:
    """The kept upload and the server's offset in it, or (None, 0) to start afresh."""
    if resume is None or file.sha256 is None:
        return None, 0
    url = await resume.get(api.url, file.sha256)
    if url is None:
        return None, 0
    head = await _head(api, url)
    if head is None or head.status != 200:
        await resume.drop(api.url, file.sha256)
        return None, 0
    return url, int(head.headers.get("Upload-Offset", "0"))


async def _head(api: ApiClient, url: str) -> Answer | None:
    try:
        answer = await api.send("HEAD", url, headers=_headers())
    except ApiFailure:
        return None
    return answer if answer.status in (200, 404, 410) else None


async def _create(
    api: ApiClient, file: LocalFile, session_id: str | None, fields: Mapping[str, str]
) -> str:
    metadata = {**fields, "filename": file.path.name, "filetype": file.content_type}
    if session_id:
        metadata["session_id"] = session_id
    answer = await api.send(
        "POST",
        PREFIX,
        headers=_headers({"Upload-Length": str(file.size), "Upload-Metadata": _metadata(metadata)}),
    )
    if answer.status != 201:
        raise failure(answer)
    location = answer.headers["Location"]
    return location if location.startswith("http") else api.url + location
