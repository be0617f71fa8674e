"""Keep full cyclic-GC pauses out of event delivery.

With a thousand sockets the bus holds a few hundred thousand long-lived objects, and a
full collection scans them all: 40-80 ms during which no event moves (the p99 spikes the
bus bench showed at 6,000-10,000 events/s). Objects alive right after a full collection
are, by definition, not garbage, so the policy freezes them there (``gc.freeze``); later
full collections scan only what came after. Frozen objects are never collected, so
sockets that closed since keep their reference cycles (a few dozen objects each) until
the policy unfreezes once enough of them have accumulated; the next full collection then
reclaims them all at once, and everything still alive is frozen again.

A surge of new sockets (a deploy makes every client reconnect at once) would leave its
objects to the next full collection, whenever that falls; the policy runs that one
collection itself as soon as the surge is over.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("filmstrip.bus.gc")


class GcPolicy:
    """Freezes survivors after each full collection; unfreezes every ``closed_limit``
    socket closures (read from ``closed``) so their cycles are reclaimed."""

    def __init__(
        self,
        closed: Callable[[], int],
        opened: Callable[[], int],
        *,
        closed_limit: int = 1000,
        surge: int = 100,
        quiet_s: float = 0.5,
    ) -> None:
        self._closed = closed
        self._opened = opened
        self._limit = closed_limit
        self._surge = surge
        self._quiet_s = quiet_s
        self._closed_seen = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self.freezes = 0
        self.unfreezes = 0

    def install(self) -> None:
        """Freeze what is alive now and freeze again after every full collection."""
        self._loop = asyncio.get_running_loop()
        gc.collect()
        self._freeze()
        gc.callbacks.append(self._on_gc)

    async def run(self) -> None:
        """Collect (and so freeze) once a surge of at least ``surge`` new sockets has
        been quiet for ``quiet_s``."""
        settled = last = self._opened()
        while True:
            await asyncio.sleep(self._quiet_s)
            now = self._opened()
            if now == last and now - settled >= self._surge:
                settled = now
                gc.collect()
            last = now

    def uninstall(self) -> None:
        """Stop the policy and give the frozen objects back to the collector."""
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        gc.unfreeze()

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        # Not from inside the collector: it may run in any thread, at any allocation.
        if phase == "stop" and info["generation"] == 2 and self._loop is not None:
            self._loop.call_soon_threadsafe(self._after_full)

    def _after_full(self) -> None:
        closed = self._closed()
        if closed - self._closed_seen >= self._limit:
            # Let the next full collection see the closed sockets' cycles.
            gc.unfreeze()
            self._closed_seen = closed
            self.unfreezes += 1
            log.info("unfroze the collector to reclaim closed sockets",
                     extra={"closed": closed})  # fmt: skip
            return
        self._freeze()

    def _freeze(self) -> None:
        gc.freeze()
        self.freezes += 1
