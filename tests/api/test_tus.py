"""tus 1.0 at /v1/uploads: the real ``tuspy`` client, a cut connection resumed, and every
way a chunk or an upload is refused leaving nothing behind. Every test that needs the api
runs on both stores of partial uploads (``tus_backend``): local files and the shared one
(catalog + S3 on moto)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
import logging
import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
import pytest
import redis.asyncio as aioredis
from tusclient.client import TusClient

from bench.redis_server import RedisServer
from bench.seaweed import LoopbackSeaweedFS
from filmstrip.auth import hash_token
from filmstrip.blobs.s3 import PART_SIZE, S3BlobStore
from filmstrip.catalog import PhotoStatus
from filmstrip.catalog.tus import Segment
from filmstrip.errors import FilmstripError
from filmstrip.protocols import openapi
from filmstrip.services.api.app import create_app
from filmstrip.services.api.tus import shared as tus_shared
from filmstrip.services.api.tus.shared import (
    MAX_PARTS,
    MAX_SEGMENTS,
    SharedTusStore,
    part_size_for,
)
from filmstrip.services.api.tus.store import UploadBroken, UploadGone, UploadLocked
from filmstrip.settings import Settings
from tests.api.conftest import EVERY_BLOB, Api, TusBackend, api_settings, running_api
from tests.api.factories import new_session

TUS = {"Tus-Resumable": "1.0.0"}
PATCH_TYPE = {"Content-Type": "application/offset+octet-stream"}


@pytest.fixture
async def api(
    tus_backend: TusBackend, redis_server: RedisServer, redis: aioredis.Redis, tmp_path: Path
) -> AsyncIterator[Api]:
    """The api with partial uploads in the store ``tus_backend`` names."""
    settings = api_settings(
        tmp_path, redis_server.url, max_upload_bytes="400000", **tus_backend.settings
    )
    async with running_api(settings, "alice") as running:
        yield running


def _headers(api: Api, token: str | None = None, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token or api.token}", **TUS, **extra}


async def _create(api: Api, length: int, *, metadata: str | None = None) -> str:
    headers = _headers(api, **{"Upload-Length": str(length)})
    if metadata is not None:
        headers["Upload-Metadata"] = metadata
    resp = await api.http.post(f"{api.url}/v1/uploads", headers=headers)
    assert resp.status == 201, await resp.text()
    assert resp.headers["Tus-Resumable"] == "1.0.0"
    assert resp.headers["Upload-Expires"].endswith("GMT")
    location = resp.headers["Location"]
    assert location.startswith("/v1/uploads/")
    return f"{api.url}{location}"


async def _patch(
    api: Api, url: str, offset: int, data: bytes, **extra: str
) -> aiohttp.ClientResponse:
    headers = _headers(api, **PATCH_TYPE, **{"Upload-Offset": str(offset)}, **extra)
    return await api.http.patch(url, data=data, headers=headers)


async def _offset(api: Api, url: str) -> int:
    resp = await api.http.head(url, headers=_headers(api))
    assert resp.status == 200
    assert resp.headers["Cache-Control"] == "no-store"
    return int(resp.headers["Upload-Offset"])


async def _cut_patch(api: Api, url: str, offset: int, total: int, sent: bytes) -> None:
    """A PATCH that promises ``total`` bytes, sends ``sent`` and hangs up (FIN)."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    head = (
        f"PATCH {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Authorization: Bearer {api.token}\r\nTus-Resumable: 1.0.0\r\n"
        f"Content-Type: application/offset+octet-stream\r\n"
        f"Upload-Offset: {offset}\r\nContent-Length: {total}\r\n\r\n"
    )
    writer.write(head.encode() + sent)
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    del reader


async def _wait_offset(api: Api, url: str, expected: int) -> None:
    """The cut request commits when the server notices the hang-up; wait for it."""
    for _ in range(200):
        if await _offset(api, url) == expected:
            return
        await asyncio.sleep(0.02)
    assert await _offset(api, url) == expected


async def _server_saw_cut(caplog: pytest.LogCaptureFixture) -> None:
    """Wait for the server's log line about the dropped PATCH (it runs in this process)."""
    for _ in range(250):
        if any("cut short" in r.getMessage() for r in caplog.records):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the server never noticed the cut connection")


async def _originals(api: Api) -> list[str]:
    return await api.blob_keys("originals/")


async def test_options_announces_tus_without_a_token(api: Api) -> None:
    resp = await api.http.options(f"{api.url}/v1/uploads")
    assert resp.status == 204
    assert resp.headers["Tus-Version"] == "1.0.0"
    assert resp.headers["Tus-Resumable"] == "1.0.0"
    extensions = resp.headers["Tus-Extension"].split(",")
    assert {"creation", "creation-with-upload", "termination", "checksum", "expiration"} <= set(
        extensions
    )
    assert resp.headers["Tus-Max-Size"] == str(api.settings.api.max_upload_bytes)
    assert "sha1" in resp.headers["Tus-Checksum-Algorithm"].split(",")


async def test_cut_connection_is_resumed_by_tuspy(
    api: Api, tus_backend: TusBackend, corpus: Path
) -> None:
    data = (corpus / "real/Landscape_6.jpg").read_bytes()
    url = await _create(api, len(data))
    half = len(data) // 2
    await _cut_patch(api, url, 0, len(data), data[:half])
    # Exactly what arrived was kept.
    await _wait_offset(api, url, half)

    def resume() -> int:
        # tuspy is synchronous (requests); it runs in a thread beside the server's loop.
        client = TusClient(f"{api.url}/v1/uploads", headers=api.auth)
        uploader = client.uploader(file_stream=io.BytesIO(data), url=url, chunk_size=64 * 1024)
        resumed_at = int(uploader.offset)  # tuspy asked HEAD where to resume
        uploader.upload()
        return resumed_at

    assert await asyncio.to_thread(resume) == half

    resp = await api.http.head(url, headers=_headers(api))
    photo_id = resp.headers["Filmstrip-Photo-Id"]
    assert resp.headers["Filmstrip-Duplicate"] == "false"
    assert int(resp.headers["Upload-Offset"]) == len(data)
    photo = await api.state.catalog.get_photo(photo_id)
    assert photo is not None and photo.status == PhotoStatus.QUEUED
    assert photo.sha256 == hashlib.sha256(data).hexdigest()
    assert photo.bytes == len(data) and photo.content_type == "image/jpeg"
    assert await api.state.blobs.get_bytes(f"originals/{photo_id}") == data
    assert await api.waiting_jobs() == 1
    assert await api.photo_count() == 1
    # The partial bytes are freed once the upload is a photo.
    assert await tus_backend.bytes_held(api) == []

    status = await api.http.get(url, headers=api.auth)
    body = await status.json()
    assert body["state"] == "done" and body["photo_id"] == photo_id
    # In the one format every other timestamp of the API has (UTC, milliseconds, "Z").
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", body["expires_at"]), body


