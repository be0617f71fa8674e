"""The catalog on every backend: atomic row + outbox, ownership scoping, keyset listing,
tokens, follow-ups, whole transactions, locked read-then-write, and the one clock that
decides repairs."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import datetime, timedelta, tzinfo

import orjson
import pytest

from filmstrip.catalog import (
    Catalog,
    DerivativeRecord,
    DuplicatePhoto,
    OutboxEntry,
    PhotoRecord,
    PhotoStatus,
    QuotaExceeded,
)
from filmstrip.catalog import base as catalog_base
from filmstrip.catalog.base import Transaction, taken_sort_key
from tests.catalog.conftest import Backend, make_photo


async def test_row_and_outbox_are_atomic(catalog: Catalog) -> None:
    photo = make_photo()
    entry = OutboxEntry(job_id=photo.job_id, photo_id=photo.id, payload="{}", priority=5)
    await catalog.insert_photo(photo, entry)
    assert [e.job_id for e in await catalog.outbox_pending(older_than_s=0)] == [photo.job_id]
    # A second insert of the same id fails as a whole: no second outbox entry appears.
    with pytest.raises(Exception):  # noqa: B017 - the driver's IntegrityError
        await catalog.insert_photo(photo, entry)
    assert len(await catalog.outbox_pending(older_than_s=0)) == 1
    await catalog.outbox_done(photo.job_id)
    assert await catalog.outbox_pending(older_than_s=0) == []


async def test_an_insert_forgets_the_relayed_entries_only_if_it_commits(catalog: Catalog) -> None:
    def entry(photo: PhotoRecord) -> OutboxEntry:
        return OutboxEntry(job_id=photo.job_id, photo_id=photo.id, payload="{}", priority=5)

    queued = [make_photo(), make_photo()]
    for photo in queued:
        await catalog.insert_photo(photo, entry(photo))
    relayed = [p.job_id for p in queued]
    # Refused (a duplicate of the first's bytes): rolled back whole, the entries stay.
    twin = make_photo(sha256=queued[0].sha256)
    with pytest.raises(DuplicatePhoto):
        await catalog.insert_photo(twin, entry(twin), relayed=relayed)
    assert {e.job_id for e in await catalog.outbox_pending(older_than_s=0)} == set(relayed)
    latest = make_photo()
    await catalog.insert_photo(latest, entry(latest), relayed=[*relayed, "gone"])
    assert [e.job_id for e in await catalog.outbox_pending(older_than_s=0)] == [latest.job_id]
    await catalog.outbox_done(latest.job_id, "gone")
    assert await catalog.outbox_pending(older_than_s=0) == []


async def test_ownership_scoping(catalog: Catalog) -> None:
    photo = make_photo(client="alice")
    await catalog.insert_photo(photo, None)
    assert await catalog.get_photo(photo.id, "alice") is not None
    assert await catalog.get_photo(photo.id, "bob") is None
    assert await catalog.delete_photo(photo.id, "bob") is None
    assert await catalog.delete_photo(photo.id, "alice") is not None
    assert await catalog.get_photo(photo.id) is None


async def test_processing_lifecycle(catalog: Catalog) -> None:
    photo = make_photo()
    await catalog.insert_photo(photo, None)
    before = await catalog.mark_processing(photo.id)
    assert before is not None and before.status == PhotoStatus.QUEUED
    processing = await catalog.get_photo(photo.id)
    assert processing is not None and processing.status == PhotoStatus.PROCESSING
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
    # A redelivered job's start finds the photo completed and leaves it so.
    assert await catalog.mark_processing(photo.id) == done
    assert await catalog.get_photo(photo.id) == done
    # A deleted photo cannot be completed or failed (the worker discards its results).
    await catalog.delete_photo(photo.id, photo.client_id)
    assert not await catalog.complete_photo(photo.id, metadata={}, derivatives=[], taken_at=None)
    assert not await catalog.fail_photo(photo.id, error="x", category="DATA", code="x")


async def test_keyset_listing_is_stable_under_inserts(catalog: Catalog) -> None:
    for i in range(5):
        await catalog.insert_photo(make_photo(uploaded=f"2026-01-0{i + 1}T00:00:00.000Z"), None)
    page1 = await catalog.list_photos("c1", limit=2)
    await catalog.insert_photo(make_photo(uploaded="2026-02-01T00:00:00.000Z"), None)  # newer
    last = page1[-1]
    page2 = await catalog.list_photos("c1", limit=2, after=(last.uploaded_at, last.id))
    page3 = await catalog.list_photos("c1", limit=2, after=(page2[-1].uploaded_at, page2[-1].id))
    seen = [p.uploaded_at[:10] for p in page1 + page2 + page3]
    assert seen == ["2026-01-05", "2026-01-04", "2026-01-03", "2026-01-02", "2026-01-01"]


async def test_listing_by_date_taken_puts_undated_photos_last_newest_upload_first(
    catalog: Catalog,
) -> None:
    dated = [make_photo(), make_photo()]
    # Random ids: only their upload times order them.
    undated = [make_photo(uploaded=f"2026-01-0{day}T00:00:00.000Z") for day in range(1, 6)]
    for photo in (*dated, *undated):
        await catalog.insert_photo(photo, None)
    for photo, taken in zip(dated, ("2020-01-01T00:00:00Z", "2021-01-01T00:00:00Z"), strict=True):
        await catalog.complete_photo(photo.id, metadata={}, derivatives=[], taken_at=taken)
    seen = await catalog.list_photos("c1", limit=1, sort="taken")
    while page := await catalog.list_photos(
        "c1", limit=2, sort="taken", after=(taken_sort_key(seen[-1]), seen[-1].id)
    ):
        seen += page
    expected = [dated[1], dated[0], *reversed(undated)]
    assert [p.id for p in seen] == [p.id for p in expected]


async def test_filenames_are_kept_and_searched_in_any_case_by_keyset(catalog: Catalog) -> None:
    names = ["ÉTÉ 1.jpg", "été 2.jpg", "Straße.jpg", "50%_off.jpg", None, "STRASSE.png"]
    for day, name in enumerate(names, start=1):
        photo = make_photo(uploaded=f"2026-01-0{day}T00:00:00.000Z", filename=name)
        await catalog.insert_photo(photo, None)
        stored = await catalog.get_photo(photo.id)
        assert stored is not None and stored.filename == name

    async def names_matching(text: str, sort: str = "uploaded") -> list[str | None]:
        found, after = [], None
        while page := await catalog.list_photos(
            "c1", limit=1, sort=sort, after=after, filename_contains=text
        ):
            found += page
            last = page[-1]
            after = (taken_sort_key(last) if sort == "taken" else last.uploaded_at, last.id)
        return [p.filename for p in found]

    # Case-folded alike in SQLite and PostgreSQL, beyond ASCII (ß folds to ss).
    assert await names_matching("été") == ["été 2.jpg", "ÉTÉ 1.jpg"]
    assert await names_matching("strasse") == ["STRASSE.png", "Straße.jpg"]
    assert await names_matching("%_") == ["50%_off.jpg"]
    # Undated under sort=taken: newest upload first, each once.
    assert await names_matching("été", sort="taken") == ["été 2.jpg", "ÉTÉ 1.jpg"]


async def test_tokens_are_looked_up_by_hash_and_revocable(catalog: Catalog) -> None:
    client = await catalog.create_client("c9", "nine", is_admin=False)
    await catalog.add_token("h1", client.id)
    assert (await catalog.client_for_token("h1")) == client
    assert await catalog.client_for_token("h2") is None
    assert await catalog.revoke_token("h1")
    assert await catalog.client_for_token("h1") is None


async def test_an_id_holding_a_nul_is_no_photo_or_session_on_either_backend(
    catalog: Catalog,
) -> None:
    # A bus client names ids of its own (any 1-128 characters): PostgreSQL cannot hold a
    # NUL in text and refused the query outright, where SQLite simply found no row.
    photo = make_photo(session_id="s1")
    await catalog.create_session("s1", "c1")
    await catalog.insert_photo(photo, None)
    assert await catalog.get_photo(photo.id + "\x00") is None
    assert await catalog.get_photo(photo.id + "\x00", "c1") is None
    assert await catalog.get_photo(photo.id, "c1\x00") is None
    assert await catalog.get_session("s1\x00") is None
    assert await catalog.get_session("s1\x00", "c1") is None
    assert await catalog.get_photo(photo.id, "c1") is not None


# What neither database can take as a key: PostgreSQL's text holds no NUL (it refuses the
# query), and neither driver can encode a lone surrogate (a file name that was not UTF-8,
# as os.listdir hands it over).
UNKEYABLE = ("x\x00", "\udcff")


async def test_a_batch_lookup_holding_unkeyable_values_answers_for_the_others(
    catalog: Catalog,
) -> None:
    # The orphan sweeps ask about ids read from the blob store's listing: one such name
    # must not stop every later round of the sweep.
    photo = make_photo()
    await catalog.insert_photo(photo, None)
    assert await catalog.photo_ids_present([*UNKEYABLE, photo.id]) == {photo.id}
    assert await catalog.photo_ids_present(list(UNKEYABLE)) == set()
    sha = photo.sha256 or ""
    assert await catalog.existing_sha256("c1", [*UNKEYABLE, sha]) == {sha: photo.id}
    assert await catalog.get_photo(UNKEYABLE[1]) is None
    assert await catalog.get_session(UNKEYABLE[1]) is None


async def test_sessions_list_their_photos(catalog: Catalog) -> None:
    session = await catalog.create_session("s1", "c1")
    assert await catalog.get_session("s1", "c1") == session
    assert await catalog.get_session("s1", "c2") is None
    photo = make_photo(session_id="s1")
    await catalog.insert_photo(photo, None)
    assert await catalog.session_photos("s1") == [(photo.id, PhotoStatus.QUEUED)]
    assert await catalog.existing_sha256("c1", [photo.sha256 or "", "f" * 64]) == {
        photo.sha256: photo.id
    }
    assert [pid async for pid in catalog.iter_all_photo_ids(batch=1)] == [photo.id]


async def test_concurrent_uploads_of_the_same_bytes_record_one_photo(catalog: Catalog) -> None:
    """Uploads of the same bytes racing past the api's duplicate check (two requests, two
    api hosts): one photo is recorded, each other insert names it and records nothing."""
    await catalog.create_client("c1", "one", is_admin=False)
    sha = "ab" * 32
    racing = [make_photo("c1", sha256=sha, bytes=10) for _ in range(5)]
    results = await asyncio.gather(
        *(catalog.insert_photo(p, None) for p in racing), return_exceptions=True
    )
    recorded = [p.id for p, r in zip(racing, results, strict=True) if r is None]
    assert len(recorded) == 1, results
    assert all(isinstance(r, DuplicatePhoto) for r in results if r is not None), results
    assert {r.photo_id for r in results if isinstance(r, DuplicatePhoto)} == set(recorded)
    assert await catalog.existing_sha256("c1", [sha]) == {sha: recorded[0]}
    assert await catalog.stored_bytes("c1") == 10  # the refused ones were not charged
    # Another client's photo of the same bytes is its own.
    await catalog.insert_photo(make_photo("c2", sha256=sha), None)


async def test_stored_bytes_follow_inserts_and_deletes_and_the_quota_holds(
    catalog: Catalog,
) -> None:
    await catalog.create_client("c1", "one", is_admin=False)
    first, second = make_photo("c1", bytes=600), make_photo("c1", bytes=300)
    await catalog.insert_photo(first, None, quota_bytes=1000)
    await catalog.insert_photo(second, None, quota_bytes=1000)
    assert await catalog.stored_bytes("c1") == 900
    over = make_photo("c1", bytes=101)
    with pytest.raises(QuotaExceeded):
        await catalog.insert_photo(over, None, quota_bytes=1000)
    assert await catalog.get_photo(over.id) is None  # nothing recorded
    assert await catalog.stored_bytes("c1") == 900
    await catalog.delete_photo(first.id, "c1")
    assert await catalog.stored_bytes("c1") == 300
    await catalog.insert_photo(over, None, quota_bytes=1000)  # room again: 401
    # Concurrent inserts each under the quota alone: together only as many as fit.
    racing = [make_photo("c1", bytes=199) for _ in range(6)]
    results = await asyncio.gather(
        *(catalog.insert_photo(p, None, quota_bytes=1000) for p in racing),
        return_exceptions=True,
    )
    assert all(r is None or isinstance(r, QuotaExceeded) for r in results), results
    assert sum(r is None for r in results) == 3
    assert await catalog.stored_bytes("c1") == 401 + 3 * 199


async def test_two_catalogs_share_the_database(backend: Backend) -> None:
    a, b = backend.catalog(), backend.catalog()
    await a.connect()
    await b.connect()
    try:
        photo = make_photo()
        await a.insert_photo(photo, None)
        assert await b.get_photo(photo.id) is not None
    finally:
        await a.close()
        await b.close()


async def _awaiting(catalog: Catalog) -> set[str]:
    return {p.id for p in await catalog.awaiting_follow_up(older_than_s=0)}


async def test_photos_awaiting_their_follow_up_are_tracked_until_it_reports(
    catalog: Catalog,
) -> None:
    owing, done_before, plain = make_photo(), make_photo(), make_photo()
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
    await catalog.requeue_photo(owing.id)
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


async def test_a_derivative_made_again_keeps_its_place(catalog: Catalog) -> None:
    photo = make_photo()
    await catalog.insert_photo(photo, None)

    def made(*names: str, size: int = 1) -> list[DerivativeRecord]:
        return [
            DerivativeRecord(
                name=n, key=f"derivatives/{photo.id}/{n}", content_type="image/webp",
                width=size, height=size, bytes=size,
            )
            for n in names
        ]  # fmt: skip

    await catalog.complete_photo(
        photo.id, metadata={}, derivatives=made("preview", "thumbnail"), taken_at=None
    )
    await catalog.add_deferred_results(
        photo.id, metadata={}, derivatives=made("optimized"), replaces={"optimized"}
    )
    # The thumbnails stage made again (its remake ending after the optimization's).
    merged = await catalog.add_deferred_results(
        photo.id, metadata={}, derivatives=made("thumbnail", "preview", size=2),
        replaces={"preview", "thumbnail"},
    )  # fmt: skip
    assert merged is not None
    assert [(d.name, d.bytes) for d in merged] == [
        ("preview", 2),
        ("thumbnail", 2),
        ("optimized", 1),
    ]
    # A stage that now keeps nothing drops its old copy; a new name goes last.
    merged = await catalog.add_deferred_results(
        photo.id, metadata={}, derivatives=made("ocr"), replaces={"optimized", "ocr"}
    )
    assert merged is not None
    assert [d.name for d in merged] == ["preview", "thumbnail", "ocr"]
    stored = await catalog.get_photo(photo.id)
    assert stored is not None and stored.derivatives == merged


async def test_a_cancelled_caller_waits_for_its_transaction_to_end(catalog: Catalog) -> None:
    photo = make_photo()
    began, ended = threading.Event(), threading.Event()

    def slow_insert(tx: Transaction) -> None:
        began.set()
        time.sleep(0.3)
        tx.execute(
            "INSERT INTO clients (id, name, is_admin, created_at) VALUES (?, ?, 0, ?)",
            (photo.id, "slow", "2026-01-01T00:00:00.000Z"),
        )
        ended.set()

    task = asyncio.create_task(catalog.run_transaction(slow_insert))
    # Cancelled once its transaction runs (a fixed 50 ms could end before it began, on a
    # loaded machine: a cancel before the start is another case).
    assert await asyncio.to_thread(began.wait, 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ended.is_set()  # it was let finish, not abandoned
    client = await catalog.get_client(photo.id)  # and it committed
    assert client is not None and client.name == "slow"
    assert await catalog.mark_processing("nobody") is None  # the connection still works


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


async def test_a_read_that_decides_a_write_waits_for_a_writer_of_the_same_row(
    backend: Backend, catalog: Catalog
) -> None:
    """Two deferred stages report at once (two workers, maybe two hosts): each merges its
    result into the row it read, so a read that did not wait for the other's write would
    write back a row without the other's result."""
    photo = make_photo()
    await catalog.insert_photo(photo, None)
    await catalog.complete_photo(photo.id, metadata={"width": 1}, derivatives=[], taken_at=None)
    other = backend.catalog()
    await other.connect()
    written = threading.Event()

    def other_stage_reports(tx: Transaction) -> None:
        # Another process's merge, paused between its write and its commit.
        tx.execute(
            "UPDATE photos SET processing_metadata = ? WHERE id = ?",
            (orjson.dumps({"width": 1, "ocr": {"text": "hi"}}).decode(), photo.id),
        )
        written.set()
        time.sleep(0.5)

    try:
        first = asyncio.create_task(other.run_transaction(other_stage_reports))
        await asyncio.to_thread(written.wait, 10)
        await catalog.add_deferred_results(
            photo.id, metadata={"optimization": {"kept": False}}, derivatives=[], replaces=()
        )
        await first
    finally:
        await other.close()
    stored = await catalog.get_photo(photo.id)
    assert stored is not None and stored.processing_metadata == {
        "width": 1,
        "ocr": {"text": "hi"},
        "optimization": {"kept": False},
    }


