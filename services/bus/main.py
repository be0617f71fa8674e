"""Run the bus until asked to stop."""

from __future__ import annotations

import asyncio
import logging

from filmstrip.compat.aiohttp import JsonErrorRunner
from filmstrip.listening import listen
from filmstrip.services.bus.app import HUB, create_app
from filmstrip.services.bus.gcpolicy import GcPolicy
from filmstrip.settings import Settings
from filmstrip.tasks import cancel_and_wait

log = logging.getLogger("filmstrip.bus")


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Run the bus on settings.bus.host:bus_port until `stop` is set, then shut down
    gracefully (close sockets with 1001)."""
    app = create_app(settings)
    # aiohttp's own refusals (malformed requests) in our JSON error shape, as the api's.
    runner = JsonErrorRunner(
        app, handle_signals=False, access_log=None, shutdown_timeout=settings.bus.close_timeout_s
    )
    await runner.setup()
    hub = app[HUB]
    gc_policy = GcPolicy(closed=lambda: hub.removed, opened=lambda: hub.added)
    gc_policy.install()
    surges = asyncio.create_task(gc_policy.run(), name="bus-gc-policy")
    try:
        await listen(runner, settings.bus.host, settings.bus.port, settings="BUS")
        log.info("bus listening", extra={"host": settings.bus.host, "port": settings.bus.port})
        await stop.wait()
    finally:
        await cancel_and_wait(surges)
        await runner.cleanup()
        gc_policy.uninstall()
