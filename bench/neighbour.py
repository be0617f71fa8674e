"""The aside CPUs' share of a run, replayed without the system under test.

During a run the aside CPUs are busy: the S3 server takes each original and gives it back,
stores the derivatives, PostgreSQL commits the catalog's transactions, the clients send the
uploads. The CPUs share a cache and memory bandwidth, so that neighbour slows the measured
CPU; a bare pipeline measured beside an idle neighbour is held to a machine the system
never had. ``Neighbour`` makes the same S3 requests (each original put and read back, as many
derivative bytes in as many puts as the run stored per photo) and as many transactions per
photo from the aside CPUs, keeping them as busy as the run did, while the bare pipeline
runs again.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator

import psycopg

from bench.procstat import cpu_shares, cpu_times

PREFIX = "neighbour/"
IN_FLIGHT = 4  # photos at once, as the run's clients had uploads in flight


async def commits(database_url: str) -> int:
    """Transactions committed in the catalog's database so far (PostgreSQL's statistics)."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        # Statistics are flushed at most once a second; a fresh snapshot reads them now.
        await conn.execute("SELECT pg_stat_force_next_flush()")
        cur = await conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        )
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def stored_shape(store_env: dict[str, str]) -> tuple[float, float]:
    """What the run stored per photo: (derivative bytes per byte of original, derivatives
    per original), read from the store's listing."""
    from filmstrip.blobs import open_blob_store
    from filmstrip.settings import load_settings

    blobs = await open_blob_store(load_settings(store_env))
    originals = derivatives = original_bytes = derivative_bytes = 0
    try:
        async for info in blobs.list(""):
            if info.key.startswith("originals/"):
                originals += 1
                original_bytes += info.size
            elif info.key.startswith("derivatives/"):
                derivatives += 1
                derivative_bytes += info.size
    finally:
        await blobs.close()
    return derivative_bytes / max(1, original_bytes), derivatives / max(1, originals)


class Neighbour:
    """Replays ``rate`` photos/s of infrastructure work (S3 requests on ``store_env``'s
    store, ``transactions`` per photo on ``database_url``) until the block it runs in ends."""

    def __init__(
        self,
        *,
        store_env: dict[str, str],
        database_url: str,
        photos: list[bytes],
        rate: float,
        transactions: float,
        shape: tuple[float, float],
        aside: list[int],
        busy: float | None,
    ) -> None:
        self.store_env = store_env
        self.database_url = database_url
        self.photos = photos
        self.rate = rate
        self.transactions = transactions
        self.derivative_ratio, self.derivatives = shape
        self.aside = aside
        self.busy = busy
        self.done = 0
        self.factors: list[float] = []  # the pace's factor, each second

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Neighbour]:
        from filmstrip.blobs import open_blob_store
        from filmstrip.settings import load_settings

        blobs = await open_blob_store(load_settings(self.store_env))
        conn = await psycopg.AsyncConnection.connect(self.database_url, autocommit=True)
        await conn.execute("CREATE TABLE IF NOT EXISTS bench_neighbour (id int PRIMARY KEY, n int)")
        await conn.execute(
            "INSERT INTO bench_neighbour VALUES (1, 0), (2, 0), (3, 0), (4, 0)"
            " ON CONFLICT DO NOTHING"
        )
        conns = [conn] + [
            await psycopg.AsyncConnection.connect(self.database_url, autocommit=True)
            for _ in range(IN_FLIGHT - 1)
        ]
        free: asyncio.Queue[psycopg.AsyncConnection[tuple[object, ...]]] = asyncio.Queue()
        for c in conns:
            free.put_nowait(c)
        owed = 0.0  # transactions carried over between photos (the rate is fractional)

        async def photo(i: int, data: bytes) -> None:
            nonlocal owed
            key = f"{PREFIX}{i % 64}"
            await blobs.put_bytes(f"{key}/original", data, content_type="image/jpeg")
            await blobs.get_bytes(f"{key}/original")
            count = max(1, round(self.derivatives))
            size = max(1, int(len(data) * self.derivative_ratio / count))
            for d in range(count):
                piece = data[d * size : (d + 1) * size] or data[:size]
                await blobs.put_bytes(f"{key}/{d}", piece, content_type="image/webp")
            owed += self.transactions
            count, owed = int(owed), owed - int(owed)
            c = await free.get()
            try:
                for _ in range(count):
                    async with c.transaction():
                        await c.execute(
                            "SELECT n FROM bench_neighbour WHERE id = %s FOR UPDATE", (i % 4 + 1,)
                        )
                        await c.execute(
                            "UPDATE bench_neighbour SET n = n + 1 WHERE id = %s", (i % 4 + 1,)
                        )
            finally:
                free.put_nowait(c)
            self.done += 1

        tasks: set[asyncio.Task[None]] = set()

        async def pace() -> None:
            # At the run's photo rate, then steered each second so that the aside CPUs are
            # as busy as they were during the run (``busy``): this client is not the run's
            # clients, and its own CPU per photo differs from theirs.
            slots = asyncio.Semaphore(IN_FLIGHT)
            factor = 1.0
            ticks, checked = cpu_times(self.aside), time.monotonic()
            for i, data in zip(itertools.count(), itertools.cycle(self.photos), strict=False):
                await asyncio.sleep(1 / (self.rate * factor))
                if self.busy is not None and time.monotonic() - checked >= 1.0:
                    now = cpu_times(self.aside)
                    share = cpu_shares(ticks, now)[0]
                    ticks, checked = now, time.monotonic()
                    factor *= min(2.0, max(0.5, (self.busy / max(share, 0.01)) ** 0.5))
                    factor = min(4.0, max(0.1, factor))
                    self.factors.append(factor)
                await slots.acquire()
                task = asyncio.create_task(photo(i, data))
                task.add_done_callback(lambda _t: slots.release())
                tasks.add(task)
                task.add_done_callback(tasks.discard)

        pacer = asyncio.create_task(pace())
        try:
            yield self
        finally:
            for task in [pacer, *tasks]:
                task.cancel()
            await asyncio.gather(pacer, *tasks, return_exceptions=True)
            for c in conns:
                await c.close()
            with contextlib.suppress(Exception):
                await blobs.delete_prefix(PREFIX)
            await blobs.close()
