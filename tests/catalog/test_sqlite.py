"""What only the SQLite driver does: WAL, its query plans, and write transactions that run
whole on the connection's thread, queued across processes on a lock file."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from filmstrip.catalog import PhotoStatus
from filmstrip.catalog.sqlite import SqliteCatalog
from tests.catalog.conftest import make_photo


@pytest.fixture
async def catalog(tmp_path: Path) -> AsyncIterator[SqliteCatalog]:
    cat = SqliteCatalog(str(tmp_path / "catalog.db"))
    await cat.connect()
    yield cat
    await cat.close()


async def test_wal_mode(catalog: SqliteCatalog) -> None:
    rows = await catalog._fetchall("PRAGMA journal_mode")
    assert rows[0][0] == "wal"


async def test_the_search_for_lost_follow_ups_reads_only_photos_awaiting_one(
    catalog: SqliteCatalog,
) -> None:
    """At a million completed photos a scan of them all every minute would not do."""
    plan = await catalog._fetchall(
        "EXPLAIN QUERY PLAN SELECT id FROM photos WHERE follow_up IS NOT NULL "
        "AND updated_at <= ? AND status = ? ORDER BY updated_at LIMIT 5",
        ("9999", PhotoStatus.COMPLETED),
    )
    details = " ".join(str(row[-1]) for row in plan)
    assert "USING INDEX photos_follow_up" in details, details
    assert "TEMP B-TREE" not in details, details  # already in updated_at order


async def test_a_write_holds_the_lock_only_while_its_statements_run(tmp_path: Path) -> None:
    # The loop is kept busy right after the write starts, as a loaded worker's is: the
    # transaction still runs to its commit on the connection's thread, so another
    # process finds the lock free, not held until this loop comes back to it.
    db = tmp_path / "catalog.db"
    cat = SqliteCatalog(str(db))
    await cat.connect()
    try:
        photo = make_photo()
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


async def test_writers_of_every_process_queue_on_the_lock_file(tmp_path: Path) -> None:
    # Another process holding the lock file (here: this test, through its own descriptor)
    # holds every write back until it lets go, and the waiting write then goes through.
    db = tmp_path / "catalog.db"
    cat = SqliteCatalog(str(db))
    await cat.connect()
    fd = os.open(f"{db}-writelock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        photo = make_photo()
        writing = asyncio.create_task(cat.insert_photo(photo, None))
        await asyncio.sleep(0.3)
        assert not writing.done()
        fcntl.flock(fd, fcntl.LOCK_UN)
        await asyncio.wait_for(writing, 5)
        assert await cat.get_photo(photo.id) is not None
    finally:
        os.close(fd)
        await cat.close()
