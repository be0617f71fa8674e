"""What the tests of the docs' examples share: a section's Python block, read from the page
as a user copies it, and the three roles in this process (loopback ports) to run it against."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from filmstrip.embedded.redis_server import free_port
from filmstrip.services.bus.app import create_app as create_bus
from filmstrip.services.worker.main import serve as serve_worker
from tests.api.conftest import Api, api_settings, running_api


def python_block(page: Path, heading: str) -> str:
    """The first Python block under ``heading`` (a whole line of ``page``, e.g. ``## Usage``),
    before the next heading of its level or above."""
    text = page.read_text()
    start = text.index(f"\n{heading}\n") + len(heading) + 2
    match = re.compile(r"```python\n(.*?)```", re.S).search(text, start)
    assert match, f"{page.name}: {heading!r} has no Python block"
    level = len(heading) - len(heading.lstrip("#"))
    between = re.search(rf"^#{{1,{level}}} ", text[start : match.start()], re.M)
    assert between is None, f"{page.name}: {heading!r} has no Python block of its own"
    return match.group(1)


@contextlib.asynccontextmanager
async def roles_in_process(
    tmp_path: Path, redis_url: str, client_name: str
) -> AsyncIterator[tuple[Api, int]]:
    """An api (with ``client_name``'s token), a bus and a worker on one Redis, each photo
    done at once (quick_processing, nothing deferred): the api and the bus's port."""
    bus_port = free_port()
    settings = api_settings(
        tmp_path, redis_url, bus_port=str(bus_port), worker_metrics_port="0",
        defer_optimization="false", default_pipeline="quick_processing",
    )  # fmt: skip
    bus = web.AppRunner(create_bus(settings), handle_signals=False, shutdown_timeout=2)
    await bus.setup()
    await web.TCPSite(bus, "127.0.0.1", bus_port).start()
    stop = asyncio.Event()
    worker = asyncio.create_task(serve_worker(settings, stop))
    try:
        async with running_api(settings, client_name) as api:
            yield api, bus_port
    finally:
        stop.set()
        await worker
        await bus.cleanup()
