"""Run blocking (CPU or C-library) work off the event loop in one bounded pool."""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from filmstrip.cpu_slices import run_as_batch

P = ParamSpec("P")
T = TypeVar("T")

_pool: ThreadPoolExecutor | None = None


def configure_pool(threads: int, *, slice_ms: int = 0) -> ThreadPoolExecutor:
    """Create the process-wide pool (``threads`` <= 0 means one per CPU); with ``slice_ms``
    its threads, and libvips' threads they start, run as batch work (filmstrip.cpu_slices)."""
    global _pool
    if _pool is not None:
        _pool.shutdown(wait=False)
    size = threads if threads > 0 else (os.cpu_count() or 2)
    _pool = ThreadPoolExecutor(
        max_workers=size,
        thread_name_prefix="filmstrip-cpu",
        initializer=functools.partial(run_as_batch, slice_ms) if slice_ms > 0 else None,
    )
    # Start every thread now: starting one waits for it to run, which on a busy machine
    # would otherwise stall the event loop at the first job.
    barrier = threading.Barrier(size + 1)
    for _ in range(size):
        _pool.submit(barrier.wait)
    barrier.wait()
    return _pool


def shutdown_pool() -> None:
    """Stop the pool; running calls finish, queued ones are dropped."""
    global _pool
    if _pool is not None:
        _pool.shutdown(wait=False, cancel_futures=True)
        _pool = None


async def run_blocking(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Await ``fn(*args, **kwargs)`` run in the bounded pool."""
    pool = _pool or configure_pool(0)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(pool, functools.partial(fn, *args, **kwargs))