async def test_tuspy_with_checksums_metadata_and_session(api: Api, corpus: Path) -> None:
    data = (corpus / "real/kimono.crop.png").read_bytes()
    client = await api.state.catalog.client_for_token(hash_token(api.token))
    assert client is not None
    session_id = f"s-{uuid.uuid4().hex[:8]}"
    await api.state.catalog.create_session(session_id, client.id)

    tus = TusClient(f"{api.url}/v1/uploads", headers={"Authorization": f"Bearer {api.token}"})
    uploader = tus.uploader(
        file_stream=io.BytesIO(data),
        chunk_size=50_000,
        upload_checksum=True,
        metadata={"filename": "lies.jpg", "filetype": "image/jpeg", "session_id": session_id},
    )
    await asyncio.to_thread(uploader.upload)
    assert uploader.url is not None
    head = await api.http.head(uploader.url, headers=_headers(api))
    assert "filename" in head.headers["Upload-Metadata"]
    photo = await api.state.catalog.get_photo(head.headers["Filmstrip-Photo-Id"])
    assert photo is not None
    assert photo.content_type == "image/png"  # from the bytes, not filetype or filename
    assert photo.session_id == session_id


async def test_creation_with_upload(api: Api, corpus: Path) -> None:
    data = (corpus / "real/Landscape_1.jpg").read_bytes()
    part = data[:1000]
    headers = _headers(api, **PATCH_TYPE, **{"Upload-Length": str(len(data))})
    resp = await api.http.post(f"{api.url}/v1/uploads", headers=headers, data=part)
    assert resp.status == 201
    assert resp.headers["Upload-Offset"] == "1000"
    url = f"{api.url}{resp.headers['Location']}"
    resp = await _patch(api, url, 1000, data[1000:])
    assert resp.status == 204
    assert resp.headers["Upload-Offset"] == str(len(data))
    assert resp.headers["Filmstrip-Photo-Id"]
    # A finished upload takes no more bytes, and says why.
    more = await _patch(api, url, len(data), b"more")
    assert more.status == 409
    assert (await more.json())["error"]["code"] == "upload_finished"


async def test_chunks_are_logged_at_debug_unless_they_fail(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="filmstrip.api")
    url = await _create(api, 10)
    assert (await _patch(api, url, 0, b"abc")).status == 204
    assert (await _patch(api, url, 0, b"abc")).status == 409  # the offset is 3 by now
    levels = {
        (r.__dict__["method"], r.__dict__["status"]): r.levelname
        for r in caplog.records
        if r.getMessage() == "request"
    }
    assert levels == {("POST", 201): "INFO", ("PATCH", 204): "DEBUG", ("PATCH", 409): "INFO"}


async def test_checksum_mismatch_discards_the_chunk(api: Api, corpus: Path) -> None:
    data = (corpus / "real/Landscape_1.jpg").read_bytes()
    url = await _create(api, len(data))
    chunk = data[:4096]
    wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    resp = await _patch(api, url, 0, chunk, **{"Upload-Checksum": f"sha256 {wrong}"})
    assert resp.status == 460
    assert (await resp.json())["error"]["code"] == "checksum_mismatch"
    assert await _offset(api, url) == 0

    right = base64.b64encode(hashlib.sha256(chunk).digest()).decode()
    resp = await _patch(api, url, 0, chunk, **{"Upload-Checksum": f"sha256 {right}"})
    assert resp.status == 204
    assert await _offset(api, url) == 4096

    resp = await _patch(api, url, 4096, b"x", **{"Upload-Checksum": "crc32 AAAA"})
    assert resp.status == 400
    assert await _offset(api, url) == 4096


async def test_a_cut_chunk_with_a_checksum_is_discarded(
    api: Api, corpus: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="filmstrip.api.tus")
    data = (corpus / "real/Landscape_1.jpg").read_bytes()
    url = await _create(api, len(data))
    digest = base64.b64encode(hashlib.sha1(data).digest()).decode()
    parts = urlsplit(url)
    _reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(
        (
            f"PATCH {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Authorization: Bearer {api.token}\r\nTus-Resumable: 1.0.0\r\n"
            f"Content-Type: application/offset+octet-stream\r\nUpload-Checksum: sha1 {digest}\r\n"
            f"Upload-Offset: 0\r\nContent-Length: {len(data)}\r\n\r\n"
        ).encode()
        + data[:5000]
    )
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    await _server_saw_cut(caplog)
    # An unverifiable chunk is not kept: the upload is still at 0.
    assert await _offset(api, url) == 0
    resp = await _patch(api, url, 0, data[:10])
    assert resp.status == 204
    assert resp.headers["Upload-Offset"] == "10"


@pytest.mark.parametrize("offset", [50, 150], ids=["behind", "ahead"])
async def test_wrong_offset_is_409(api: Api, corpus: Path, offset: int) -> None:
    data = (corpus / "real/Landscape_1.jpg").read_bytes()
    url = await _create(api, len(data))
    assert (await _patch(api, url, 0, data[:100])).status == 204
    resp = await _patch(api, url, offset, data[offset:200])
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "offset_mismatch"
    assert resp.headers["Upload-Offset"] == "100"
    assert await _offset(api, url) == 100
    # Nothing of the refused chunk was kept: the upload resumes and ends whole.
    resp = await _patch(api, url, 100, data[100:])
    assert resp.status == 204
    photo_id = resp.headers["Filmstrip-Photo-Id"]
    assert await api.state.blobs.get_bytes(f"originals/{photo_id}") == data


async def test_too_large_is_413(api: Api, corpus: Path) -> None:
    limit = api.settings.api.max_upload_bytes
    resp = await api.http.post(
        f"{api.url}/v1/uploads", headers=_headers(api, **{"Upload-Length": str(limit + 1)})
    )
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "too_large"

    data = (corpus / "real/Landscape_1.jpg").read_bytes()
    url = await _create(api, 100)
    resp = await _patch(api, url, 0, data[:101])
    assert resp.status == 413
    assert await _offset(api, url) == 0

    # Chunked, the body has no length to refuse it by: the store stops at the byte past.
    async def one_byte_over() -> AsyncIterator[bytes]:
        yield data[:101]

    resp = await _patch(api, url, 0, one_byte_over())  # type: ignore[arg-type]
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "exceeds_length"
    assert await _offset(api, url) == 0


async def test_not_a_photo_is_415_and_forgotten(api: Api, tus_backend: TusBackend) -> None:
    text = b"just some text, certainly not a photo; " * 10
    url = await _create(api, len(text))
    resp = await _patch(api, url, 0, text)
    assert resp.status == 415
    assert (await resp.json())["error"]["code"] == "unsupported_type"
    assert (await api.http.head(url, headers=_headers(api))).status == 404
    assert await tus_backend.leftovers(api) == []
    assert await api.blob_keys() == []
    assert await api.photo_count() == 0


