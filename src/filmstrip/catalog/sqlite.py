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
    """One connection per process; a lock serialises this process's transactions and
    SQLite's own locking (``BEGIN IMMEDIATE`` + ``busy_timeout``) serialises processes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: aiosqlite.Connection | None = None
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

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

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
