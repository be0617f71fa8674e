"""Per-client storage limits over HTTP: open tus uploads (count and declared bytes), and
the quota on stored originals on both upload paths, refused before anything is stored
where possible and leaving nothing half-written where not."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from bench.redis_server import RedisServer
from tests.api.conftest import Api, TusBackend, api_settings, running_api

TUS = {"Tus-Resumable": "1.0.0"}
PATCH = {**TUS, "Content-Type": "application/offset+octet-stream"}


@asynccontextmanager
async def _api(
    redis_server: RedisServer,
    tmp_path: Path,
    tus_backend: TusBackend | None = None,
    **settings: str,
) -> AsyncIterator[Api]:
    """An api; with ``tus_backend``, partial uploads in that store (else local files)."""
    extra = {**(tus_backend.settings if tus_backend else {}), **settings}
    async with running_api(api_settings(tmp_path, redis_server.url, **extra), "alice") as api:
        yield api


def _jpeg(size: int) -> bytes:
    """``size`` bytes that sniff as JPEG and differ on every call."""
    return b"\xff\xd8\xff\xe0" + os.urandom(size - 4)


async def _error(resp: aiohttp.ClientResponse) -> tuple[int, str]:
    body: dict[str, Any] = await resp.json()
    return resp.status, str(body["error"]["code"])


def _auth(api: Api, token: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token or api.token}"}


async def _create(api: Api, length: int, token: str | None = None) -> aiohttp.ClientResponse:
    return await api.http.post(
        f"{api.url}/v1/uploads",
        headers={**_auth(api, token), **TUS, "Upload-Length": str(length)},
    )


async def _created(api: Api, length: int, token: str | None = None) -> str:
    resp = await _create(api, length, token)
    assert resp.status == 201, await resp.text()
    return api.url + resp.headers["Location"]


async def _patch(api: Api, url: str, offset: int, data: bytes) -> aiohttp.ClientResponse:
    return await api.http.patch(
        url, data=data, headers={**_auth(api), **PATCH, "Upload-Offset": str(offset)}
    )


async def _delete(api: Api, url: str) -> None:
    resp = await api.http.delete(url, headers={**_auth(api), **TUS})
    assert resp.status == 204


async def _originals(api: Api) -> list[str]:
    """Original blobs and temp files in the blob store (a half-written one included)."""
    if api.settings.effective_blob_url.startswith("s3://"):
        return await api.blob_keys("originals/")
    return [f for f in api.blob_files() if f.startswith(("originals/", ".tmp/"))]


async def _photo_ids(api: Api) -> list[str]:
    rows = await api.state.catalog._fetchall("SELECT id FROM photos ORDER BY uploaded_at")
    return [str(r[0]) for r in rows]


# --- open tus uploads ------------------------------------------------------------------


async def test_a_client_may_hold_only_so_many_open_uploads(
    redis_server: RedisServer,
    redis: aioredis.Redis,
    tmp_path: Path,
    tus_backend: TusBackend,
) -> None:
    async with _api(redis_server, tmp_path, tus_backend, tus_max_open_per_client="3") as api:
        urls = [await _created(api, 1000) for _ in range(3)]
        status, code = await _error(await _create(api, 1000))
        assert (status, code) == (429, "too_many_open_uploads")
        assert len(await tus_backend.uploads(api)) == 3  # the refused one was never made
        # Another client has its own allowance.
        await _created(api, 1000, await api.new_token())
        # A terminated upload and a finished one no longer count.
        await _delete(api, urls[0])
        urls.append(await _created(api, 1000))
        data = _jpeg(1000)
        resp = await _patch(api, urls[1], 0, data)
        assert resp.status == 204 and resp.headers["Filmstrip-Photo-Id"]
        await _created(api, 1000)
        assert (await _create(api, 1000)).status == 429


async def test_concurrent_creations_cannot_pass_the_bound(
    redis_server: RedisServer,
    redis: aioredis.Redis,
    tmp_path: Path,
    tus_backend: TusBackend,
) -> None:
    """The attack: a burst of creations at once. Each is counted while no other creation
    of the client runs, so exactly the allowance gets through."""
    async with _api(redis_server, tmp_path, tus_backend, tus_max_open_per_client="3") as api:
        answers = await asyncio.gather(*(_create(api, 1000) for _ in range(16)))
        statuses = sorted(r.status for r in answers)
        assert statuses == [201] * 3 + [429] * 13, statuses
        assert len(await tus_backend.uploads(api)) == 3


async def test_api_processes_sharing_the_uploads_share_the_bound(
    redis_server: RedisServer,
    redis: aioredis.Redis,
    tmp_path: Path,
    tus_backend: TusBackend,
) -> None:
    settings = api_settings(
        tmp_path, redis_server.url, tus_max_open_per_client="3", **tus_backend.settings
    )
    async with running_api(settings, "alice") as one, running_api(settings, "alice") as two:
        answers = await asyncio.gather(*(_create(api, 1000) for api in [one, two] * 8))
        statuses = sorted(r.status for r in answers)
        assert statuses == [201] * 3 + [429] * 13, statuses


async def test_the_sweeper_keeps_the_count_of_open_uploads(
    redis_server: RedisServer,
    redis: aioredis.Redis,
    tmp_path: Path,
    tus_backend: TusBackend,
) -> None:
    async with _api(redis_server, tmp_path, tus_backend, tus_max_open_per_client="2") as api:
        urls = [await _created(api, 1000) for _ in range(2)]
        store = tus_backend.store(api)
        # A sweep that finds everything of its own older than its grace: the count of the
        # open uploads is not such a leftover.
        assert await store.sweep(after_s=60, stale_s=1) == 0
        assert (await _create(api, 1000)).status == 429
        # Expired and swept, they count no more.
        assert await store.sweep(after_s=2 * api.settings.tus.expiry_s) == 2
        await _created(api, 1000)
        for url in urls:
            assert (await api.http.head(url, headers={**_auth(api), **TUS})).status == 404


async def test_the_declared_bytes_of_open_uploads_are_bounded(
    redis_server: RedisServer,
    redis: aioredis.Redis,
    tmp_path: Path,
    tus_backend: TusBackend,
) -> None:
    async with _api(
        redis_server, tmp_path, tus_backend, tus_max_open_bytes_per_client="1000"
    ) as api:
        first = await _created(api, 600)
        status, code = await _error(await _create(api, 500))
        assert (status, code) == (413, "open_uploads_too_large")
        assert len(await tus_backend.uploads(api)) == 1
        await _created(api, 400)  # 1000 in all: at the budget, not past it
        assert (await _create(api, 1)).status == 413
        await _delete(api, first)
        await _created(api, 600)


# --- the quota, multipart --------------------------------------------------------------


async def test_the_quota_holds_on_multipart_uploads(
    redis_server: RedisServer, redis: aioredis.Redis, tmp_path: Path
) -> None:
    async with _api(redis_server, tmp_path, client_quota_bytes="3000") as api:
        first = _jpeg(2000)
        assert (await api.upload(first)).status == 201
        # Past the room mid-stream: refused, and the bytes that arrived are not kept.
        status, code = await _error(await api.upload(_jpeg(1500)))
        assert (status, code) == (413, "quota_exceeded")
        assert len(await _originals(api)) == 1 and len(await _photo_ids(api)) == 1
        assert (await api.upload(_jpeg(1000))).status == 201  # exactly at the quota
        # At the quota: refused before the body is read.
        status, code = await _error(await api.upload(_jpeg(10)))
        assert (status, code) == (413, "quota_exceeded")
        # Bytes the client already has cost nothing: the duplicate is still answered when
        # announced. Unannounced, the refusal comes before the body (and its hash): as
        # README and docs/api.md say.
        assert await _error(await api.upload(first)) == (413, "quota_exceeded")
        digest = hashlib.sha256(first).hexdigest()
        assert (await api.upload(first, headers={"X-Content-SHA256": digest})).status == 200
        # Another client has a quota of its own; deleting a photo makes room.
        assert (await api.upload(_jpeg(2500), token=await api.new_token())).status == 201
        photo = (await _photo_ids(api))[0]
        resp = await api.http.delete(f"{api.url}/v1/photos/{photo}", headers=_auth(api))
        assert resp.status == 204
        assert (await api.upload(_jpeg(1900))).status == 201
        assert len(await _originals(api)) == 3  # the deleted photo's original went with it


async def test_concurrent_uploads_cannot_both_slip_under_the_quota(
    redis_server: RedisServer, redis: aioredis.Redis, tmp_path: Path
) -> None:
    """Two uploads that each fit, both past the check before the body: the transaction
    that records a photo refuses the second, and its blob is removed."""
    mb = 1024 * 1024
    async with _api(redis_server, tmp_path, client_quota_bytes=str(4 * mb)) as api:
        release = asyncio.Event()
        boundary = "quota-race"

        async def body(data: bytes) -> AsyncIterator[bytes]:
            # More than the file store buffers before it writes its temp file.
            yield (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                f'filename="a.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
            ).encode() + data[: 2 * mb]
            await release.wait()
            yield data[2 * mb :] + f"\r\n--{boundary}--\r\n".encode()

        async def send(data: bytes) -> int:
            resp = await api.http.post(
                f"{api.url}/v1/photos",
                data=body(data),
                headers={
                    **_auth(api),
                    "Content-Type": f"multipart/form-data; boundary={boundary}",
                },
            )
            return resp.status

        racing = [asyncio.create_task(send(_jpeg(3 * mb))) for _ in range(2)]
        try:
            # Both are streaming into temp blobs: both passed the check before the body.
            deadline = time.monotonic() + 10
            while len([f for f in api.blob_files() if f.startswith(".tmp/")]) < 2:
                assert time.monotonic() < deadline, api.blob_files()
                await asyncio.sleep(0.02)
        finally:
            release.set()
        assert sorted(await asyncio.gather(*racing)) == [201, 413]
        assert len(await _originals(api)) == 1 and len(await _photo_ids(api)) == 1
        assert await api.state.catalog.stored_bytes(await _client_id(api)) == 3 * mb


async def test_a_multipart_upload_past_the_quota_is_cut_short(
    redis_server: RedisServer, redis: aioredis.Redis, tmp_path: Path
) -> None:
    """The answer comes without the rest of the body: at the quota before the body is
    read, and with room left once the file passes it."""
    mb = 1024 * 1024
    async with _api(redis_server, tmp_path, client_quota_bytes=str(3 * mb)) as api:
        never = asyncio.Event()
        boundary = "quota-cut"

        async def body(data: bytes) -> AsyncIterator[bytes]:
            yield (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                f'filename="a.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
            ).encode() + data
            await never.wait()  # the rest never comes

        async def send(data: bytes) -> tuple[int, str]:
            resp = await api.http.post(
                f"{api.url}/v1/photos",
                data=body(data),
                headers={
                    **_auth(api),
                    "Content-Type": f"multipart/form-data; boundary={boundary}",
                },
            )
            return await _error(resp)

        assert (await api.upload(_jpeg(2 * mb))).status == 201
        # 1.5 MB sent of a file the client says nothing more about: past the 1 MB of room.
        answer = await asyncio.wait_for(send(_jpeg(3 * mb // 2)), 10)
        assert answer == (413, "quota_exceeded")
        assert (await api.upload(_jpeg(mb))).status == 201
        answer = await asyncio.wait_for(send(_jpeg(100)), 10)  # at the quota: no room at all
        assert answer == (413, "quota_exceeded")
        assert len(await _originals(api)) == 2 and len(await _photo_ids(api)) == 2


async def _client_id(api: Api) -> str:
    client = await api.state.catalog.find_client_by_name("alice")
    assert client is not None
    return client.id


# --- the quota, tus --------------------------------------------------------------------


async def test_the_quota_holds_on_tus_uploads(
    redis_server: RedisServer,
    redis: aioredis.Redis,
    tmp_path: Path,
    tus_backend: TusBackend,
) -> None:
    async with _api(redis_server, tmp_path, tus_backend, client_quota_bytes="3000") as api:
        assert (await api.upload(_jpeg(2000))).status == 201
        # Refused at creation, before a byte is sent, when the upload cannot fit (by one
        # byte: the 1000 that fit exactly are admitted below).
        status, code = await _error(await _create(api, 1001))
        assert (status, code) == (413, "quota_exceeded")
        assert await tus_backend.uploads(api) == []
        url = await _created(api, 1000)
        # The room went to another upload meanwhile: the last byte is refused before the
        # copy to the blob store, and the upload stays complete, waiting for room.
        assert (await api.upload(_jpeg(500))).status == 201
        data = _jpeg(1000)
        status, code = await _error(await _patch(api, url, 0, data))
        assert (status, code) == (413, "quota_exceeded")
        assert len(await _originals(api)) == 2 and len(await _photo_ids(api)) == 2
        head = await api.http.head(url, headers={**_auth(api), **TUS})
        assert head.headers["Upload-Offset"] == "1000" and "Filmstrip-Photo-Id" not in head.headers
        # Room made: an empty PATCH finishes it.
        photo = (await _photo_ids(api))[1]
        resp = await api.http.delete(f"{api.url}/v1/photos/{photo}", headers=_auth(api))
        assert resp.status == 204
        resp = await _patch(api, url, 1000, b"")
        assert resp.status == 204 and resp.headers["Filmstrip-Photo-Id"]
        assert len(await _originals(api)) == 2
        assert await api.state.catalog.stored_bytes(await _client_id(api)) == 3000


async def test_without_a_quota_nothing_is_counted_against_one(
    redis_server: RedisServer, redis: aioredis.Redis, tmp_path: Path
) -> None:
    async with _api(redis_server, tmp_path, max_upload_bytes="5000") as api:
        assert api.settings.api.client_quota_bytes == 0
        for _ in range(4):
            assert (await api.upload(_jpeg(5000))).status == 201
        url = await _created(api, 5000)
        assert (await _patch(api, url, 0, _jpeg(5000))).status == 204
        # Still counted, so a quota set later is right from its first upload.
        assert await api.state.catalog.stored_bytes(await _client_id(api)) == 25000