async def test_another_clients_upload_is_404(api: Api, corpus: Path) -> None:
    url = await _create(api, 1000)
    other = await api.new_token()
    data = (corpus / "real/Landscape_1.jpg").read_bytes()[:1000]
    assert (await api.http.head(url, headers=_headers(api, other))).status == 404
    assert (await api.http.get(url, headers=_headers(api, other))).status == 404
    resp = await api.http.patch(
        url, data=data, headers=_headers(api, other, **PATCH_TYPE, **{"Upload-Offset": "0"})
    )
    assert resp.status == 404
    assert (await api.http.delete(url, headers=_headers(api, other))).status == 404
    assert (await api.http.head(url, headers=TUS)).status == 401
    assert await _offset(api, url) == 0  # untouched, still there for its owner


async def test_protocol_version_is_required(api: Api, tus_backend: TusBackend) -> None:
    resp = await api.http.post(f"{api.url}/v1/uploads", headers={**api.auth, "Upload-Length": "10"})
    assert resp.status == 412
    assert resp.headers["Tus-Version"] == "1.0.0"
    assert await tus_backend.leftovers(api) == []


async def test_termination_deletes_the_upload(
    api: Api, tus_backend: TusBackend, corpus: Path
) -> None:
    data = (corpus / "real/Landscape_1.jpg").read_bytes()
    url = await _create(api, len(data))
    assert (await _patch(api, url, 0, data[:2000])).status == 204
    resp = await api.http.delete(url, headers=_headers(api))
    assert resp.status == 204
    assert (await api.http.head(url, headers=_headers(api))).status == 404
    assert (await api.http.delete(url, headers=_headers(api))).status == 404
    assert await tus_backend.leftovers(api) == []


async def test_expired_uploads_are_swept(api: Api, tus_backend: TusBackend, corpus: Path) -> None:
    data = (corpus / "real/Landscape_1.jpg").read_bytes()
    stale = await _create(api, len(data))
    assert (await _patch(api, stale, 0, data[:2000])).status == 204
    # A second store over the same directory, as another api process would have.
    store = tus_backend.store(api)
    assert await store.sweep() == 0
    assert await store.sweep(after_s=api.settings.tus.expiry_s + 1) == 1
    assert await tus_backend.leftovers(api) == []
    assert (await api.http.head(stale, headers=_headers(api))).status == 404


async def test_same_bytes_again_are_a_duplicate(api: Api, corpus: Path) -> None:
    data = (corpus / "real/Landscape_1.jpg").read_bytes()
    first = await api.upload(data)
    assert first.status == 201
    photo_id = (await first.json())["photo_id"]
    url = await _create(api, len(data))
    resp = await _patch(api, url, 0, data)
    assert resp.status == 204
    assert resp.headers["Filmstrip-Photo-Id"] == photo_id
    assert resp.headers["Filmstrip-Duplicate"] == "true"
    assert await _originals(api) == [f"originals/{photo_id}"]
    assert await api.waiting_jobs() == 1
    # Repeating the final (empty) PATCH is harmless and answers the same.
    again = await _patch(api, url, len(data), b"")
    assert again.status == 204 and again.headers["Filmstrip-Photo-Id"] == photo_id


def test_openapi_document_describes_every_tus_route(tmp_path: Path) -> None:
    app = create_app(api_settings(tmp_path, "redis://127.0.0.1:1/0"), background=False)
    routes = {
        (route.resource.canonical, route.method.lower())
        for route in app.router.routes()
        if route.resource is not None and route.resource.canonical.startswith("/v1/uploads")
    }
    documented = {
        (path, method)
        for path, item in openapi.document()["paths"].items()
        if path.startswith("/v1/uploads")
        for method in item
    }
    assert routes == documented


async def test_one_writer_at_a_time_across_processes(api: Api, tus_backend: TusBackend) -> None:
    url = await _create(api, 1000)
    upload_id = url.rsplit("/", 1)[1]
    # Two stores over one directory stand for two api processes: flock keeps them apart.
    first = tus_backend.store(api, lock_wait_s=0.1)
    second = tus_backend.store(api, lock_wait_s=0.1)
    async with first.locked(upload_id):
        with pytest.raises(UploadLocked):
            async with second.locked(upload_id):
                pass
        # A sweep does not delete an upload someone is writing, even if expired.
        assert await second.sweep(after_s=10 * api.settings.tus.expiry_s) == 0
    async with second.locked(upload_id):
        pass
    # Over HTTP the busy answer is a retryable 503.
    async with first.locked(upload_id):
        resp = await _patch(api, url, 0, b"\xff\xd8\xff")
        assert resp.status == 503
        assert resp.headers["Retry-After"]
        assert (await resp.json())["error"]["code"] == "upload_locked"


async def test_bytes_past_the_committed_offset_are_never_shown(
    api: Api, tus_backend: TusBackend, corpus: Path
) -> None:
    data = (corpus / "real/Landscape_1.jpg").read_bytes()
    url = await _create(api, len(data))
    assert (await _patch(api, url, 0, data[:3000])).status == 204
    # A writer that died after writing but before committing left garbage behind.
    await tus_backend.write_past_offset(api, url.rsplit("/", 1)[1], b"garbage" * 100)
    assert await _offset(api, url) == 3000
    resp = await _patch(api, url, 3000, data[3000:])
    assert resp.status == 204
    photo_id = resp.headers["Filmstrip-Photo-Id"]
    assert await api.state.blobs.get_bytes(f"originals/{photo_id}") == data


async def test_a_refused_creation_with_upload_keeps_nothing(
    api: Api, tus_backend: TusBackend
) -> None:
    wrong = base64.b64encode(hashlib.sha1(b"other").digest()).decode()
    headers = _headers(
        api, **PATCH_TYPE, **{"Upload-Length": "5000", "Upload-Checksum": f"sha1 {wrong}"}
    )
    resp = await api.http.post(f"{api.url}/v1/uploads", headers=headers, data=b"\xff\xd8\xff" * 9)
    assert resp.status == 460
    assert await tus_backend.leftovers(api) == []


async def test_an_upload_refused_at_its_last_byte_leaves_no_original(
    api: Api, corpus: Path
) -> None:
    # The original is in the blob store before the photo is recorded; when recording is
    # refused, the original must go too. The session vanishing between the first and the
    # last chunk is one such refusal (the row removed here by hand to cause it).
    data = (corpus / "real/Landscape_1.jpg").read_bytes()
    client = await api.state.catalog.client_for_token(hash_token(api.token))
    assert client is not None
    session_id = f"s-{uuid.uuid4().hex[:8]}"
    await api.state.catalog.create_session(session_id, client.id)
    encoded = base64.b64encode(session_id.encode()).decode()
    url = await _create(api, len(data), metadata=f"session_id {encoded}")
    assert (await _patch(api, url, 0, data[:1000])).status == 204
    await api.state.catalog._execute("DELETE FROM upload_sessions WHERE id = ?", (session_id,))

    resp = await _patch(api, url, 1000, data[1000:])
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "session_not_found"
    assert await _originals(api) == []
    assert await api.photo_count() == 0

    # The bytes stay with the upload: once recording can succeed, an empty PATCH at the
    # end finishes it.
    await api.state.catalog.create_session(session_id, client.id)
    resp = await _patch(api, url, len(data), b"")
    assert resp.status == 204
    assert await api.state.catalog.get_photo(resp.headers["Filmstrip-Photo-Id"]) is not None
    assert len(await _originals(api)) == 1