class _SkewedClock(datetime):
    """``datetime`` on a host whose clock is ``skew`` off."""

    skew = timedelta(0)

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> _SkewedClock:
        moved = datetime.now(tz) + cls.skew
        return cls.fromtimestamp(moved.timestamp(), moved.tzinfo)


async def test_what_is_stuck_goes_by_the_catalogs_clock_not_the_callers(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The api host that recorded an upload runs an hour slow and the reconciler's host an
    hour fast: the photo and its outbox entry, seconds old, are not stuck."""
    monkeypatch.setattr(catalog_base, "datetime", _SkewedClock)
    _SkewedClock.skew = timedelta(hours=-1)
    photo = make_photo(uploaded=catalog_base.utcnow())
    entry = OutboxEntry(job_id=photo.job_id, photo_id=photo.id, payload="{}", priority=5)
    await catalog.insert_photo(photo, entry)
    await catalog.create_client("c1", "one", is_admin=False)
    _SkewedClock.skew = timedelta(hours=1)
    assert await catalog.photos_in_status(PhotoStatus.QUEUED, older_than_s=600) == []
    assert await catalog.outbox_pending(older_than_s=600) == []
    await catalog.complete_photo(
        photo.id, metadata={}, derivatives=[], taken_at=None, owed=["optimization"]
    )
    assert await catalog.awaiting_follow_up(older_than_s=600) == []
    assert abs(await catalog.now_s() - time.time()) < 60
    # Times read from the catalog's clock, not the callers': a client's creation too.
    client = await catalog.get_client("c1")
    assert client is not None
    assert abs(datetime.fromisoformat(client.created_at).timestamp() - time.time()) < 60
    # And a photo that truly sat still is found, by that same clock.
    assert [p.id for p in await catalog.awaiting_follow_up(older_than_s=0)] == [photo.id]


async def test_deleting_a_photo_drops_its_pending_outbox_entry(catalog: Catalog) -> None:
    # Left behind, the relay would queue a job for a photo that is gone.
    photo = make_photo()
    entry = OutboxEntry(job_id=photo.job_id, photo_id=photo.id, payload="{}", priority=5)
    await catalog.insert_photo(photo, entry)
    assert await catalog.delete_photo(photo.id, photo.client_id) is not None
    assert await catalog.outbox_pending(older_than_s=0) == []


async def test_a_snapshot_keeps_seeing_the_catalog_as_it_began(catalog: Catalog) -> None:
    await catalog.create_client("a", "alice", is_admin=False)
    query = "SELECT id FROM clients ORDER BY id"
    async with catalog.snapshot() as snap:
        assert [r[0] for r in await snap.run(lambda tx: tx.fetchall(query))] == ["a"]
        await catalog.create_client("b", "bob", is_admin=False)  # committed meanwhile
        assert [r[0] for r in await snap.run(lambda tx: tx.fetchall(query))] == ["a"]
        with pytest.raises(Exception):  # noqa: B017 - each driver's read-only error
            await snap.run(lambda tx: tx.execute("DELETE FROM clients"))
    assert [r[0] for r in await catalog._fetchall(query)] == ["a", "b"]


async def test_the_schema_describes_its_tables_keys_and_references(catalog: Catalog) -> None:
    def describe(tx: Transaction) -> tuple[set[str], dict[str, list[str]], dict[str, set[str]]]:
        tables = tx.tables()
        return (
            tables,
            {t: tx.primary_key(t) for t in tables},
            {t: tx.references(t) for t in tables},
        )

    tables, keys, references = await catalog.run_transaction(describe)

    expected = {"clients", "tokens", "upload_sessions", "photos", "outbox", "schema_version"}
    assert expected <= tables
    assert keys["tokens"] == ["token_hash"] and keys["photos"] == ["id"]
    assert keys["schema_version"] == ["version"]
    assert references["tokens"] == {"clients"} and references["photos"] == set()
