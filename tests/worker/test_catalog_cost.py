"""What one photo costs the catalog on the happy path, from upload to its follow-up job's
end, on SQLite and PostgreSQL: each call is a database transaction (on PostgreSQL a plain
read is one too, in autocommit), and each costs the roles CPU, so the count must not
silently grow back."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from filmstrip.blobs import BlobStore, open_blob_store
from filmstrip.catalog import Catalog, PhotoRecord, PhotoStatus, utcnow
from filmstrip.catalog.base import Row, Transaction
from filmstrip.catalog.postgres import PostgresCatalog
from filmstrip.catalog.sqlite import SqliteCatalog
from filmstrip.concurrency import configure_pool
from filmstrip.events import EventPublisher
from filmstrip.photos import PhotoLifecycle, lifecycle
from filmstrip.pipeline.vips import configure_vips
from filmstrip.queue import Consumer, JobQueue, QueueOptions
from filmstrip.redis_client import RedisClient
from filmstrip.services.worker.processor import PhotoProcessor
from filmstrip.settings import load_settings, sqlite_path, sqlite_url
from tests.support import postgres

T = TypeVar("T")

_BASE = sys.modules[Catalog.__module__].__file__


def _caller() -> str:
    """The public Catalog method that made the current call (for the failure message)."""
    frame = sys._getframe(2)
    while frame.f_back is not None and (
        frame.f_code.co_filename != _BASE or frame.f_code.co_name.startswith("_")
    ):
        frame = frame.f_back
    return frame.f_code.co_name


class _Counting(Catalog):
    """Mixed in before a driver: notes each transaction and plain read it runs."""

    calls: list[str]

    async def run_transaction(self, work: Callable[[Transaction], T]) -> T:
        self.calls.append(f"tx {_caller()}")
        return await super().run_transaction(work)

    async def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        self.calls.append(f"read {_caller()}")
        return await super()._fetchall(sql, params)


class _CountingSqlite(_Counting, SqliteCatalog):
    pass


class _CountingPostgres(_Counting, PostgresCatalog):
    pass


def counting_catalog(url: str) -> _Counting:
    """The catalog at ``url`` (not yet connected), noting its calls in ``calls``."""
    catalog: _Counting
    if url.startswith("sqlite"):
        catalog = _CountingSqlite(sqlite_path(url))
    else:
        catalog = _CountingPostgres(url)
    catalog.calls = []
    return catalog


@pytest.fixture(params=["sqlite", "postgresql"])
async def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield sqlite_url(str(tmp_path / "catalog.db"))
        return
    reason = postgres.unreachable()
    if reason:
        pytest.skip(reason)
    url = postgres.create_database()
    yield url
    postgres.drop_database(url)


async def _upload(photos: PhotoLifecycle, blobs: BlobStore, source: Path) -> str:
    """What the api does with an accepted file: the original, the row with its outbox
    entry, the job."""
    photo_id = str(uuid.uuid4())
    data = await asyncio.to_thread(source.read_bytes)
    await blobs.put_bytes(f"originals/{photo_id}", data, content_type="image/jpeg")
    photo = PhotoRecord(
        id=photo_id, client_id="c", session_id=None, blob_key=f"originals/{photo_id}",
        content_type="image/jpeg", bytes=len(data), sha256=uuid.uuid4().hex * 2,
        status=PhotoStatus.QUEUED, job_id=f"photo:{photo_id}", trace_id=uuid.uuid4().hex,
        uploaded_at=utcnow(),
    )  # fmt: skip
    _, queued = await photos.accept(photo, quota_bytes=0)
    assert queued
    return photo_id


async def _process_all(queue: JobQueue, processor: PhotoProcessor) -> None:
    """Run the worker until every job (each photo's and its follow-up) has ended."""
    consumer = Consumer(queue, processor.handle, on_failed=processor.on_failed)
    task = asyncio.create_task(consumer.run())
    try:
        async with asyncio.timeout(60):
            while True:
                counts = await queue.counts()
                if not counts["waiting"] + counts["active"] + counts["delayed"]:
                    return
                await asyncio.sleep(0.05)
    finally:
        await consumer.stop()
        await task


PHOTOS = 3


async def test_a_photo_costs_the_catalog_a_fixed_number_of_transactions(
    catalog_url: str,
    redis: RedisClient,
    redis_url: str,
    tmp_path: Path,
    corpus: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The entries wait for the next upload however slow this machine is, not a timer.
    monkeypatch.setattr(lifecycle, "OUTBOX_FORGET_S", 60.0)
    settings = load_settings(
        {
            "FILMSTRIP_DATA_DIR": str(tmp_path),
            "FILMSTRIP_REDIS_URL": redis_url,
            "FILMSTRIP_DATABASE_URL": catalog_url,
        }
    )
    configure_vips(settings.pipeline)
    configure_pool(1)
    catalog = counting_catalog(catalog_url)
    await catalog.connect()
    blobs = await open_blob_store(settings)
    queue = JobQueue(redis, QueueOptions.from_settings(settings))
    photos = PhotoLifecycle(settings, catalog, queue, EventPublisher(redis), signing_secret=b"k")
    processor = PhotoProcessor(settings, photos=photos, blobs=blobs)
    try:
        await catalog.create_client("c", "c", is_admin=False)
        catalog.calls.clear()
        # One after another, as an api process under load takes them.
        ids = [await _upload(photos, blobs, corpus / "real/Landscape_1.jpg") for _ in range(PHOTOS)]
        await _process_all(queue, processor)
        await photos.close()  # the last photo's outbox entry: an api process's last act
        calls = Counter(catalog.calls)
        for photo_id in ids:
            photo = await catalog.get_photo(photo_id)
            assert photo is not None and photo.status == PhotoStatus.COMPLETED
            assert "optimization" in (photo.processing_metadata or {})
        assert await catalog.outbox_pending(older_than_s=0) == []
    finally:
        await blobs.close()
        await catalog.close()
    assert calls == {
        # The api: each upload's transaction also deletes the outbox entry of the one before.
        "tx insert_photo": PHOTOS,
        "tx outbox_done": 1,
        # The worker: the photo's job, then its follow-up job.
        "tx mark_processing": PHOTOS,
        "tx complete_photo": PHOTOS,
        "read get_photo": PHOTOS,
        "tx add_deferred_results": PHOTOS,
    }, calls


async def test_the_relay_and_reconciler_reads_are_one_round_trip_each(catalog_url: str) -> None:
    """They run every few seconds in every api process, photos or not: the database's
    clock they go by is read in the same statement, not in one of its own."""
    catalog = counting_catalog(catalog_url)
    await catalog.connect()
    try:
        catalog.calls.clear()
        await catalog.outbox_pending(older_than_s=2)
        for status in (PhotoStatus.QUEUED, PhotoStatus.PROCESSING):
            await catalog.photos_in_status(status, older_than_s=600)
        await catalog.failed_within(older_than_s=600, newer_than_s=3600)
        await catalog.awaiting_follow_up(older_than_s=600)
    finally:
        await catalog.close()
    assert catalog.calls == [
        "read outbox_pending",
        "read photos_in_status",
        "read photos_in_status",
        "read failed_within",
        "read awaiting_follow_up",
    ]
