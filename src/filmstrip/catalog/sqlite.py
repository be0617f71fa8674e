"""The SQLite catalog driver (aiosqlite, WAL), safe for several processes on one machine."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from filmstrip.catalog.base import Catalog, Row, Snapshot, Transaction, format_time, settle
from filmstrip.catalog.write_lock import WriteLock
from filmstrip.compat.aiosqlite import connect, run_on_thread
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


class _Connection:
    """An aiosqlite connection: the calls made on it run one at a time, in order, on the
    thread that owns its sqlite3 connection."""

    def __init__(self) -> None:
        self.conn: aiosqlite.Connection | None = None

    def run(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """``fn(connection)`` on the connection's thread, after every call made before it."""
        if self.conn is None:
            raise TemporaryError("catalog is not connected", code="catalog_unavailable")
        return run_on_thread(self.conn, fn)

    async def open(self, path: str, *pragmas: str) -> None:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves.
        self.conn = await connect(path, isolation_level=None)
        for pragma in pragmas:
            await _pragma(self.conn, pragma)

    async def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            await conn.close()


@contextlib.contextmanager
def _reading() -> Iterator[None]:
    try:
        yield
    except sqlite3.OperationalError as exc:
        raise TemporaryError(f"catalog read failed: {exc}", code="catalog_unavailable") from exc


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


async def _pragma(conn: aiosqlite.Connection, pragma: str, *, within_s: float = 10.0) -> None:
    """``PRAGMA pragma``, tried again while the database is locked. Processes opening a new
    catalog at once (``filmstrip dev`` starts three) each switch it to WAL, which needs
    the database alone; SQLite answers such a clash at once rather than through the busy
    timeout (it would deadlock), so a moment later is the only wait there is."""
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        try:
            await conn.execute(f"PRAGMA {pragma}")
            return
        except sqlite3.OperationalError as exc:
            busy = getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY
            if not busy or asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.05)


class SqliteCatalog(Catalog):
    """Two connections per process: each write transaction runs whole on the writer's
    thread, so SQLite's write lock (``BEGIN IMMEDIATE`` + ``busy_timeout`` across
    processes) is held only while its statements run, not while the event loop gets back
    to it, which on a busy process took several turns of a few ms each; writers of all
    processes queue for it on a :class:`WriteLock`. Plain reads go through the other
    connection, which WAL lets run beside a writer."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn = _Connection()
        self._reader = _Connection()
        self._write_lock = WriteLock(path + "-writelock") if path != ":memory:" else None

    async def connect(self, *, migrate: bool = True) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            pragmas = ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=10000")
            await self._conn.open(self.path, *pragmas, "foreign_keys=ON")
            if migrate:
                await self.create_schema()
            await self._reader.open(self.path, "busy_timeout=10000", "query_only=ON")
        except BaseException:
            await self.close()  # its threads would keep the process from exiting
            raise

    async def close(self) -> None:
        await self._reader.close()
        await self._conn.close()
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
        with _reading():
            return await self._reader.run(
                lambda conn: _SqliteTransaction(conn).fetchall(sql, params)
            )

    async def _now(self) -> str:
        return _machine_now()

    async def run_transaction(self, work: Callable[[Transaction], T]) -> T:
        # The writer's thread runs one call at a time, so transactions never interleave.
        lock = self._write_lock
        return await settle(self._conn.run(lambda conn: _in_transaction(conn, lock, work)))


class _SqliteSnapshot(Snapshot):
    """A read transaction on a connection of its own, on a thread of its own: in WAL mode
    it keeps seeing the database as of its first read while other connections commit."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn = _Connection()

    async def begin(self) -> None:
        with _reading():
            await self._conn.open(self.path, "busy_timeout=10000", "query_only=ON")
        await self.run(_begin_reading)

    async def run(self, work: Callable[[Transaction], T]) -> T:
        if self._conn.conn is None:
            raise TemporaryError("the snapshot has ended", code="catalog_unavailable")
        with _reading():
            return await settle(self._conn.run(lambda conn: work(_SqliteTransaction(conn))))

    async def end(self) -> None:
        await self._conn.close()  # closing ends the read transaction


def _begin_reading(tx: Transaction) -> None:
    tx.execute("BEGIN")
    # The snapshot is taken at the first read, so take it now.
    tx.fetchall("SELECT COUNT(*) FROM sqlite_master")
