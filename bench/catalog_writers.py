"""Catalog writes from several busy processes at once: the catalog's transactions, each
run whole on a thread, against the usual async drivers sending them a statement per await.

Starts ``--processes`` processes on one catalog (as the api and worker processes share
one), each with ``--tasks`` tasks that write, then keep their event loop busy for
``--busy-ms`` (the rest of a request's work), over and over. The implementations run in
turn, alternating round by round (this machine's speed drifts). Prints each transaction's
time (from asking to commit), the writes per second and the CPU each transaction cost the
writing processes (all their threads, the loop's other work left out), ours beside each
anchor as a ratio.

``--backend sqlite`` (the default): a photo's insert transaction (row + outbox entry) with
``Catalog.insert_photo``, and with the anchor, the usual aiosqlite way, which awaits
``BEGIN IMMEDIATE``, each statement and ``COMMIT`` in turn and so holds SQLite's write lock
while its event loop gets back to it between them (other processes meanwhile sleep in
SQLite's busy handler, 1, 2, 5, 10 ... 100 ms between tries).

``--backend postgresql``: a database of its own on ``--server`` (dropped after), each task
inserting a photo (row + outbox entry) and then completing it (``SELECT … FOR UPDATE`` of
its row, then ``UPDATE``), as upload and worker do. Ours: ``PostgresCatalog`` (psycopg 3,
a sync pool, the whole transaction on a thread); anchors, sending the same statements a
round trip per await: asyncpg's pool, and psycopg's ``AsyncConnectionPool``. asyncpg is no
dependency of Filmstrip's: when it is not importable, the bench installs it with pip into a
temporary folder for the run (as the BullMQ and Socket.IO anchors are installed with npm).

Usage: ``python -m bench.catalog_writers [--backend postgresql] [--processes 4] [--tasks 3]
[--seconds 6] [--busy-ms 10] [--rounds 2]``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import multiprocessing
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.stats import percentile
from filmstrip.catalog import OutboxEntry, PhotoRecord, PhotoStatus, utcnow
from filmstrip.catalog.base import insert_statements
from filmstrip.catalog.sqlite import SqliteCatalog

# The writer implementations of each backend; the first is ours, the others anchors.
WRITERS = {
    "sqlite": ("one call", "step by step"),
    "postgresql": ("ours", "asyncpg", "psycopg async"),
}
_NOW_SQL = "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
_LOCK_SQL = "SELECT processing_metadata, derivatives FROM photos WHERE id = ? FOR UPDATE"
_COMPLETE_SQL = (
    "UPDATE photos SET status = ?, processing_metadata = ?, derivatives = ?, taken_at = ?, "
    "processed_at = ?, processing_error = NULL, error_category = NULL, updated_at = ?, "
    "follow_up = ? WHERE id = ?"
)


def _photo() -> tuple[PhotoRecord, OutboxEntry]:
    pid = str(uuid.uuid4())
    photo = PhotoRecord(
        id=pid, client_id="bench", session_id=None, blob_key=f"originals/{pid}",
        content_type="image/jpeg", bytes=10, sha256=uuid.uuid4().hex * 2,
        status=PhotoStatus.QUEUED, job_id=f"photo:{pid}", trace_id="t" * 32,
        uploaded_at="2026-01-01T00:00:00.000Z",
    )  # fmt: skip
    return photo, OutboxEntry(job_id=photo.job_id, photo_id=pid, payload="{}", priority=5)


def _complete_params(photo_id: str, now: str) -> tuple[Any, ...]:
    return (PhotoStatus.COMPLETED, '{"width": 1}', "[]", None, now, now, None, photo_id)


def _dollars(sql: str) -> str:
    """``?`` placeholders as asyncpg's ``$1``, ``$2`` …"""
    count = iter(range(1, 1000))
    return re.sub(r"\?", lambda _: f"${next(count)}", sql)


def _percents(sql: str) -> str:
    return sql.replace("?", "%s")


# --- the writers: (insert, complete) coroutine functions, and how to close them ----------

Ops = tuple[
    Callable[[PhotoRecord, OutboxEntry], Awaitable[None]],
    Callable[[str], Awaitable[None]] | None,
    Callable[[], Awaitable[None]],
]


async def _sqlite_writer(db: str, ours: bool) -> Ops:
    if ours:
        catalog = SqliteCatalog(db)
        await catalog.connect()
        return catalog.insert_photo, None, catalog.close
    import aiosqlite

    # A writer connection set up as the catalog sets up its own.
    conn = await aiosqlite.connect(db, isolation_level=None)
    for pragma in (
        "journal_mode=WAL",
        "synchronous=NORMAL",
        "busy_timeout=10000",
        "foreign_keys=ON",
    ):
        await conn.execute(f"PRAGMA {pragma}")
    lock = asyncio.Lock()

    async def step_by_step(photo: PhotoRecord, outbox: OutboxEntry) -> None:
        """The anchor: the same transaction as ``insert_photo``, a turn of the loop per step."""
        async with lock:  # one transaction at a time on the process's writer connection
            await conn.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in insert_statements(photo, outbox, utcnow()):
                    await conn.execute(sql, params)
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
            await conn.execute("COMMIT")

    return step_by_step, None, conn.close


