"""aiosqlite internals: run one function of ours on a connection's own thread. Fits
aiosqlite 0.22.

aiosqlite runs the calls made on a connection one at a time, in order, on the thread that
owns its sqlite3 connection, but has no public way to run a function of ours there. The
catalog needs one to run a whole write transaction in one call, so SQLite's write lock is
held only while its statements run, not across turns of the event loop
(``bench/catalog_writers.py``: 0.64x the statement-per-await anchor's insert time).
``Connection._execute(fn)`` queues ``fn`` as aiosqlite's own methods do, and
``Connection._conn`` is the sqlite3 connection; ``tests/compat/test_aiosqlite.py`` fails
loudly when either changes.

aiosqlite's thread is not a daemon, so a connection never closed (a role that dies on an
error before its clean-up, a test that fails half-way) keeps its process from exiting:
Python waits for the thread, which waits for a call that never comes. ``connect`` makes it
a daemon through ``Connection._thread`` before it starts; what a process killed this way
leaves is a committed WAL, as after any crash.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import aiosqlite

#: The aiosqlite release these internals were read from.
AIOSQLITE_VERSION = "0.22"

T = TypeVar("T")


def run_on_thread(
    conn: aiosqlite.Connection, fn: Callable[[sqlite3.Connection], T]
) -> asyncio.Future[T]:
    """``fn(sqlite3 connection)`` on ``conn``'s thread, after every call queued before it."""
    raw: sqlite3.Connection = conn._conn
    return asyncio.ensure_future(conn._execute(fn, raw))  # type: ignore[no-untyped-call]


def connect(path: str, **kwargs: Any) -> aiosqlite.Connection:
    """``aiosqlite.connect(path, **kwargs)`` (to await), its thread a daemon."""
    conn = aiosqlite.connect(path, **kwargs)
    thread: threading.Thread = conn._thread
    thread.daemon = True
    return conn