async def _raw_request(api: Api, head: str, headers: bytes) -> tuple[int, dict[str, Any]]:
    """Send a request with raw (not only ASCII) header lines; its status and JSON body."""
    parts = urlsplit(api.url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(
        (
            f"{head} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer {api.token}\r\n"
            "Tus-Resumable: 1.0.0\r\nContent-Length: 0\r\nConnection: close\r\n"
        ).encode()
        + headers
        + b"\r\n"
    )
    await writer.drain()
    response = await reader.read()
    writer.close()
    await writer.wait_closed()
    status_line, _, rest = response.partition(b"\r\n")
    body = rest.split(b"\r\n\r\n", 1)[1]
    return int(status_line.split()[1]), orjson.loads(body)


async def test_non_ascii_metadata_and_checksums_are_400_not_500(
    api: Api, tus_backend: TusBackend
) -> None:
    """Found by the atheris fuzzer: base64 of a non-ASCII header value raised ValueError."""
    status, body = await _raw_request(
        api, "POST /v1/uploads", b"Upload-Length: 10\r\nUpload-Metadata: filename YS5q\xd8\r\n"
    )
    assert (status, body["error"]["code"]) == (400, "bad_metadata"), body
    assert await tus_backend.leftovers(api) == []
    url = await _create(api, 10)
    status, body = await _raw_request(
        api,
        f"PATCH {urlsplit(url).path}",
        b"Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n"
        b"Upload-Checksum: sha1 2jmj7l5rSw0yVb/vlWAYkK/YBw\xe9=\r\n",
    )
    assert (status, body["error"]["code"]) == (400, "bad_checksum"), body
    assert await _offset(api, url) == 0


# --- uploads larger than a part: S3 multipart parts and a tail between PATCHes -----------

MIB = 1024 * 1024


@pytest.fixture
async def big_api(
    tus_backend: TusBackend, redis_server: RedisServer, redis: aioredis.Redis, tmp_path: Path
) -> AsyncIterator[Api]:
    """The api taking uploads of several S3 parts (8 MiB each)."""
    async with running_api(_big_settings(tmp_path, redis_server, tus_backend), "alice") as api:
        yield api


def _big_settings(tmp_path: Path, redis_server: RedisServer, backend: TusBackend) -> Settings:
    """Settings of an api on ``backend`` taking uploads of several S3 parts."""
    return api_settings(
        tmp_path, redis_server.url, max_upload_bytes=str(64 * MIB), **backend.settings
    )


def _big_jpeg(size: int) -> bytes:
    return b"\xff\xd8\xff\xe0" + os.urandom(size - 4)


@pytest.mark.parametrize("tus_backend", ["s3"], indirect=True)
async def test_an_upload_out_of_part_numbers_is_dropped_with_a_410(
    big_api: Api, tus_backend: TusBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Out of part numbers (each checksum failure spends one) the upload cannot go on: it
    answered 500 and stayed; now 410 too_many_parts, and nothing of it is kept."""
    api = big_api
    data = _big_jpeg(2 * PART_SIZE + 1)
    url = await _create(api, len(data))
    # After the creation, which sizes its parts by the limit: the second part is one over.
    monkeypatch.setattr(tus_shared, "MAX_PARTS", 1)
    resp = await _patch(api, url, 0, data)
    assert resp.status == 410, await resp.text()
    assert (await resp.json())["error"]["code"] == "too_many_parts"
    assert await tus_backend.leftovers(api) == []


async def test_a_large_upload_in_odd_chunks_arrives_whole(big_api: Api) -> None:
    """Chunks that end mid-part, exactly at a part, a byte past one: each PATCH goes on
    at the committed offset and the original is the upload, byte for byte."""
    api = big_api
    data = _big_jpeg(21 * MIB + 12345)
    url = await _create(api, len(data))
    cuts = [3 * MIB, 8 * MIB, 8 * MIB + 1, 16 * MIB, 17 * MIB, len(data)]
    offset = 0
    for end in cuts:
        resp = await _patch(api, url, offset, data[offset:end])
        assert resp.status == 204, await resp.text()
        offset = end
        assert int(resp.headers["Upload-Offset"]) == offset
    photo_id = resp.headers["Filmstrip-Photo-Id"]
    photo = await api.state.catalog.get_photo(photo_id)
    assert photo is not None and photo.sha256 == hashlib.sha256(data).hexdigest()
    assert await api.state.blobs.get_bytes(f"originals/{photo_id}") == data


async def test_a_large_cut_patch_keeps_what_arrived(
    big_api: Api, tus_backend: TusBackend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="filmstrip.api.tus")
    api = big_api
    data = _big_jpeg(18 * MIB)
    url = await _create(api, len(data))
    arrived = 9 * MIB + 777  # a part and a piece of the next
    await _cut_patch(api, url, 0, len(data), data[:arrived])
    await _wait_offset(api, url, arrived)
    resp = await _patch(api, url, arrived, data[arrived:])
    assert resp.status == 204, await resp.text()
    photo_id = resp.headers["Filmstrip-Photo-Id"]
    assert await api.state.blobs.get_bytes(f"originals/{photo_id}") == data
    assert await tus_backend.bytes_held(api) == []


async def test_a_large_chunk_failing_its_checksum_spoils_nothing(big_api: Api) -> None:
    """Its parts may have reached S3 before the checksum was known: none of them is
    recorded, and the upload then completes with the right bytes."""
    api = big_api
    data = _big_jpeg(12 * MIB)
    url = await _create(api, len(data))
    assert (await _patch(api, url, 0, data[: 2 * MIB])).status == 204
    wrong = base64.b64encode(hashlib.sha1(b"other").digest()).decode()
    garbled = os.urandom(9 * MIB)
    resp = await _patch(api, url, 2 * MIB, garbled, **{"Upload-Checksum": f"sha1 {wrong}"})
    assert resp.status == 460
    assert await _offset(api, url) == 2 * MIB
    resp = await _patch(api, url, 2 * MIB, data[2 * MIB :])
    assert resp.status == 204
    photo_id = resp.headers["Filmstrip-Photo-Id"]
    assert await api.state.blobs.get_bytes(f"originals/{photo_id}") == data


async def test_an_expired_large_upload_leaves_nothing(
    big_api: Api, tus_backend: TusBackend
) -> None:
    api = big_api
    data = _big_jpeg(20 * MIB)
    url = await _create(api, len(data))
    assert (await _patch(api, url, 0, data[: 10 * MIB + 3])).status == 204
    held = await tus_backend.bytes_held(api)
    if tus_backend.name == "s3":  # a part in a multipart upload, the rest in a tail
        assert len(held) == 2 and held[0].startswith("multipart "), held
        assert held[1].startswith(f"uploads/{url.rsplit('/', 1)[1]}/tail-"), held
    else:
        assert held
    assert await tus_backend.store(api).sweep(after_s=api.settings.tus.expiry_s + 1) == 1
    assert await tus_backend.leftovers(api) == []
    assert (await api.http.head(url, headers=_headers(api))).status == 404


async def test_terminating_a_large_upload_leaves_nothing(
    big_api: Api, tus_backend: TusBackend
) -> None:
    api = big_api
    data = _big_jpeg(20 * MIB)
    url = await _create(api, len(data))
    assert (await _patch(api, url, 0, data[: 10 * MIB + 3])).status == 204
    assert await tus_backend.bytes_held(api) != []
    assert (await api.http.delete(url, headers=_headers(api))).status == 204
    # The multipart upload aborted, its tail deleted: nothing waits for the sweeper.
    assert await tus_backend.leftovers(api) == []


async def test_small_chunks_are_not_read_back_on_every_patch(
    big_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mobile SDKs send 0.5-2 MB chunks: each PATCH writes its own bytes, and the tail is
    read back only to fill a part (or fold many small objects), not on every PATCH."""
    api = big_api
    data = _big_jpeg(10 * MIB + 5)
    read = 0
    get_bytes = api.state.blobs.get_bytes

    async def counting(key: str) -> bytes:
        nonlocal read
        got = await get_bytes(key)
        read += len(got)
        return got

    monkeypatch.setattr(api.state.blobs, "get_bytes", counting)
    url = await _create(api, len(data))
    step = 200 * 1024
    for offset in range(0, len(data), step):
        resp = await _patch(api, url, offset, data[offset : offset + step])
        assert resp.status == 204, await resp.text()
    photo_id = resp.headers["Filmstrip-Photo-Id"]
    monkeypatch.undo()
    assert await api.state.blobs.get_bytes(f"originals/{photo_id}") == data
    # Read back: the first part's worth once, the last tail once (the copy into the
    # original streams, it does not read whole). Every PATCH reading the tail: ~200 MiB.
    assert read <= 2 * len(data), read


# --- the shared store's guarantees, one at a time (a mutation round found each untested) --

S3_ONLY = pytest.mark.parametrize("tus_backend", ["s3"], indirect=True)


async def _lose_bytes(api: Api, tus_backend: TusBackend, upload_id: str, how: str) -> None:
    """What a store that lost some of an upload's committed bytes holds: its file or its
    tail object cut short (``cut``) or gone (``lost``)."""
    if tus_backend.name == "files":
        path = api.settings.effective_tus_dir / upload_id / "data"
        if how == "cut":
            with path.open("r+b") as f:
                f.truncate(1000)
        else:
            path.unlink()
        return
    blobs = api.state.blobs
    [tail] = [info.key async for info in blobs.list(f"uploads/{upload_id}/")]
    if how == "cut":
        await blobs.put_bytes(tail, b"x" * 1000, content_type="application/octet-stream")
    else:
        await blobs.delete(tail)


@S3_ONLY
async def test_joining_an_upload_the_row_says_is_incomplete_breaks_it(
    api: Api, tus_backend: TusBackend
) -> None:
    """The routes join an upload only once its offset reached its length; a row that says
    otherwise then is a broken upload (answered 410 and dropped), not a server bug's 500."""
    url = await _create(api, 5000)
    assert (await _patch(api, url, 0, b"\xff\xd8\xff\xe0" + bytes(2996))).status == 204
    store = tus_backend.store(api)
    upload = await store.get(url.rsplit("/", 1)[1])
    assert upload is not None
    with pytest.raises(UploadBroken) as broken:
        async for _ in store.iter_bytes(upload, hashlib.sha256()):
            pass
    assert broken.value.code == "upload_incomplete"


@S3_ONLY
async def test_a_missing_tail_object_is_told_apart_by_the_row(
    api: Api, tus_backend: TusBackend
) -> None:
    """A tail object not found is lost bytes only while the row still names it: one the
    row no longer names was folded by a process that took the upload over (this one's
    lease lapsed: upload_locked), and with no row the upload was deleted (gone)."""
    url = await _create(api, 5000)
    assert (await _patch(api, url, 0, b"\xff\xd8\xff\xe0" + bytes(2996))).status == 204
    upload_id = url.rsplit("/", 1)[1]
    store = tus_backend.store(api)
    assert isinstance(store, SharedTusStore)
    row = await store._row(upload_id)
    assert row is not None
    [named] = row.tail
    folded = Segment(f"uploads/{upload_id}/tail-folded", 10)
    assert isinstance(await store._tail_missing(upload_id, named), UploadBroken)
    assert isinstance(await store._tail_missing(upload_id, folded), UploadLocked)
    await store.delete(upload_id)
    assert isinstance(await store._tail_missing(upload_id, named), UploadGone)


@pytest.mark.parametrize("how", ["cut", "lost"])
async def test_an_upload_whose_stored_bytes_were_lost_is_dropped_with_a_410(
    api: Api, tus_backend: TusBackend, corpus: Path, how: str
) -> None:
    """Bytes lost from the bucket or the disk under a committed offset answered 500 to
    every PATCH (a tus client retries those for ever) and kept the rest; a lost tail object
    answered 404 while HEAD still offered the upload; a cut file was silently padded with
    zeros. Now: 410 with its code, nothing of the upload kept, no photo, and HEAD 404."""
    data = (corpus / "real/Landscape_1.jpg").read_bytes()
    url = await _create(api, len(data))
    assert (await _patch(api, url, 0, data[:3000])).status == 204
    await _lose_bytes(api, tus_backend, url.rsplit("/", 1)[1], how)
    resp = await _patch(api, url, 3000, data[3000:])
    assert resp.status == 410, await resp.text()
    assert (await resp.json())["error"]["code"] == "upload_truncated"
    assert (await api.http.head(url, headers=_headers(api))).status == 404
    assert await tus_backend.leftovers(api) == []
    assert await api.blob_keys("originals/") == []
    assert await api.photo_count() == 0


# --- a multipart upload aborted behind the api's back (a bucket lifecycle rule such as
# AbortIncompleteMultipartUpload, an operator's cleanup). On SeaweedFS, a real S3 server:
# moto answers 500 (a KeyError of its own) where S3 answers 404 NoSuchUpload.


@pytest.fixture(scope="module")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackSeaweedFS]:
    with LoopbackSeaweedFS(
        tmp_path_factory.mktemp("seaweedfs"), access_key="tus-key", secret_key="tus-secret"
    ) as server:
        yield server


@pytest.fixture
def seaweed_backend(seaweedfs: LoopbackSeaweedFS) -> TusBackend:
    return TusBackend(
        "s3",
        {
            "blob_url": f"s3://tus-{uuid.uuid4().hex[:12]}",
            "s3_endpoint_url": seaweedfs.url,
            "s3_access_key_id": seaweedfs.access_key,
            "s3_secret_access_key": seaweedfs.secret_key,
        },
    )


@pytest.fixture
async def seaweed_api(
    seaweed_backend: TusBackend, redis_server: RedisServer, redis: aioredis.Redis, tmp_path: Path
) -> AsyncIterator[Api]:
    """The api taking uploads of several S3 parts, its bucket on SeaweedFS."""
    settings = _big_settings(tmp_path, redis_server, seaweed_backend)
    async with running_api(settings, "alice") as api:
        yield api


async def _abort_parts_behind_its_back(api: Api, upload_id: str) -> None:
    """What a lifecycle rule does to the upload's multipart upload: a plain S3 abort."""
    blobs = api.state.blobs
    assert isinstance(blobs, S3BlobStore)
    [(key, multipart_id)] = [
        (key, multipart_id)
        async for key, multipart_id, _ in blobs.list_parts_uploads(f"uploads/{upload_id}/")
    ]
    await blobs.client.abort_multipart_upload(
        Bucket=blobs.bucket, Key=blobs.prefix + key, UploadId=multipart_id
    )


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), MIB):
        yield data[start : start + MIB]


