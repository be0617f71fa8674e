"""The SQLite catalog driver (aiosqlite, WAL), safe for several processes on one machine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from filmstrip.catalog.base import Catalog, Row, Transaction
from filmstrip.errors import TemporaryError


class _SqliteTransaction(Transaction):
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        cursor = await self._conn.execute(sql, tuple(params))
        count = cursor.rowcount
        await cursor.close()
        return int(count)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        async with self._conn.execute(sql, tuple(params)) as cursor:
            return list(await cursor.fetchall())


class SqliteCatalog(Catalog):
    """Two connections per process: writes go through one, in transactions serialised by a
    lock here and by SQLite's own locking (``BEGIN IMMEDIATE`` + ``busy_timeout``) across
    processes; plain reads go through the other, which WAL lets run beside a writer."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def connect(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves.
        self._conn = await aiosqlite.connect(self.path, isolation_level=None)
        await self._conn.execute("PRAGMA journal_mode=WAL")
        await self._conn.execute("PRAGMA synchronous=NORMAL")
        await self._conn.execute("PRAGMA busy_timeout=10000")
        await self._conn.execute("PRAGMA foreign_keys=ON")
        await self.create_schema()
        self._reader = await aiosqlite.connect(self.path, isolation_level=None)
        await self._reader.execute("PRAGMA busy_timeout=10000")
        await self._reader.execute("PRAGMA query_only=ON")

    async def close(self) -> None:
        if self._reader is not None:
            await self._reader.close()
            self._reader = None
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

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

    async def _columns(self, tx: Transaction, table: str) -> set[str]:
        return {row[1] for row in await tx.fetchall(f"PRAGMA table_info({table})")}

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        if self._conn is None:
            raise TemporaryError("catalog is not connected", code="catalog_unavailable")
        conn = self._conn
        async with self._lock:
            try:
                await conn.execute("BEGIN IMMEDIATE")
            except aiosqlite.OperationalError as exc:
                raise TemporaryError(f"catalog busy: {exc}", code="catalog_unavailable") from exc
            try:
                yield _SqliteTransaction(conn)
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
            else:
                await conn.execute("COMMIT")
