"""The SQLite catalog: atomic row + outbox, ownership scoping, keyset listing, tokens, and
write transactions that run whole on the connection's thread."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from filmstrip.catalog import (
    Catalog,
    DerivativeRecord,
    OutboxEntry,
    PhotoRecord,
    PhotoStatus,
    QuotaExceeded,
)
from filmstrip.catalog.base import Transaction
from filmstrip.catalog.sqlite import SqliteCatalog


@pytest.fixture
async def catalog(tmp_path: Path) -> AsyncIterator[Catalog]:
    cat = SqliteCatalog(str(tmp_path / "catalog.db"))
    await cat.connect()
    yield cat
    await cat.close()


def _photo(
    client: str = "c1", uploaded: str = "2026-01-01T00:00:00.000Z", **kw: object
) -> PhotoRecord:
    pid = str(uuid.uuid4())
    base: dict[str, object] = dict(
        id=pid, client_id=client, session_id=None, blob_key=f"originals/{pid}",
        content_type="image/jpeg", bytes=10, sha256=uuid.uuid4().hex * 2,
        status=PhotoStatus.QUEUED, job_id=f"photo:{pid}", trace_id="t" * 32,
        uploaded_at=uploaded, updated_at=uploaded,
    )  # fmt: skip
    base.update(kw)
    return PhotoRecord(**base)  # type: ignore[arg-type]


async def test_wal_mode(catalog: Catalog) -> None:
    rows = await catalog._fetchall("PRAGMA journal_mode")
    assert rows[0][0] == "wal"


async def test_row_and_outbox_are_atomic(catalog: Catalog) -> None:
    photo = _photo()
    entry = OutboxEntry(
        job_id=photo.job_id, photo_id=photo.id, payload="{}", priority=5, created_at="2026"
    )
    await catalog.insert_photo(photo, entry)
    assert [e.job_id for e in await catalog.outbox_pending(created_before="2027")] == [photo.job_id]
    # A second insert of the same id fails as a whole: no second outbox entry appears.
    with pytest.raises(Exception):  # noqa: B017 - the driver's IntegrityError
        await catalog.insert_photo(photo, entry)
    assert len(await catalog.outbox_pending(created_before="2027")) == 1
    await catalog.outbox_done(photo.job_id)
    assert await catalog.outbox_pending(created_before="2027") == []


async def test_ownership_scoping(catalog: Catalog) -> None:
    photo = _photo(client="alice")
    await catalog.insert_photo(photo, None)
    assert await catalog.get_photo(photo.id, "alice") is not None
    assert await catalog.get_photo(photo.id, "bob") is None
    assert await catalog.delete_photo(photo.id, "bob") is None
    assert await catalog.delete_photo(photo.id, "alice") is not None
    assert await catalog.get_photo(photo.id) is None


async def test_processing_lifecycle(catalog: Catalog) -> None:
    photo = _photo()
    await catalog.insert_photo(photo, None)
    assert await catalog.mark_processing(photo.id)
    d = DerivativeRecord(
        name="thumbnail", key="k", content_type="image/webp", width=1, height=2, bytes=3
    )
    assert await catalog.complete_photo(
        photo.id, metadata={"width": 1}, derivatives=[d], taken_at="2020-01-01T00:00:00+02:00"
    )
    done = await catalog.get_photo(photo.id)
    assert done is not None and done.status == "completed"
    assert done.derivatives == [d] and done.processing_metadata == {"width": 1}
    assert done.processed_at is not None
    # A deleted photo cannot be completed or failed (the worker discards its results).
    await catalog.delete_photo(photo.id, photo.client_id)
    assert not await catalog.complete_photo(photo.id, metadata={}, derivatives=[], taken_at=None)
    assert not await catalog.fail_photo(photo.id, error="x", category="DATA")


async def test_keyset_listing_is_stable_under_inserts(catalog: Catalog) -> None:
    for i in range(5):
        await catalog.insert_photo(_photo(uploaded=f"2026-01-0{i + 1}T00:00:00.000Z"), None)
    page1 = await catalog.list_photos("c1", limit=2)
    await catalog.insert_photo(_photo(uploaded="2026-02-01T00:00:00.000Z"), None)  # newer
    last = page1[-1]
    page2 = await catalog.list_photos("c1", limit=2, after=(last.uploaded_at, last.id))
    page3 = await catalog.list_photos("c1", limit=2, after=(page2[-1].uploaded_at, page2[-1].id))
    seen = [p.uploaded_at[:10] for p in page1 + page2 + page3]
    assert seen == ["2026-01-05", "2026-01-04", "2026-01-03", "2026-01-02", "2026-01-01"]


async def test_tokens_are_looked_up_by_hash_and_revocable(catalog: Catalog) -> None:
    client = await catalog.create_client("c9", "nine", is_admin=False)
    await catalog.add_token("h1", client.id)
    assert (await catalog.client_for_token("h1")) == client
    assert await catalog.client_for_token("h2") is None
    assert await catalog.revoke_token("h1")
    assert await catalog.client_for_token("h1") is None


async def test_two_connections_share_the_file(tmp_path: Path) -> None:
    a = SqliteCatalog(str(tmp_path / "shared.db"))
    b = SqliteCatalog(str(tmp_path / "shared.db"))
    await a.connect()
    await b.connect()
    try:
        photo = _photo()
        await a.insert_photo(photo, None)
        assert await b.get_photo(photo.id) is not None
    finally:
        await a.close()
        await b.close()


async def _awaiting(catalog: Catalog) -> set[str]:
    return {p.id for p in await catalog.awaiting_follow_up(updated_before="9999")}


async def test_photos_awaiting_their_follow_up_are_tracked_until_it_reports(
    catalog: Catalog,
) -> None:
    owing, done_before, plain = _photo(), _photo(), _photo()
    for photo in (owing, done_before, plain):
        await catalog.insert_photo(photo, None)
    await catalog.complete_photo(
        owing.id, metadata={"width": 1}, derivatives=[], taken_at=None, owed=["optimization"]
    )
    # A rerun of the ready stages that keeps an earlier optimization result owes nothing.
    await catalog.complete_photo(
        done_before.id,
        metadata={"optimization": {"kept": True}},
        derivatives=[],
        taken_at=None,
        owed=["optimization"],
    )
    await catalog.complete_photo(plain.id, metadata={}, derivatives=[], taken_at=None)
    assert await _awaiting(catalog) == {owing.id}

    # A reprocess in flight is not completed: the reconciler leaves it to its own job.
    await catalog.mark_processing(owing.id)
    assert await _awaiting(catalog) == set()
    await catalog.complete_photo(
        owing.id, metadata={"width": 1}, derivatives=[], taken_at=None, owed=["optimization"]
    )
    assert await _awaiting(catalog) == {owing.id}

    # The follow-up reports, with its result or its failure: nothing is awaited any more.
    await catalog.add_deferred_results(
        owing.id, metadata={"optimization": {"failed": True}}, derivatives=[], replaces=()
    )
    assert await _awaiting(catalog) == set()
    # Results of some other stage do not settle what is still owed.
    await catalog.complete_photo(
        plain.id, metadata={}, derivatives=[], taken_at=None, owed=["optimization", "ocr"]
    )
    await catalog.add_deferred_results(
        plain.id, metadata={"ocr": {"text": ""}}, derivatives=[], replaces=()
    )
    assert await _awaiting(catalog) == {plain.id}


async def test_the_search_for_lost_follow_ups_reads_only_photos_awaiting_one(
    catalog: Catalog,
) -> None:
    """At a million completed photos a scan of them all every minute would not do."""
    plan = await catalog._fetchall(
        "EXPLAIN QUERY PLAN SELECT id FROM photos WHERE follow_up IS NOT NULL "
        "AND updated_at < ? AND status = ? ORDER BY updated_at LIMIT 5",
        ("9999", PhotoStatus.COMPLETED),
    )
    details = " ".join(str(row[-1]) for row in plan)
    assert "USING INDEX photos_follow_up" in details, details
    assert "TEMP B-TREE" not in details, details  # already in updated_at order


async def test_a_catalog_from_before_a_column_was_added_gets_it(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = SqliteCatalog(str(path))
    await old.connect()
    photo = _photo()
    await old.insert_photo(photo, None)
    await old._execute("DROP INDEX photos_follow_up")
    await old._execute("ALTER TABLE photos DROP COLUMN follow_up")
    await old.close()

    upgraded = SqliteCatalog(str(path))
    await upgraded.connect()
    try:
        assert await upgraded.get_photo(photo.id) is not None  # kept
        await upgraded.complete_photo(
            photo.id, metadata={}, derivatives=[], taken_at=None, owed=["optimization"]
        )
        assert await _awaiting(upgraded) == {photo.id}
        names = {r[1] for r in await upgraded._fetchall("PRAGMA index_list(photos)")}
        assert "photos_follow_up" in names
    finally:
        await upgraded.close()


async def test_a_catalog_from_before_stored_bytes_counts_its_clients_photos(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    old = SqliteCatalog(str(path))
    await old.connect()
    await old.create_client("c1", "one", is_admin=False)
    await old.create_client("c2", "two", is_admin=False)
    for size in (10, 20):
        await old.insert_photo(_photo("c1", bytes=size), None)
    await old._execute("ALTER TABLE clients DROP COLUMN stored_bytes")
    await old.close()

    upgraded = SqliteCatalog(str(path))
    await upgraded.connect()
    try:
        assert await upgraded.stored_bytes("c1") == 30
        assert await upgraded.stored_bytes("c2") == 0
    finally:
        await upgraded.close()


async def test_stored_bytes_follow_inserts_and_deletes_and_the_quota_holds(
    catalog: Catalog,
) -> None:
    await catalog.create_client("c1", "one", is_admin=False)
    first, second = _photo("c1", bytes=600), _photo("c1", bytes=300)
    await catalog.insert_photo(first, None, quota_bytes=1000)
    await catalog.insert_photo(second, None, quota_bytes=1000)
    assert await catalog.stored_bytes("c1") == 900
    over = _photo("c1", bytes=101)
    with pytest.raises(QuotaExceeded):
        await catalog.insert_photo(over, None, quota_bytes=1000)
    assert await catalog.get_photo(over.id) is None  # nothing recorded
    assert await catalog.stored_bytes("c1") == 900
    await catalog.delete_photo(first.id, "c1")
    assert await catalog.stored_bytes("c1") == 300
    await catalog.insert_photo(over, None, quota_bytes=1000)  # room again: 401
    # Concurrent inserts each under the quota alone: together only as many as fit.
    racing = [_photo("c1", bytes=199) for _ in range(6)]
    results = await asyncio.gather(
        *(catalog.insert_photo(p, None, quota_bytes=1000) for p in racing),
        return_exceptions=True,
    )
    assert all(r is None or isinstance(r, QuotaExceeded) for r in results), results
    assert sum(r is None for r in results) == 3
    assert await catalog.stored_bytes("c1") == 401 + 3 * 199


async def test_a_write_holds_the_lock_only_while_its_statements_run(tmp_path: Path) -> None:
    # The loop is kept busy right after the write starts, as a loaded worker's is: the
    # transaction still runs to its commit on the connection's thread, so another
    # process finds the lock free, not held until this loop comes back to it.
    db = tmp_path / "catalog.db"
    cat = SqliteCatalog(str(db))
    await cat.connect()
    try:
        photo = _photo()
        writing = asyncio.create_task(cat.insert_photo(photo, None))
        for _ in range(3):  # a few turns: the task starts and hands its transaction over
            await asyncio.sleep(0)
        time.sleep(0.5)  # the loop is busy elsewhere
        other = sqlite3.connect(db, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # raises "database is locked" if held
            assert other.execute("SELECT id FROM photos").fetchall() == [(photo.id,)]
            other.execute("ROLLBACK")
        finally:
            other.close()
        await writing
    finally:
        await cat.close()


async def test_a_cancelled_caller_waits_for_its_transaction_to_end(catalog: Catalog) -> None:
    photo = _photo()

    def slow_insert(tx: Transaction) -> None:
        time.sleep(0.3)
        tx.execute(
            "INSERT INTO clients (id, name, is_admin, created_at) VALUES (?, ?, 0, ?)",
            (photo.id, "slow", "2026-01-01T00:00:00.000Z"),
        )

    started = time.monotonic()
    task = asyncio.create_task(catalog.run_transaction(slow_insert))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started >= 0.25  # it was let finish, not abandoned
    client = await catalog.get_client(photo.id)  # and it committed
    assert client is not None and client.name == "slow"
    assert await catalog.mark_processing("nobody") is False  # the connection still works


async def test_a_transaction_that_raises_leaves_nothing(catalog: Catalog) -> None:
    def half(tx: Transaction) -> None:
        tx.execute(
            "INSERT INTO clients (id, name, is_admin, created_at) VALUES ('half', 'h', 0, '')"
        )
        raise ValueError("half way")

    with pytest.raises(ValueError, match="half way"):
        await catalog.run_transaction(half)
    assert await catalog.get_client("half") is None
    await catalog.create_client("after", "a", is_admin=False)  # no transaction left open


async def test_writers_of_every_process_queue_on_the_lock_file(tmp_path: Path) -> None:
    # Another process holding the lock file (here: this test, through its own descriptor)
    # holds every write back until it lets go, and the waiting write then goes through.
    db = tmp_path / "catalog.db"
    cat = SqliteCatalog(str(db))
    await cat.connect()
    fd = os.open(f"{db}-writelock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        photo = _photo()
        writing = asyncio.create_task(cat.insert_photo(photo, None))
        await asyncio.sleep(0.3)
        assert not writing.done()
        fcntl.flock(fd, fcntl.LOCK_UN)
        await asyncio.wait_for(writing, 5)
        assert await cat.get_photo(photo.id) is not None
    finally:
        os.close(fd)
        await cat.close()
