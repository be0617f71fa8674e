"""The outbox relay: moves jobs written beside their photo rows onto the queue.

Every upload writes its job into the catalog's outbox in the same transaction as the row
and tries to enqueue at once; this loop picks up whatever that first try could not (Redis
was down, the process died in between). Enqueue dedupes by job id, so several api
processes relaying the same entry still give one job.
"""

from __future__ import annotations

import asyncio
import logging

from redis.exceptions import RedisError

from filmstrip.errors import FilmstripError
from filmstrip.photos import PhotoLifecycle

log = logging.getLogger("filmstrip.api.relay")


async def relay_once(photos: PhotoLifecycle, *, min_age_s: float = 2.0) -> int:
    """Enqueue outbox entries older than ``min_age_s``; return how many were moved."""
    moved = 0
    for entry in await photos.catalog.outbox_pending(older_than_s=min_age_s, limit=200):
        try:
            await photos.relay(entry)
        except (FilmstripError, RedisError) as exc:
            log.warning("outbox relay paused: %s", exc)
            break
        moved += 1
    # Their entries, in one transaction (unless an upload's took them meanwhile).
    await photos.forget_relayed()
    if moved:
        log.info("outbox relay enqueued %d job(s)", moved)
    return moved


async def run_relay(photos: PhotoLifecycle, *, interval_s: float = 2.0) -> None:
    """Relay forever (until cancelled)."""
    while True:
        try:
            await relay_once(photos)
        except (FilmstripError, RedisError) as exc:
            log.warning("outbox relay failed: %s", exc)
        except Exception:
            log.exception("outbox relay crashed; retrying")
        await asyncio.sleep(interval_s)
