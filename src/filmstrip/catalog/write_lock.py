"""A queue for SQLite's write lock across processes, so a waiting writer wakes the moment
the lock is free.

SQLite lets one connection write at a time, and one that finds the lock taken does not
wait on it: its busy handler sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100 ms and
tries again. Between its tries, writers that keep arriving take the lock first, so with
several busy processes the unlucky one waits a hundred milliseconds or more on a lock
that is free most of the time. Every writer of the catalog takes an exclusive ``flock``
on a file beside the database first, on its connection's thread, just around its
transaction: the kernel wakes a waiter as the holder lets go. SQLite's own lock still
decides who writes; this only orders the attempts, so a writer that skips it (the
``sqlite3`` shell) is still safe, and is waited for as before.
"""

from __future__ import annotations

import fcntl
import os


class WriteLock:
    """An exclusive ``flock`` on ``path``. Blocking: take it on the thread that writes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        """Wait for the lock. A holder only ever runs a transaction (a killed one's lock
        goes with its process), so the wait is as long as the transactions before it."""
        if self._fd is None:
            # Every process sharing the catalog opens it; the umask (file_modes) decides who.
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def release(self) -> None:
        """Give the lock back."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close the file (which also gives the lock back)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
