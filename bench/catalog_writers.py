"""Catalog writes from several busy processes at once: the catalog's transactions, each
run whole on the connection's thread, against the same statements sent one by one.

Starts ``--processes`` processes on one SQLite catalog (as the api and worker processes
share one), each with ``--tasks`` tasks that insert a photo and its outbox entry in one
transaction, then keep their event loop busy for ``--busy-ms`` (the rest of a request's
work), over and over. It runs twice, alternating: with ``Catalog.insert_photo``, and with
the anchor, the usual aiosqlite way, which awaits ``BEGIN IMMEDIATE``, each statement and
``COMMIT`` in turn and so holds SQLite's write lock while its event loop gets back to it
between them (other processes meanwhile sleep in SQLite's busy handler, 1, 2, 5, 10 ...
100 ms between tries). Prints the transaction time (from asking to commit) and writes/s.
Usage: ``python -m bench.catalog_writers [--processes 4] [--tasks 3] [--seconds 6]``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from bench.stats import percentile  # noqa: E402
from filmstrip.catalog import OutboxEntry, PhotoRecord, PhotoStatus, utcnow  # noqa: E402
from filmstrip.catalog.base import insert_statements  # noqa: E402
from filmstrip.catalog.sqlite import SqliteCatalog  # noqa: E402


def _photo() -> tuple[PhotoRecord, OutboxEntry]:
    pid = str(uuid.uuid4())
    now = "2026-01-01T00:00:00.000Z"
    photo = PhotoRecord(
        id=pid, client_id="bench", session_id=None, blob_key=f"originals/{pid}",
        content_type="image/jpeg", bytes=10, sha256=uuid.uuid4().hex * 2,
        status=PhotoStatus.QUEUED, job_id=f"photo:{pid}", trace_id="t" * 32,
        uploaded_at=now, updated_at=now,
    )  # fmt: skip
    return photo, OutboxEntry(
        job_id=photo.job_id, photo_id=pid, payload="{}", priority=5, created_at=now
    )


async def _statement_by_statement(
    catalog: SqliteCatalog, lock: asyncio.Lock, photo: PhotoRecord, outbox: OutboxEntry
) -> None:
    """The anchor: the same transaction as ``insert_photo``, a turn of the loop per step."""
    conn = catalog._conn
    assert conn is not None
    async with lock:  # one transaction at a time on the process's writer connection
        await conn.execute("BEGIN IMMEDIATE")
        try:
            for sql, params in insert_statements(photo, outbox, utcnow()):
                await conn.execute(sql, params)
        except BaseException:
            await conn.execute("ROLLBACK")
            raise
        await conn.execute("COMMIT")


async def _writer(db: str, ours: bool, tasks: int, seconds: float, busy_s: float) -> list[float]:
    catalog = SqliteCatalog(db)
    await catalog.connect()
    lock = asyncio.Lock()
    times: list[float] = []
    stop = time.monotonic() + seconds

    async def task() -> None:
        while time.monotonic() < stop:
            photo, outbox = _photo()
            asked = time.perf_counter()
            if ours:
                await catalog.insert_photo(photo, outbox)
            else:
                await _statement_by_statement(catalog, lock, photo, outbox)
            times.append(time.perf_counter() - asked)
            spin_until = time.perf_counter() + busy_s
            while time.perf_counter() < spin_until:  # the loop's other work
                pass
            await asyncio.sleep(0)

    await asyncio.gather(*(task() for _ in range(tasks)))
    await catalog.close()
    return times


def _child(db: str, ours: bool, args: dict[str, Any], start: Any, out: Any) -> None:
    start.wait()
    out.put(asyncio.run(_writer(db, ours, args["tasks"], args["seconds"], args["busy_s"])))


def run(ours: bool, processes: int, args: dict[str, Any]) -> tuple[list[float], float]:
    """All processes' transaction times, and the writes per second they made together."""
    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "catalog.db")
        asyncio.run(_prepare(db))
        start, out = ctx.Event(), ctx.Queue()
        children = [
            ctx.Process(target=_child, args=(db, ours, args, start, out)) for _ in range(processes)
        ]
        for child in children:
            child.start()
        time.sleep(1.0)  # every child imported and waiting
        start.set()
        times: list[float] = []
        for _ in children:
            times += out.get()
        for child in children:
            child.join()
    return times, len(times) / args["seconds"]


async def _prepare(db: str) -> None:
    catalog = SqliteCatalog(db)
    await catalog.connect()  # the schema, before the writers race to create it
    await catalog.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--tasks", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--busy-ms", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    opts = parser.parse_args()
    args = {"tasks": opts.tasks, "seconds": opts.seconds, "busy_s": opts.busy_ms / 1000}
    results: dict[bool, tuple[list[float], list[float]]] = {True: ([], []), False: ([], [])}
    for _ in range(opts.rounds):
        for ours in (True, False):  # alternated: this machine's speed drifts
            times, rate = run(ours, opts.processes, args)
            results[ours][0].extend(times)
            results[ours][1].append(rate)
    print(
        f"{opts.processes} processes x {opts.tasks} tasks, {opts.busy_ms:g} ms of loop work"
        f" between writes, {opts.rounds} x {opts.seconds:g} s each"
    )
    print(f"{'':32}{'one call':>14}{'step by step':>14}{'ratio':>8}")
    rows = [
        ("transaction mean, ms", lambda t, r: statistics.fmean(t) * 1000),
        ("transaction p50, ms", lambda t, r: percentile(t, 0.5) * 1000),
        ("transaction p99, ms", lambda t, r: percentile(t, 0.99) * 1000),
        ("writes/s", lambda t, r: statistics.fmean(r)),
    ]
    for name, fig in rows:
        ours, anchor = fig(*results[True]), fig(*results[False])
        print(f"{name:32}{ours:14.1f}{anchor:14.1f}{ours / anchor:8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
