"""Copying a SQLite catalog into PostgreSQL (``filmstrip.catalog.copy``): every table the
schema has, from one snapshot of the source, verified by counts and checksums; again
without change; resumed after a cut; refusing targets it must not write into."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from filmstrip.catalog import Catalog, OutboxEntry, catalog_for_url, migrations
from filmstrip.catalog import copy as catalog_copy
from filmstrip.catalog.base import Transaction
from filmstrip.catalog.copy import Plan, TableResult
from filmstrip.catalog.models import DerivativeRecord
from filmstrip.catalog.sqlite import SqliteCatalog
from filmstrip.settings import sqlite_url
from tests.catalog.conftest import make_photo
from tests.support import postgres

pytestmark = pytest.mark.skipif(
    postgres.unreachable() is not None, reason=f"needs PostgreSQL: {postgres.unreachable()}"
)

PHOTOS = 23


def _attachments(tx: Transaction) -> None:
    # Named to sort before ``clients``, which it points at: the copy must order by foreign
    # keys, not names. A two-column key, bytes and a float, as a later release might add.
    tx.execute(
        """CREATE TABLE IF NOT EXISTS attachments (
            client_id TEXT NOT NULL REFERENCES clients(id),
            name TEXT NOT NULL,
            body BYTEA,
            ratio DOUBLE PRECISION,
            PRIMARY KEY (client_id, name)
        )"""
    )


@pytest.fixture
def later_release(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A release whose migration 4 adds a table (as tus upload state will)."""
    added = migrations.Migration(migrations.LATEST + 1, "attachments", _attachments)
    monkeypatch.setattr(migrations, "MIGRATIONS", (*migrations.MIGRATIONS, added))
    monkeypatch.setattr(migrations, "LATEST", added.version)
    monkeypatch.setattr(catalog_copy, "LATEST", added.version)
    yield


@pytest.fixture
async def source(tmp_path: Path) -> AsyncIterator[Catalog]:
    """A populated SQLite catalog: clients, tokens, a session, photos (some completed,
    some with outbox entries)."""
    catalog = catalog_for_url(sqlite_url(str(tmp_path / "dev.db")))
    await catalog.connect()
    await catalog.create_client("c1", "alice", is_admin=True)
    await catalog.create_client("c2", "bob", is_admin=False)
    await catalog.add_token("a" * 64, "c1")
    await catalog.add_token("b" * 64, "c2")
    await catalog.revoke_token("b" * 64)
    await catalog.create_session("s1", "c1")
    await catalog.service_secret("url-signing", "k" * 64)
    for i in range(PHOTOS):
        photo = make_photo(client="c1" if i % 2 else "c2", session_id="s1" if i < 5 else None)
        entry = OutboxEntry(job_id=photo.job_id, photo_id=photo.id, payload="{}", priority=5)
        await catalog.insert_photo(photo, entry if i % 3 == 0 else None)
        if i % 3 == 1:
            derived = [
                DerivativeRecord(
                    name="thumbnail", key=f"d/{photo.id}/t", content_type="image/webp",
                    width=2, height=1, bytes=9,
                )
            ]  # fmt: skip
            await catalog.complete_photo(
                photo.id, metadata={"exif": {"Make": "Café ✓"}}, derivatives=derived, taken_at=None
            )
    if "attachments" in await catalog.run_transaction(lambda tx: tx.tables()):
        for name, body in (("a", b"\x00\xff"), ("b", None)):
            await catalog._execute(
                "INSERT INTO attachments (client_id, name, body, ratio) VALUES (?, ?, ?, ?)",
                ("c1", name, body, 0.1 + 0.2),
            )
    yield catalog
    await catalog.close()


@pytest.fixture
async def target() -> AsyncIterator[Catalog]:
    """An empty PostgreSQL database (dropped after the test), connected, not migrated."""
    catalog = catalog_for_url(postgres.create_database())
    await catalog.connect(migrate=False)
    yield catalog
    await catalog.close()


