"""tus through the library against a real api, with a proxy in between that can lose a
PATCH's answer after the api took its bytes, or change a byte on the way: the upload asks
the api where it stands and goes on from there in the same run, sends a chunk that arrived
damaged again, and a run that finds an upload kept by an earlier one sends only the rest.
The api's duplicate verdict and the upload session come through tus too."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
import pyvips
import redis.asyncio as aioredis
from aiohttp import web

from bench.redis_server import RedisServer
from filmstrip.client import ApiClient, ResumeStore, inspect_file, upload_file
from filmstrip.client.files import LocalFile
from filmstrip.client.tus import OFFSET_CONTENT_TYPE, TUS_VERSION
from filmstrip.embedded.redis_server import free_port
from tests.api.conftest import api_settings, running_api

CHUNK = 64 * 1024
# What the proxy does with a PATCH: pass it on, cut it before the api sees it, pass it on
# and lose the answer, or change one byte of its body on the way.
Policy = Callable[[str, int], str]
_HOP = {"host", "content-length", "transfer-encoding", "connection", "date", "server"}


def _jpeg(path: Path, size: int) -> LocalFile:
    image = pyvips.Image.gaussnoise(size, size, sigma=60).cast("uchar")
    path.write_bytes(image.jpegsave_buffer(Q=95))
    return inspect_file(path)


@pytest.fixture
async def proxy() -> AsyncIterator[Callable[[str, Policy], Awaitable[str]]]:
    """Factory: a proxy to ``target`` on loopback whose PATCHes obey ``policy(upload id,
    Upload-Offset)``; its URL."""
    runners: list[web.AppRunner] = []
    sessions: list[aiohttp.ClientSession] = []

    async def start(target: str, policy: Policy) -> str:
        session = aiohttp.ClientSession(auto_decompress=False)
        sessions.append(session)

        async def forward(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            action = "pass"
            if request.method == "PATCH":
                action = policy(request.path, int(request.headers["Upload-Offset"]))
            if action == "damage":
                body = bytes([body[0] ^ 0xFF]) + body[1:]
            if action == "cut" and request.transport is not None:
                request.transport.close()  # before the api has any of it
                return web.Response(status=502)
            headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
            async with session.request(
                request.method, target + request.path_qs, data=body, headers=headers
            ) as resp:
                raw = await resp.read()
                back = {k: v for k, v in resp.headers.items() if k.lower() not in _HOP}
            if action == "lose" and request.transport is not None:
                request.transport.close()  # the api has the bytes; the client never hears
            return web.Response(status=resp.status, body=raw, headers=back)

        app = web.Application(client_max_size=4 * CHUNK)
        app.router.add_route("*", "/{tail:.*}", forward)
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()
    for session in sessions:
        await session.close()


def _first_try(action: str) -> Policy:
    """``action`` on the first PATCH at each offset, the others passed on."""
    seen: set[tuple[str, int]] = set()

    def policy(path: str, offset: int) -> str:
        first = (path, offset) not in seen
        seen.add((path, offset))
        return action if first else "pass"

    return policy


@pytest.mark.parametrize("cut", ["cut", "lose"])
async def test_each_chunk_cut_once_still_makes_the_photo(
    redis_server: RedisServer,
    redis: aioredis.Redis,
    tmp_path: Path,
    proxy: Callable[[str, Policy], Awaitable[str]],
    cut: str,
) -> None:
    # Each chunk's first PATCH is cut, before the api has it or after (its answer lost;
    # the last one's made the photo): more cuts than the upload tolerates in a row, but
    # each followed by progress, so never two in a row.
    photo = await asyncio.to_thread(_jpeg, tmp_path / "a.jpg", 800)
    chunks = -(-photo.size // CHUNK)
    assert chunks > 8, chunks
    settings = api_settings(tmp_path, redis_server.url)
    async with running_api(settings, "erin") as api:
        url = await proxy(api.url, _first_try(cut))
        async with ApiClient(url, api.token) as client:
            done = await upload_file(client, photo, multipart_max_bytes=0, chunk_bytes=CHUNK)
            record = await client.photo(done.photo_id)
    assert record.sha256 == photo.sha256 and not done.duplicate


async def test_a_chunk_damaged_on_the_way_is_sent_again(
    redis_server: RedisServer,
    redis: aioredis.Redis,
    tmp_path: Path,
    proxy: Callable[[str, Policy], Awaitable[str]],
) -> None:
    photo = await asyncio.to_thread(_jpeg, tmp_path / "b.jpg", 300)
    damaged: list[int] = []

    def damage_once(path: str, offset: int) -> str:
        if offset == CHUNK and not damaged:
            damaged.append(offset)
            return "damage"
        return "pass"

    settings = api_settings(tmp_path, redis_server.url)
    async with running_api(settings, "frank") as api:
        url = await proxy(api.url, damage_once)
        async with ApiClient(url, api.token) as client:
            done = await upload_file(client, photo, multipart_max_bytes=0, chunk_bytes=CHUNK)
            record = await client.photo(done.photo_id)
    assert damaged and record.sha256 == photo.sha256


async def test_a_kept_upload_is_finished_from_where_the_api_s_bytes_end(
    redis_server: RedisServer, redis: aioredis.Redis, tmp_path: Path
) -> None:
    photo = await asyncio.to_thread(_jpeg, tmp_path / "c.jpg", 500)
    assert photo.sha256 is not None
    data = photo.path.read_bytes()
    tus = {"Tus-Resumable": TUS_VERSION}
    store = ResumeStore(tmp_path / "state")
    settings = api_settings(tmp_path, redis_server.url)
    async with running_api(settings, "gina") as api, ApiClient(api.url, api.token) as client:
        # An earlier run: created the upload, kept it, sent two chunks, was cut.
        made = await api.http.post(
            f"{api.url}/v1/uploads", headers={**api.auth, **tus, "Upload-Length": str(len(data))}
        )
        assert made.status == 201, await made.text()
        upload = api.url + made.headers["Location"]
        await store.put(client.url, photo.sha256, upload)
        for offset in (0, CHUNK):
            chunk = data[offset : offset + CHUNK]
            digest = base64.b64encode(hashlib.sha256(chunk).digest()).decode()
            sent = await api.http.patch(upload, data=chunk, headers={
                **api.auth, **tus, "Upload-Offset": str(offset), "Content-Type":
                OFFSET_CONTENT_TYPE, "Upload-Checksum": f"sha256 {digest}",
            })  # fmt: skip
            assert sent.status == 204, await sent.text()
        seen: list[int] = []
        done = await upload_file(
            client, photo, resume=store, progress=seen.append, multipart_max_bytes=0,
            chunk_bytes=CHUNK,
        )  # fmt: skip
        assert done.resumed_at == 2 * CHUNK and seen[0] == 2 * CHUNK
        assert (await client.photo(done.photo_id)).sha256 == photo.sha256
        status = await (await api.http.get(upload, headers=api.auth)).json()
        assert (status["state"], status["photo_id"]) == ("done", done.photo_id)  # that upload
        assert await store.get(client.url, photo.sha256) is None


async def test_tus_says_duplicate_and_puts_the_photo_in_its_session(
    redis_server: RedisServer, redis: aioredis.Redis, tmp_path: Path
) -> None:
    photo = await asyncio.to_thread(_jpeg, tmp_path / "d.jpg", 300)
    settings = api_settings(tmp_path, redis_server.url)
    async with running_api(settings, "hana") as api, ApiClient(api.url, api.token) as client:
        session = (await client.create_session()).session_id
        first = await upload_file(client, photo, session_id=session, multipart_max_bytes=0)
        again = await upload_file(client, photo, multipart_max_bytes=0)
        assert not first.duplicate
        assert again.duplicate and again.photo_id == first.photo_id
        listed = await (
            await api.http.get(f"{api.url}/v1/sessions/{session}", headers=api.auth)
        ).json()
        assert listed["photo_ids"] == [first.photo_id]


async def test_progress_reaches_each_chunk_s_end_as_it_goes(
    redis_server: RedisServer, redis: aioredis.Redis, tmp_path: Path
) -> None:
    photo = await asyncio.to_thread(_jpeg, tmp_path / "e.jpg", 500)
    seen: list[int] = []
    settings = api_settings(tmp_path, redis_server.url)
    async with running_api(settings, "ivan") as api, ApiClient(api.url, api.token) as client:
        await upload_file(
            client, photo, progress=seen.append, multipart_max_bytes=0, chunk_bytes=CHUNK
        )
    ends = [min(end, photo.size) for end in range(CHUNK, photo.size + CHUNK, CHUNK)]
    assert seen[:3] == [0, CHUNK, 2 * CHUNK]  # each chunk's end once it is handed over
    assert set(ends) <= set(seen) and seen == sorted(seen)
