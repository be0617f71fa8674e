"""Schema migrations: a new catalog starts at the latest version, older catalogs upgrade in
place on start (catalog files made by releases b1d4090 and 10e62e0 among them), processes
starting at once migrate once, and a catalog newer than the code is refused."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from filmstrip.catalog import Catalog, DerivativeRecord, PhotoStatus
from filmstrip.catalog.migrations import LATEST, MIGRATIONS
from filmstrip.catalog.sqlite import SqliteCatalog
from filmstrip.errors import LogicError
from filmstrip.photos.failures import error_of
from filmstrip.protocols.events import PhotoError
from tests.catalog.conftest import Backend, make_photo

# Made by releases before schema versions with fixtures/make_release_catalog.py: a client
# with a token, a session, a queued photo with its outbox entry, a completed photo owed its
# follow-up, a failed photo. 10e62e0 is the last such release; b1d4090 came before the
# clients' stored_bytes.
FIXTURES = Path(__file__).parent / "fixtures"
# Every migration: an older catalog upgraded on start has them all applied.
ALL = [m.version for m in MIGRATIONS]


async def _versions(catalog: Catalog) -> list[int]:
    rows = await catalog._fetchall("SELECT version FROM schema_version ORDER BY version")
    return [int(r[0]) for r in rows]


async def test_a_new_catalog_is_at_the_latest_version(catalog: Catalog) -> None:
    assert await _versions(catalog) == [m.version for m in MIGRATIONS]
    assert LATEST == MIGRATIONS[-1].version == len(MIGRATIONS)


async def test_a_catalog_from_before_the_follow_up_column_gets_it(backend: Backend) -> None:
    old = backend.catalog()
    await old.connect()
    photo = make_photo()
    await old.insert_photo(photo, None)
    # As releases before fa690ad left it: no follow_up column, no schema versions.
    await old._execute("DROP INDEX photos_follow_up")
    await old._execute("ALTER TABLE photos DROP COLUMN follow_up")
    await old._execute("DROP TABLE schema_version")
    await old.close()

    upgraded = backend.catalog()
    await upgraded.connect()
    try:
        assert await _versions(upgraded) == ALL
        assert await upgraded.get_photo(photo.id) is not None  # kept
        await upgraded.complete_photo(
            photo.id, metadata={}, derivatives=[], taken_at=None, owed=["optimization"]
        )
        awaiting = await upgraded.awaiting_follow_up(older_than_s=0)
        assert [p.id for p in awaiting] == [photo.id]
    finally:
        await upgraded.close()


async def test_a_catalog_from_before_stored_bytes_counts_its_clients_photos(
    backend: Backend,
) -> None:
    old = backend.catalog()
    await old.connect()
    await old.create_client("c1", "one", is_admin=False)
    await old.create_client("c2", "two", is_admin=False)
    for size in (10, 20):
        await old.insert_photo(make_photo("c1", bytes=size), None)
    # As releases before 654863c left it: no stored_bytes column, no schema versions.
    await old._execute("ALTER TABLE clients DROP COLUMN stored_bytes")
    await old._execute("DROP TABLE schema_version")
    await old.close()

    upgraded = backend.catalog()
    await upgraded.connect()
    try:
        assert await _versions(upgraded) == ALL
        assert await upgraded.stored_bytes("c1") == 30
        assert await upgraded.stored_bytes("c2") == 0
    finally:
        await upgraded.close()


@pytest.mark.parametrize("release", ["10e62e0", "b1d4090"])
async def test_a_catalog_made_by_an_earlier_release_upgrades_in_place(
    tmp_path: Path, release: str
) -> None:
    path = tmp_path / "filmstrip.db"
    shutil.copy(FIXTURES / f"release-{release}.db", path)
    catalog = SqliteCatalog(str(path))
    await catalog.connect()
    try:
        assert await _versions(catalog) == ALL
        client = await catalog.client_for_token("a" * 64)
        assert client is not None and client.name == "release-client"
        assert await catalog.stored_bytes("client-1") == 3 * 1234
        photos = await catalog.list_photos("client-1", limit=10)
        assert [(p.id[-1], p.status) for p in photos] == [
            ("3", PhotoStatus.FAILED),
            ("2", PhotoStatus.COMPLETED),
            ("1", PhotoStatus.QUEUED),
        ]
        failed, completed, queued = photos
        assert failed.processing_error == "not an image" and failed.error_category == "DATA"
        # Failed before codes were kept: a generic one, the category still deciding retries.
        assert error_of(failed) == PhotoError(
            code="processing_failed", category="DATA", message="not an image", retryable=False
        )
        assert completed.processing_metadata == {"width": 4032, "height": 3024}
        assert [d.name for d in completed.derivatives] == ["thumbnail"]
        assert completed.taken_at == "2025-12-24T18:00:00+01:00"
        assert [e.job_id for e in await catalog.outbox_pending(older_than_s=0)] == [queued.job_id]
        assert [s for _, s in await catalog.session_photos("session-1")] == [
            PhotoStatus.QUEUED,
            PhotoStatus.COMPLETED,
            PhotoStatus.FAILED,
        ]
        # The completed photo still awaits its follow-up; when it reports, it is settled.
        assert [p.id for p in await catalog.awaiting_follow_up(older_than_s=0)] == [completed.id]
        optimized = DerivativeRecord(
            name="optimized", key="k", content_type="image/webp", width=1, height=1, bytes=1
        )
        merged = await catalog.add_deferred_results(
            completed.id,
            metadata={"optimization": {"kept": True}},
            derivatives=[optimized],
            replaces=(),
        )
        assert merged is not None and [d.name for d in merged] == ["thumbnail", "optimized"]
        assert await catalog.awaiting_follow_up(older_than_s=0) == []
        # New rows go in beside the old ones, and are counted.
        await catalog.insert_photo(make_photo(client="client-1"), None)
        assert len(await catalog.list_photos("client-1", limit=10)) == 4
        assert await catalog.stored_bytes("client-1") == 3 * 1234 + 10
    finally:
        await catalog.close()
    # Starting again finds nothing to do.
    again = SqliteCatalog(str(path))
    await again.connect()
    try:
        assert await _versions(again) == ALL
    finally:
        await again.close()


async def test_processes_starting_at_once_migrate_the_schema_once(backend: Backend) -> None:
    catalogs = [backend.catalog() for _ in range(6)]
    try:
        await asyncio.gather(*(c.connect() for c in catalogs))
        assert await _versions(catalogs[0]) == ALL
    finally:
        await asyncio.gather(*(c.close() for c in catalogs))


async def test_a_catalog_newer_than_this_release_is_refused(backend: Backend) -> None:
    first = backend.catalog()
    await first.connect()
    await first._execute(
        "INSERT INTO schema_version (version, summary, applied_at) VALUES (?, ?, ?)",
        (LATEST + 1, "from the future", "2030-01-01T00:00:00.000Z"),
    )
    await first.close()
    later = backend.catalog()
    with pytest.raises(LogicError, match="newer than this release"):
        await later.connect()
    await later.close()
