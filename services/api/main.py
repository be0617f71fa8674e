"""Run the api role."""

from __future__ import annotations

import asyncio
import logging

from filmstrip.listening import listen
from filmstrip.services.api.app import create_app
from filmstrip.services.api.serving import api_runner
from filmstrip.settings import Settings

log = logging.getLogger("filmstrip.api")


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Serve HTTP on ``api_host:api_port`` until ``stop`` is set."""
    runner = api_runner(create_app(settings), settings, access_log=None, shutdown_timeout=10)
    await runner.setup()
    try:  # cleaned up also when it cannot listen: the catalog's threads would keep us alive
        await listen(runner, settings.api.host, settings.api.port, settings="API")
        log.info("api listening", extra={"url": f"http://{settings.api.host}:{settings.api.port}"})
        await stop.wait()
    finally:
        await runner.cleanup()
