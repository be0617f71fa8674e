"""PostgreSQL stopped under the api: uploads answer ``503 catalog_unavailable``, nothing
accepted is lost, nothing refused is half-kept, and uploads go through once it is back."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis

from bench.redis_server import RedisServer
from filmstrip import keys
from filmstrip.auth import hash_token
from filmstrip.errors import PUBLIC_MESSAGES
from filmstrip.services.api.reconciler import sweep_orphan_blobs
from tests.api.conftest import EVERY_BLOB, Api, api_settings, running_api
from tests.support import postgres


def _photo(corpus: Path, name: str) -> bytes:
    return (corpus / "real" / name).read_bytes()


async def _upload_paused(api: Api, data: bytes, gate: asyncio.Event) -> aiohttp.ClientResponse:
    """An upload whose last bytes wait for ``gate`` (its token is checked by then)."""
    boundary = "catalog-outage"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode() + data

    async def body() -> AsyncIterator[bytes]:
        yield head
        await gate.wait()
        yield f"\r\n--{boundary}--\r\n".encode()

    return await api.http.post(
        f"{api.url}/v1/photos",
        data=body(),
        headers={**api.auth, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )


async def test_postgresql_down_means_503_and_nothing_lost(
    private_postgres: postgres.PrivatePostgres,
    redis_server: RedisServer,
    redis: aioredis.Redis,
    tmp_path: Path,
    corpus: Path,
) -> None:
    database = postgres.create_database(private_postgres.url)
    settings = api_settings(tmp_path, redis_server.url, database_url=database)
    try:
        async with running_api(settings, "alice") as api:
            before = await api.upload(_photo(corpus, "Landscape_1.jpg"))
            assert before.status == 201, await before.text()
            kept = (await before.json())["photo_id"]
            client = await api.state.catalog.client_for_token(hash_token(api.token))
            assert client is not None

            # PostgreSQL stops while an upload's body is on its way: its original is
            # stored, its row cannot be.
            gate = asyncio.Event()
            # The client's rate limit is the last Redis write before the body is read (after
            # the token's lookup); the first upload made its bucket, so start from none.
            await redis.delete(keys.api_rate(f"client:{client.id}"))
            cut = asyncio.create_task(_upload_paused(api, _photo(corpus, "Landscape_2.jpg"), gate))
            for _ in range(100):
                if await redis.exists(keys.api_rate(f"client:{client.id}")):
                    break
                await asyncio.sleep(0.05)
            else:
                pytest.fail("the paused upload never got past its token check")
            private_postgres.stop()
            gate.set()
            refused = await cut
            assert refused.status == 503, await refused.text()
            error = (await refused.json())["error"]
            assert error["code"] == "catalog_unavailable"
            # The driver's own words name the database's host and port: for the log only.
            assert error["message"] == PUBLIC_MESSAGES["catalog_unavailable"], error
            assert refused.headers["Retry-After"]
            # So is the next upload (its token cannot be checked), and readiness says why.
            # Asked at once: each waits out the pool's checkout timeout (3 s) before it answers.
            again, ready = await asyncio.gather(
                api.upload(_photo(corpus, "Landscape_2.jpg")), api.http.get(f"{api.url}/readyz")
            )
            assert again.status == 503
            assert (await again.json())["error"]["code"] == "catalog_unavailable"
            assert ready.status == 503 and (await ready.json())["checks"]["catalog"] != "ok"

            private_postgres.start()
            # The client's retry goes through once PostgreSQL is back, on the same api.
            deadline = time.monotonic() + 30
            while True:
                retried = await api.upload(_photo(corpus, "Landscape_2.jpg"))
                if retried.status == 201 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
            assert retried.status == 201, await retried.text()
            later = (await retried.json())["photo_id"]

            # Nothing lost: both photos recorded, each with its job.
            rows = await api.state.catalog._fetchall("SELECT id FROM photos ORDER BY id")
            assert {r[0] for r in rows} == {kept, later}
            for photo_id in (kept, later):
                photo = await api.state.catalog.get_photo(photo_id)
                assert photo is not None and await api.state.queue.get_job(photo.job_id)
            # The refused upload's original was kept while the catalog could not say whether
            # its row committed; with no row, it is an orphan the sweep removes.
            assert len([f for f in api.blob_files() if f.startswith("originals/")]) == 3
            assert (
                await sweep_orphan_blobs(api.state.catalog, api.state.blobs, grace_s=EVERY_BLOB)
                == 1
            )
            assert sorted(f for f in api.blob_files() if f.startswith("originals/")) == sorted(
                f"originals/{pid}" for pid in (kept, later)
            )
    finally:
        private_postgres.start()  # for the next test, if this one failed with it down
        with contextlib.suppress(Exception):
            postgres.drop_database(database, private_postgres.url)
