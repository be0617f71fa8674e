"""The worker wired to real Redis, SQLite and file blobs: photos complete, bad ones fail as
DATA, deleted ones are discarded, and the event loop is never blocked."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import msgspec
import orjson
import pytest
import pyvips
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from bench.redis_server import RedisServer
from filmstrip import keys
from filmstrip.auth.signing import verify
from filmstrip.blobs import BlobInfo, BlobStore, open_blob_store
from filmstrip.blobs.local_cache import LocalBlobCache
from filmstrip.catalog import Catalog, PhotoRecord, PhotoStatus, open_catalog, utcnow
from filmstrip.concurrency import configure_pool
from filmstrip.embedded.redis_server import free_port
from filmstrip.errors import PUBLIC_MESSAGES, DataError, FilmstripError, TemporaryError
from filmstrip.events import EventPublisher
from filmstrip.logs import JsonFormatter
from filmstrip.photos import PhotoLifecycle, encode_job, ready_job
from filmstrip.photos import lifecycle as lifecycle_module
from filmstrip.pipeline.vips import configure_vips
from filmstrip.protocols.events import (
    DATA_OF_TYPE,
    PHOTO_COMPLETED,
    PHOTO_DEFERRED_COMPLETED,
    PHOTO_FAILED,
    STAGE_COMPLETED,
    CompletedData,
    DeferredCompletedData,
    FailedData,
)
from filmstrip.protocols.http import PhotoMetadata
from filmstrip.protocols.jobs import deferred_job_id_for
from filmstrip.queue import Consumer, Job, JobQueue, QueueOptions, Settlement, Step
from filmstrip.services.worker import processor as processor_module
from filmstrip.services.worker.processor import PhotoProcessor
from filmstrip.settings import Settings, load_settings
from tests.queue.conftest import wait_for
from tests.support import postgres
from tests.support.loop_watch import slow_steps
from tests.support.settings import replace_settings, unreachable_s3

READY_FILES = ("preview.jpg", "thumbnail.webp")


def _as_documented(meta: dict[str, Any]) -> None:
    """The api answers ``metadata`` as PhotoMetadata (the OpenAPI's type): what the pipeline
    stored must pass through it whole, every key declared and of its declared type."""
    assert msgspec.to_builtins(msgspec.convert(meta, PhotoMetadata)) == meta


SIGNING_SECRET = b"the-api-key"


@dataclass
class World:
    settings: Settings
    catalog: Catalog
    blobs: BlobStore
    queue: JobQueue
    processor: PhotoProcessor

    async def submit(
        self,
        source: Path,
        *,
        with_sha256: bool = False,
        as_api: bool = False,
        pipeline: str | None = None,
    ) -> str:
        """Store ``source`` and queue its job; ``as_api``: as the api does (announced);
        ``pipeline``: as an upload that names one."""
        photo_id = str(uuid.uuid4())
        data = await asyncio.to_thread(source.read_bytes)
        sha256 = hashlib.sha256(data).hexdigest() if with_sha256 else None
        await self.blobs.put_bytes(f"originals/{photo_id}", data, content_type="image/jpeg")
        now = utcnow()
        photo = PhotoRecord(
            id=photo_id, client_id="c", session_id=None, blob_key=f"originals/{photo_id}",
            content_type="image/jpeg", bytes=len(data), sha256=sha256, status=PhotoStatus.QUEUED,
            job_id=f"photo:{photo_id}", trace_id=uuid.uuid4().hex, uploaded_at=now,
            updated_at=now, pipeline=pipeline,
        )  # fmt: skip
        if as_api:
            await self.processor.photos.accept(photo, quota_bytes=0)
            return photo_id
        await self.catalog.insert_photo(photo, None)
        job = ready_job(self.settings, photo)
        await self.queue.add(job.id, encode_job(job))
        return photo_id

    async def run_until_done(self, photo_ids: list[str], limit_s: float = 60) -> None:
        consumer = Consumer(
            self.queue, self.processor.handle, on_failed=self.processor.on_failed, concurrency=3
        )
        task = asyncio.create_task(consumer.run())
        try:
            async with asyncio.timeout(limit_s):
                while True:
                    states = [await self.catalog.get_photo(p) for p in photo_ids]
                    counts = await self.queue.counts()
                    busy = counts["waiting"] + counts["active"] + counts["delayed"]
                    if not busy and all(
                        s is None or s.status in ("completed", "failed") for s in states
                    ):
                        return
                    await asyncio.sleep(0.1)
        finally:
            await consumer.stop()
            await task


@pytest.fixture
async def world(
    redis_server: RedisServer, redis: aioredis.Redis, tmp_path: Path
) -> AsyncIterator[World]:
    async with _world(redis_server, redis, tmp_path) as world:
        yield world


@asynccontextmanager
async def _world(
    redis_server: RedisServer, redis: aioredis.Redis, tmp_path: Path
) -> AsyncIterator[World]:
    settings = load_settings(
        {
            "FILMSTRIP_DATA_DIR": str(tmp_path),
            "FILMSTRIP_REDIS_URL": redis_server.url,
            "FILMSTRIP_JOB_BACKOFF_MS": "50",
            **{f"FILMSTRIP_{k.upper()}": v for k, v in postgres.role_catalog_settings().items()},
        }
    )
    configure_vips(settings.pipeline)
    # One pipeline thread leaves the loop a core of its own on this 2-core machine.
    configure_pool(1)
    catalog = await open_catalog(settings)
    blobs = await open_blob_store(settings)
    queue = JobQueue(redis, QueueOptions.from_settings(settings))
    photos = PhotoLifecycle(
        settings, catalog, queue, EventPublisher(redis), signing_secret=SIGNING_SECRET
    )
    processor = PhotoProcessor(settings, photos=photos, blobs=blobs)
    yield World(settings, catalog, blobs, queue, processor)
    await blobs.close()
    await catalog.close()


async def test_processing_never_blocks_the_event_loop(world: World, corpus: Path) -> None:
    sources = [
        corpus / "real/Canon_PowerShot_A85.jpg",  # 1704x2272, orientation 8
        corpus / "real/plum-blossom-large.png",  # alpha
        corpus / "real/exif-at-eof.heic",  # HEIC via pillow-heif
        corpus / "real/Landscape_6.jpg",
        corpus / "bad/truncated_jpeg.jpg",
    ]
    with slow_steps() as slow:
        ids = [await world.submit(s) for s in sources]
        await world.run_until_done(ids)
    assert slow == [], slow
    photos = [await world.catalog.get_photo(p) for p in ids]
    assert [p.status for p in photos if p] == ["completed"] * 4 + ["failed"]
    bad = photos[-1]
    assert bad is not None and bad.error_category == "DATA" and bad.processing_error
    for p in photos[:4]:
        assert p is not None
        names = {d.name for d in p.derivatives}
        assert {"thumbnail", "preview"} <= names
        for d in p.derivatives:
            assert await world.blobs.stat(d.key) is not None


async def test_photo_deleted_before_processing_is_discarded(world: World, corpus: Path) -> None:
    photo_id = await world.submit(corpus / "real/Landscape_1.jpg")
    await world.catalog.delete_photo(photo_id, "c")
    await world.run_until_done([photo_id])
    assert await world.catalog.get_photo(photo_id) is None
    assert [b.key async for b in world.blobs.list(f"derivatives/{photo_id}/")] == []
    assert (await world.queue.counts())["waiting"] == 0


async def test_a_photo_whose_original_is_missing_fails_as_data(world: World, corpus: Path) -> None:
    # Taken for a deleted photo, the job would be dropped and the photo stay processing
    # (its job exists, completed, so the reconciler leaves it alone while it is retained).
    photo_id = await world.submit(corpus / "real/Landscape_1.jpg")
    await world.blobs.delete(f"originals/{photo_id}")
    await world.run_until_done([photo_id], limit_s=10)
    photo = await world.catalog.get_photo(photo_id)
    assert photo is not None and photo.status == "failed"
    assert (photo.error_code, photo.error_category) == ("original_missing", "DATA")


async def test_running_twice_gives_the_same_keys_and_values(world: World, corpus: Path) -> None:
    photo_id = await world.submit(corpus / "real/Portrait_6.jpg")
    await world.run_until_done([photo_id])
    first = await world.catalog.get_photo(photo_id)
    assert first is not None and first.status == "completed"
    # Redeliver: force the row back and process the same job again.
    await world.catalog.requeue_photo(photo_id)
    job = ready_job(world.settings, first)
    await world.queue.remove_failed(job.id)
    await world.queue.add(f"{job.id}:again", encode_job(job))
    await world.run_until_done([photo_id])
    second = await world.catalog.get_photo(photo_id)
    assert second is not None and second.status == "completed"
    assert [d.key for d in second.derivatives] == [d.key for d in first.derivatives]
    assert [d.bytes for d in second.derivatives] == [d.bytes for d in first.derivatives]
    assert first.processing_metadata == second.processing_metadata


async def test_a_redelivery_after_completion_tells_the_client_nothing_new(
    world: World, corpus: Path, redis: aioredis.Redis
) -> None:
    # A job whose completion Redis lost is delivered again: the photo stays as it was, and
    # its client neither sees it start again nor hears it complete twice.
    photo_id = await world.submit(corpus / "real/Landscape_1.jpg")
    await world.run_until_done([photo_id])
    first = await world.catalog.get_photo(photo_id)
    assert first is not None and first.status == "completed"
    job = ready_job(world.settings, first)
    await world.queue.add(f"{job.id}:again", encode_job(job))
    await world.run_until_done([photo_id])
    again = await world.catalog.get_photo(photo_id)
    assert again is not None and again.updated_at == first.updated_at
    types = await _event_types(redis, "c")
    assert types.count("photo.processing.started") == 1, types
    assert types.count("photo.processing.completed") == 1, types


class _OutageAtAnnounce:
    """The real publisher, except that its first announcement of a photo's completion
    finds Redis stopped (the whole Redis: queue and events), which comes back ``after_s``
    later: longer than the announcement's blip retries."""

    def __init__(self, inner: EventPublisher, server: RedisServer, after_s: float) -> None:
        self._inner = inner
        self._server = server
        self._after_s = after_s
        self.refused = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    async def publish_events(self, events: Sequence[Any], *, once_key: str | None = None) -> str:
        if once_key is not None and not self.refused and events[-1].type == PHOTO_COMPLETED:
            self._server.stop()
            asyncio.get_running_loop().call_later(self._after_s, self._server.start)
        try:
            return await self._inner.publish_events(events, once_key=once_key)
        except TemporaryError:
            self.refused += events[-1].type == PHOTO_COMPLETED
            raise


async def test_an_outcome_announced_through_a_long_redis_outage_is_heard_once_after(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis stops just as the worker announces a photo ready and stays down past the
    announcement's retries: the attempt must fail as TEMPORARY (not complete silently),
    be retried once Redis is back, and the client's stream then holds the outcome once."""
    monkeypatch.setattr(lifecycle_module, "ANNOUNCE_RETRY_S", (0.05, 0.1, 0.2))
    with RedisServer(appendonly=True) as server:
        client = aioredis.Redis.from_url(server.url)
        try:
            async with _world(server, client, tmp_path) as world:
                outage = _OutageAtAnnounce(world.processor.photos.events, server, after_s=0.6)
                world.processor.photos.events = outage  # type: ignore[assignment]
                photo_id = await world.submit(corpus / "real/Landscape_1.jpg")
                consumer = Consumer(world.queue, world.processor.handle, concurrency=3)
                task = asyncio.create_task(consumer.run())
                try:
                    await wait_for(lambda: _announced_and_idle(client, world.queue), 20)
                finally:
                    await consumer.stop()
                    await task
                photo = await world.catalog.get_photo(photo_id)
                assert photo is not None and photo.status == "completed", photo
                assert outage.refused == 4  # the first try and each of the three retries
                types = await _event_types(client, "c")
                assert types.count(PHOTO_COMPLETED) == 1, types
        finally:
            await client.aclose()


async def _announced_and_idle(client: aioredis.Redis, queue: JobQueue) -> bool:
    try:
        counts = await queue.counts()
        types = await _event_types(client, "c")
    except RedisConnectionError:
        return False  # still down
    busy = counts["waiting"] + counts["active"] + counts["delayed"]
    return PHOTO_COMPLETED in types and not busy


T = TypeVar("T")


class _Wrapping(Generic[T]):
    """A real store, queue or catalog with some methods replaced by a subclass: every
    other attribute is the wrapped object's."""

    def __init__(self, inner: T) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


class _FlakyPuts(_Wrapping[BlobStore]):
    """The real store, except that the first put of each matching key fails as TEMPORARY
    after the others of its photo were started (a store blip mid-way)."""

    def __init__(self, inner: BlobStore, marker: str) -> None:
        super().__init__(inner)
        self._marker = marker
        self.failed: list[str] = []
        self.puts: list[str] = []
        self.durable: list[bool] = []

    async def put_bytes(
        self, key: str, data: bytes, *, content_type: str, durable: bool = True
    ) -> BlobInfo:
        self.puts.append(key)
        self.durable.append(durable)
        if self._marker in key and key not in self.failed:
            self.failed.append(key)
            await asyncio.sleep(0.05)  # let the other puts of this photo run meanwhile
            raise TemporaryError("the store blinked", code="blob_unavailable")
        return await self._inner.put_bytes(key, data, content_type=content_type, durable=durable)


async def test_a_failed_derivative_put_retries_the_photo_and_loses_nothing(
    world: World, corpus: Path
) -> None:
    flaky = _FlakyPuts(world.blobs, "/preview")
    world.processor.blobs = flaky  # type: ignore[assignment]
    photo_id = await world.submit(corpus / "real/Olympus_PEN_E-P3.jpg")
    await world.run_until_done([photo_id])
    photo = await world.catalog.get_photo(photo_id)
    assert photo is not None and photo.status == "completed", photo
    assert len(flaky.failed) == 1
    stored = {b.key async for b in world.blobs.list(f"derivatives/{photo_id}/")}
    assert stored == {d.key for d in photo.derivatives}
    # The second attempt wrote every ready derivative again, under the same keys; the
    # follow-up job wrote the optimised copy once.
    ready = [k for k in flaky.puts if "/optimized" not in k]
    assert sorted(ready) == sorted(2 * [f"derivatives/{photo_id}/{n}" for n in READY_FILES])
    assert len(flaky.puts) - len(ready) == 1
    # Derivatives can be made again from the original: none waits for an fsync.
    assert flaky.durable == [False] * len(flaky.puts)


class _ResetOnce(_Wrapping[BlobStore]):
    """The real store, except that the first read of a whole blob fails as a connection
    reset does (an OSError, not one of the store's own errors)."""

    def __init__(self, inner: BlobStore) -> None:
        super().__init__(inner)
        self.resets = 0

    async def get_bytes(self, key: str) -> bytes:
        if not self.resets:
            self.resets += 1
            raise ConnectionResetError(104, "Connection reset by peer")
        return await self._inner.get_bytes(key)


async def test_an_io_error_while_processing_is_retried_not_failed(
    world: World, corpus: Path
) -> None:
    # An exception no layer categorised (OSError, ConnectionError, a RedisError) is
    # TEMPORARY: the photo must not fail for good on a blip.
    resetting = _ResetOnce(world.blobs)
    world.processor.blobs = resetting  # type: ignore[assignment]
    photo_id = await world.submit(corpus / "real/Landscape_1.jpg")
    await world.run_until_done([photo_id])
    photo = await world.catalog.get_photo(photo_id)
    assert resetting.resets == 1
    assert photo is not None and photo.status == "completed", photo


class _DeletedAtRead(_Wrapping[BlobStore]):
    """The real store, except that the first read of an original is preceded by the photo's
    deletion as the api makes it (the row, then the original): a client deleting the photo
    after its job started and before the worker read the original."""

    def __init__(self, inner: BlobStore, catalog: Catalog) -> None:
        super().__init__(inner)
        self._catalog = catalog
        self.status_when_deleted: str | None = None

    async def get_bytes(self, key: str) -> bytes:
        if key.startswith("originals/") and self.status_when_deleted is None:
            removed = await self._catalog.delete_photo(key.removeprefix("originals/"), "c")
            assert removed is not None
            self.status_when_deleted = removed.status
            await self._inner.delete(key)
        return await self._inner.get_bytes(key)


async def test_a_photo_deleted_after_its_job_started_is_dropped_not_failed(
    world: World, corpus: Path, redis: aioredis.Redis
) -> None:
    # Its original is gone because the photo is: the job ends on that delivery, and
    # neither a failed photo nor a failure (a dead-lettered job, an event) is recorded.
    deleting = _DeletedAtRead(world.blobs, world.catalog)
    world.processor.blobs = deleting  # type: ignore[assignment]
    photo_id = await world.submit(corpus / "real/Landscape_1.jpg")
    attempts: list[int] = []
    failures: list[str] = []

    async def handle(job: Job) -> None:
        attempts.append(job.attempt)
        await world.processor.handle(job)

    async def on_failed(job: Job, error: FilmstripError) -> None:
        failures.append(error.code)
        await world.processor.on_failed(job, error)

    consumer = Consumer(world.queue, handle, on_failed=on_failed, concurrency=1)
    task = asyncio.create_task(consumer.run())
    try:
        async with asyncio.timeout(30):
            while True:
                counts = await world.queue.counts()
                if attempts and not counts["waiting"] + counts["active"] + counts["delayed"]:
                    break
                await asyncio.sleep(0.05)
    finally:
        await consumer.stop()
        await task
    assert deleting.status_when_deleted == PhotoStatus.PROCESSING  # the job had started
    assert (attempts, failures) == ([1], [])
    assert (await world.queue.counts()).get("failed", 0) == 0
    assert await _events(redis, "c", PHOTO_FAILED) == []
    assert await world.catalog.get_photo(photo_id) is None
    assert [b.key async for b in world.blobs.list(f"derivatives/{photo_id}/")] == []


async def _event_types(redis: aioredis.Redis, client_id: str) -> list[str]:
    """The client's replay stream, oldest first: the order events were published in."""
    entries = await redis.xrange(keys.client_events(client_id))
    return [orjson.loads(fields[b"e"])["type"] for _id, fields in entries]


async def test_optimization_runs_after_the_photo_is_ready_in_a_low_priority_job(
    world: World, corpus: Path, redis: aioredis.Redis
) -> None:
    photo_id = await world.submit(corpus / "real/Olympus_PEN_E-P3.jpg")
    await world.run_until_done([photo_id])
    photo = await world.catalog.get_photo(photo_id)
    assert photo is not None and photo.status == "completed"
    meta = photo.processing_metadata or {}
    assert meta["optimization"]["kept"] is True
    assert {d.name for d in photo.derivatives} == {"preview", "thumbnail", "optimized"}
    stored = {b.key async for b in world.blobs.list(f"derivatives/{photo_id}/")}
    assert stored == {d.key for d in photo.derivatives}
    assert await world.catalog.awaiting_follow_up(older_than_s=0) == []
    follow_up = await world.queue.get_job(deferred_job_id_for(photo_id))
    assert follow_up is not None and follow_up.priority == 10
    types = await _event_types(redis, "c")
    mine = types[types.index("photo.processing.started") :]
    assert mine.index("photo.processing.completed") < mine.index(
        "photo.processing.deferred.completed"
    ), mine


async def _events(redis: aioredis.Redis, client_id: str, type_: str) -> list[dict[str, Any]]:
    entries = await redis.xrange(keys.client_events(client_id))
    events = [orjson.loads(fields[b"e"]) for _id, fields in entries]
    return [e for e in events if e["type"] == type_]


def _signed(url: str) -> bool:
    path, _, query = url.partition("?")
    params = dict(part.split("=", 1) for part in query.split("&"))
    return verify(SIGNING_SECRET, path, params["exp"], params["sig"])


async def test_the_completion_event_is_enough_to_show_the_photo(
    world: World, corpus: Path, redis: aioredis.Redis
) -> None:
    good = await world.submit(corpus / "real/Olympus_PEN_E-P3.jpg")
    bad = await world.submit(corpus / "bad/truncated_jpeg.jpg")
    await world.run_until_done([good, bad])
    photo = await world.catalog.get_photo(good)
    assert photo is not None and photo.processing_metadata is not None and photo.taken_at
    [event] = await _events(redis, "c", PHOTO_COMPLETED)
    data = msgspec.convert(event["data"], CompletedData)  # the schema protocols/ keeps
    meta = photo.processing_metadata
    assert (data.width, data.height) == (meta["width"], meta["height"])
    assert "optimization" in meta and "exif" in meta
    _as_documented(meta)
    assert data.taken_at == photo.taken_at and data.thumbhash == meta["thumbhash"]
    assert data.ms > 0
    ready = {d.name: d for d in photo.derivatives if d.name != "optimized"}
    assert {d.name for d in data.derivatives} == set(ready) == {"thumbnail", "preview"}
    for shown in data.derivatives:
        stored = ready[shown.name]
        assert (shown.content_type, shown.width, shown.height, shown.bytes) == (
            stored.content_type, stored.width, stored.height, stored.bytes,
        )  # fmt: skip
        assert shown.url.startswith(f"/v1/photos/{good}/derivatives/{shown.name}?")
        assert _signed(shown.url), shown.url
    # The follow-up's event lists the optimised copy the same way.
    [later] = await _events(redis, "c", PHOTO_DEFERRED_COMPLETED)
    copies = msgspec.convert(later["data"], DeferredCompletedData).derivatives
    optimized = next(d for d in copies if d.name == "optimized")
    assert optimized.content_type.startswith("image/") and _signed(optimized.url)
    # A failure carries the whole error.
    [failed] = await _events(redis, "c", PHOTO_FAILED)
    error = msgspec.convert(failed["data"], FailedData).error
    assert (error.category, error.retryable) == ("DATA", False)
    assert error.code != "processing_failed" and error.message


async def test_a_quick_processing_photo_has_its_size_and_kind_like_any_photo(
    world: World, corpus: Path, redis: aioredis.Redis
) -> None:
    """quick_processing skips the metadata stage (EXIF, sha256), not what validation has
    measured: the catalog's metadata and the completion event carry the photo's upright
    size (the bus README promises it with every completion), its format and the rest of
    its header, like a full_processing photo's."""
    source = corpus / "real/Canon_PowerShot_A85.jpg"  # 1704x2272 stored, orientation 8
    quick = await world.submit(source, pipeline="quick_processing")
    await world.run_until_done([quick])
    photo = await world.catalog.get_photo(quick)
    assert photo is not None and photo.status == "completed", photo
    meta = photo.processing_metadata or {}
    assert (meta.get("width"), meta.get("height")) == (2272, 1704), meta
    assert meta["format"] == "jpeg" and meta["bytes"] == source.stat().st_size
    assert meta["orientation"] == 8 and meta["frames"] == 1 and meta["animated"] is False
    assert meta["has_alpha"] is False and meta["color_space"] == "srgb"
    assert "icc_profile" in meta and meta["thumbhash"] and meta["phash"]
    assert "exif" not in meta and "sha256" not in meta  # the metadata stage's own
    _as_documented(meta)
    [event] = await _events(redis, "c", PHOTO_COMPLETED)
    data = msgspec.convert(event["data"], CompletedData)
    assert (data.width, data.height) == (2272, 1704)
    assert data.taken_at is None and data.thumbhash == meta["thumbhash"]


async def test_the_derivatives_carry_no_gps_while_the_original_keeps_it(
    world: World, corpus: Path
) -> None:
    """docs/api.md: the metadata says where the photo was taken, every derivative as stored
    (and served) has no EXIF, XMP or GPS, and the original is kept byte for byte, GPS and
    all."""
    source = corpus / "real/Apple_iPhone_4.jpg"  # EXIF GPS
    photo_id = await world.submit(source)
    await world.run_until_done([photo_id])
    photo = await world.catalog.get_photo(photo_id)
    assert photo is not None and photo.status == "completed", photo
    meta = photo.processing_metadata or {}
    assert set(meta["exif"]["gps"]) >= {"lat", "lon"}, meta
    _as_documented(meta)
    assert {d.name for d in photo.derivatives} >= {"preview", "thumbnail", "optimized"}
    for derivative in photo.derivatives:
        data = await world.blobs.get_bytes(derivative.key)
        fields = set(pyvips.Image.new_from_buffer(data, "").get_fields())
        assert not fields & {"exif-data", "xmp-data", "iptc-data"}, (derivative.name, fields)
        assert b"Exif\x00\x00" not in data, derivative.name
    original = await world.blobs.get_bytes(photo.blob_key)
    assert original == source.read_bytes()
    assert "exif-data" in pyvips.Image.new_from_buffer(original, "").get_fields()


async def test_every_event_s_data_is_what_protocols_says(
    world: World, corpus: Path, redis: aioredis.Redis
) -> None:
    """Each event's ``data`` has exactly the fields of its type's Struct (the bus README's
    table and event-data.schema.json come from them), ``photo_id`` among them."""
    good = await world.submit(corpus / "real/Olympus_PEN_E-P3.jpg", as_api=True)
    bad = await world.submit(corpus / "bad/truncated_jpeg.jpg", as_api=True)
    await world.run_until_done([good, bad])
    gone = await world.catalog.delete_photo(bad, "c")
    assert gone is not None
    assert await world.processor.photos.deleted(gone)  # as the api announces a deletion
    entries = await redis.xrange(keys.client_events("c"))
    events = [orjson.loads(fields[b"e"]) for _id, fields in entries]
    assert {e["type"] for e in events} == set(DATA_OF_TYPE)
    for event in events:
        struct = DATA_OF_TYPE[event["type"]]
        data = msgspec.convert(event["data"], struct)
        assert set(event["data"]) == set(struct.__struct_fields__), event
        assert data.photo_id == event["photo_id"]
    stages = [e["data"] for e in events if e["type"] == STAGE_COMPLETED]
    assert [(s["stage"], s["progress"]) for s in stages if s["photo_id"] == good] == [
        ("validation", 30), ("metadata", 60), ("thumbnails", 90), ("optimization", 100)
    ]  # fmt: skip


class _Hooked(_Wrapping[BlobStore]):
    """The real store, with a hook before the put of keys containing ``marker``."""

    def __init__(self, inner: BlobStore, marker: str, hook: object) -> None:
        super().__init__(inner)
        self._marker = marker
        self._hook = hook

    async def put_bytes(
        self, key: str, data: bytes, *, content_type: str, durable: bool = True
    ) -> BlobInfo:
        if self._marker in key:
            await self._hook(key)  # type: ignore[operator]
        return await self._inner.put_bytes(key, data, content_type=content_type, durable=durable)


async def test_a_photo_deleted_during_its_follow_up_job_leaves_no_blob(
    world: World, corpus: Path
) -> None:
    async def delete_photo(key: str) -> None:
        photo_id = key.split("/")[1]
        await world.catalog.delete_photo(photo_id, "c")
        await world.blobs.delete_prefix(f"derivatives/{photo_id}/")

    world.processor.blobs = _Hooked(world.blobs, "/optimized", delete_photo)  # type: ignore[assignment]
    photo_id = await world.submit(corpus / "real/Olympus_PEN_E-P3.jpg")
    await world.run_until_done([photo_id])
    assert await world.catalog.get_photo(photo_id) is None
    assert [b.key async for b in world.blobs.list(f"derivatives/{photo_id}/")] == []


async def test_a_failed_follow_up_job_leaves_the_photo_ready(world: World, corpus: Path) -> None:
    async def refuse(key: str) -> None:
        raise DataError("the store refused this copy", code="refused")

    world.processor.blobs = _Hooked(world.blobs, "/optimized", refuse)  # type: ignore[assignment]
    photo_id = await world.submit(corpus / "real/Olympus_PEN_E-P3.jpg")
    await world.run_until_done([photo_id])
    photo = await world.catalog.get_photo(photo_id)
    assert photo is not None and photo.status == "completed", photo
    assert {d.name for d in photo.derivatives} == {"preview", "thumbnail"}
    # Recorded, so nothing queues the follow-up again for a result that will not come.
    failure = (photo.processing_metadata or {})["optimization"]
    assert failure["failed"] is True and failure["category"] == "DATA", failure
    _as_documented(photo.processing_metadata or {})
    stored = {b.key async for b in world.blobs.list(f"derivatives/{photo_id}/")}
    assert stored == {d.key for d in photo.derivatives}
    assert await world.catalog.awaiting_follow_up(older_than_s=0) == []


async def test_a_follow_up_failed_by_a_storage_outage_shows_the_photo_no_address(
    world: World, corpus: Path
) -> None:
    # The optimised copy goes to an S3 that is down (nothing listens at its endpoint).
    port = free_port()
    down = await open_blob_store(unreachable_s3(world.settings, port))

    async def outage(key: str) -> None:
        await down.put_bytes(key, b"", content_type="image/webp")

    world.processor.blobs = _Hooked(world.blobs, "/optimized", outage)  # type: ignore[assignment]
    try:
        photo_id = await world.submit(corpus / "real/Sony_Cybershot.jpg")
        await world.run_until_done([photo_id])
    finally:
        await down.close()
    photo = await world.catalog.get_photo(photo_id)
    assert photo is not None and photo.status == "completed", photo
    # The photo's metadata is its client's: the failure as the client reads it.
    assert (photo.processing_metadata or {})["optimization"] == {
        "failed": True,
        "code": "blob_store_unavailable",
        "category": "TEMPORARY",
        "message": PUBLIC_MESSAGES["blob_store_unavailable"],
    }
    job = await world.queue.get_job(deferred_job_id_for(photo_id))
    assert job is not None and job.error is not None
    assert f"127.0.0.1:{port}" in job.error.message


class _SettleBlinks(_Wrapping[JobQueue]):
    """The real queue, except that the first settle queueing a follow-up job fails before
    Redis runs it."""

    def __init__(self, inner: JobQueue) -> None:
        super().__init__(inner)
        self.refused = 0

    async def step(self, consumer: str, want: int, settled: Sequence[Settlement]) -> Step:
        if any(d.job.then for d in settled) and not self.refused:
            self.refused += 1
            raise RedisConnectionError("Redis blinked")
        return await self._inner.step(consumer, want, settled)


async def test_a_follow_up_whose_settle_redis_refused_is_queued_when_it_is_sent_again(
    world: World, corpus: Path
) -> None:
    blinking = _SettleBlinks(world.queue)
    world.queue = blinking  # type: ignore[assignment]
    photo_id = await world.submit(corpus / "real/Olympus_PEN_E-P3.jpg")
    await world.run_until_done([photo_id])
    assert blinking.refused == 1
    photo = await world.catalog.get_photo(photo_id)
    assert photo is not None and photo.status == "completed"
    assert "optimization" in (photo.processing_metadata or {})
    assert "optimized" in {d.name for d in photo.derivatives}


class _QueueForgets(_Wrapping[JobQueue]):
    """The real queue, except that the follow-up jobs queued with a completion are never
    stored: what a Redis restart does to writes of the last second before it (here the
    completion is kept, the worst case)."""

    async def step(self, consumer: str, want: int, settled: Sequence[Settlement]) -> Step:
        for d in settled:
            d.job.then.clear()
        return await self._inner.step(consumer, want, settled)


async def test_a_photo_whose_follow_up_was_forgotten_is_found_by_the_catalog(
    world: World, corpus: Path
) -> None:
    world.queue = _QueueForgets(world.queue)  # type: ignore[assignment]
    photo_id = await world.submit(corpus / "real/Olympus_PEN_E-P3.jpg")
    await world.run_until_done([photo_id])
    photo = await world.catalog.get_photo(photo_id)
    assert photo is not None and photo.status == "completed"
    assert await world.queue.get_job(deferred_job_id_for(photo_id)) is None
    # What the reconciler reads to queue it again.
    awaiting = await world.catalog.awaiting_follow_up(older_than_s=0)
    assert [p.id for p in awaiting] == [photo_id]


async def test_a_redelivery_after_completion_queues_the_follow_up_it_lost(
    world: World, corpus: Path
) -> None:
    # Redis lost the completion and the follow-up job queued with it: the ready job comes
    # again, finds the photo completed and owing its optimisation, and queues it.
    real = world.queue
    world.queue = _QueueForgets(real)  # type: ignore[assignment]
    photo_id = await world.submit(corpus / "real/Olympus_PEN_E-P3.jpg")
    await world.run_until_done([photo_id])
    first = await world.catalog.get_photo(photo_id)
    assert first is not None and "optimization" not in (first.processing_metadata or {})
    world.queue = real
    job = ready_job(world.settings, first)
    await world.queue.add(f"{job.id}:again", encode_job(job))
    await world.run_until_done([photo_id])
    photo = await world.catalog.get_photo(photo_id)
    assert photo is not None and "optimization" in (photo.processing_metadata or {})
    assert await world.catalog.awaiting_follow_up(older_than_s=0) == []


class _RecordingFails(_Wrapping[Catalog]):
    """The real catalog, except that recording deferred results fails as DATA (after the
    follow-up job stored its copy)."""

    async def add_deferred_results(self, photo_id: str, **kw: object) -> object:
        raise DataError("the catalog refused the results", code="refused")


async def test_a_follow_up_that_fails_after_its_put_leaves_no_stray_copy(
    world: World, corpus: Path
) -> None:
    world.processor.photos.catalog = _RecordingFails(world.catalog)  # type: ignore[assignment]
    photo_id = await world.submit(corpus / "real/Olympus_PEN_E-P3.jpg")
    await world.run_until_done([photo_id])
    photo = await world.catalog.get_photo(photo_id)
    assert photo is not None and photo.status == "completed", photo
    assert {d.name for d in photo.derivatives} == {"preview", "thumbnail"}
    stored = {b.key async for b in world.blobs.list(f"derivatives/{photo_id}/")}
    assert stored == {d.key for d in photo.derivatives}


class _Delivery:
    """Just what the processor's progress reporting reads of a job delivery."""

    id = "photo:progress"
    entry_id = "1-0"

    def __init__(self) -> None:
        self.stored: list[int] = []

    async def update_progress(self, percent: int) -> bool:
        self.stored.append(percent)
        return True


async def test_progress_is_stored_at_most_once_a_period_per_job(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A typical photo's job ends before a write is due; a long one shows its progress."""
    monkeypatch.setattr(processor_module, "PROGRESS_EVERY_S", 0.2)
    delivery = _Delivery()
    processor = world.processor
    processor._progress_at[delivery.entry_id] = time.monotonic()
    await processor._progress(delivery, 30)  # type: ignore[arg-type]
    assert delivery.stored == []
    await asyncio.sleep(0.25)
    await processor._progress(delivery, 60)  # type: ignore[arg-type]
    await processor._progress(delivery, 90)  # type: ignore[arg-type]
    assert delivery.stored == [60]
    processor._progress_at.pop(delivery.entry_id)


class _CountedGets(_Wrapping[BlobStore]):
    """The real store, listing the keys read whole."""

    def __init__(self, inner: BlobStore) -> None:
        super().__init__(inner)
        self.gets: list[str] = []

    async def get_bytes(self, key: str) -> bytes:
        self.gets.append(key)
        return await self._inner.get_bytes(key)


class _CorruptingCache(LocalBlobCache):
    """A local cache whose disk flips the bytes it keeps (same length)."""

    async def put(self, key: str, data: bytes) -> None:
        await super().put(key, bytes(b ^ 0xFF for b in data))


@pytest.mark.parametrize("corrupt", [False, True], ids=["intact", "corrupt"])
async def test_the_follow_up_job_takes_the_original_the_upload_job_kept(
    world: World, corpus: Path, tmp_path: Path, corrupt: bool
) -> None:
    kind = _CorruptingCache if corrupt else LocalBlobCache
    world.processor.originals = kind(tmp_path / "kept", max_bytes=10**8, max_age_s=600)
    counted = _CountedGets(world.blobs)
    world.processor.blobs = counted  # type: ignore[assignment]
    photo_id = await world.submit(corpus / "real/Olympus_PEN_E-P3.jpg", with_sha256=True)
    await world.run_until_done([photo_id])
    photo = await world.catalog.get_photo(photo_id)
    assert photo is not None and photo.status == "completed", photo
    assert {d.name for d in photo.derivatives} == {"preview", "thumbnail", "optimized"}
    # Intact, the original is read from the store once; a copy that does not match the
    # catalog's SHA-256 is read again rather than processed.
    assert counted.gets == [f"originals/{photo_id}"] * (2 if corrupt else 1)
    assert list((tmp_path / "kept").iterdir()) == []  # taken


async def test_a_follow_up_for_a_deleted_photo_drops_its_kept_original(
    world: World, corpus: Path, tmp_path: Path
) -> None:
    kept = LocalBlobCache(tmp_path / "kept", max_bytes=10**8, max_age_s=600)
    world.processor.originals = kept

    class _DeletesAfterEnqueue(_Wrapping[JobQueue]):
        async def step(self, consumer: str, want: int, settled: Sequence[Settlement]) -> Step:
            result = await self._inner.step(consumer, want, settled)
            for job_id, _, _ in (later for d in settled for later in d.job.then):
                await world.catalog.delete_photo(job_id.split(":")[1], "c")
            return result

    world.queue = _DeletesAfterEnqueue(world.queue)  # type: ignore[assignment]
    photo_id = await world.submit(corpus / "real/Olympus_PEN_E-P3.jpg")
    await world.run_until_done([photo_id])
    assert await world.catalog.get_photo(photo_id) is None
    assert list((tmp_path / "kept").iterdir()) == []


async def test_an_optimisation_run_again_that_keeps_nothing_deletes_the_earlier_copy(
    world: World, corpus: Path
) -> None:
    """The optimised copy is made again (a remake after a power cut damaged it) under a
    setting by which it no longer pays (a higher minimum saving): the catalog drops the copy,
    and so must the store. The row still exists, so the orphan sweep never would."""
    photo_id = await world.submit(corpus / "real/Sony_Cybershot.jpg")
    await world.run_until_done([photo_id])
    photo = await world.catalog.get_photo(photo_id)
    assert photo is not None and {d.name for d in photo.derivatives} == {
        "preview", "thumbnail", "optimized"
    }  # fmt: skip
    stricter = replace_settings(world.settings, optimize_min_saving=0.99)
    world.processor = PhotoProcessor(
        stricter, photos=world.processor.photos, blobs=world.processor.blobs
    )
    await world.processor.photos.remake(photo, "optimized")
    await world.run_until_done([photo_id])
    again = await world.catalog.get_photo(photo_id)
    assert again is not None and again.status == "completed", again
    assert (again.processing_metadata or {})["optimization"]["kept"] is False
    assert {d.name for d in again.derivatives} == {"preview", "thumbnail"}
    stored = {b.key async for b in world.blobs.list(f"derivatives/{photo_id}/")}
    assert stored == {d.key for d in again.derivatives}


class _JsonLines(logging.Handler):
    """The worker's log records as the JSON lines it would write."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter("worker"))
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(orjson.loads(self.format(record)))


async def test_each_job_writes_one_info_line_with_its_stage_times_and_trace(
    world: World, corpus: Path
) -> None:
    lines = _JsonLines()
    worker_log = logging.getLogger("filmstrip.worker")
    worker_log.addHandler(lines)
    level = worker_log.level
    worker_log.setLevel(logging.INFO)
    try:
        photo_id = await world.submit(corpus / "real/Olympus_PEN_E-P3.jpg")
        await world.run_until_done([photo_id])
    finally:
        worker_log.removeHandler(lines)
        worker_log.setLevel(level)
    photo = await world.catalog.get_photo(photo_id)
    assert photo is not None and photo.status == "completed"
    mine = [line for line in lines.lines if line.get("photo_id") == photo_id]
    assert [line["msg"] for line in mine] == ["photo completed", "follow-up done"], mine
    ready, follow_up = mine
    assert set(ready["stages_ms"]) == {"validation", "metadata", "thumbnails"}
    assert set(follow_up["stages_ms"]) == {"optimization"}
    assert all(isinstance(ms, float) for ms in ready["stages_ms"].values())
    assert ready["trace_id"] == follow_up["trace_id"] == photo.trace_id
    assert ready["level"] == follow_up["level"] == "INFO"