async def test_a_patch_to_an_upload_whose_multipart_upload_was_aborted_is_dropped_with_a_410(
    seaweed_api: Api, seaweed_backend: TusBackend
) -> None:
    """S3's NoSuchUpload to the next part answered 422 blob_not_found (a client bug's
    code, for a loss on the server) and kept the row and the tail. Now 410
    upload_parts_lost, nothing of the upload kept, no photo, and HEAD 404."""
    api = seaweed_api
    data = _big_jpeg(2 * PART_SIZE + 5)
    url = await _create(api, len(data))
    first = PART_SIZE + 3  # a part in the multipart upload, 3 bytes in a tail object
    assert (await _patch(api, url, 0, data[:first])).status == 204
    await _abort_parts_behind_its_back(api, url.rsplit("/", 1)[1])
    resp = await _patch(api, url, first, data[first:])
    assert resp.status == 410, await resp.text()
    assert (await resp.json())["error"]["code"] == "upload_parts_lost"
    assert (await api.http.head(url, headers=_headers(api))).status == 404
    assert await seaweed_backend.leftovers(api) == []
    assert await api.blob_keys("originals/") == []
    assert await api.photo_count() == 0


async def test_joining_parts_whose_multipart_upload_was_aborted_breaks_the_upload(
    seaweed_api: Api, seaweed_backend: TusBackend
) -> None:
    """The join of an upload that ended at a part boundary only completes the multipart
    upload: NoSuchUpload there is the same loss (it was a 422 blob_not_found)."""
    api = seaweed_api
    data = _big_jpeg(2 * PART_SIZE)
    url = await _create(api, len(data))
    first = PART_SIZE + 3
    assert (await _patch(api, url, 0, data[:first])).status == 204
    upload_id = url.rsplit("/", 1)[1]
    store = seaweed_backend.store(api)
    async with store.locked(upload_id):
        upload = await store.get(upload_id)
        assert upload is not None
        upload, cut = await store.append(upload, _chunks(data[first:]), ttl_s=60)
        assert cut is None and upload.offset == len(data)
        await _abort_parts_behind_its_back(api, upload_id)
        with pytest.raises(UploadBroken) as broken:
            async for _ in store.iter_bytes(upload, hashlib.sha256()):
                pass
    assert broken.value.code == "upload_parts_lost"
    await store.delete(upload_id)
    assert await seaweed_backend.leftovers(api) == []


