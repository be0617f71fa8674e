"""The queue's backlog as the api's admission check reads it: one Redis script per second
while the queue is far from full, instead of one per upload."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from filmstrip.queue import JobQueue

#: How long a reading stands in for a new one while the queue is under half its limit.
FRESH_S = 1.0
#: All bands together may hold this many times the limit: follow-up jobs wait in the lowest
#: band behind every upload and delay no new photo's thumbnails, so they refuse uploads only
#: there, which bounds the memory they hold in Redis (about 1 KB each).
TOTAL_LIMIT_FACTOR = 10


@dataclass
class BacklogReader:
    """The last backlog read from Redis plus the uploads this process let through since.

    Under half the limit a reading up to ``FRESH_S`` old is used with those uploads added:
    other api processes' uploads in that second would have to fill the other half to be
    missed. Near or over the limit every check reads Redis, so a refusal is never stale;
    after a Redis failure (:meth:`forget`) too, so an outage refuses uploads (503) at once.
    """

    ahead: int = 0
    total: int = 0
    read_at: float = -math.inf
    since: int = 0

    async def read(self, queue: JobQueue, top_band: int, limit: int) -> tuple[int, int]:
        """(waiting in bands 1..``top_band``, waiting in all bands), as ``queue.backlog``."""
        ahead, total = self.ahead + self.since, self.total + self.since
        fresh = time.monotonic() - self.read_at < FRESH_S
        if fresh and 2 * ahead < limit and 2 * total < TOTAL_LIMIT_FACTOR * limit:
            self.since += 1
            return ahead, total
        self.ahead, self.total = await queue.backlog(top_band)
        self.read_at, self.since = time.monotonic(), 1
        return self.ahead, self.total

    def forget(self) -> None:
        """Read Redis at the next check (it just failed this process)."""
        self.read_at = -math.inf