async def _copy(source: Catalog, target: Catalog, **options: Any) -> tuple[Plan, list[TableResult]]:
    """What ``filmstrip migrate catalog`` does: plan, migrate, copy, verify."""
    allow_extra = options.pop("allow_extra", False)
    plan = await catalog_copy.inspect(source, target, allow_extra=allow_extra)
    assert not plan.refusals, plan.refusals
    await target.create_schema()
    plan = await catalog_copy.inspect(source, target, allow_extra=allow_extra)
    assert not plan.refusals, plan.refusals
    results = await catalog_copy.copy(plan, source, target, **options)
    await catalog_copy.verify(target, plan, results)
    return plan, results


async def _rows(catalog: Catalog) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table but the migrations' own record, in a comparable form."""
    tables = await catalog.run_transaction(lambda tx: tx.tables())
    found = {}
    for table in sorted(tables - {"schema_version"}):
        rows = await catalog._fetchall(f"SELECT * FROM {table}")
        found[table] = sorted((tuple(r) for r in rows), key=repr)
    return found


def _by_table(results: list[TableResult]) -> dict[str, TableResult]:
    return {r.table: r for r in results}


async def test_every_table_a_migration_made_is_copied_and_verified(
    later_release: None, source: Catalog, target: Catalog
) -> None:
    _plan, results = await _copy(source, target)

    assert all(r.verified for r in results), [(r.table, r.target, r.expected) for r in results]
    assert await _rows(target) == await _rows(source)
    copied = {r.table: r.copied for r in results}
    assert copied == {
        "attachments": 2, "clients": 2, "outbox": 8, "photos": PHOTOS, "service_secrets": 1,
        "tokens": 2, "tus_uploads": 0, "upload_sessions": 1,
    }  # fmt: skip
    assert all(r.target is not None and r.target == r.source for r in results)


async def test_running_again_copies_nothing_and_changes_nothing(
    source: Catalog, target: Catalog
) -> None:
    await _copy(source, target)
    before = await _rows(target)

    _plan, results = await _copy(source, target)

    assert {r.table: r.copied for r in results} == dict.fromkeys(before, 0)
    assert {r.table: r.present for r in results} == {t: len(r) for t, r in before.items()}
    assert all(r.verified and not r.conflicts.count for r in results)
    assert await _rows(target) == before


async def test_a_copy_cut_midway_completes_when_run_again(source: Catalog, target: Catalog) -> None:
    class Cut(Exception):
        pass

    def cut(table: str, done: int, total: int) -> None:
        if table == "photos" and done >= 10:
            raise Cut

    with pytest.raises(Cut):
        await _copy(source, target, batch_rows=5, progress=cut)
    partial = await _rows(target)
    assert len(partial["photos"]) == 10  # whole batches only: each is one transaction

    _plan, results = await _copy(source, target, batch_rows=5)

    assert all(r.verified for r in results)
    assert _by_table(results)["photos"].present == 10
    assert _by_table(results)["photos"].copied == PHOTOS - 10
    assert await _rows(target) == await _rows(source)


async def test_the_copy_reads_one_snapshot_and_says_when_the_source_moved_on(
    source: Catalog, target: Catalog
) -> None:
    assert isinstance(source, SqliteCatalog)
    late = make_photo(id="ffffffff-ffff-ffff-ffff-ffffffffffff")  # sorts after every id

    def write_meanwhile(table: str, done: int, total: int) -> None:
        # A role still running: a photo lands past the batches read so far.
        if table == "photos" and done == 5:
            conn = sqlite3.connect(source.path, isolation_level=None)
            conn.execute(
                "INSERT INTO photos (id, client_id, blob_key, content_type, bytes, status, "
                "job_id, trace_id, uploaded_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    late.id,
                    "c1",
                    late.blob_key,
                    "image/jpeg",
                    1,
                    "queued",
                    late.job_id,
                    "t",
                    "x",
                    "x",
                ),
            )
            conn.close()

    plan, results = await _copy(source, target, batch_rows=5, progress=write_meanwhile)

    photos = _by_table(results)["photos"]
    assert photos.source.rows == PHOTOS and photos.copied == PHOTOS and photos.verified
    assert await target.get_photo(late.id) is None
    assert await catalog_copy.source_changes(source, plan, results) == ["photos"]