async def test_finishing_an_upload_whose_multipart_upload_was_aborted_is_a_410(
    seaweed_backend: TusBackend, redis_server: RedisServer, redis: aioredis.Redis, tmp_path: Path
) -> None:
    """A complete upload the quota kept (make room, then an empty PATCH finishes it) whose
    multipart upload was aborted meanwhile: the join's NoSuchUpload answers 410 too."""
    data = _big_jpeg(2 * PART_SIZE)
    settings = api_settings(
        tmp_path,
        redis_server.url,
        max_upload_bytes=str(64 * MIB),
        client_quota_bytes=str(len(data) + 1000),
        **seaweed_backend.settings,
    )
    async with running_api(settings, "alice") as api:
        url = await _create(api, len(data))
        upload_id = url.rsplit("/", 1)[1]
        photo = await api.upload(_big_jpeg(2000))
        assert photo.status == 201, await photo.text()
        resp = await _patch(api, url, 0, data)
        assert resp.status == 413, await resp.text()
        assert (await resp.json())["error"]["code"] == "quota_exceeded"
        await _abort_parts_behind_its_back(api, upload_id)
        photo_id = (await photo.json())["photo_id"]
        deleted = await api.http.delete(f"{api.url}/v1/photos/{photo_id}", headers=_headers(api))
        assert deleted.status in (200, 204), await deleted.text()
        resp = await _patch(api, url, len(data), b"")
        assert resp.status == 410, await resp.text()
        assert (await resp.json())["error"]["code"] == "upload_parts_lost"
        assert (await api.http.head(url, headers=_headers(api))).status == 404
        assert await seaweed_backend.leftovers(api) == []


async def test_a_missing_multipart_upload_is_told_apart_by_the_row_and_the_lease(
    seaweed_api: Api, seaweed_backend: TusBackend
) -> None:
    """S3 lost the multipart upload only if the row still names it under this process's
    lease: another multipart upload in the row, or the lease held by another process (which
    may have joined the parts), is upload_locked; with no row the upload is gone."""
    api = seaweed_api
    url = await _create(api, 2 * PART_SIZE)
    assert (await _patch(api, url, 0, _big_jpeg(PART_SIZE + 3))).status == 204
    upload_id = url.rsplit("/", 1)[1]
    store = seaweed_backend.store(api)
    assert isinstance(store, SharedTusStore)
    row = await store._row(upload_id)
    assert row is not None and row.multipart_id is not None
    named = row.multipart_id
    async with store.locked(upload_id):
        assert isinstance(await store._parts_missing(upload_id, named), UploadBroken)
        assert isinstance(await store._parts_missing(upload_id, "another"), UploadLocked)
    # The lease given up (its holder's lease lapsed, another process's came and went).
    assert isinstance(await store._parts_missing(upload_id, named), UploadLocked)
    await store.delete(upload_id)
    assert isinstance(await store._parts_missing(upload_id, named), UploadGone)


