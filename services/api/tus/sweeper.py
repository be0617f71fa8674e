"""Deletes expired partial uploads on a timer (from the api process)."""

from __future__ import annotations

import asyncio
import logging

from services.api.tus.store import TusStore

log = logging.getLogger("filmstrip.api.tus")


async def run_tus_sweeper(store: TusStore, interval_s: float) -> None:
    """Sweep every ``interval_s`` (until cancelled); several api processes may share a dir."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            removed = await store.sweep()
        except OSError as exc:
            log.warning("tus sweep failed: %s", exc)
            continue
        except Exception:
            log.exception("tus sweeper crashed; next round in %s s", interval_s)
            continue
        if removed:
            log.info("swept %d expired upload(s)", removed)