async def _postgres_writer(url: str, kind: str, pool_size: int) -> Ops:
    if kind == "ours":
        from filmstrip.catalog.postgres import PostgresCatalog

        catalog = PostgresCatalog(url, pool_size=pool_size)
        await catalog.connect()

        async def complete(photo_id: str) -> None:
            await catalog.complete_photo(
                photo_id, metadata={"width": 1}, derivatives=[], taken_at=None
            )

        return catalog.insert_photo, complete, catalog.close
    if kind == "asyncpg":
        import asyncpg

        pool = await asyncpg.create_pool(url, min_size=pool_size, max_size=pool_size)

        async def a_insert(photo: PhotoRecord, outbox: OutboxEntry) -> None:
            async with pool.acquire() as conn, conn.transaction():
                now = await conn.fetchval(_NOW_SQL)
                for sql, params in insert_statements(photo, outbox, now):
                    await conn.execute(_dollars(sql), *params)

        async def a_complete(photo_id: str) -> None:
            async with pool.acquire() as conn, conn.transaction():
                await conn.fetch(_dollars(_LOCK_SQL), photo_id)
                now = await conn.fetchval(_NOW_SQL)
                await conn.execute(_dollars(_COMPLETE_SQL), *_complete_params(photo_id, now))

        return a_insert, a_complete, pool.close
    from psycopg import AsyncConnection
    from psycopg_pool import AsyncConnectionPool

    apool: AsyncConnectionPool[AsyncConnection[Any]] = AsyncConnectionPool(
        url, min_size=pool_size, max_size=pool_size, kwargs={"autocommit": True}, open=False
    )
    await apool.open(wait=True)

    async def p_insert(photo: PhotoRecord, outbox: OutboxEntry) -> None:
        async with apool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            await cur.execute(_NOW_SQL)
            row = await cur.fetchone()
            assert row is not None
            for sql, params in insert_statements(photo, outbox, row[0]):
                await cur.execute(_percents(sql), params)

    async def p_complete(photo_id: str) -> None:
        async with apool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            await cur.execute(_percents(_LOCK_SQL), (photo_id,))
            await cur.fetchall()
            await cur.execute(_NOW_SQL)
            row = await cur.fetchone()
            assert row is not None
            await cur.execute(_percents(_COMPLETE_SQL), _complete_params(photo_id, row[0]))

    return p_insert, p_complete, apool.close


async def _writer(
    target: str, backend: str, kind: str, args: dict[str, Any]
) -> dict[str, list[float]]:
    if backend == "sqlite":
        insert, complete, close = await _sqlite_writer(target, kind == WRITERS["sqlite"][0])
    else:
        insert, complete, close = await _postgres_writer(target, kind, args["tasks"])
    times: dict[str, list[float]] = {"insert": [], "complete": [], "busy cpu": []}
    stop = time.monotonic() + args["seconds"]
    busy_s = args["busy_s"]
    cpu_before = time.process_time()

    async def busy() -> None:
        spun = time.thread_time()
        spin_until = time.perf_counter() + busy_s
        while time.perf_counter() < spin_until:  # the loop's other work
            pass
        times["busy cpu"].append(time.thread_time() - spun)
        await asyncio.sleep(0)

    async def task() -> None:
        while time.monotonic() < stop:
            photo, outbox = _photo()
            asked = time.perf_counter()
            await insert(photo, outbox)
            times["insert"].append(time.perf_counter() - asked)
            await busy()
            if complete is not None:
                asked = time.perf_counter()
                await complete(photo.id)
                times["complete"].append(time.perf_counter() - asked)
                await busy()

    await asyncio.gather(*(task() for _ in range(args["tasks"])))
    # The process's CPU (every thread's) but for the spinning: the driver's own cost.
    times["cpu"] = [time.process_time() - cpu_before - sum(times.pop("busy cpu"))]
    await close()
    return times


def _child(
    target: str, backend: str, kind: str, args: dict[str, Any], start: Any, out: Any
) -> None:
    start.wait()
    out.put(asyncio.run(_writer(target, backend, kind, args)))