def test_an_upload_of_any_length_leaves_half_its_part_numbers_spare() -> None:
    """Parts grow with the upload, so that checksum failures (each spends a number) cannot
    exhaust S3's 10,000 before an upload of any length is done."""
    for length in (1, PART_SIZE * 5000, PART_SIZE * 5000 + 1, 80 * 1024**3, 5 * 1024**4):
        size = part_size_for(length)
        assert size >= PART_SIZE and size % MIB == 0, length
        assert -(-length // size) <= MAX_PARTS // 2, length


async def test_a_first_patch_shorter_than_the_type_check_is_sniffed_with_the_next(
    api: Api, corpus: Path
) -> None:
    """The type is told from the upload's first 64 bytes, whichever PATCHes brought them:
    a client whose first chunk is tiny still uploads its photo."""
    data = (corpus / "real/Landscape_1.jpg").read_bytes()
    url = await _create(api, len(data))
    for start, end in ((0, 2), (2, 40), (40, len(data))):
        resp = await _patch(api, url, start, data[start:end])
        assert resp.status == 204, await resp.text()
    photo_id = resp.headers["Filmstrip-Photo-Id"]
    photo = await api.state.catalog.get_photo(photo_id)
    assert photo is not None and photo.content_type == "image/jpeg"
    assert await api.state.blobs.get_bytes(f"originals/{photo_id}") == data


async def test_a_chunked_patch_running_past_the_length_from_an_offset_is_413(
    api: Api, corpus: Path
) -> None:
    """Without a Content-Length the store counts from the committed offset, not from 0."""
    data = (corpus / "real/Landscape_1.jpg").read_bytes()
    url = await _create(api, 1000)
    assert (await _patch(api, url, 0, data[:600])).status == 204

    async def past_the_end() -> AsyncIterator[bytes]:
        yield data[600:1001]

    resp = await _patch(api, url, 600, past_the_end())  # type: ignore[arg-type]
    assert resp.status == 413, await resp.text()
    assert (await resp.json())["error"]["code"] == "exceeds_length"
    assert await _offset(api, url) == 600
    resp = await _patch(api, url, 600, data[600:1000])
    assert resp.status == 204 and resp.headers["Filmstrip-Photo-Id"]


async def test_a_patch_waits_for_the_writer_still_holding_the_upload(
    api: Api, tus_backend: TusBackend
) -> None:
    """A client resuming right after its connection dropped can arrive before the server
    has let the old request go: its PATCH waits for it, and is not turned away."""
    url = await _create(api, 1000)
    upload_id = url.rsplit("/", 1)[1]
    old = tus_backend.store(api)  # the dropped request, in another api process
    holding = asyncio.Event()

    async def old_request() -> None:
        async with old.locked(upload_id):
            holding.set()
            await asyncio.sleep(0.5)

    task = asyncio.create_task(old_request())
    await holding.wait()
    resp = await _patch(api, url, 0, b"\xff\xd8\xff\xe0" + b"\x00" * 100)
    await task
    assert resp.status == 204, await resp.text()
    assert await _offset(api, url) == 104


@S3_ONLY
async def test_a_lease_is_renewed_while_its_writer_holds_it(
    api: Api, tus_backend: TusBackend
) -> None:
    """A PATCH may stream for longer than a lease lives: no other process takes the upload
    from under it meanwhile, and its commit still counts."""
    url = await _create(api, 1000)
    upload_id = url.rsplit("/", 1)[1]
    holder = tus_backend.store(api, lease_s=1.0)
    rival = tus_backend.store(api, lease_s=1.0, lock_wait_s=0.05)
    async with holder.locked(upload_id):
        await asyncio.sleep(1.5)
        with pytest.raises(UploadLocked):
            async with rival.locked(upload_id):
                pass
        upload = await holder.get(upload_id)
        assert upload is not None
        await holder.save(upload)  # a commit fenced by the lease: still ours


@S3_ONLY
async def test_tail_objects_that_went_into_a_part_are_deleted(
    big_api: Api, tus_backend: TusBackend
) -> None:
    """Bytes are held once while an upload waits for its next PATCH: a tail joined into a
    part goes as soon as the part is recorded, not when the upload ends."""
    api = big_api
    data = _big_jpeg(20 * MIB)
    url = await _create(api, len(data))
    assert (await _patch(api, url, 0, data[: 3 * MIB])).status == 204  # a tail object
    # With the tail these bytes fill a part (8 MiB); 1 MiB is the new tail.
    assert (await _patch(api, url, 3 * MIB, data[3 * MIB : 9 * MIB])).status == 204
    held = await tus_backend.bytes_held(api)
    assert len(held) == 2 and held[0].startswith("multipart "), held


@S3_ONLY
async def test_a_tail_of_many_small_patches_is_folded(
    api: Api, tus_backend: TusBackend, corpus: Path
) -> None:
    """Tiny PATCHes each leave an object; past MAX_SEGMENTS they are folded into one, so
    that joining the tail never reads thousands of them."""
    data = (corpus / "real/Landscape_1.jpg").read_bytes()
    url = await _create(api, len(data))
    for n in range(MAX_SEGMENTS + 2):
        resp = await _patch(api, url, n * 50, data[n * 50 : (n + 1) * 50])
        assert resp.status == 204, await resp.text()
    held = await tus_backend.bytes_held(api)
    assert 0 < len(held) <= MAX_SEGMENTS, len(held)
    resp = await _patch(api, url, (MAX_SEGMENTS + 2) * 50, data[(MAX_SEGMENTS + 2) * 50 :])
    photo_id = resp.headers["Filmstrip-Photo-Id"]
    assert await api.state.blobs.get_bytes(f"originals/{photo_id}") == data


@S3_ONLY
async def test_a_patch_whose_commit_is_refused_leaves_no_object(
    big_api: Api, tus_backend: TusBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer whose lease was taken over writes its tail, then finds its commit fenced
    off: the object it wrote goes with it, nothing waits for the sweeper."""
    api = big_api
    url = await _create(api, PART_SIZE + 4)
    upload_id = url.rsplit("/", 1)[1]
    store = tus_backend.store(api)
    assert isinstance(store, SharedTusStore)

    async def fenced(*args: object, **kwargs: object) -> None:
        return None  # what the catalog answers a writer whose lease is someone else's

    async def body() -> AsyncIterator[bytes]:
        yield b"\xff\xd8\xff\xe0" + b"\x00" * 100

    async def a_part_and_more() -> AsyncIterator[bytes]:
        yield b"\xff\xd8\xff\xe0" + b"\x00" * PART_SIZE

    async with store.locked(upload_id):
        upload = await store.get(upload_id)
        assert upload is not None
        monkeypatch.setattr(store.rows, "commit", fenced)
        with pytest.raises(UploadLocked):
            await store.append(upload, body(), ttl_s=60)
        assert await tus_backend.bytes_held(api) == []
        # A part's worth opens a multipart upload first, and records it at once: refused,
        # it is aborted then and there.
        with pytest.raises(UploadLocked):
            await store.append(upload, a_part_and_more(), ttl_s=60)
    assert await tus_backend.bytes_held(api) == []


@S3_ONLY
async def test_the_sweep_takes_orphans_and_only_orphans(
    api: Api, tus_backend: TusBackend, corpus: Path
) -> None:
    """Objects and multipart uploads under ``uploads/`` with no row (a crash between
    writing and recording) go once old; a live upload's, however old, stay."""
    data = (corpus / "real/Landscape_1.jpg").read_bytes()
    url = await _create(api, len(data))
    assert (await _patch(api, url, 0, data[:3000])).status == 204
    blobs = api.state.blobs
    assert isinstance(blobs, S3BlobStore)
    orphan = uuid.uuid4().hex
    await blobs.put_bytes(f"uploads/{orphan}/tail-0", b"x", content_type="a/b")
    await blobs.create_parts(f"uploads/{orphan}/data", content_type="a/b")
    # Every object counts as old here; no row has expired.
    assert await tus_backend.store(api).sweep(stale_s=EVERY_BLOB) == 0
    assert not [f for f in await tus_backend.leftovers(api) if orphan in f]
    resp = await _patch(api, url, 3000, data[3000:])
    assert resp.status == 204, await resp.text()
    photo_id = resp.headers["Filmstrip-Photo-Id"]
    assert await api.state.blobs.get_bytes(f"originals/{photo_id}") == data


@S3_ONLY
async def test_the_sweep_steps_over_a_leftover_whose_key_the_store_refuses(
    api: Api, tus_backend: TusBackend, caplog: pytest.LogCaptureFixture
) -> None:
    """An object or multipart upload under ``uploads/`` whose key the store refuses (a NUL,
    a backslash: another tool's) cannot be named: aborting it raised, and the sweep stopped
    with the other leftovers in place, every round."""
    blobs = api.state.blobs
    assert isinstance(blobs, S3BlobStore)
    # moto answers 500 to a multipart upload whose key holds a NUL: a backslash there.
    bad_object, bad_multipart = "uploads/x\x00y/data", "uploads/x\\y/data"
    await blobs.ensure_bucket()
    full = blobs.prefix
    await blobs.client.put_object(Bucket=blobs.bucket, Key=full + bad_object, Body=b"z")
    await blobs.client.create_multipart_upload(Bucket=blobs.bucket, Key=full + bad_multipart)
    orphans = [uuid.uuid4().hex for _ in range(2)]
    for orphan in orphans:
        await blobs.put_bytes(f"uploads/{orphan}/tail-0", b"x", content_type="a/b")
        await blobs.create_parts(f"uploads/{orphan}/data", content_type="a/b")
    with caplog.at_level(logging.WARNING, "filmstrip"):
        assert await tus_backend.store(api).sweep(stale_s=EVERY_BLOB) == 0
    assert await tus_backend.leftovers(api) == [f"multipart {bad_multipart}", bad_object]
    for bad in (bad_object, bad_multipart):
        told = [r.levelno for r in caplog.records if repr(bad) in r.getMessage()]
        assert told == [logging.WARNING], bad


@S3_ONLY
async def test_one_failed_renewal_does_not_give_the_lease_up(
    api: Api, tus_backend: TusBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A renewal the catalog could not answer (a blip) is tried again at the next turn:
    the writer keeps the upload."""
    url = await _create(api, 1000)
    upload_id = url.rsplit("/", 1)[1]
    holder = tus_backend.store(api, lease_s=1.0)
    rival = tus_backend.store(api, lease_s=1.0, lock_wait_s=0.05)
    assert isinstance(holder, SharedTusStore)
    renew = holder.rows.renew
    failures = 0

    async def blip(upload_id: str, owner: str, ttl_s: float) -> bool:
        nonlocal failures
        if not failures:
            failures += 1
            raise FilmstripError("the catalog did not answer", code="catalog_unavailable")
        return await renew(upload_id, owner, ttl_s)

    monkeypatch.setattr(holder.rows, "renew", blip)
    async with holder.locked(upload_id):
        await asyncio.sleep(1.5)
        assert failures == 1
        with pytest.raises(UploadLocked):
            async with rival.locked(upload_id):
                pass


async def test_an_upload_into_another_clients_session_is_refused_at_creation(
    api: Api, tus_backend: TusBackend
) -> None:
    """As with a multipart upload, before any byte is sent: a client would otherwise send
    a whole photo to learn the session was never its own."""
    bob = await api.new_token("bob")
    theirs = await new_session(api, token=bob)
    for session_id, status, code in (
        (theirs, 404, "session_not_found"),
        ("no such session", 400, "bad_session_id"),
    ):
        encoded = base64.b64encode(session_id.encode()).decode()
        headers = _headers(
            api, **{"Upload-Length": "1000", "Upload-Metadata": f"session_id {encoded}"}
        )
        resp = await api.http.post(f"{api.url}/v1/uploads", headers=headers)
        assert resp.status == status, await resp.text()
        assert (await resp.json())["error"]["code"] == code
    assert await tus_backend.leftovers(api) == []


@S3_ONLY
@pytest.mark.parametrize("noticed", [False, True], ids=["commit-first", "renewal-first"])
async def test_a_writer_whose_lease_was_taken_over_spoils_and_deletes_nothing(
    api: Api, tus_backend: TusBackend, corpus: Path, caplog: pytest.LogCaptureFixture,
    noticed: bool,
) -> None:  # fmt: skip
    """An api process mid-PATCH stalls past its lease (its host was cut off) and another
    process takes the upload over. Whether the first's body ends before its next renewal
    (its commit is fenced off in the catalog) or after (the renewal finds the lease gone and
    the first lets go of it at once), the first changes nothing, and giving up its lock does
    not free the new holder's lease: the upload then completes with the right bytes."""
    data = (corpus / "real/Landscape_1.jpg").read_bytes()
    half = len(data) // 2
    url = await _create(api, len(data))
    upload_id = url.rsplit("/", 1)[1]
    # Renewed every 0.3 s, or (commit-first) not within the test.
    first = tus_backend.store(api, lease_s=0.9 if noticed else 30.0)
    rival = tus_backend.store(api, lease_s=30.0, lock_wait_s=0.05)
    assert isinstance(first, SharedTusStore) and isinstance(rival, SharedTusStore)
    streaming, resume = asyncio.Event(), asyncio.Event()

    async def stale_body() -> AsyncIterator[bytes]:
        yield b"\xff\xd8\xff\xe0" + b"\x00" * 1000
        streaming.set()
        await resume.wait()
        yield b"\x00" * 1000

    async def stale_patch() -> None:
        async with first.locked(upload_id):
            upload = await first.get(upload_id)
            assert upload is not None
            await first.append(upload, stale_body(), ttl_s=600)

    async def fresh_body() -> AsyncIterator[bytes]:
        yield data[:half]

    caplog.set_level(logging.WARNING, logger="filmstrip.api.tus")
    stale = asyncio.create_task(stale_patch())
    await streaming.wait()
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(5):  # (again if the first's keeper renewed in between)
            # Its lease lapses, as after a stall longer than it lives; the rival takes it.
            assert await first.rows.renew(upload_id, first._leases[upload_id], -1.0)
            with contextlib.suppress(UploadLocked):
                await stack.enter_async_context(rival.locked(upload_id))
                break
        else:
            raise AssertionError("the rival could not take the lapsed lease")
        if noticed:
            for _ in range(100):
                if any("lost the lease" in r.getMessage() for r in caplog.records):
                    break
                await asyncio.sleep(0.02)
            else:
                raise AssertionError("the first writer never noticed it lost its lease")
        resume.set()
        with pytest.raises(UploadLocked):
            await stale  # its commit changed nothing; it has let go of the upload
        upload = await rival.get(upload_id)
        assert upload is not None and upload.offset == 0  # nothing of the stale PATCH
        upload, cut = await rival.append(upload, fresh_body(), ttl_s=600)
        assert cut is None and upload.offset == half  # its lease is still held
    resp = await _patch(api, url, half, data[half:])
    assert resp.status == 204, await resp.text()
    photo_id = resp.headers["Filmstrip-Photo-Id"]
    assert await api.state.blobs.get_bytes(f"originals/{photo_id}") == data
