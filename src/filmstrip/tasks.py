"""Stopping background tasks, even ones that swallowed their cancellation."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger("filmstrip.tasks")

# How long a cancelled task may take to end before it is cancelled again.
AGAIN_AFTER_S = 0.5


async def cancel_and_wait(*tasks: asyncio.Task[Any], again_after_s: float = AGAIN_AFTER_S) -> None:
    """Cancel ``tasks`` and wait until each has ended, cancelling again any still running.

    On Python 3.11, ``asyncio.wait_for`` drops a cancellation that lands as its awaitable
    finishes (fixed in 3.12), and redis-py sends every command through it once
    ``socket_timeout`` is set (its default is 5 s): a loop cancelled at that moment goes
    on forever. Its next ``await`` takes a second cancellation. Errors other than the
    cancellation are logged, not raised, so one failed task cannot keep the others alive.
    """
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=again_after_s)
        if pending:
            log.warning("%d tasks still running after a cancellation; cancelling again",
                        len(pending))  # fmt: skip
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s failed before it was stopped", task.get_name(),
                      exc_info=task.exception())  # fmt: skip
