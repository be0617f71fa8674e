"""Running a hypothesis property against services on the test's event loop.

Hypothesis drives its examples synchronously, and the api under test lives on the running
loop; so the engine runs in a thread and hands each example back to the loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from hypothesis import HealthCheck, settings

#: Bounded, deterministic runs with no example database written into the worktree.
FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


async def run_property(
    prop: Callable[[Callable[[Coroutine[Any, Any, None]], None]], None],
) -> None:
    """Run ``prop(on_loop)`` in a thread; ``on_loop(coro)`` runs one coroutine on this loop."""
    loop = asyncio.get_running_loop()

    def on_loop(coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, loop).result()

    await asyncio.to_thread(prop, on_loop)
