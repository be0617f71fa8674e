"""Uploads through the library against a real api: tus in chunks, each checked by the
server; a kept upload that the server no longer has is started afresh; a refusal is a DATA
failure that forgets its resume point."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest
import pyvips
import redis.asyncio as aioredis

from bench.redis_server import RedisServer
from filmstrip.client import ApiClient, ApiFailure, ResumeStore, inspect_file, upload_file
from filmstrip.client.files import LocalFile
from filmstrip.client.upload import MULTIPART_MAX_BYTES
from filmstrip.errors import Category
from tests.api.conftest import api_settings, running_api


def _jpeg(path: Path, size: int = 600) -> Path:
    image = pyvips.Image.gaussnoise(size, size, sigma=60).cast("uchar")
    path.write_bytes(image.jpegsave_buffer(Q=95))
    return path


async def test_tus_in_chunks_and_multipart_make_the_same_photo_once(
    redis_server: RedisServer, redis: aioredis.Redis, tmp_path: Path
) -> None:
    photo = await asyncio.to_thread(inspect_file, _jpeg(tmp_path / "a.jpg"))
    assert photo.format == "jpeg" and photo.size > 200_000
    store = ResumeStore(tmp_path / "state")
    seen: list[int] = []
    settings = api_settings(tmp_path, redis_server.url)
    async with running_api(settings, "alice") as api, ApiClient(api.url, api.token) as client:
        done = await upload_file(
            client, photo, resume=store, progress=seen.append, multipart_max_bytes=0,
            chunk_bytes=64 * 1024,
        )  # fmt: skip
        assert not done.duplicate and done.resumed_at == 0
        record = await client.photo(done.photo_id)
        assert record.sha256 == photo.sha256 == hashlib.sha256(photo.path.read_bytes()).hexdigest()
        assert seen[-1] == photo.size and seen == sorted(seen) and len(set(seen)) > 3
        assert not list((tmp_path / "state").glob("*.json"))  # finished: nothing kept
        # The same bytes again, the small way: the server already has them.
        again = await upload_file(client, photo)
        assert again.duplicate and again.photo_id == done.photo_id
        assert await client.existing([photo.sha256 or ""]) == {photo.sha256: done.photo_id}


async def test_a_kept_upload_the_server_lost_starts_afresh_and_a_refusal_is_final(
    redis_server: RedisServer, redis: aioredis.Redis, tmp_path: Path
) -> None:
    photo = await asyncio.to_thread(inspect_file, _jpeg(tmp_path / "b.jpg", 400))
    store = ResumeStore(tmp_path / "state")
    settings = api_settings(tmp_path, redis_server.url)
    async with running_api(settings, "bob") as api, ApiClient(api.url, api.token) as client:
        assert photo.sha256 is not None
        await store.put(client.url, photo.sha256, f"{api.url}/v1/uploads/{'0' * 32}")
        done = await upload_file(client, photo, resume=store, multipart_max_bytes=0)
        assert done.resumed_at == 0 and (await client.photo(done.photo_id)).status

        text = tmp_path / "notes.jpg"
        text.write_bytes(b"not a photo at all " * 1000)
        # Claimed to be a photo, so it is sent: the server reads the bytes and refuses.
        fake = LocalFile(path=text, size=text.stat().st_size, format="jpeg", sha256="f" * 64)
        with pytest.raises(ApiFailure) as refused:
            await upload_file(client, fake, resume=store, multipart_max_bytes=0)
        assert refused.value.status == 415 and refused.value.category is Category.DATA
        assert await store.get(client.url, "f" * 64) is None


async def test_the_file_name_goes_with_both_ways_of_uploading(
    redis_server: RedisServer, redis: aioredis.Redis, tmp_path: Path
) -> None:
    small = await asyncio.to_thread(inspect_file, _jpeg(tmp_path / "Été à Zürich 100%41.jpg", 100))
    large = await asyncio.to_thread(inspect_file, _jpeg(tmp_path / "tus 100%.jpg", 300))
    settings = api_settings(tmp_path, redis_server.url)
    async with running_api(settings, "carol") as api, ApiClient(api.url, api.token) as client:
        multipart = await upload_file(client, small)
        tus = await upload_file(client, large, multipart_max_bytes=0)
        assert (await client.photo(multipart.photo_id)).filename == "Été à Zürich 100%41.jpg"
        assert (await client.photo(tus.photo_id)).filename == "tus 100%.jpg"


async def test_the_upload_chooses_its_pipeline_and_priority_both_ways(
    redis_server: RedisServer, redis: aioredis.Redis, tmp_path: Path
) -> None:
    small = await asyncio.to_thread(inspect_file, _jpeg(tmp_path / "small.jpg", 100))
    large = await asyncio.to_thread(inspect_file, _jpeg(tmp_path / "large.jpg", 300))
    settings = api_settings(tmp_path, redis_server.url)
    async with running_api(settings, "dave") as api, ApiClient(api.url, api.token) as client:
        for photo, limit in ((small, MULTIPART_MAX_BYTES), (large, 0)):
            done = await upload_file(
                client, photo, multipart_max_bytes=limit, pipeline="quick_processing", priority=8
            )
            record = await client.photo(done.photo_id)
            assert (record.pipeline, record.priority) == ("quick_processing", 8)
        plain = await client.photo((await upload_file(client, await asyncio.to_thread(
            inspect_file, _jpeg(tmp_path / "plain.jpg", 100)))).photo_id)  # fmt: skip
        assert (plain.pipeline, plain.priority) == ("full_processing", 5)
        fresh = await asyncio.to_thread(inspect_file, _jpeg(tmp_path / "fresh.jpg", 100))
        with pytest.raises(ApiFailure) as refused:
            await upload_file(client, fresh, priority=2)  # ahead of the default: admins only
        assert (refused.value.status, refused.value.code) == (403, "priority_not_allowed")


async def test_a_file_of_exactly_the_multipart_limit_goes_in_one_request(
    redis_server: RedisServer, redis: aioredis.Redis, tmp_path: Path
) -> None:
    photo = await asyncio.to_thread(inspect_file, _jpeg(tmp_path / "edge.jpg", 100))
    seen: list[int] = []
    settings = api_settings(tmp_path, redis_server.url)
    async with running_api(settings, "erin") as api, ApiClient(api.url, api.token) as client:
        await upload_file(client, photo, progress=seen.append, multipart_max_bytes=photo.size)
    assert seen == [photo.size]  # tus would report 0 first, then each chunk


async def test_a_path_given_as_a_str_uploads_both_ways(
    redis_server: RedisServer, redis: aioredis.Redis, tmp_path: Path
) -> None:
    # inspect_file took a str and kept it; upload_file then failed on str.read_bytes.
    small = await asyncio.to_thread(inspect_file, str(_jpeg(tmp_path / "small.jpg", 100)))
    large = _jpeg(tmp_path / "large.jpg", 300)
    digest, size = hashlib.sha256(large.read_bytes()).hexdigest(), large.stat().st_size
    given = LocalFile(path=str(large), size=size, format="jpeg", sha256=digest)  # type: ignore[arg-type]
    assert isinstance(small.path, Path) and isinstance(given.path, Path)
    settings = api_settings(tmp_path, redis_server.url)
    async with running_api(settings, "carol") as api, ApiClient(api.url, api.token) as client:
        store = ResumeStore(str(tmp_path / "state"))
        one = await upload_file(client, small, resume=store)  # multipart
        two = await upload_file(client, given, resume=store, multipart_max_bytes=0)  # tus
        assert (await client.photo(one.photo_id)).filename == "small.jpg"
        assert (await client.photo(two.photo_id)).filename == "large.jpg"