def run(
    target: str, backend: str, kind: str, processes: int, args: dict[str, Any]
) -> tuple[dict[str, list[float]], float]:
    """All processes' transaction times by kind, and the transactions per second they made
    together."""
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    children = [
        ctx.Process(target=_child, args=(target, backend, kind, args, start, out))
        for _ in range(processes)
    ]
    for child in children:
        child.start()
    time.sleep(1.5)  # every child imported and waiting
    start.set()
    times: dict[str, list[float]] = {"insert": [], "complete": [], "cpu": []}
    for _ in children:
        for name, values in out.get().items():
            times[name] += values
    for child in children:
        child.join()
    done = len(times["insert"]) + len(times["complete"])
    return times, done / args["seconds"]


async def _prepare_sqlite(db: str) -> None:
    catalog = SqliteCatalog(db)
    await catalog.connect()  # the schema, before the writers race to create it
    await catalog.close()


async def _prepare_postgres(url: str) -> None:
    from filmstrip.catalog.postgres import PostgresCatalog

    catalog = PostgresCatalog(url)
    await catalog.connect()  # the schema (asyncpg and psycopg's anchors do not make it)
    await catalog.close()


def _cpu_per_transaction(times: dict[str, list[float]]) -> float:
    """The writers' CPU (all their threads, the loop's other work left out) per transaction."""
    return sum(times["cpu"]) / max(1, len(times["insert"]) + len(times["complete"])) * 1e6


def ensure_asyncpg() -> str | None:
    """Make asyncpg importable here and in the spawned writers; the folder it was installed
    into for this run (None if it was importable already)."""
    if importlib.util.find_spec("asyncpg") is not None:
        return None
    folder = tempfile.mkdtemp(prefix="bench-asyncpg-")
    print("installing asyncpg (the anchor) for this run ...", flush=True)
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--target", folder, "asyncpg"]
    subprocess.run(pip, check=True)
    sys.path.append(folder)  # spawned children get the parent's sys.path
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=sorted(WRITERS), default="sqlite")
    parser.add_argument("--server", default="postgresql://127.0.0.1:5432/postgres")
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--tasks", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--busy-ms", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    opts = parser.parse_args()
    args = {"tasks": opts.tasks, "seconds": opts.seconds, "busy_s": opts.busy_ms / 1000}
    kinds = WRITERS[opts.backend]
    installed = ensure_asyncpg() if opts.backend == "postgresql" else None
    try:
        return _measure(opts, args, kinds)
    finally:
        if installed is not None:
            shutil.rmtree(installed, ignore_errors=True)


def _measure(opts: argparse.Namespace, args: dict[str, Any], kinds: tuple[str, ...]) -> int:
    times_of: dict[str, dict[str, list[float]]] = {
        k: {"insert": [], "complete": [], "cpu": []} for k in kinds
    }
    rates_of: dict[str, list[float]] = {k: [] for k in kinds}
    for _ in range(opts.rounds):
        for kind in kinds:  # alternated: this machine's speed drifts
            if opts.backend == "sqlite":
                with tempfile.TemporaryDirectory() as tmp:
                    db = str(Path(tmp) / "catalog.db")
                    asyncio.run(_prepare_sqlite(db))
                    times, rate = run(db, opts.backend, kind, opts.processes, args)
            else:
                from bench.postgres import create_database, drop_database

                url = create_database(opts.server)
                try:
                    asyncio.run(_prepare_postgres(url))
                    times, rate = run(url, opts.backend, kind, opts.processes, args)
                finally:
                    drop_database(url, opts.server)
            for name, values in times.items():
                times_of[kind][name].extend(values)
            rates_of[kind].append(rate)
    print(
        f"{opts.backend}: {opts.processes} processes x {opts.tasks} tasks, {opts.busy_ms:g} ms"
        f" of loop work between writes, {opts.rounds} x {opts.seconds:g} s each"
    )
    ours, anchors = kinds[0], kinds[1:]
    header = f"{'':32}" + "".join(f"{k:>15}" for k in kinds)
    header += "".join(f"{'ratio ' + a.split()[0]:>16}" for a in anchors)
    print(header)
    rows: list[tuple[str, dict[str, float]]] = []
    for name in ("insert", "complete"):
        if not times_of[ours][name]:
            continue
        for label, summary in (
            ("mean", statistics.fmean),
            ("p50", lambda t: percentile(t, 0.5)),
            ("p99", lambda t: percentile(t, 0.99)),
        ):
            rows.append(
                (f"{name} {label}, ms", {k: summary(times_of[k][name]) * 1000 for k in kinds})
            )
    rows.append(("transactions/s", {k: statistics.fmean(rates_of[k]) for k in kinds}))
    rows.append(("CPU per transaction, µs", {k: _cpu_per_transaction(times_of[k]) for k in kinds}))
    for label, figure in rows:
        line = f"{label:32}" + "".join(f"{figure[k]:15.2f}" for k in kinds)
        line += "".join(f"{figure[ours] / figure[a]:16.2f}" for a in anchors)
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
