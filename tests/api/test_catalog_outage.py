"""PostgreSQL stopped under the api: uploads answer ``503 catalog_unavailable``, nothing
accepted is lost, nothing refused is half-kept, and uploads go through once it is back."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis

from bench.redis_server import RedisServer
from filmstrip import keys
from filmstrip.auth import hash_token
from filmstrip.catalog import PhotoRecord, PhotoStatus, open_catalog, utcnow
from filmstrip.catalog import postgres as postgres_catalog
from filmstrip.embedded.redis_server import free_port
from filmstrip.errors import PUBLIC_MESSAGES
from filmstrip.events import EventPublisher
from filmstrip.photos import PhotoLifecycle
from filmstrip.queue import JobQueue
from filmstrip.services.api.reconciler import sweep_orphan_blobs
from filmstrip.services.api.relay import run_relay
from tests.api.conftest import EVERY_BLOB, Api, api_settings, running_api
from tests.queue.conftest import wait_for
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


async def test_the_outbox_relay_outlives_a_catalog_outage_and_queues_every_job_after(
    private_postgres: postgres.PrivatePostgres,
    redis_server: RedisServer,
    redis: aioredis.Redis,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Photos accepted while Redis was down wait in the outbox; PostgreSQL then goes away
    too, so the relay's rounds fail. The relay loop must outlive those rounds: once the
    catalog is back, every photo's job is queued (an api restart would be the only other
    way, and nothing tells anyone one is owed)."""
    # A call waits this long for a connection before it fails (3 s in production).
    monkeypatch.setattr(postgres_catalog, "_CHECKOUT_TIMEOUT_S", 0.5)
    database = postgres.create_database(private_postgres.url)
    settings = api_settings(tmp_path, redis_server.url, database_url=database)
    catalog = await open_catalog(settings)
    dead = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}")
    offline = PhotoLifecycle(settings, catalog, JobQueue(dead), EventPublisher(dead),
                             signing_secret=b"k")  # fmt: skip
    online = PhotoLifecycle(settings, catalog, JobQueue(redis), EventPublisher(redis),
                            signing_secret=b"k")  # fmt: skip
    relay: asyncio.Task[None] | None = None
    try:
        jobs = []
        for _ in range(2):
            job_id, queued = await offline.accept(_record(), quota_bytes=0)
            assert not queued
            jobs.append(job_id)
        private_postgres.stop()
        with caplog.at_level(logging.WARNING, "filmstrip.api.relay"):
            relay = asyncio.create_task(run_relay(online, interval_s=0.1))
            await wait_for(lambda: _true(relay.done() or any(  # type: ignore[union-attr]
                "relay failed" in r.getMessage() for r in caplog.records)))  # fmt: skip
        assert not relay.done()  # a failed round must not end the loop
        private_postgres.start()
        await wait_for(lambda: _all_queued(online.queue, jobs), 20)
        assert not relay.done()
    finally:
        private_postgres.start()
        if relay is not None:
            relay.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await relay  # (a relay that died is what the asserts above report)
        await offline.close()
        await online.close()
        await catalog.close()
        await dead.aclose()
        with contextlib.suppress(Exception):
            postgres.drop_database(database, private_postgres.url)


def _record() -> PhotoRecord:
    photo_id = str(uuid.uuid4())
    now = utcnow()
    return PhotoRecord(
        id=photo_id, client_id="c", session_id=None, blob_key=f"originals/{photo_id}",
        content_type="image/jpeg", bytes=1, sha256=None, status=PhotoStatus.QUEUED,
        job_id=f"photo:{photo_id}", trace_id=uuid.uuid4().hex, uploaded_at=now, updated_at=now,
    )  # fmt: skip


async def _all_queued(queue: JobQueue, jobs: list[str]) -> bool:
    return all([await queue.get_job(j) for j in jobs])


async def _true(value: bool) -> bool:
    return value
