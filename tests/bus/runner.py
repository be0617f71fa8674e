"""A tiny bus entry point for tests: ``python -m tests.bus.runner`` (settings from env)."""

from __future__ import annotations

import asyncio
import signal

from filmstrip.logs import setup_logging
from filmstrip.settings import load_settings
from services.bus.main import serve


async def _main() -> None:
    settings = load_settings()
    setup_logging("bus", level=settings.log_level, json=settings.log_json)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(settings, stop)


if __name__ == "__main__":
    asyncio.run(_main())
