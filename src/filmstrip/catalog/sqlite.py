"""The SQLite catalog driver (aiosqlite, WAL), safe for several processes on one machine."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from filmstrip.catalog.base import Catalog, Row, Snapshot, Transaction, format_time, settle
from filmstrip.catalog.write_lock import WriteLock
from filmstrip.errors import TemporaryError

T = TypeVar("T")


def _machine_now() -> str:
    # One machine holds the file and every process using it: its clock is the database's.
    return format_time(datetime.now(UTC))


class _SqliteTransaction(Transaction):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._now: str | None = None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        cursor = self._conn.execute(sql, tuple(params))
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def fetchall(self, sql: str, params: Sequence[Any] = (), *, lock: bool = False) -> list[Row]:
        # ``lock`` needs nothing: BEGIN IMMEDIATE holds the whole database for writing.
        cursor = self._conn.execute(sql, tuple(params))
        try:
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def now(self) -> str:
        if self._now is None:
            self._now = _machine_now()
        return self._now

    def columns(self, table: str) -> set[str]:
        return {row[1] for row in self.fetchall(f"PRAGMA table_info({table})")}

    def tables(self) -> set[str]:
        rows = self.fetchall(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
        )
        return {str(r[0]) for r in rows}

    def primary_key(self, table: str) -> list[str]:
        # table_info's ``pk`` is the column's place in the key (1, 2, ...), 0 outside it.
        info = self.fetchall(f"PRAGMA table_info({table})")
        return [str(r[1]) for r in sorted((r for r in info if r[5]), key=lambda r: r[5])]

    def references(self, table: str) -> set[str]:
        return {str(r[2]) for r in self.fetchall(f"PRAGMA foreign_key_list({table})")}

    def lock_schema(self) -> None:
        pass  # BEGIN IMMEDIATE: no other writer runs until this transaction ends


def _in_transaction(
    conn: sqlite3.Connection, lock: WriteLock | None, work: Callable[[Transaction], T]
) -> T:
    """``work`` between ``BEGIN IMMEDIATE`` and ``COMMIT``, on the connection's thread,
    holding ``lock`` from just before to just after."""
    if lock is not None:
        lock.acquire()
    try:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise TemporaryError(f"catalog busy: {exc}", code="catalog_unavailable") from exc
        try:
            result = work(_SqliteTransaction(conn))
            conn.execute("COMMIT")
        except BaseException:
            # Some errors (a full disk, an I/O error) have rolled it back already.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return result
    finally:
        if lock is not None:
            lock.release()


class SqliteCatalog(Catalog):
    """Two connections per process: each write transaction runs whole on the writer's
    thread, so SQLite's write lock (``BEGIN IMMEDIATE`` + ``busy_timeout`` across
    processes) is held only while its statements run, not while the event loop gets back
    to it, which on a busy process took several turns of a few ms each; writers of all
    processes queue for it on a :class:`WriteLock`. Plain reads go through the other
    connection, which WAL lets run beside a writer."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._write_lock = WriteLock(path + "-writelock") if path != ":memory:" else None

    async def connect(self, *, migrate: bool = True) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves.
        self._conn = await aiosqlite.connect(self.path, isolation_level=None)
        await self._conn.execute("PRAGMA journal_mode=WAL")
        await self._conn.execute("PRAGMA synchronous=NORMAL")
        await self._conn.execute("PRAGMA busy_timeout=10000")
        await self._conn.execute("PRAGMA foreign_keys=ON")
        try:
            if migrate:
                await self.create_schema()
            self._reader = await aiosqlite.connect(self.path, isolation_level=None)
            await self._reader.execute("PRAGMA busy_timeout=10000")
            await self._reader.execute("PRAGMA query_only=ON")
        except BaseException:
            await self.close()  # its threads would keep the process from exiting
            raise

    async def close(self) -> None:
        if self._reader is not None:
            await self._reader.close()
            self._reader = None
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
        if self._write_lock is not None:
            self._write_lock.close()

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Snapshot]:
        snap = _SqliteSnapshot(self.path)
        await snap.begin()
        try:
            yield snap
        finally:
            await snap.end()

    async def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        # Outside a transaction a read needs no write lock: each statement on the reader
        # connection sees everything committed before it started.
        if self._reader is None:
            raise TemporaryError("catalog is not connected", code="catalog_unavailable")
        try:
            async with self._reader.execute(sql, tuple(params)) as cursor:
                return list(await cursor.fetchall())
        except aiosqlite.OperationalError as exc:
            raise TemporaryError(f"catalog read failed: {exc}", code="catalog_unavailable") from exc

    async def _now(self) -> str:
        return _machine_now()

    async def run_transaction(self, work: Callable[[Transaction], T]) -> T:
        if self._conn is None:
            raise TemporaryError("catalog is not connected", code="catalog_unavailable")
        conn, lock = self._conn, self._write_lock
        # aiosqlite runs the calls queued on a connection one at a time on its thread, so
        # transactions never interleave. ``_execute`` is how its own methods queue theirs;
        # it has no public way to run a function there (every catalog test fails without it).
        done: asyncio.Future[T] = asyncio.ensure_future(
            conn._execute(lambda: _in_transaction(conn._conn, lock, work))  # type: ignore[no-untyped-call]
        )
        return await settle(done)


class _SqliteSnapshot(Snapshot):
    """A read transaction on a connection of its own, on a thread of its own: in WAL mode
    it keeps seeing the database as of its first read while other connections commit."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="filmstrip-snapshot")
        self._conn: sqlite3.Connection | None = None

    async def _call(self, fn: Callable[[], T]) -> T:
        try:
            return await settle(asyncio.get_running_loop().run_in_executor(self._thread, fn))
        except sqlite3.OperationalError as exc:
            raise TemporaryError(f"catalog read failed: {exc}", code="catalog_unavailable") from exc

    async def begin(self) -> None:
        def opened() -> sqlite3.Connection:
            conn = sqlite3.connect(self.path, isolation_level=None)
            conn.execute("PRAGMA busy_timeout=10000")
            conn.execute("PRAGMA query_only=ON")
            conn.execute("BEGIN")
            # The snapshot is taken at the first read, so take it now.
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchall()
            return conn

        self._conn = await self._call(opened)

    async def run(self, work: Callable[[Transaction], T]) -> T:
        conn = self._conn
        if conn is None:
            raise TemporaryError("the snapshot has ended", code="catalog_unavailable")
        return await self._call(lambda: work(_SqliteTransaction(conn)))

    async def end(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await self._call(conn.close)  # closing ends the read transaction
        self._thread.shutdown(wait=False)
