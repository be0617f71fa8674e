"""What only the PostgreSQL driver does: deadlocks run again, its dialect, its query plans,
its statements batched into few round trips, and connections that a server restart
killed while idle."""

from __future__ import annotations

import asyncio
import tempfile
import threading
from collections.abc import AsyncIterator, Awaitable, Callable

import psycopg
import pytest
from psycopg.pq import Trace

from filmstrip.catalog import DerivativeRecord, PhotoStatus
from filmstrip.catalog.base import Transaction
from filmstrip.catalog.postgres import PostgresCatalog
from filmstrip.errors import TemporaryError
from tests.catalog.conftest import make_photo
from tests.support import postgres


@pytest.fixture
async def catalog() -> AsyncIterator[PostgresCatalog]:
    reason = postgres.unreachable()
    if reason:
        pytest.skip(reason)
    cat = PostgresCatalog(postgres.create_database())
    await cat.connect()
    yield cat
    await cat.close()


async def test_a_deadlocked_transaction_is_run_again(catalog: PostgresCatalog) -> None:
    for client in ("a", "b"):
        await catalog.create_client(client, client, is_admin=False)
    both_hold_one = threading.Barrier(2, timeout=10)
    runs: list[str] = []

    def rename(first: str, second: str) -> Callable[[Transaction], None]:
        def work(tx: Transaction) -> None:
            runs.append(first)
            tx.execute("UPDATE clients SET name = name || ? WHERE id = ?", ("+", first))
            if runs.count(first) == 1:
                both_hold_one.wait()  # each holds its first row, then wants the other's
            tx.execute("UPDATE clients SET name = name || ? WHERE id = ?", ("+", second))

        return work

    await asyncio.gather(
        catalog.run_transaction(rename("a", "b")), catalog.run_transaction(rename("b", "a"))
    )
    # PostgreSQL broke the cycle by failing one; it ran again and both committed once.
    assert sorted(runs) in (["a", "a", "b"], ["a", "b", "b"])
    names = {c: (await catalog.get_client(c)) for c in ("a", "b")}
    assert {c: r.name if r else None for c, r in names.items()} == {"a": "a++", "b": "b++"}


async def test_a_literal_percent_sign_is_not_a_placeholder(catalog: PostgresCatalog) -> None:
    rows = await catalog._fetchall("SELECT ? || '%'", ("50",))
    assert rows == [("50%",)]


async def test_a_literal_percent_sign_in_a_transaction_is_not_a_placeholder(
    catalog: PostgresCatalog,
) -> None:
    await catalog.create_client("c1", "carol", is_admin=False)

    def work(tx: Transaction) -> list[object]:
        tx.write("UPDATE clients SET name = ? || '%' WHERE id = ?", ("50", "c1"))
        return [r[0] for r in tx.fetchall("SELECT name FROM clients WHERE id = ?", ("c1",))]

    assert await catalog.run_transaction(work) == ["50%"]


async def _round_trips(catalog: PostgresCatalog, call: Awaitable[object]) -> list[str]:
    """The queries ``call`` sent on the catalog's one pooled connection, a round trip each
    (libpq's trace of the wire: each simple-query message waits for its answer)."""
    with tempfile.TemporaryFile("w+") as trace:
        with catalog._pool.connection() as conn:
            conn.pgconn.trace(trace.fileno())
            conn.pgconn.set_trace_flags(Trace.SUPPRESS_TIMESTAMPS)
        try:
            await call
        finally:
            with catalog._pool.connection() as conn:
                conn.pgconn.untrace()
        trace.seek(0)
        return [line for line in trace if line.split("\t")[:3:2] == ["F", "Query"]]


async def test_a_job_s_catalog_writes_take_two_round_trips_each() -> None:
    # BEGIN and the clock ride with the locking read, the write with the COMMIT: the
    # worker's CPU per transaction halves (bench/catalog_writers.py).
    reason = postgres.unreachable()
    if reason:
        pytest.skip(reason)
    catalog = PostgresCatalog(postgres.create_database(), pool_size=1)
    await catalog.connect()
    try:
        photo = make_photo()
        upload = catalog.insert_photo(photo, None, quota_bytes=10**9)
        assert len(await _round_trips(catalog, upload)) == 3  # the clock, writes + checks, COMMIT
        sent = await _round_trips(catalog, catalog.mark_processing(photo.id))
        assert len(sent) == 2, sent
        thumb = DerivativeRecord(
            name="thumb", key=f"derivatives/{photo.id}/thumb.webp", content_type="image/webp",
            width=1, height=1, bytes=9,
        )  # fmt: skip
        done = catalog.complete_photo(
            photo.id, metadata={"a": 1}, derivatives=[thumb], taken_at=None
        )
        assert len(await _round_trips(catalog, done)) == 2
        more = catalog.add_deferred_results(
            photo.id, metadata={"b": 2}, derivatives=[], replaces=()
        )
        assert len(await _round_trips(catalog, more)) == 2
        stored = await catalog.get_photo(photo.id)
        assert stored is not None and stored.status == PhotoStatus.COMPLETED
        assert stored.processing_metadata == {"a": 1, "b": 2}
        assert [d.name for d in stored.derivatives] == ["thumb"]
    finally:
        await catalog.close()


