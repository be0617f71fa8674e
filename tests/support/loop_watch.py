"""Which steps of the event loop ran long: the test-side check that nothing blocks it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from typing import Any

# What the worker does between two awaits takes under 5 ms here. A step can still wait
# for the GIL at each system call it makes while another thread runs Python (up to the
# 5 ms switch interval each time): with the earlier tests' threads about, steps of 55 ms
# were seen. Work that belongs in the pool takes longer: decoding the test photos on the
# loop made steps of 110-360 ms.
BLOCKED_S = 0.1


@contextlib.contextmanager
def slow_steps(threshold_s: float = BLOCKED_S) -> Iterator[list[tuple[float, str]]]:
    """Collect ``(seconds, what)`` for every callback or task step of the (pure-Python)
    asyncio loop that takes longer than ``threshold_s`` while the block runs.

    asyncio's debug mode reports the same, but it also records a stack for every future
    and handle it makes, stat()ing each frame's file. That bookkeeping runs on the loop and
    releases the GIL at every stat, and with the pipeline thread busy each release can
    cost a 5 ms switch interval: steps that take 2 ms took 50-300 ms under it here.
    """
    slow: list[tuple[float, str]] = []
    original = asyncio.events.Handle._run

    def timed(handle: Any) -> None:
        started = time.perf_counter()
        try:
            original(handle)
        finally:
            took = time.perf_counter() - started
            if took > threshold_s:
                slow.append((took, _describe(handle)))

    asyncio.events.Handle._run = timed  # type: ignore[method-assign]
    try:
        yield slow
    finally:
        asyncio.events.Handle._run = original  # type: ignore[method-assign]


def _describe(handle: Any) -> str:
    """The task a step belongs to (its coroutine, and where it stopped after the step)."""
    owner = getattr(getattr(handle, "_callback", None), "__self__", None)
    if not isinstance(owner, asyncio.Task):
        return repr(handle)[:200]
    # Down the chain of awaits to the innermost coroutine: where the step ended.
    where: list[str] = []
    coro: Any = owner.get_coro()
    while coro is not None and getattr(coro, "cr_frame", None) is not None:
        frame = coro.cr_frame
        where.append(f"{frame.f_code.co_name} ({frame.f_code.co_filename}:{frame.f_lineno})")
        coro = getattr(coro, "cr_await", None)
    return "task stopped in " + " > ".join(where[-3:]) if where else repr(owner)[:200]
