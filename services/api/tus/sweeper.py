"""Deletes expired partial uploads on a timer (from every api process: stores take care
that two sweeps, or a sweep and a PATCH, never delete an upload twice or one in use)."""

from __future__ import annotations

import asyncio
import logging

from filmstrip.errors import FilmstripError
from filmstrip.services.api.tus.store import TusStore

log = logging.getLogger("filmstrip.api.tus")


async def run_tus_sweeper(store: TusStore, interval_s: float) -> None:
    """Sweep every ``interval_s`` (until cancelled)."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            removed = await store.sweep()
        except (OSError, FilmstripError) as exc:
            # A store (disk, catalog, S3) that is down: the next round tries again.
            log.warning("tus sweep failed: %s", exc)
            continue
        except Exception:
            log.exception("tus sweeper crashed; next round in %s s", interval_s)
            continue
        if removed:
            log.info("swept %d expired upload(s)", removed)
