"""Listing cost: keyset pages of ``GET /v1/photos`` at increasing depth, against OFFSET.

    python -m bench.listing_pages [--photos 20000] [--limit 50]

Two clients share a catalog of ``--photos`` each. For depths 0, ¼, ½ and the last page the
script times one page three ways (best of 9):

- ``keyset``: ``Catalog.list_photos`` with the cursor of that depth (what the api runs);
- ``offset``: the same query with ``LIMIT ? OFFSET ?`` instead of a cursor (the anchor:
  what most listing endpoints do, and what keyset paging is meant to beat at depth);
- ``raw``: the keyset query on a plain ``sqlite3`` connection in this thread (the floor:
  what aiosqlite, the transaction and row decoding add on top).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from filmstrip.catalog import open_catalog
from filmstrip.catalog.base import PHOTO_COLUMNS, Transaction
from filmstrip.settings import load_settings, sqlite_path


async def best(runs: int, fn: Callable[[], Awaitable[Any]]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - start)
    return min(times)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--photos", type=int, default=20_000)
    parser.add_argument("--limit", type=int, default=50)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings({"FILMSTRIP_DATA_DIR": tmp})
        catalog = await open_catalog(settings)
        start = datetime(2024, 1, 1, tzinfo=UTC)
        clients = ["client-a", "client-b"]

        def fill(tx: Transaction) -> None:
            for i in range(args.photos):
                for client in clients:
                    when = (start + timedelta(seconds=i)).isoformat(timespec="milliseconds")
                    pid = str(uuid.uuid4())
                    tx.execute(
                        f"INSERT INTO photos ({PHOTO_COLUMNS}) VALUES "
                        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (pid, client, None, f"originals/{pid}", "image/jpeg", 1000, None,
                         "completed", f"photo:{pid}", "t", when, when, when, "{}", "[]",
                         None, None, when, None, None, None, None),
                    )  # fmt: skip

        await catalog.run_transaction(fill)
        raw = sqlite3.connect(sqlite_path(settings.effective_database_url))
        limit = args.limit
        print(f"{args.photos} photos per client, pages of {limit}; best of 9, ms per page")
        print(f"{'depth':>8} {'keyset':>8} {'offset':>8} {'raw':>8}  offset/keyset  keyset/raw")
        for depth in (0, args.photos // 4, args.photos // 2, args.photos - limit):
            after = None
            if depth:
                rows = raw.execute(
                    "SELECT uploaded_at, id FROM photos WHERE client_id = ? "
                    "ORDER BY uploaded_at DESC, id DESC LIMIT 1 OFFSET ?",
                    ("client-a", depth - 1),
                ).fetchall()
                after = (rows[0][0], rows[0][1])

            async def keyset(after: tuple[str, str] | None = after) -> None:
                page = await catalog.list_photos("client-a", limit=limit + 1, after=after)
                assert page

            async def offset(depth: int = depth) -> None:
                rows = await catalog.read(
                    f"SELECT {PHOTO_COLUMNS} FROM photos WHERE client_id = ? "
                    "ORDER BY uploaded_at DESC, id DESC LIMIT ? OFFSET ?",
                    ("client-a", limit + 1, depth),
                )
                assert rows

            async def plain(after: tuple[str, str] | None = after) -> None:
                where, params = "client_id = ?", ["client-a"]
                if after:
                    where += " AND (uploaded_at, id) < (?, ?)"
                    params += [after[0], after[1]]
                rows = raw.execute(
                    f"SELECT {PHOTO_COLUMNS} FROM photos WHERE {where} "
                    "ORDER BY uploaded_at DESC, id DESC LIMIT ?",
                    (*params, limit + 1),
                ).fetchall()
                assert rows

            k, o, r = await best(9, keyset), await best(9, offset), await best(9, plain)
            print(
                f"{depth:>8} {k * 1000:>8.2f} {o * 1000:>8.2f} {r * 1000:>8.2f}"
                f"  {o / k:>12.1f}x  {k / r:>9.1f}x"
            )
        raw.close()
        await catalog.close()


if __name__ == "__main__":
    asyncio.run(main())
