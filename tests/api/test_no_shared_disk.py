"""Api processes that share no disk: each has a data dir of its own, and they meet only in
the shared stores (catalog, blob store, Redis)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import redis.asyncio as aioredis

from bench.redis_server import RedisServer
from filmstrip.settings import sqlite_url
from tests.api.conftest import Api, api_settings, running_api
from tests.api.factories import fake_jpeg
from tests.support import postgres


@asynccontextmanager
async def _two_apis(redis_server: RedisServer, tmp_path: Path) -> AsyncIterator[tuple[Api, Api]]:
    """Two api processes with data dirs of their own over one catalog and one blob store."""
    shared = tmp_path / "shared"
    stores = {
        "blob_url": (shared / "blobs").resolve().as_uri(),
        "database_url": postgres.role_catalog_settings().get(
            "database_url", sqlite_url(str(shared / "filmstrip.db"))
        ),
    }
    one = api_settings(tmp_path / "one", redis_server.url, **stores)
    two = api_settings(tmp_path / "two", redis_server.url, **stores)
    async with running_api(one, "alice") as first, running_api(two, "bob") as second:
        yield first, second


async def test_a_url_signed_by_one_api_process_verifies_on_another(
    redis_server: RedisServer, redis: aioredis.Redis, tmp_path: Path
) -> None:
    async with _two_apis(redis_server, tmp_path) as (one, two):
        data = fake_jpeg()
        resp = await one.upload(data)
        assert resp.status == 201, await resp.text()
        photo = await (
            await one.http.get(
                f"{one.url}/v1/photos/{(await resp.json())['photo_id']}", headers=one.auth
            )
        ).json()
        signed = photo["original_url"]
        async with aiohttp.ClientSession() as anonymous:
            got = await anonymous.get(f"{two.url}{signed}")
            assert got.status == 200, await got.text()
            assert await got.read() == data
        assert not (tmp_path / "one" / "signing.key").exists()
        assert not (tmp_path / "two" / "signing.key").exists()