async def test_a_target_row_that_differs_is_reported_and_kept_unless_overwriting(
    source: Catalog, target: Catalog
) -> None:
    await _copy(source, target)
    await target._execute("UPDATE clients SET name = 'mallory' WHERE id = 'c2'")
    tampered = await _rows(target)

    _plan, results = await _copy(source, target)

    clients = _by_table(results)["clients"]
    assert clients.conflicts.count == 1
    assert clients.conflicts.examples == [(("c2",), ["name"])]
    assert clients.replaced == 0 and clients.verified  # the target holds what was left
    assert await _rows(target) == tampered

    _plan, results = await _copy(source, target, overwrite=True)

    assert _by_table(results)["clients"].replaced == 1
    assert await _rows(target) == await _rows(source)


async def test_a_dry_run_counts_without_writing(source: Catalog, target: Catalog) -> None:
    await _copy(source, target)
    await target._execute("DELETE FROM tokens WHERE token_hash = ?", ("a" * 64,))
    await target._execute("UPDATE clients SET is_admin = 0 WHERE id = 'c1'")
    before = await _rows(target)
    plan = await catalog_copy.inspect(source, target)

    results = _by_table(await catalog_copy.copy(plan, source, target, write=False))

    assert results["tokens"].copied == 1 and results["tokens"].present == 1
    assert results["clients"].conflicts.examples == [(("c1",), ["is_admin"])]
    assert await _rows(target) == before


async def test_verifying_reads_the_target_back(source: Catalog, target: Catalog) -> None:
    plan, results = await _copy(source, target)
    assert all(r.verified for r in results)
    # Changed behind the copy's back, after it wrote: the read-back must see it.
    await target._execute(
        "UPDATE photos SET bytes = bytes + 1 WHERE id IN (SELECT MIN(id) FROM photos)"
    )

    await catalog_copy.verify(target, plan, results)

    assert [r.table for r in results if not r.verified] == ["photos"]


async def test_a_target_holding_rows_the_source_lacks_is_refused_unless_allowed(
    source: Catalog, target: Catalog
) -> None:
    await target.create_schema()
    await target.create_client("c9", "someone-else", is_admin=False)
    before = await _rows(target)

    plan = await catalog_copy.inspect(source, target)

    assert plan.refusals == [
        "the target holds 1 rows the source lacks (clients 1): it is not a copy of this "
        "catalog, or roles already wrote to it (--allow-extra keeps them)"
    ]
    assert await _rows(target) == before

    _plan, results = await _copy(source, target, allow_extra=True)

    clients = _by_table(results)["clients"]
    assert clients.extra == 1 and clients.copied == 2 and clients.verified
    assert await target.get_client("c9") is not None


async def test_a_target_whose_tables_differ_at_the_same_version_is_refused(
    source: Catalog, target: Catalog
) -> None:
    # Both at this release's schema, yet a table of the target has another column (by
    # hand, or a fork's migration): rows cannot be compared, nor copied without loss.
    await target.create_schema()
    await target._execute("ALTER TABLE clients ADD COLUMN nickname TEXT")

    plan = await catalog_copy.inspect(source, target)

    assert len(plan.refusals) == 1 and plan.refusals[0].startswith("table clients differs")
    assert plan.tables == []


@pytest.mark.parametrize("side", ["source", "target"])
async def test_a_catalog_with_a_newer_schema_is_refused(
    side: str, source: Catalog, target: Catalog
) -> None:
    await target.create_schema()
    newer = source if side == "source" else target
    await newer._execute(
        "INSERT INTO schema_version (version, summary, applied_at) VALUES (?, ?, ?)",
        (migrations.LATEST + 1, "from the future", "2030-01-01T00:00:00.000Z"),
    )

    plan = await catalog_copy.inspect(source, target)

    assert plan.refusals == [
        f"the {side} catalog's schema is version {migrations.LATEST + 1}, newer than this "
        f"release knows ({migrations.LATEST}): run the copy with a release at least as new"
    ]