async def test_a_held_write_that_fails_undoes_its_whole_transaction(
    catalog: PostgresCatalog,
) -> None:
    await catalog.create_client("c1", "carol", is_admin=False)

    def work(tx: Transaction) -> None:
        tx.execute("UPDATE clients SET name = ? WHERE id = ?", ("dave", "c1"))
        tx.write(
            "INSERT INTO clients (id, name, is_admin, created_at, stored_bytes) "
            "VALUES (?, ?, 0, ?, 0)",
            ("c1", "again", tx.now()),
        )

    # Sent with the COMMIT, it fails there: nothing of the transaction stays.
    with pytest.raises(psycopg.errors.UniqueViolation):
        await catalog.run_transaction(work)
    client = await catalog.get_client("c1")
    assert client is not None and client.name == "carol"
    await catalog.create_client("c2", "erin", is_admin=False)  # the connection serves on


async def test_the_search_for_lost_follow_ups_can_use_its_index(catalog: PostgresCatalog) -> None:
    def plan(tx: Transaction) -> list[str]:
        tx.execute("SET LOCAL enable_seqscan = off")  # a tiny table is cheaper to scan
        rows = tx.fetchall(
            "EXPLAIN SELECT id FROM photos WHERE follow_up IS NOT NULL "
            "AND updated_at <= ? AND status = ? ORDER BY updated_at LIMIT 5",
            ("9999", PhotoStatus.COMPLETED),
        )
        return [str(r[0]) for r in rows]

    details = " ".join(await catalog.run_transaction(plan))
    assert "photos_follow_up" in details and "Sort" not in details, details


async def test_a_catalog_that_does_not_wait_serves_after_its_one_attempt() -> None:
    # A command's catalog (wait=False) opens its pool without waiting for it to fill.
    reason = postgres.unreachable()
    if reason:
        pytest.skip(reason)
    catalog = PostgresCatalog(postgres.create_database(), wait=False)
    await catalog.connect()
    try:
        await catalog.create_client("c1", "carol", is_admin=False)
        client = await catalog.find_client_by_name("carol")
        assert client is not None and client.id == "c1"
    finally:
        await catalog.close()


async def test_connections_a_restart_killed_are_replaced_unseen(
    private_postgres: postgres.PrivatePostgres,
) -> None:
    catalog = PostgresCatalog(postgres.create_database(private_postgres.url), pool_size=3)
    await catalog.connect()
    try:
        # Every pooled connection in use at once, so the pool holds three; all die idle.
        await asyncio.gather(*(catalog.run_transaction(_hold) for _ in range(3)))
        private_postgres.stop()
        private_postgres.start()
        photo = make_photo()
        await catalog.insert_photo(photo, None)  # a write: dead ones fail at BEGIN
        await asyncio.gather(*(catalog.run_transaction(_hold) for _ in range(3)))
        private_postgres.stop()
        private_postgres.start()
        assert await catalog.get_photo(photo.id) is not None  # a read
    finally:
        await catalog.close()


async def test_a_server_down_is_catalog_unavailable_until_it_returns(
    private_postgres: postgres.PrivatePostgres,
) -> None:
    catalog = PostgresCatalog(postgres.create_database(private_postgres.url), pool_size=2)
    await catalog.connect()
    try:
        photo = make_photo()
        private_postgres.stop()
        for call in (catalog.insert_photo(photo, None), catalog.get_photo(photo.id)):
            with pytest.raises(TemporaryError) as down:
                await asyncio.wait_for(call, 15)
            assert down.value.code == "catalog_unavailable"
        private_postgres.start()
        await asyncio.wait_for(catalog.insert_photo(photo, None), 15)
        assert await catalog.get_photo(photo.id) is not None
    finally:
        private_postgres.start()  # for the next test, if this one failed with it down
        await catalog.close()


def _hold(tx: Transaction) -> None:
    tx.execute("SELECT pg_sleep(0.1)")
