"""The aiosqlite internals ``filmstrip/compat/aiosqlite.py`` relies on: this fails loudly
when an aiosqlite upgrade moves them, so the catalog's one-call transactions cannot
silently stop running on the connection's own thread."""

from __future__ import annotations

import asyncio
import inspect
import os
import sqlite3
import sys
import threading
from pathlib import Path

import aiosqlite

from filmstrip.compat import aiosqlite as compat

ROOT = Path(__file__).resolve().parents[2]


def test_aiosqlite_is_the_release_the_internals_were_read_from() -> None:
    assert aiosqlite.__version__.startswith(compat.AIOSQLITE_VERSION + "."), (
        f"aiosqlite {aiosqlite.__version__}: re-read how Connection queues a call on its"
        " thread (_execute), holds its sqlite3 connection (_conn) and makes its thread"
        " (_thread), then update filmstrip/compat/aiosqlite.py"
    )


def test_execute_queues_a_function_with_its_arguments() -> None:
    assert list(inspect.signature(aiosqlite.Connection._execute).parameters) == [
        "self", "fn", "args", "kwargs"
    ]  # fmt: skip
    assert inspect.iscoroutinefunction(aiosqlite.Connection._execute)


async def test_a_function_runs_on_the_connections_thread(tmp_path: Path) -> None:
    conn = await aiosqlite.connect(tmp_path / "db", isolation_level=None)
    try:
        threads: list[int] = []

        def names(raw: sqlite3.Connection) -> list[tuple[str]]:
            threads.append(threading.get_ident())
            # sqlite3 refuses a connection used off the thread that made it.
            return raw.execute("SELECT name FROM sqlite_master").fetchall()

        await conn.execute("CREATE TABLE t (x)")
        assert await compat.run_on_thread(conn, names) == [("t",)]
        await conn.execute("CREATE TABLE u (x)")
        assert await compat.run_on_thread(conn, names) == [("t",), ("u",)]
        assert len(set(threads)) == 1 and threads[0] != threading.get_ident()
    finally:
        await conn.close()


def test_a_connection_has_its_thread_before_it_is_awaited() -> None:
    pending = aiosqlite.connect(":memory:")
    assert isinstance(pending._thread, threading.Thread)
    assert not pending._thread.is_alive()  # daemon may still be set


async def test_a_connection_left_open_does_not_keep_its_process_alive(tmp_path: Path) -> None:
    # The catalog as a process that dies half-way leaves it: connected, never closed.
    script = (
        "import asyncio\n"
        "from filmstrip.catalog import catalog_for_url\n"
        f"catalog = catalog_for_url('sqlite:///{tmp_path / 'catalog.db'}')\n"
        "asyncio.run(catalog.connect())\n"
        "print('connected', flush=True)\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"},
    )  # fmt: skip
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=30)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError("the process did not exit: an aiosqlite thread held it") from None
    assert proc.returncode == 0 and out == b"connected\n"
