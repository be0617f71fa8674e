"""Run the bus until asked to stop."""

from __future__ import annotations

import asyncio
import gc
import logging

from aiohttp import web

from filmstrip.settings import Settings
from services.bus.app import create_app

log = logging.getLogger("filmstrip.bus")


def _tune_gc() -> None:
    """Shorten full cyclic-GC pauses: move everything alive after startup (modules,
    classes, the app) out of the collector's reach, so a full collection scans only what
    the sockets created."""
    gc.collect()
    gc.freeze()


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Run the bus on settings.bus_host:bus_port until `stop` is set, then shut down
    gracefully (close sockets with 1001)."""
    app = create_app(settings)
    runner = web.AppRunner(
        app, handle_signals=False, access_log=None, shutdown_timeout=settings.bus_close_timeout_s
    )
    await runner.setup()
    _tune_gc()
    try:
        site = web.TCPSite(runner, settings.bus_host, settings.bus_port, reuse_address=True)
        await site.start()
        log.info("bus listening", extra={"host": settings.bus_host, "port": settings.bus_port})
        await stop.wait()
    finally:
        await runner.cleanup()
